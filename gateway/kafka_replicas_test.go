package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/kafkaproxy"
	"github.com/sluicehq/sluice/products/store"
)

// newKafkaClient is a plaintext franz-go client of a front door, closed at
// the test's end.
func newKafkaClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestKafkaReplicasOneGroup: two replicas sharing PostgreSQL form one Kafka
// cluster at the front door. A consumer group whose members connect to
// different replicas is one group: both replicas name the same coordinator
// and list each other as brokers, the members split the partitions and
// get every record. When the coordinating replica stops, its node leaves
// the cluster: the group moves to the other replica and goes on from its
// commits, and records produced after are consumed too.
func TestKafkaReplicasOneGroup(t *testing.T) {
	base := os.Getenv("SLUICE_TEST_POSTGRES_DSN")
	if base == "" {
		t.Skip("SLUICE_TEST_POSTGRES_DSN not set (deploy/postgres/start.sh prints one; deploy/test.sh sets it)")
	}
	dsn := freshSchema(t, base)
	t.Setenv("SLUICE_PSEUDONYM_SECRET", strings.Repeat("5e", 32))
	yes, no := true, false
	cfg := func(name string) gateway.Config {
		return gateway.Config{
			DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", EmbeddedKafkaAddr: "127.0.0.1:0", Generate: &no,
			Store: dsn, Replica: name, SeedDemo: &yes, Auth: gateway.AuthConfig{DevKey: &yes},
			KafkaListen: "127.0.0.1:0", KafkaListenTLS: gateway.KafkaListenTLSConfig{Enabled: &no},
			Logger:          slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Hub:             gateway.HubYAML{MaxWait: 100 * time.Millisecond},
			ShutdownTimeout: 5 * time.Second,
		}
	}
	a := startReplica(t, cfg("replica-a"))
	cb := cfg("replica-b")
	cb.Brokers, cb.SeedDemo = []string{a.gw.KafkaAddr()}, &no
	b := startReplica(t, cb)
	st := a.gw.Store()
	ctx := context.Background()
	for _, p := range store.UnlimitedDemoPlans() {
		if err := st.UpsertPlan(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	info, key, err := st.CreateKey(ctx, "internal-noc", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	login := kgo.SASL(plain.Auth{User: info.ID, Pass: strings.TrimPrefix(key, "slk_"+info.ID+"_")}.AsMechanism())
	const n = 600
	produceProduct(t, a.gw.KafkaAddr(), "cdr", n)

	// Each replica lists both (a sees b at its next refresh, within 1 s).
	bID := kafkaproxy.NodeIDOf(b.gw.KafkaProxyAddr())
	admA := kadm.NewClient(newKafkaClient(t, a.gw.KafkaProxyAddr(), login))
	admB := kadm.NewClient(newKafkaClient(t, b.gw.KafkaProxyAddr(), login))
	brokers := func(addr string) int { // a fresh client: franz-go caches metadata
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), login)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		if err != nil {
			return 0
		}
		return len(md.Brokers)
	}
	waitFor(t, 5*time.Second, func() bool {
		return brokers(a.gw.KafkaProxyAddr()) == 2 && brokers(b.gw.KafkaProxyAddr()) == 2
	}, "both replicas to list both as brokers")
	// A group id that replica b coordinates, so that stopping b moves it.
	group := ""
	for i := 0; group == "" && i < 40; i++ {
		g := "billing-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		ca, cb := admA.FindGroupCoordinators(ctx, g), admB.FindGroupCoordinators(ctx, g)
		if ca.Error() != nil || cb.Error() != nil {
			t.Fatalf("FindCoordinator: %v %v", ca.Error(), cb.Error())
		}
		if ca[g].NodeID != cb[g].NodeID {
			t.Fatalf("group %s: replica a names coordinator %d, replica b %d", g, ca[g].NodeID, cb[g].NodeID)
		}
		if ca[g].NodeID == bID {
			group = g
		}
	}
	if group == "" {
		t.Fatal("no group id of 40 hashes to replica b")
	}

	var mu sync.Mutex
	seen := map[[2]int64]int{}
	held := map[string]map[int32]bool{}
	member := func(name, seed string) *kgo.Client {
		track := func(on bool) func(context.Context, *kgo.Client, map[string][]int32) {
			return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
				mu.Lock()
				defer mu.Unlock()
				if held[name] == nil {
					held[name] = map[int32]bool{}
				}
				for _, p := range m["cdr"] {
					if on {
						held[name][p] = true
					} else {
						delete(held[name], p)
					}
				}
			}
		}
		cl := newKafkaClient(t, seed, login, kgo.ConsumerGroup(group), kgo.ConsumeTopics("cdr"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(300*time.Millisecond),
			kgo.SessionTimeout(6*time.Second), kgo.AutoCommitInterval(200*time.Millisecond),
			kgo.OnPartitionsAssigned(track(true)), kgo.OnPartitionsRevoked(track(false)), kgo.OnPartitionsLost(track(false)))
		go func() {
			for {
				fs := cl.PollRecords(context.Background(), 100)
				if fs.IsClientClosed() {
					return
				}
				mu.Lock()
				for _, r := range fs.Records() {
					seen[[2]int64{int64(r.Partition), r.Offset}]++
				}
				mu.Unlock()
			}
		}()
		return cl
	}
	oneGroup := func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		count := map[int32]int{}
		desc := ""
		for _, name := range slices.Sorted(maps.Keys(held)) {
			ps := slices.Sorted(maps.Keys(held[name]))
			desc += fmt.Sprintf("%s:%v ", name, ps)
			for _, p := range ps {
				count[p]++
			}
		}
		for p := range int32(6) {
			if count[p] != 1 {
				return false, desc
			}
		}
		return true, desc
	}
	distinct := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	member("m1", a.gw.KafkaProxyAddr())
	member("m2", b.gw.KafkaProxyAddr())
	waitFor(t, 30*time.Second, func() bool {
		ok, _ := oneGroup()
		mu.Lock()
		defer mu.Unlock()
		return ok && len(held["m1"]) > 0 && len(held["m2"]) > 0
	}, "the members to split the partitions as one group")
	waitFor(t, 30*time.Second, func() bool { return distinct() >= n }, "every record consumed")

	// The coordinating replica stops: the group moves to a and goes on.
	b.stop()
	produceProduct(t, a.gw.KafkaAddr(), "cdr", n)
	waitFor(t, 60*time.Second, func() bool { return distinct() >= 2*n }, "the records produced after the stop consumed")
	// m2's client notices the move at its next heartbeat or fetch: until
	// then it still holds its old partitions, as a Kafka member does until
	// its coordinator is found again.
	waitFor(t, 30*time.Second, func() bool { ok, _ := oneGroup(); return ok }, "one group over partitions 0-5 again")
	if ca := admA.FindGroupCoordinators(ctx, group); ca.Error() != nil || ca[group].NodeID != kafkaproxy.NodeIDOf(a.gw.KafkaProxyAddr()) {
		t.Errorf("after replica b stopped, coordinator of %s: %+v, want replica a", group, ca)
	}
}

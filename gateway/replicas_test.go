package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/sseclient"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/products/store"

	"github.com/sluicehq/sluice/products/store/storetest"
)

// replica is one gateway of a replica set.
type replica struct {
	gw   *gateway.Gateway
	base string
	stop func()
}

func startReplica(t *testing.T, cfg gateway.Config) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("gateway.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	var once sync.Once
	r := &replica{gw: gw, base: "http://" + gw.HTTPAddr()}
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("replica stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("replica did not stop within 30 s")
			}
		})
	}
	t.Cleanup(r.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(r.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("replica not ready within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freshSchema returns base with a search_path of a new schema, dropped at
// cleanup.
func freshSchema(t *testing.T, base string) string { return storetest.PostgresDSN(t, base) }

// TestIntegrationReplicas: three gateways sharing one PostgreSQL store and
// one Kafka broker (the first one's embedded broker) act as one gateway:
//
//   - a partner's rate holds globally within ±10% while three clients pull
//     as fast as they can, each spreading its requests over every replica;
//   - the plan's concurrent streams count streams on every replica;
//   - revoking the subscription ends its streams on every replica within
//     1 s, and a revoked API key is refused by every replica at once;
//   - the usage the store holds after a clean shutdown equals what the
//     clients received.
func TestIntegrationReplicas(t *testing.T) {
	base := os.Getenv("SLUICE_TEST_POSTGRES_DSN")
	if base == "" {
		t.Skip("SLUICE_TEST_POSTGRES_DSN not set (deploy/postgres/start.sh prints one; deploy/test.sh sets it)")
	}
	dsn := freshSchema(t, base)
	t.Setenv("SLUICE_PSEUDONYM_SECRET", strings.Repeat("5e", 32)) // replicas share it
	yes, no := true, false
	cfg := func(i int) gateway.Config {
		return gateway.Config{
			DataDir:           t.TempDir(),
			HTTPAddr:          "127.0.0.1:0",
			EmbeddedKafkaAddr: "127.0.0.1:0",
			Generate:          &no,
			Store:             dsn,
			Replica:           "replica-" + string(rune('a'+i)),
			Logger:            slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Stream:            gateway.StreamYAML{Heartbeat: time.Second, IdleCursor: 300 * time.Millisecond},
			Hub:               gateway.HubYAML{MaxWait: 100 * time.Millisecond},
			ShutdownTimeout:   5 * time.Second,
			SeedDemo:          &yes,
			Auth:              gateway.AuthConfig{DevKey: &yes}, // the clients use API keys
		}
	}
	a := startReplica(t, cfg(0))
	cb, cc := cfg(1), cfg(2)
	cb.Brokers, cc.Brokers = []string{a.gw.KafkaAddr()}, []string{a.gw.KafkaAddr()}
	cb.SeedDemo, cc.SeedDemo = &no, &no
	b, c := startReplica(t, cb), startReplica(t, cc)
	replicas := []*replica{a, b, c}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := a.gw.Store()
	const rate = 60
	if err := st.UpsertPlan(ctx, quotaPlan("q-global", rate)); err != nil {
		t.Fatal(err)
	}
	sub := resubscribe(t, st, "internal-noc", "network-quality", "q-global")
	keyInfo, key, err := st.CreateKey(ctx, "internal-noc", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	produceProduct(t, a.gw.KafkaAddr(), "network-quality", 2000)

	// Rate, streamed: one stream per replica reading a backlog; together
	// they get the plan's rate.
	resubscribe(t, st, "internal-noc", "device-telemetry", "q-global")
	produceProduct(t, a.gw.KafkaAddr(), "device-telemetry", 2000)
	warm, window := 2*time.Second, 10*time.Second
	var streamed, streamedIn atomic.Int64
	start := time.Now()
	winStart, winEnd := start.Add(warm), start.Add(warm+window)
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Go(func() {
			sctx, scancel := context.WithDeadline(ctx, winEnd.Add(100*time.Millisecond))
			defer scancel()
			req, _ := http.NewRequestWithContext(sctx, http.MethodGet, r.base+"/v1/products/device-telemetry/stream?from=earliest", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("stream on %s: %v %v", r.base, err, resp)
				return
			}
			defer resp.Body.Close()
			rd := sseclient.NewReader(resp.Body)
			for {
				ev, err := rd.Next()
				if err != nil {
					return // the deadline
				}
				if ev.Type != "record" {
					continue
				}
				streamed.Add(1)
				if at := time.Now(); at.After(winStart) && !at.After(winEnd) {
					streamedIn.Add(1)
				}
			}
		})
	}
	wg.Wait()
	global := float64(streamedIn.Load()) / window.Seconds()
	t.Logf("streams: %.1f records/s over %s on three replicas (plan %d); %d streamed in all", global, window, rate, streamed.Load())
	if math.Abs(global-rate)/rate > 0.10 {
		t.Fatalf("global streamed rate %.1f records/s, want %d ± 10%%", global, rate)
	}

	// Rate, pulled: three greedy clients, each request to the next replica.
	var received atomic.Int64 // every record any client got
	var counted atomic.Int64  // records got inside the measured window
	var requests, refused atomic.Int64
	start = time.Now()
	winStart, winEnd = start.Add(warm), start.Add(warm+window)
	for i := range 3 {
		wg.Go(func() {
			cur := "from=earliest"
			for j := 0; time.Now().Before(winEnd); j++ {
				r := replicas[(i+j)%3]
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/v1/products/network-quality/records?limit=100&"+cur, nil)
				req.Header.Set("Authorization", "Bearer "+key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				at := time.Now()
				requests.Add(1)
				switch resp.StatusCode {
				case 200:
					var pg page
					if err := json.Unmarshal(body, &pg); err != nil {
						t.Errorf("client %d: %v", i, err)
						return
					}
					cur = "cursor=" + pg.NextCursor
					received.Add(int64(len(pg.Records)))
					if at.After(winStart) && !at.After(winEnd) {
						counted.Add(int64(len(pg.Records)))
					}
				case 429:
					refused.Add(1)
					time.Sleep(2 * time.Millisecond)
				default:
					t.Errorf("client %d: %d %s", i, resp.StatusCode, body)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	global = float64(counted.Load()) / window.Seconds()
	t.Logf("pages: %.1f records/s over %s (plan %d); %d records received in all, %d requests, %d refused", global, window, rate, received.Load(), requests.Load(), refused.Load())
	switch {
	case global > rate*1.10:
		t.Fatalf("global pulled rate %.1f records/s, over %d + 10%%", global, rate)
	case global < rate*0.90 && raceDetector:
		// A request takes tens of ms under the race detector, so three
		// sequential clients cannot always drain the buckets in time: the
		// lower bound is checked without it (the integration phase).
		t.Logf("under the race detector the clients are too slow to reach the rate; not checking the lower bound")
	case global < rate*0.90:
		t.Fatalf("global pulled rate %.1f records/s, want %d ± 10%%", global, rate)
	}

	// Streams: the plan allows 2; one on a and one on b leave none for c.
	p := quotaPlan("q-global", rate)
	p.ConcurrentStreams = 2
	if err := st.UpsertPlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	open := func(r *replica) (*http.Response, *sseclient.Reader) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/v1/products/network-quality/stream?from=latest", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, sseclient.NewReader(resp.Body)
	}
	sa, ra := open(a)
	sb, rb := open(b)
	if sa.StatusCode != 200 || sb.StatusCode != 200 {
		t.Fatalf("streams on a and b: %d %d", sa.StatusCode, sb.StatusCode)
	}
	waitFor(t, 3*time.Second, func() bool {
		sc, _ := open(c)
		sc.Body.Close()
		return sc.StatusCode == http.StatusTooManyRequests
	}, "replica c to count the streams open on a and b")
	p.ConcurrentStreams = 10
	if err := st.UpsertPlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	var sc *http.Response
	var rc *sseclient.Reader
	waitFor(t, 3*time.Second, func() bool {
		sc, rc = open(c)
		if sc.StatusCode != 200 {
			sc.Body.Close()
		}
		return sc.StatusCode == 200
	}, "a stream on c after the plan allows more")

	// Revocation, made through replica c's store, ends all three streams.
	at := time.Now()
	if _, err := c.gw.Store().Transition(ctx, sub.ID, store.ActionRevoke, "admin", "replica test"); err != nil {
		t.Fatal(err)
	}
	var ended sync.WaitGroup
	for name, r := range map[string]*sseclient.Reader{"a": ra, "b": rb, "c": rc} {
		ended.Go(func() {
			for {
				ev, err := r.Next()
				if err != nil {
					t.Errorf("stream on %s ended without a revoked event: %v", name, err)
					return
				}
				if ev.Type == "revoked" {
					if d := time.Since(at); d > time.Second {
						t.Errorf("stream on %s ended %s after the revocation, want within 1 s", name, d)
					} else {
						t.Logf("stream on %s ended %s after the revocation", name, d.Round(time.Millisecond))
					}
					return
				}
			}
		})
	}
	ended.Wait()
	sa.Body.Close()
	sb.Body.Close()
	sc.Body.Close()

	// A revoked key is refused by every replica.
	if err := b.gw.Store().RevokeKey(ctx, "internal-noc", keyInfo.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	for _, r := range replicas {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/v1/products", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), "key-revoked") {
			t.Fatalf("revoked key on %s: %d %s", r.base, resp.StatusCode, body)
		}
	}

	// Usage: exact after a clean shutdown of every replica.
	for _, r := range replicas {
		r.stop()
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if u := sumUsage(t, s, "internal-noc", "network-quality"); u != received.Load() {
		t.Fatalf("store usage %d records, the clients received %d", u, received.Load())
	}
}

// produceProduct writes n generated records of product to its topic.
func produceProduct(t *testing.T, broker, product string, n int) {
	t.Helper()
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Get(product)
	gen, err := generate.New(cat, generate.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, n)
	for range n {
		r, err := gen.Next(product)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: p.Topic, Key: r.Key, Value: r.Value, Timestamp: r.Time})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

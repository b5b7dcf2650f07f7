package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/gateway/internal/selfsigned"
	"github.com/sluicehq/sluice/gateway/internal/testkit"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/store"
)

// The Kafka front door, end to end: partners' own Kafka clients (franz-go,
// kcat) against a gateway started by the harness (embedded broker, or a
// real Kafka with SLUICE_TEST_BROKERS: the partners never see it).

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

// withKafkaFrontDoor turns the Kafka front door on at a free port with
// TLS: the embedded default generates its self-signed certificate; with an
// external cluster (SLUICE_TEST_BROKERS), where the front door is off by
// default and a certificate is required, the test makes one.
func withKafkaFrontDoor(t testing.TB) func(*gateway.Config) {
	return func(c *gateway.Config) {
		c.KafkaListen = "127.0.0.1:0"
		if len(c.Brokers) == 0 || c.KafkaListenTLS.CertFile != "" {
			return
		}
		dir := t.TempDir()
		certPEM, keyPEM, err := selfsigned.Generate("sluice test front door", nil, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c.KafkaListenTLS.CertFile, c.KafkaListenTLS.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if os.WriteFile(c.KafkaListenTLS.CertFile, certPEM, 0o644) != nil || os.WriteFile(c.KafkaListenTLS.KeyFile, keyPEM, 0o600) != nil {
			t.Fatal("writing the test certificate failed")
		}
	}
}

// kafkaOpts are a client's options for the gateway's Kafka front door:
// its address and, when it serves TLS, trust in its certificate.
func (e *env) kafkaOpts(extra ...kgo.Opt) []kgo.Opt {
	e.t.Helper()
	addr := e.gw.KafkaProxyAddr()
	if addr == "" {
		e.t.Fatal("the gateway's Kafka front door is off")
	}
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ClientID("sluice-test"), kgo.RetryTimeout(5 * time.Second),
		kgo.FetchMaxWait(500 * time.Millisecond)}
	if cfg := e.kafkaTLS(); cfg != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	return append(opts, extra...)
}

// kafkaTLS trusts the front door's certificate (nil without TLS).
func (e *env) kafkaTLS() *tls.Config {
	e.t.Helper()
	cert := e.gw.KafkaProxyCert()
	if cert == "" {
		return nil
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(cert)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		e.t.Fatalf("the front door's certificate %s: %v", cert, err)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// kafkaClient is a client of the front door, closed at cleanup.
func (e *env) kafkaClient(opts ...kgo.Opt) *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(e.kafkaOpts(opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// kafkaKey creates an API key of partner and returns its SASL/PLAIN login.
func (e *env) kafkaKey(partner string) (opt kgo.Opt, id, secret string) {
	e.t.Helper()
	info, key, err := e.gw.Store().CreateKey(context.Background(), partner, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	secret = strings.TrimPrefix(key, "slk_"+info.ID+"_")
	return kgo.SASL(plain.Auth{User: info.ID, Pass: secret}.AsMechanism()), info.ID, secret
}

func kafkaOAuth(token string) kgo.Opt { return kgo.SASL(oauth.Auth{Token: token}.AsMechanism()) }

// kafkaTopics lists the topics the front door's Metadata shows, and its
// brokers.
func kafkaTopics(t testing.TB, cl *kgo.Client) (topics []string, brokers []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).Metadata(ctx)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	for _, td := range md.Topics.Sorted() {
		if td.Err != nil {
			t.Fatalf("metadata of %s: %v", td.Topic, td.Err)
		}
		topics = append(topics, td.Topic)
	}
	for _, b := range md.Brokers {
		brokers = append(brokers, fmt.Sprintf("%s:%d", b.Host, b.Port))
	}
	return topics, brokers
}

// readKafka polls until want records came (or timeout), then a moment
// more, so extra records (duplicates, leaks) show up too.
func readKafka(t testing.TB, cl *kgo.Client, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	poll := func(ctx context.Context) {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Fatalf("fetch %s/%d: %v", topic, p, err)
			}
		})
		out = append(out, fs.Records()...)
	}
	for len(out) < want && ctx.Err() == nil {
		poll(ctx)
	}
	if len(out) < want {
		t.Fatalf("received %d records through the Kafka front door in %s, want %d", len(out), timeout, want)
	}
	extra, cancel2 := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel2()
	poll(extra)
	return out
}

// restRecords pages through a partner's view of a product over REST.
func restRecords(t testing.TB, e *env, partner, product string) map[pos][]byte {
	t.Helper()
	out := map[pos][]byte{}
	q := "from=earliest"
	for range 1000 {
		resp, body := e.get("/v1/products/"+product+"/records?limit=1000&"+q, "Authorization", "Bearer "+e.token(partner))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s REST %s: %d %s", partner, product, resp.StatusCode, body)
		}
		var pg page
		if err := json.Unmarshal(body, &pg); err != nil {
			t.Fatal(err)
		}
		for _, r := range pg.Records {
			ps, _ := recordPos(t, r)
			out[ps] = []byte(r)
		}
		next := "cursor=" + url.QueryEscape(pg.NextCursor)
		if len(pg.Records) == 0 && next == q {
			return out
		}
		q = next
	}
	t.Fatal("REST paging did not end")
	return nil
}

// sseRecords reads a partner's stream of a product from earliest until n
// records came.
func sseRecords(t testing.TB, e *env, partner, product string, n int) map[pos][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, r := e.streamAs(ctx, "/v1/products/"+product+"/stream?from=earliest", partner)
	defer resp.Body.Close()
	out := map[pos][]byte{}
	for len(out) < n {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("%s SSE %s: %d of %d records: %v", partner, product, len(out), n, err)
		}
		if ev.Type == "record" {
			ps, _ := recordPos(t, ev.Data)
			out[ps] = bytes.Clone(ev.Data)
		}
	}
	return out
}

// kafkaByPos checks that each record's Kafka position is the one in its
// JSON (_partition, _offset), that no key leaves the gateway and that no
// position came twice, and indexes the values.
func kafkaByPos(t testing.TB, what string, recs []*kgo.Record) map[pos][]byte {
	t.Helper()
	out := map[pos][]byte{}
	for _, r := range recs {
		ps, _ := recordPos(t, r.Value)
		if ps.Partition != r.Partition || ps.Offset != r.Offset {
			t.Fatalf("%s: record at %d/%d carries _partition/_offset %d/%d", what, r.Partition, r.Offset, ps.Partition, ps.Offset)
		}
		if len(r.Key) != 0 {
			t.Fatalf("%s: record %v has a key (%d bytes): upstream keys must not leave the gateway", what, ps, len(r.Key))
		}
		if _, dup := out[ps]; dup {
			t.Fatalf("%s: record %v delivered twice", what, ps)
		}
		out[ps] = r.Value
	}
	return out
}

// sameRecords checks two reads are the same records, byte for byte.
func sameRecords(t testing.TB, what string, got, want map[pos][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d records, want %d", what, len(got), len(want))
	}
	diff := 0
	for ps, w := range want {
		if g, ok := got[ps]; !ok || !bytes.Equal(g, w) {
			if diff++; diff <= 3 {
				t.Errorf("%s: record %v differs:\n got %s\nwant %s", what, ps, g, w)
			}
		}
	}
}

// kafkaWaitFor polls cond until it holds or d passes.
func kafkaWaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// The isolation property through the Kafka front door (called from
// TestIntegrationIsolation after its REST sweep of both batches).
// ---------------------------------------------------------------------------

// checkKafka: every demo partner logs in to the Kafka front door with its
// token and sees exactly the topics of its grants (none for the admin; the
// audit trail's virtual topic for the regulator); each topic delivers exactly the records of the REST sweep,
// byte for byte, at their Kafka positions, with the view's filtered rows
// as offset gaps.
func (ic *isoChecker) checkKafka(views []*isoView) {
	t, e := ic.t, ic.e
	began := time.Now()
	checked := 0
	for _, p := range ic.reg.List {
		var want []string
		for _, g := range p.Grants {
			if !slices.Contains(want, g.Product) {
				want = append(want, g.Product)
			}
		}
		if p.Type == products.PartnerRegulator {
			want = append(want, "audit") // the audit trail's virtual topic
		}
		slices.Sort(want)
		// The partner's views whose purpose is the product's default one
		// (a topic is the product under that purpose).
		rest := map[string]map[pos][]byte{}
		var topics []string
		total := 0
		for _, v := range views {
			if g, _ := p.Grant(v.product); v.partner != p.ID || g.Purpose != v.purpose {
				continue
			}
			rest[v.product] = ic.restBytes[v.partner+" "+v.product+" "+v.purpose]
			topics = append(topics, v.product)
			total += len(rest[v.product])
		}
		cl := e.kafkaClient(kafkaOAuth(e.token(p.ID)), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		listed, _ := kafkaTopics(t, cl)
		if !slices.Equal(listed, want) {
			t.Errorf("kafka: %s's Metadata lists %v, want %v", p.ID, listed, want)
		}
		if len(topics) == 0 {
			cl.Close()
			continue
		}
		byTopic := map[string][]*kgo.Record{}
		for _, r := range readKafka(t, cl, total, 30*time.Second) {
			byTopic[r.Topic] = append(byTopic[r.Topic], r)
		}
		cl.Close()
		for _, product := range topics {
			got := kafkaByPos(t, "kafka "+p.ID+" "+product, byTopic[product])
			sameRecords(t, "kafka vs rest "+p.ID+" "+product, got, rest[product])
			checked += len(got)
		}
	}
	t.Logf("kafka: %d records read through the front door in %s, identical to REST (and so to SSE and the rings)", checked, time.Since(began).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------

// TestIntegrationKafkaMatchesSSE: what a partner reads through the Kafka
// front door is what its SSE stream sends for the same range, byte for
// byte (the same compiled view), at the same positions; the rows its view
// filters are offset gaps, not records.
func TestIntegrationKafkaMatchesSSE(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	for product, n := range map[string]int{"cdr": 300, "fraud-alerts": 60, "device-telemetry": 150, "network-quality": 120} {
		e.produce(product, n)
	}
	upstream := map[string]int{}
	for _, cases := range [][2]string{
		{"mvno-a", "cdr"}, {"mvno-b", "cdr"}, {"mvno-a", "fraud-alerts"}, {"iot-fleet", "device-telemetry"},
		{"internal-noc", "network-quality"}, {"enterprise-x", "network-quality"}, {"internal-noc", "cdr"},
	} {
		partner, product := cases[0], cases[1]
		t.Run(partner+"/"+product, func(t *testing.T) {
			if _, ok := upstream[product]; !ok {
				upstream[product] = len(e.topicPositions(product))
			}
			rest := restRecords(t, e, partner, product)
			if len(rest) == 0 {
				t.Fatalf("%s sees no %s record over REST", partner, product)
			}
			sse := sseRecords(t, e, partner, product, len(rest))
			cl := e.kafkaClient(kafkaOAuth(e.token(partner)), kgo.ConsumeTopics(product), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			recs := readKafka(t, cl, len(rest), 30*time.Second)
			kafka := kafkaByPos(t, partner+" "+product, recs)
			sameRecords(t, "kafka vs sse", kafka, sse)
			sameRecords(t, "kafka vs rest", kafka, rest)
			// Filtered rows are gaps: offsets a partition skips.
			per := map[int32][]int64{}
			for ps := range kafka {
				per[ps.Partition] = append(per[ps.Partition], ps.Offset)
			}
			gaps := 0
			for _, offs := range per {
				slices.Sort(offs)
				for i := 1; i < len(offs); i++ {
					gaps += int(offs[i] - offs[i-1] - 1)
				}
			}
			t.Logf("%s %s: %d records of %d upstream, identical to SSE; %d filtered rows are gaps between them",
				partner, product, len(kafka), upstream[product], gaps)
			if len(kafka) < upstream[product] && gaps == 0 {
				t.Errorf("the view filters %d rows but no offset gap shows them", upstream[product]-len(kafka))
			}
		})
	}
	// A partner without product grants sees no product topic and may read
	// none (the regulator sees only the audit trail's virtual topic).
	cl := e.kafkaClient(kafkaOAuth(e.token("regulator")), kgo.ConsumeTopics("cdr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if topics, _ := kafkaTopics(t, cl); !slices.Equal(topics, []string{"audit"}) {
		t.Errorf("the regulator's Metadata lists %v, want only audit", topics)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var denied error
	for denied == nil && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if len(fs.Records()) > 0 {
			t.Fatalf("the regulator received %d cdr records", len(fs.Records()))
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if errors.Is(err, kerr.TopicAuthorizationFailed) {
				denied = err
			}
		})
	}
	if denied == nil {
		t.Error("the regulator's consumer of cdr saw no TOPIC_AUTHORIZATION_FAILED")
	}
}

// TestIntegrationKafkaAuth: OAUTHBEARER with a JWT and PLAIN with an API
// key log in; a wrong secret, an expired or foreign-signed JWT and an
// unknown key do not; Metadata lists only the partner's products and only
// the front door as broker (the upstream cluster stays hidden); writes get
// TOPIC_AUTHORIZATION_FAILED.
func TestIntegrationKafkaAuth(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 20)
	proxy := e.gw.KafkaProxyAddr()

	// OAUTHBEARER with a dev JWT.
	cl := e.kafkaClient(kafkaOAuth(e.token("mvno-a")))
	topics, brokers := kafkaTopics(t, cl)
	if want := []string{"cdr", "fraud-alerts", "network-quality"}; !slices.Equal(topics, want) {
		t.Errorf("mvno-a (OAUTHBEARER) sees topics %v, want %v", topics, want)
	}
	if !slices.Equal(brokers, []string{proxy}) {
		t.Errorf("Metadata advertises brokers %v, want only the front door %s", brokers, proxy)
	}
	if up := e.gw.KafkaAddr(); slices.Contains(brokers, up) {
		t.Errorf("Metadata reveals the upstream broker %s", up)
	}

	// PLAIN with an API key (username = key id, password = secret).
	keyOpt, keyID, secret := e.kafkaKey("mvno-b")
	clb := e.kafkaClient(keyOpt)
	if topics, _ := kafkaTopics(t, clb); !slices.Equal(topics, []string{"cdr"}) {
		t.Errorf("mvno-b (PLAIN) sees topics %v, want [cdr]", topics)
	}
	// The listed prefix slk_<id> works as the username too.
	clp := e.kafkaClient(kgo.SASL(plain.Auth{User: "slk_" + keyID, Pass: secret}.AsMechanism()))
	if topics, _ := kafkaTopics(t, clp); !slices.Equal(topics, []string{"cdr"}) {
		t.Errorf("mvno-b (PLAIN, username slk_<id>) sees topics %v, want [cdr]", topics)
	}

	// Produce: refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := clb.ProduceSync(ctx, &kgo.Record{Topic: "cdr", Value: []byte(`{"forged":true}`)}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("produce to cdr: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	// Refused logins.
	key, kid, err := auth.DevKey(e.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	expired := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": "mvno-a",
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
	})
	expired.Header["kid"] = kid
	expiredTok, err := expired.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		note string
		opt  kgo.Opt
	}{
		{"wrong secret", kgo.SASL(plain.Auth{User: keyID, Pass: secret[:len(secret)-2] + "xx"}.AsMechanism())},
		{"unknown key", kgo.SASL(plain.Auth{User: "aaaaaaaaaaaaaaaa", Pass: secret}.AsMechanism())},
		{"expired JWT", kafkaOAuth(expiredTok)},
		{"not a JWT", kafkaOAuth("not.a.jwt")},
		{"unknown partner", kafkaOAuth(e.token("nobody"))},
	} {
		t.Run(tc.note, func(t *testing.T) {
			cl, err := kgo.NewClient(e.kafkaOpts(tc.opt, kgo.RetryTimeout(time.Second))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("login: %v, want SASL_AUTHENTICATION_FAILED", err)
			} else if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error echoes the secret: %v", err)
			}
		})
	}
}

// TestIntegrationKafkaConsumerGroup: a franz-go consumer group of three
// members (SASL/PLAIN with an API key) consumes a product through the
// front door while members join and leave, committing as it goes; after a
// gateway restart on the same data directory a new member resumes from
// the committed offsets. Nothing is lost; a record comes twice only when a
// rebalance moved its partition before its offset was committed
// (at-least-once), and never after the final commit.
func TestIntegrationKafkaConsumerGroup(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	const group, product, partner = "billing-loader", "cdr", "mvno-a"
	keyOpt, _, _ := e.kafkaKey(partner)
	e.produce(product, 600)
	want := restRecords(t, e, partner, product) // mvno-a's own subscribers: a view with gaps

	// Members poll a few records at a time, slowly enough that the group
	// rebalances while they are consuming.
	var mu sync.Mutex
	seen := map[pos]int{}
	dups := 0
	var perMember [3]int
	var assigned atomic.Int32
	member := func(i int) (*kgo.Client, chan struct{}) {
		cl := e.kafkaClient(keyOpt, kgo.ConsumerGroup(group), kgo.ConsumeTopics(product),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(6*time.Second),
			kgo.HeartbeatInterval(200*time.Millisecond), kgo.AutoCommitInterval(200*time.Millisecond),
			kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { assigned.Add(1) }))
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				fs := cl.PollRecords(context.Background(), 5)
				if fs.IsClientClosed() {
					return
				}
				mu.Lock()
				fs.EachRecord(func(r *kgo.Record) {
					ps := pos{r.Partition, r.Offset}
					perMember[i]++
					if seen[ps]++; seen[ps] > 1 {
						dups++
					}
				})
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
		return cl, done
	}
	count := func(set map[pos][]byte) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for ps := range set {
			if seen[ps] > 0 {
				n++
			}
		}
		return n
	}
	m1, d1 := member(0)
	kafkaWaitFor(t, 20*time.Second, "m1 consumes", func() bool { return count(want) > 0 })
	m2, d2 := member(1)
	m3, d3 := member(2)
	kafkaWaitFor(t, 30*time.Second, "the group consumes every record", func() bool { return count(want) == len(want) })
	// m1 leaves; the others take its partitions over and read more.
	m1.Close()
	<-d1
	e.produce(product, 300)
	want2 := restRecords(t, e, partner, product)
	kafkaWaitFor(t, 30*time.Second, "m2 and m3 consume the second batch", func() bool { return count(want2) == len(want2) })
	// A clean stop: commit what was consumed, leave.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []*kgo.Client{m2, m3} {
		if err := m.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	m2.Close()
	m3.Close()
	<-d2
	<-d3
	committed, err := e.gw.Store().GroupOffsets(ctx, partner, group)
	if err != nil || len(committed) == 0 {
		t.Fatalf("the store holds no offsets of %s's group %s: %v", partner, group, err)
	}
	if other, _ := e.gw.Store().GroupOffsets(ctx, "mvno-b", group); len(other) != 0 {
		t.Fatalf("offsets of %s's group are visible under mvno-b: %+v", partner, other)
	}
	mu.Lock()
	before := dups
	for ps := range want2 {
		if seen[ps] == 0 {
			t.Errorf("record %v was never consumed", ps)
		}
	}
	mu.Unlock()
	t.Logf("three members consumed %d records (per member %v; %d delivered twice around rebalances; %d assignments); %d partitions committed",
		len(want2), perMember, before, assigned.Load(), len(committed))
	if perMember[0] == 0 || perMember[1] == 0 || perMember[2] == 0 || assigned.Load() < 4 {
		t.Errorf("the group did not spread the work: per member %v, %d assignments", perMember, assigned.Load())
	}

	// Restart on the same data directory; a new member resumes.
	e.restart()
	keyOpt2 := keyOpt // the key is in the store: it survives the restart
	e.produce(product, 200)
	want3 := restRecords(t, e, partner, product)
	mu.Lock()
	clear(seen)
	mu.Unlock()
	m4 := e.kafkaClient(keyOpt2, kgo.ConsumerGroup(group), kgo.ConsumeTopics(product),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond))
	newOnes := 0
	for ps := range want3 {
		if _, old := want2[ps]; !old {
			newOnes++
		}
	}
	got := readKafka(t, m4, newOnes, 30*time.Second)
	for _, r := range got {
		ps := pos{r.Partition, r.Offset}
		if _, old := want2[ps]; old {
			t.Errorf("after the restart the group re-read %v, which it had committed", ps)
		}
		if _, ok := want3[ps]; !ok {
			t.Errorf("after the restart the group read %v, which is not in mvno-a's view", ps)
		}
	}
	if len(got) != newOnes {
		t.Errorf("after the restart the new member read %d records, want the %d new ones", len(got), newOnes)
	}
	t.Logf("after the restart a new member resumed from the committed offsets and read exactly the %d new records", newOnes)
}

// TestIntegrationKafkaRevocation: suspending the subscription a connection
// reads closes it within a second (the client reconnects and the topic is
// gone); revoking the API key a connection logged in with closes it within
// a second too, and the key no longer logs in.
func TestIntegrationKafkaRevocation(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 50)
	e.produce("network-quality", 50)
	st := e.gw.Store()
	ctx := context.Background()

	type disconnects struct {
		mu sync.Mutex
		at []time.Time
	}
	watch := func(d *disconnects) kgo.Opt {
		return kgo.WithHooks(disconnectHook(func() {
			d.mu.Lock()
			d.at = append(d.at, time.Now())
			d.mu.Unlock()
		}))
	}
	closedWithin := func(note string, d *disconnects, since time.Time, within time.Duration) {
		t.Helper()
		kafkaWaitFor(t, 5*time.Second, note+": a connection closed", func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return slices.ContainsFunc(d.at, func(at time.Time) bool { return at.After(since) })
		})
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, at := range d.at {
			if at.After(since) {
				t.Logf("%s: connection closed %s after the change", note, at.Sub(since).Round(time.Millisecond))
				if at.Sub(since) > within {
					t.Errorf("%s: connection closed after %s, want within %s", note, at.Sub(since), within)
				}
				return
			}
		}
	}

	// 1. A subscription suspended.
	keyOpt, _, _ := e.kafkaKey("mvno-a")
	var d1 disconnects
	cl := e.kafkaClient(keyOpt, watch(&d1), kgo.ConsumeTopics("cdr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	readKafka(t, cl, len(restRecords(t, e, "mvno-a", "cdr")), 20*time.Second)
	subs, err := st.Subscriptions(ctx, store.Filter{PartnerID: "mvno-a", Product: "cdr", State: store.StateActive})
	if err != nil || len(subs) != 1 {
		t.Fatalf("mvno-a's cdr subscription: %v %v", subs, err)
	}
	changed := time.Now()
	if _, err := st.Transition(ctx, subs[0].ID, store.ActionSuspend, "admin", "kafka revocation test"); err != nil {
		t.Fatal(err)
	}
	closedWithin("subscription suspended", &d1, changed, time.Second)
	// The client reconnects with the same key: cdr is gone, the rest stays.
	// (Its other connections, which never read cdr, stay open and drop it
	// when their own re-check, running concurrently, has finished.)
	// A client that consumes nothing lists what the key may read (one that
	// still consumes cdr asks for it by name and gets its refusal).
	lister := e.kafkaClient(keyOpt)
	kafkaWaitFor(t, time.Second, "mvno-a's topics without cdr", func() bool {
		topics, _ := kafkaTopics(t, lister)
		return slices.Equal(topics, []string{"fraud-alerts", "network-quality"})
	})

	// 2. The API key revoked.
	keyOpt2, keyID, _ := e.kafkaKey("internal-noc")
	var d2 disconnects
	cl2 := e.kafkaClient(keyOpt2, watch(&d2), kgo.ConsumeTopics("network-quality"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	readKafka(t, cl2, 50, 20*time.Second)
	changed = time.Now()
	if err := st.RevokeKey(ctx, "internal-noc", keyID, "admin"); err != nil {
		t.Fatal(err)
	}
	closedWithin("API key revoked", &d2, changed, time.Second)
	cl3, err := kgo.NewClient(e.kafkaOpts(keyOpt2, kgo.RetryTimeout(time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl3.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cl3.Ping(pctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("login with the revoked key: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

// disconnectHook is a kgo.HookBrokerDisconnect.
type disconnectHook func()

func (f disconnectHook) OnBrokerDisconnect(kgo.BrokerMetadata, net.Conn) { f() }

// TestIntegrationKafkaQuota: a consumer reading a backlog as fast as it
// can gets the plan's record rate, ±5% over 10 s once the initial burst is
// spent, and is told to back off (throttle_time_ms > 0); the store meters
// exactly the records it received, after a clean stop.
func TestIntegrationKafkaQuota(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	st := e.gw.Store()
	const rate, window = 200, 10 * time.Second
	plan := quotaPlan("q-kafka", rate)
	if err := st.UpsertPlan(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	resubscribe(t, st, "internal-noc", "network-quality", "q-kafka")
	e.produce("network-quality", 3200)

	type batch struct {
		at time.Time
		n  int
	}
	var (
		mu        sync.Mutex
		batches   []batch
		received  int
		throttles int
		maxThr    time.Duration
		firstThr  time.Time
		firstD    time.Duration
	)
	hooks := quotaHooks{
		batch: func(n int) {
			mu.Lock()
			batches = append(batches, batch{time.Now(), n})
			received += n
			mu.Unlock()
		},
		throttle: func(d time.Duration) {
			mu.Lock()
			throttles++
			maxThr = max(maxThr, d)
			if firstThr.IsZero() {
				firstThr, firstD = time.Now(), d
			}
			mu.Unlock()
		},
	}
	cl := e.kafkaClient(kafkaOAuth(e.token("internal-noc")), kgo.WithHooks(hooks),
		kgo.ConsumeTopics("network-quality"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachError(func(_ string, _ int32, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("fetch: %v", err)
				}
			})
		}
	}()
	kafkaWaitFor(t, 10*time.Second, "the first throttle (the burst is spent)", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !firstThr.IsZero()
	})
	mu.Lock()
	start := firstThr
	mu.Unlock()
	time.Sleep(time.Until(start.Add(window + time.Second)))
	// Stop fetching, let a fetch in flight land, then stop the client.
	cl.PauseFetchTopics("network-quality")
	kafkaWaitFor(t, 10*time.Second, "the consumer to go quiet", func() bool {
		mu.Lock()
		n := received
		mu.Unlock()
		time.Sleep(1500 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		return received == n
	})
	cancel()
	<-polled

	// The rate: batches that came after the first throttle was waited off
	// (the response that carried it was admitted by the burst), from the
	// first of them to the last within the window: n batches span n-1
	// intervals, so the first batch's records are not counted.
	mu.Lock()
	var first, last time.Time
	counted, burst := 0, 0
	for _, b := range batches {
		switch {
		case b.at.Before(start.Add(firstD)):
			burst += b.n
		case first.IsZero():
			first, last = b.at, b.at
		case !b.at.After(first.Add(window)):
			counted += b.n
			last = b.at
		}
	}
	total, thr, maxT := received, throttles, maxThr
	mu.Unlock()
	got := float64(counted) / last.Sub(first).Seconds()
	t.Logf("%d records before the first throttle was waited off (the burst); then %d records in %s: %.1f records/s (plan %d); %d throttles, longest %s",
		burst, counted, last.Sub(first).Round(time.Millisecond), got, rate, thr, maxT)
	if math.Abs(got-rate)/rate > 0.05 {
		t.Errorf("rate %.1f records/s through the Kafka front door, want %d ± 5%%", got, rate)
	}
	if thr == 0 || maxT <= 0 {
		t.Error("the consumer was never throttled (throttle_time_ms)")
	}
	if total >= 3200 {
		t.Fatalf("the backlog ran dry (%d records): the rate says nothing", total)
	}

	// Metering: /metrics now, the store after a clean stop.
	series := `sluice_usage_records_total{partner="internal-noc",product="network-quality",purpose="network-analytics"}`
	if m := metric(t, e, series); int(m) != total {
		t.Errorf("%s = %v, the client received %d", series, m, total)
	}
	cl.Close()
	e.stop()
	if got := storedUsage(t, e.cfg.DataDir, "internal-noc", "network-quality"); got != int64(total) {
		t.Errorf("store usage %d records, the client received %d", got, total)
	}
}

// quotaHooks counts records received over the wire (every fetched batch,
// polled or not) and broker throttles.
type quotaHooks struct {
	batch    func(n int)
	throttle func(d time.Duration)
}

func (h quotaHooks) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	h.batch(m.NumRecords)
}

func (h quotaHooks) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) { h.throttle(d) }

// TestIntegrationKcat: librdkafka's kcat over SASL_SSL with PLAIN and with
// SCRAM-SHA-512 (an API key) and the gateway's generated self-signed
// certificate as its CA consumes a product (values identical to REST/SSE's
// records), lists only the partner's topics, and is refused when
// producing. kcat's built-in unsigned OAUTHBEARER token is refused; a
// signed one from an OAuth token endpoint (sasl.oauthbearer.method=oidc)
// logs in and consumes. Debian's librdkafka lacks OIDC, so that subtest
// runs the same kcat binary on the confluent-kafka wheel's librdkafka
// when the test venv has it (it skips otherwise).
func TestIntegrationKcat(t *testing.T) {
	bin := testkit.Kcat(t)
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 200)
	cert := e.gw.KafkaProxyCert()
	if cert == "" {
		t.Fatal("the embedded default must serve TLS with a generated certificate")
	}
	if fi, err := os.Stat(strings.TrimSuffix(cert, "cert.pem") + "key.pem"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the generated key: %v, mode %v; want 0600", err, fi.Mode())
	}
	_, keyID, secret := e.kafkaKey("mvno-a")
	tlsArgs := []string{"-b", e.gw.KafkaProxyAddr(), "-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + cert}
	plainArgs := append(slices.Clone(tlsArgs), "-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username="+keyID, "-X", "sasl.password="+secret)
	var kcatEnv []string // extra environment of kcat runs
	run := func(stdin string, args ...string) (string, string, error) {
		t.Helper()
		return testkit.RunKcat(t, bin, kcatEnv, stdin, args...)
	}
	want := restRecords(t, e, "mvno-a", "cdr")
	consume := func(note string, auth []string) {
		t.Helper()
		out, stderr, err := run("", append(slices.Clone(auth), "-C", "-t", "cdr", "-o", "beginning", "-e", "-q", "-f", "%p %o %s\n")...)
		if err != nil {
			t.Fatalf("%s: kcat -C: %v\n%s", note, err, stderr)
		}
		got := map[pos][]byte{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.SplitN(line, " ", 3)
			if len(f) != 3 {
				t.Fatalf("%s: kcat line %q", note, line)
			}
			p, _ := strconv.Atoi(f[0])
			o, _ := strconv.ParseInt(f[1], 10, 64)
			got[pos{int32(p), o}] = []byte(f[2])
		}
		sameRecords(t, note+": kcat vs rest", got, want)
		t.Logf("%s: kcat consumed %d records, identical to REST", note, len(got))
	}
	consume("SASL_SSL PLAIN", plainArgs)
	consume("SASL_SSL SCRAM-SHA-512", append(slices.Clone(tlsArgs), "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username="+keyID, "-X", "sasl.password="+secret))

	out, stderr, err := run("", append(slices.Clone(plainArgs), "-L")...)
	if err != nil {
		t.Fatalf("kcat -L: %v\n%s", err, stderr)
	}
	topics := testkit.KcatTopics(out)
	if !slices.Equal(topics, []string{"cdr", "fraud-alerts", "network-quality"}) {
		t.Errorf("kcat -L lists %v, want mvno-a's [cdr fraud-alerts network-quality]\n%s", topics, out)
	}
	if up := e.gw.KafkaAddr(); strings.Contains(out, up) {
		t.Errorf("kcat -L reveals the upstream broker %s:\n%s", up, out)
	}

	_, stderr, err = run("forged\n", append(slices.Clone(plainArgs), "-P", "-t", "cdr")...)
	if err == nil || !strings.Contains(strings.ToLower(stderr), "authorization failed") {
		t.Errorf("kcat -P: err %v, stderr %q; want a topic authorization failure", err, stderr)
	}

	// kcat's built-in OAUTHBEARER makes unsigned (alg none) tokens: refused.
	_, stderr, err = run("", append(slices.Clone(tlsArgs), "-X", "sasl.mechanisms=OAUTHBEARER",
		"-X", "enable.sasl.oauthbearer.unsecure.jwt=true", "-X", "sasl.oauthbearer.config=principal=mvno-a", "-L", "-m", "3")...)
	if err == nil || !strings.Contains(strings.ToLower(stderr), "authentication") {
		t.Errorf("kcat with an unsigned JWT: err %v, stderr %q; want an authentication failure", err, stderr)
	}

	// A signed token from an OAuth 2.0 client-credentials endpoint.
	t.Run("oauthbearer-oidc", func(t *testing.T) {
		version, _, _ := run("", "-V")
		if !strings.Contains(version, "oidc") {
			// Debian's librdkafka is built without OIDC. The same kcat
			// binary runs on the newer librdkafka that the confluent-kafka
			// wheel bundles (same soname, stable ABI), when it is installed.
			if lib := wheelLibrdkafka(); lib != "" {
				dir := t.TempDir()
				if err := os.Symlink(lib, filepath.Join(dir, "librdkafka.so.1")); err != nil {
					t.Fatal(err)
				}
				kcatEnv = []string{"LD_LIBRARY_PATH=" + dir}
				defer func() { kcatEnv = nil }()
				version, _, _ = run("", "-V")
			}
		}
		if !strings.Contains(version, "oidc") {
			t.Skipf("this librdkafka has no OIDC token retrieval (builtin.features lacks oidc): %s", strings.TrimSpace(version))
		}
		t.Logf("kcat -V: %s", lastLine(version))
		var issued atomic.Int32
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, sec, ok := r.BasicAuth()
			if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" || !ok || id != "mvno-a" || sec != "s3cret" {
				http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
				return
			}
			issued.Add(1)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"access_token": devToken(t, e.cfg.DataDir, "mvno-a"), "token_type": "bearer", "expires_in": 3600})
		}))
		defer ts.Close()
		consume("SASL_SSL OAUTHBEARER (oidc)", append(slices.Clone(tlsArgs), "-X", "sasl.mechanisms=OAUTHBEARER",
			"-X", "sasl.oauthbearer.method=oidc", "-X", "sasl.oauthbearer.client.id=mvno-a", "-X", "sasl.oauthbearer.client.secret=s3cret",
			"-X", "sasl.oauthbearer.token.endpoint.url="+ts.URL+"/token"))
		if issued.Load() == 0 {
			t.Error("kcat never asked the token endpoint")
		}
	})
}

// TestIntegrationKafkaPlaintext: kafka_listen_tls.enabled: false (YAML)
// serves SASL_PLAINTEXT for local use; with an external cluster the
// listener needs a certificate unless TLS is turned off explicitly.
func TestIntegrationKafkaPlaintext(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(file, []byte("kafka_listen: 127.0.0.1:0\nkafka_listen_tls: {enabled: false}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := gateway.LoadConfigFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if fc.KafkaListen != "127.0.0.1:0" || fc.KafkaListenTLS.Enabled == nil || *fc.KafkaListenTLS.Enabled {
		t.Fatalf("config file gives kafka_listen %q, tls %v", fc.KafkaListen, fc.KafkaListenTLS.Enabled)
	}
	e := newEnv(t, func(c *gateway.Config) { c.KafkaListen, c.KafkaListenTLS = fc.KafkaListen, fc.KafkaListenTLS })
	if cert := e.gw.KafkaProxyCert(); cert != "" {
		t.Fatalf("TLS off, but the front door has a certificate %s", cert)
	}
	cl := e.kafkaClient(kafkaOAuth(e.token("iot-fleet")))
	if topics, _ := kafkaTopics(t, cl); !slices.Equal(topics, []string{"device-telemetry", "network-quality"}) {
		t.Errorf("iot-fleet over SASL_PLAINTEXT sees %v", topics)
	}

	no := false
	_, err = gateway.New(context.Background(), gateway.Config{Brokers: []string{"127.0.0.1:1"}, KafkaListen: "127.0.0.1:0",
		DataDir: t.TempDir(), Generate: &no, Auth: gateway.AuthConfig{AllowHS256: true}})
	if err == nil || !strings.Contains(err.Error(), "kafka_listen_tls.cert_file") {
		t.Errorf("a TLS front door without a certificate next to external brokers: %v, want a config error naming kafka_listen_tls.cert_file", err)
	}
}

// TestIntegrationKafkaPlanLimits: a connection fetching a product holds one
// of the plan's concurrent streams, so a second consumer over the limit is
// refused (TOPIC_AUTHORIZATION_FAILED) until the first one leaves; a
// consumer gets what is left of the monthly quota, to the record, and is
// then refused.
func TestIntegrationKafkaPlanLimits(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	st := e.gw.Store()
	ctx := context.Background()
	plan := quotaPlan("q-kafka-limits", 1e6)
	plan.ConcurrentStreams, plan.MonthlyRecordQuota = 1, 225
	if err := st.UpsertPlan(ctx, plan); err != nil {
		t.Fatal(err)
	}
	resubscribe(t, st, "internal-noc", "network-quality", plan.ID)
	e.produce("network-quality", 100)
	consumer := func() *kgo.Client {
		return e.kafkaClient(kafkaOAuth(e.token("internal-noc")), kgo.ConsumeTopics("network-quality"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }))
	}
	// pollUntilDenied reads until a fetch is refused, returning the records.
	pollUntilDenied := func(cl *kgo.Client, d time.Duration) (int, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		n, denied := 0, false
		for !denied && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			n += len(fs.Records())
			fs.EachError(func(_ string, _ int32, err error) { denied = denied || errors.Is(err, kerr.TopicAuthorizationFailed) })
		}
		return n, denied
	}
	refusals := func(limit string) float64 {
		return metric(t, e, `sluice_quota_refusals_total{limit="`+limit+`",partner="internal-noc",product="network-quality"}`)
	}

	a := consumer()
	readKafka(t, a, 100, 20*time.Second)
	b := consumer()
	if n, denied := pollUntilDenied(b, 5*time.Second); n != 0 || !denied {
		t.Fatalf("a second consumer over the plan's one stream: %d records, refused %v", n, denied)
	}
	if refusals("concurrent_streams") == 0 {
		t.Error("no concurrent_streams refusal counted")
	}
	a.Close() // its stream ends with its connection
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for n := 0; n < 100; {
		fs := b.PollFetches(rctx) // refusals buffered before a left may come first
		if rctx.Err() != nil {
			t.Fatalf("after the first consumer left the second read %d records, want 100", n)
		}
		n += len(fs.Records())
	}
	b.Close()
	kafkaWaitFor(t, 5*time.Second, "the second consumer's stream ends", func() bool {
		return metric(t, e, `sluice_active_streams{product="network-quality",protocol="kafka"}`) == 0
	})

	// The month so far: 200 records of the plan's 225.
	series := `sluice_usage_records_total{partner="internal-noc",product="network-quality",purpose="network-analytics"}`
	if used := metric(t, e, series); used != 200 {
		t.Fatalf("%s = %v, want 200", series, used)
	}
	c := consumer()
	n, denied := pollUntilDenied(c, 10*time.Second)
	if n != 25 || !denied {
		t.Fatalf("with 25 records left this month a consumer read %d and was refused %v; want 25, then refused", n, denied)
	}
	if refusals("monthly_record_quota") == 0 {
		t.Error("no monthly_record_quota refusal counted")
	}
	if m := metric(t, e, series); m != 225 {
		t.Errorf("%s = %v, want 225", series, m)
	}
}

// wheelLibrdkafka is the librdkafka shared library bundled with the
// confluent-kafka wheel in the test venv ($SLUICE_PYVENV, as
// librdkafkaPython finds it), or "".
func wheelLibrdkafka() string {
	dir := os.Getenv("SLUICE_PYVENV")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(cache, "sluice", "pyvenv")
	}
	libs, _ := filepath.Glob(filepath.Join(dir, "lib", "python3*", "site-packages", "confluent_kafka.libs", "librdkafka*.so.1"))
	if len(libs) == 0 {
		return ""
	}
	return libs[0]
}

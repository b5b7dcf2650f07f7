package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/gateway/sseclient"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/products/store"
)

// The integration tests (TestIntegration*) run against the embedded broker,
// and against a real Kafka cluster when SLUICE_TEST_BROKERS names one (CI
// starts Apache Kafka for that second run). Each test uses its own topics.

var testSeq atomic.Int64

type (
	httpResponse = http.Response
	sseReader    = sseclient.Reader
)

type env struct {
	t        testing.TB
	cfg      gateway.Config
	gw       *gateway.Gateway
	base     string
	cancel   context.CancelFunc
	done     chan error
	cat      *products.Catalog
	prod     *kgo.Client
	gen      *generate.Generator
	started  time.Time
	stopOnce *sync.Once
	tokens   map[string]string // partner -> dev token
}

// partnerFor is the partner the tests read a product as: internal-fraud
// sees cdr and fraud-alerts in clear, internal-noc the network products.
func partnerFor(path string) string {
	if strings.Contains(path, "/products/cdr") || strings.Contains(path, "/products/fraud-alerts") {
		return "internal-fraud"
	}
	return "internal-noc"
}

// token returns a development token for partner, signed with the data
// directory's dev key, which the test gateways trust.
func (e *env) token(partner string) string {
	e.t.Helper()
	if tok, ok := e.tokens[partner]; ok {
		return tok
	}
	key, kid, err := auth.DevKey(e.cfg.DataDir)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := auth.Sign(key, kid, auth.DevIssuer, auth.DevAudience, partner, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.tokens == nil {
		e.tokens = map[string]string{}
	}
	e.tokens[partner] = tok
	return tok
}

// devToken signs a token with dataDir's dev key.
func devToken(t testing.TB, dataDir, partner string) string {
	t.Helper()
	key, kid, err := auth.DevKey(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.Sign(key, kid, auth.DevIssuer, auth.DevAudience, partner, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// authHeader adds the path's default partner token unless hdr sets
// Authorization itself ("" sends none).
func (e *env) authHeader(path string, hdr []string) []string {
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Authorization" {
			return hdr
		}
	}
	return append([]string{"Authorization", "Bearer " + e.token(partnerFor(path))}, hdr...)
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newEnv(t testing.TB, mods ...func(*gateway.Config)) *env {
	t.Helper()
	no, yes := false, true
	prefix := fmt.Sprintf("t%d-%d.", time.Now().UnixNano()%1e9, testSeq.Add(1))
	cfg := gateway.Config{
		DataDir:           t.TempDir(),
		HTTPAddr:          "127.0.0.1:0",
		EmbeddedKafkaAddr: "127.0.0.1:0",
		Generate:          &no,
		TopicPrefix:       prefix,
		Logger:            slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Stream:            gateway.StreamYAML{Heartbeat: time.Second, IdleCursor: 300 * time.Millisecond},
		Hub:               gateway.HubYAML{MaxWait: 100 * time.Millisecond},
		ShutdownTimeout:   5 * time.Second,
		Auth:              gateway.AuthConfig{DevKey: &yes},
		SeedDemo:          &yes, // the demo partners' subscriptions, also on an external cluster
		// The race detector and parallel packages slow acks a lot; tests
		// of the audit bound set their own.
		Audit: gateway.AuditConfig{AckTimeout: 15 * time.Second},
	}
	if b := os.Getenv("SLUICE_TEST_BROKERS"); b != "" {
		cfg.Brokers = strings.Split(b, ",")
	}
	for _, m := range mods {
		m(&cfg)
	}
	e := &env{t: t, cfg: cfg}
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	e.cat = cat
	if len(cfg.Brokers) > 0 {
		e.createTopics(cfg.Brokers)
	}
	if e.gen, err = generate.New(cat, generate.Options{Seed: 42}); err != nil {
		t.Fatal(err)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

// withEmbedded forces the embedded broker (for tests of its own setup).
func withEmbedded(c *gateway.Config) { c.Brokers = nil }

// createTopics makes the test's product topics on an external cluster.
func (e *env) createTopics(brokers []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	compact := "compact"
	topics := map[string]int32{e.cfg.TopicPrefix + "telco.consent": 3}
	for _, p := range e.cat.Products {
		topics[e.cfg.TopicPrefix+p.Topic] = p.Partitions
	}
	for topic, parts := range topics {
		var cfgs map[string]*string
		if strings.HasSuffix(topic, "telco.consent") {
			cfgs = map[string]*string{"cleanup.policy": &compact}
		}
		resp, err := adm.CreateTopic(ctx, parts, 1, cfgs, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			e.t.Fatalf("create topic %s: %v", topic, err)
		}
		e.t.Cleanup(func() {
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
			if err == nil {
				kadm.NewClient(cl).DeleteTopics(context.Background(), topic) //nolint:errcheck // best-effort cleanup
				cl.Close()
			}
		})
	}
}

func (e *env) start() {
	e.t.Helper()
	e.started = time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, e.cfg)
	if err != nil {
		cancel()
		e.t.Fatalf("gateway.New: %v", err)
	}
	e.gw, e.cancel, e.done, e.stopOnce = gw, cancel, make(chan error, 1), new(sync.Once)
	if e.cfg.SeedDemo != nil && *e.cfg.SeedDemo {
		roomyPlans(e.t, gw.Store())
	}
	e.base = "http://" + gw.HTTPAddr()
	go func() { e.done <- gw.Run(ctx) }()
	if e.prod, err = kgo.NewClient(kgo.SeedBrokers(gw.KafkaAddr()), kgo.ProducerLinger(0)); err != nil {
		e.t.Fatal(err)
	}
	e.waitReady()
}

func (e *env) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(e.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatal("gateway not ready within 30s")
}

// stop stops the gateway; concurrent and repeated calls wait for the first.
func (e *env) stop() { e.stopOnce.Do(e.doStop) }

func (e *env) doStop() {
	e.prod.Close()
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("gateway Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("gateway did not stop within 30s")
	}
}

// restart stops the gateway and starts a new one on the same data directory
// (and, for the embedded broker, the same address, so clients reconnect).
func (e *env) restart() {
	e.t.Helper()
	if e.gw.Embedded() {
		e.cfg.EmbeddedKafkaAddr = e.gw.KafkaAddr()
	}
	e.cfg.HTTPAddr = e.gw.HTTPAddr()
	e.stop()
	e.start()
}

func (e *env) topic(product string) string {
	p, ok := e.cat.Get(product)
	if !ok {
		e.t.Fatalf("no product %s", product)
	}
	return e.cfg.TopicPrefix + p.Topic
}

// produce writes n generated records of product and waits for their acks.
func (e *env) produce(product string, n int) []generate.Record {
	e.t.Helper()
	out := make([]generate.Record, 0, n)
	var recs []*kgo.Record
	for range n {
		r, err := e.gen.Next(product)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
		recs = append(recs, &kgo.Record{Topic: e.topic(product), Key: r.Key, Value: r.Value, Timestamp: r.Time})
	}
	e.produceRaw(recs...)
	return out
}

func (e *env) produceRaw(recs ...*kgo.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// pos is a record's place in its topic.
type pos struct {
	Partition int32
	Offset    int64
}

// topicPositions reads every record of the product's topic directly.
func (e *env) topicPositions(product string) []pos {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.prod)
	ends, err := adm.ListEndOffsets(ctx, e.topic(product))
	if err != nil {
		e.t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	starts, err := adm.ListStartOffsets(ctx, e.topic(product))
	if err != nil {
		e.t.Fatal(err)
	}
	starts.Each(func(o kadm.ListedOffset) { total -= o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.gw.KafkaAddr()), kgo.ConsumeTopics(e.topic(product)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []pos
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			e.t.Fatalf("reading topic: got %d of %d records: %v", len(out), total, err)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, pos{r.Partition, r.Offset}) })
	}
	return out
}

func (e *env) get(path string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	return e.send(http.MethodGet, path, "", "", e.authHeader(path, hdr)...)
}

// send sends a request with the given Authorization value ("" for none), an
// optional body and further header pairs (an empty value leaves that header
// out), and reads the whole answer.
func (e *env) send(method, path, authz, body string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for ; len(hdr) >= 2; hdr = hdr[2:] {
		if hdr[1] != "" { // "" leaves the header out
			req.Header.Set(hdr[0], hdr[1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, raw
}

// problem asserts a problem+json answer with the given status and type.
func (e *env) problem(path string, status int, typ string, hdr ...string) map[string]any {
	e.t.Helper()
	resp, body := e.get(path, hdr...)
	if resp.StatusCode != status {
		e.t.Fatalf("GET %s: status %d, want %d; body %s", path, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		e.t.Fatalf("GET %s: content type %q, want application/problem+json", path, ct)
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		e.t.Fatalf("GET %s: problem body %s: %v", path, body, err)
	}
	if p["type"] != typ || int(p["status"].(float64)) != status || p["title"] == "" || p["detail"] == "" {
		e.t.Fatalf("GET %s: problem %v, want type %s status %d with title and detail", path, p, typ, status)
	}
	return p
}

// stream opens an SSE stream. Close the response body to disconnect.
func (e *env) stream(ctx context.Context, path, lastEventID string) (*http.Response, *sseclient.Reader) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+e.token(partnerFor(path)))
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("stream %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e.t.Fatalf("stream %s: status %d: %s", path, resp.StatusCode, b)
	}
	return resp, sseclient.NewReader(resp.Body)
}

// recordPos extracts a record's Kafka position from its JSON.
func recordPos(t testing.TB, data []byte) (pos, map[string]any) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("record %s: %v", data, err)
	}
	p, ok1 := m["_partition"].(float64)
	o, ok2 := m["_offset"].(float64)
	if !ok1 || !ok2 {
		t.Fatalf("record without _partition/_offset: %s", data)
	}
	return pos{int32(p), int64(o)}, m
}

// checkSame asserts got holds exactly want's records, each partition in order.
func checkSame(t testing.TB, got, want []pos) {
	t.Helper()
	per := func(ps []pos) map[int32][]int64 {
		m := map[int32][]int64{}
		for _, p := range ps {
			m[p.Partition] = append(m[p.Partition], p.Offset)
		}
		return m
	}
	g, w := per(got), per(want)
	if len(got) != len(want) {
		t.Errorf("got %d records, want %d", len(got), len(want))
	}
	for part, wo := range w {
		go_ := g[part]
		for i := range max(len(wo), len(go_)) {
			switch {
			case i >= len(go_):
				t.Fatalf("partition %d: missing offsets from %d (gap)", part, wo[i])
			case i >= len(wo):
				t.Fatalf("partition %d: unexpected extra offset %d", part, go_[i])
			case go_[i] != wo[i]:
				t.Fatalf("partition %d: at index %d got offset %d, want %d (gap, duplicate or reorder)", part, i, go_[i], wo[i])
			}
		}
	}
	for part := range g {
		if _, ok := w[part]; !ok {
			t.Fatalf("records from unexpected partition %d", part)
		}
	}
}

// roomyPlans lifts the demo plans' limits so that functional tests are not
// paced by them; quota tests create plans of their own.
func roomyPlans(t testing.TB, s store.Store) {
	t.Helper()
	for _, p := range store.UnlimitedDemoPlans() {
		if err := s.UpsertPlan(context.Background(), p); err != nil {
			t.Fatalf("roomy plan %s: %v", p.ID, err)
		}
	}
}

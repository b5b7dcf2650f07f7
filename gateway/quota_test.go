package gateway_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/products/store"
)

// quotaPlan is a plan with the given rate and roomy other limits.
func quotaPlan(id string, recordsPerSec int64) store.Plan {
	return store.Plan{ID: id, Name: id, RecordsPerSecond: recordsPerSec, BytesPerSecond: 1e12,
		ConcurrentStreams: 100, MonthlyRecordQuota: 1e12, ReplayWindow: time.Hour,
		Formats: []string{store.FormatJSON, store.FormatNDJSON, store.FormatSSE, store.FormatKafka}}
}

// resubscribe moves a partner's active subscription of product to plan: the
// old one is revoked, a new one requested and approved (the admin's path).
func resubscribe(t testing.TB, s store.Store, partner, product, plan string) store.Subscription {
	t.Helper()
	ctx := context.Background()
	subs, err := s.Subscriptions(ctx, store.Filter{PartnerID: partner, Product: product, State: store.StateActive})
	if err != nil || len(subs) != 1 {
		t.Fatalf("active subscriptions of %s/%s: %v %v", partner, product, subs, err)
	}
	if _, err := s.Transition(ctx, subs[0].ID, store.ActionRevoke, "admin", "moved to plan "+plan); err != nil {
		t.Fatal(err)
	}
	sub, err := s.CreateSubscription(ctx, partner, product, subs[0].Purpose, plan, partner)
	if err != nil {
		t.Fatal(err)
	}
	if sub, err = s.Transition(ctx, sub.ID, store.ActionApprove, "admin", "test plan"); err != nil {
		t.Fatal(err)
	}
	return sub
}

type page struct {
	Records    []json.RawMessage `json:"records"`
	NextCursor string            `json:"next_cursor"`
}

// TestIntegrationQuotaREST: a client pulling pages as fast as it can gets
// the plan's record rate within ±5% over 10 s, counted from its first 429
// (the bucket starts full); each 429 carries a Retry-After and RateLimit
// fields that are right, and honouring Retry-After gets the next page. What
// the client received is what the store meters, after a clean shutdown.
func TestIntegrationQuotaREST(t *testing.T) {
	e := newEnv(t)
	st := e.gw.Store()
	// Slow enough that even a client under the race detector (a request
	// takes several ms) drains the bucket: the point is the limit, not
	// the client's speed.
	const rate = 20
	if err := st.UpsertPlan(context.Background(), quotaPlan("q-rest", rate)); err != nil {
		t.Fatal(err)
	}
	resubscribe(t, st, "internal-noc", "network-quality", "q-rest")
	e.produce("network-quality", 600)
	auth := "Bearer " + e.token("internal-noc")
	began := time.Now()

	cur := "from=earliest"
	var first429, last time.Time
	total, counted, refusals := 0, 0, 0
	const window = 10 * time.Second
	for {
		resp, body := e.get("/v1/products/network-quality/records?limit=50&"+cur, "Authorization", auth)
		now := time.Now()
		switch resp.StatusCode {
		case http.StatusOK:
			var pg page
			if err := json.Unmarshal(body, &pg); err != nil {
				t.Fatalf("page: %v %s", err, body)
			}
			if total+len(pg.Records) >= 600 {
				t.Fatalf("the log ran dry: %d read, %d since the first 429 at %s", total, counted, first429.Sub(began))
			}
			if pg.NextCursor == "" || resp.Header.Get("RateLimit") == "" || resp.Header.Get("RateLimit-Policy") == "" {
				t.Fatalf("page without next_cursor or RateLimit fields: %v", resp.Header)
			}
			cur = "cursor=" + pg.NextCursor
			total += len(pg.Records)
			if !first429.IsZero() {
				counted += len(pg.Records)
				last = now
			}
		case http.StatusTooManyRequests:
			refusals++
			if first429.IsZero() {
				first429 = now
				checkThrottled(t, resp, body, rate)
			}
			time.Sleep(2 * time.Millisecond)
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if !first429.IsZero() && now.Sub(first429) >= window {
			break
		}
	}
	got := float64(counted) / last.Sub(first429).Seconds()
	t.Logf("first 429 after %s and %d records", first429.Sub(began).Round(time.Millisecond), total-counted)
	t.Logf("%d records in %s after the first 429 (%d refusals): %.1f records/s, plan %d", counted, last.Sub(first429).Round(time.Millisecond), refusals, got, rate)
	if math.Abs(got-rate)/rate > 0.05 {
		t.Fatalf("rate %.1f records/s, want %d ± 5%%", got, rate)
	}

	// Honouring Retry-After gets a page.
	resp, body := e.get("/v1/products/network-quality/records?limit=50&"+cur, "Authorization", auth)
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("expected the drained bucket to refuse: %s", body)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	time.Sleep(time.Duration(ra) * time.Second)
	resp, body = e.get("/v1/products/network-quality/records?limit=50&"+cur, "Authorization", auth)
	var pg page
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &pg) != nil || len(pg.Records) == 0 {
		t.Fatalf("after waiting Retry-After %d s: %d %s", ra, resp.StatusCode, body)
	}
	total += len(pg.Records)

	// Metering: /metrics now, the store after a clean shutdown.
	series := `sluice_usage_records_total{partner="internal-noc",product="network-quality",purpose="network-analytics"}`
	if m := metric(t, e, series); int(m) != total {
		t.Fatalf("%s = %v, the client received %d", series, m, total)
	}
	e.stop()
	if got := storedUsage(t, e.cfg.DataDir, "internal-noc", "network-quality"); got != int64(total) {
		t.Fatalf("store usage %d records, the client received %d", got, total)
	}
}

// checkThrottled checks a 429's problem and header fields.
func checkThrottled(t *testing.T, resp *http.Response, body []byte, rate int) {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p["type"] != "urn:sluice:problem:rate-limited" || p["limit"] != "records_per_second" {
		t.Fatalf("429 problem %s", body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("429 content type %q", ct)
	}
	// One record refills in 1/rate s, so the whole-second Retry-After is 1.
	if ra := resp.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q, want 1 (a record refills in %v)", ra, time.Second/time.Duration(rate))
	}
	policy := resp.Header.Get("RateLimit-Policy")
	if want := `"records";q=` + strconv.Itoa(rate) + `;w=1`; !strings.Contains(policy, want) {
		t.Fatalf("RateLimit-Policy %q, want it to contain %s", policy, want)
	}
	state := resp.Header.Get("RateLimit")
	if !strings.Contains(state, `"records";r=0;t=1`) {
		t.Fatalf("RateLimit %q, want records r=0 t=1", state)
	}
}

// storedUsage sums a partner's usage of a product in the gateway's SQLite
// store (the gateway must be stopped or flushed).
func storedUsage(t *testing.T, dataDir, partner, product string) int64 {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite:"+filepath.Join(dataDir, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return sumUsage(t, s, partner, product)
}

func sumUsage(t *testing.T, s store.Store, partner, product string) int64 {
	t.Helper()
	rows, err := s.Usage(context.Background(), store.UsageFilter{PartnerID: partner, Product: product})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range rows {
		n += r.Records
	}
	return n
}

// TestIntegrationQuotaSSE: a stream reading a backlog is paced at the
// plan's rate (±5% over 10 s once the initial burst is spent) and loses
// nothing: every record arrives, once. The store meters exactly what the
// client received.
func TestIntegrationQuotaSSE(t *testing.T) {
	e := newEnv(t)
	st := e.gw.Store()
	const rate, n = 200, 2800
	if err := st.UpsertPlan(context.Background(), quotaPlan("q-sse", rate)); err != nil {
		t.Fatal(err)
	}
	resubscribe(t, st, "internal-noc", "device-telemetry", "q-sse")
	e.produce("device-telemetry", n)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, r := e.streamAs(ctx, "/v1/products/device-telemetry/stream?from=earliest", "internal-noc")
	defer resp.Body.Close()
	got := 0
	ids := map[string]bool{}
	var t0, t1 time.Time
	counted := 0
	for got < n {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("stream ended after %d records: %v", got, err)
		}
		if ev.Type != "record" {
			continue
		}
		if ids[ev.ID] {
			t.Fatalf("record with id %s twice", ev.ID)
		}
		ids[ev.ID] = true
		got++
		now := time.Now()
		switch {
		case got == 2*rate: // the burst (one second's worth) is long spent
			t0 = now
		case !t0.IsZero() && now.Sub(t0) <= 10*time.Second:
			counted++
			t1 = now
		}
	}
	measured := float64(counted) / t1.Sub(t0).Seconds()
	t.Logf("%d records in %s: %.1f records/s, plan %d", counted, t1.Sub(t0).Round(time.Millisecond), measured, rate)
	if math.Abs(measured-rate)/rate > 0.05 {
		t.Fatalf("paced at %.1f records/s, want %d ± 5%%", measured, rate)
	}
	resp.Body.Close()
	e.stop()
	if u := storedUsage(t, e.cfg.DataDir, "internal-noc", "device-telemetry"); u != int64(n) {
		t.Fatalf("store usage %d records, the client received %d", u, n)
	}
}

// TestIntegrationQuotaStreamsAndMonthly: a stream over the plan's
// concurrent streams gets 429 stream-limit, and a slot freed is usable
// again; a used-up monthly quota is a 403 saying when it resets, a page
// is cut to what the quota leaves, and a stream ends when it runs out.
func TestIntegrationQuotaStreamsAndMonthly(t *testing.T) {
	e := newEnv(t)
	st := e.gw.Store()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := quotaPlan("q-small", 1000)
	p.ConcurrentStreams, p.MonthlyRecordQuota = 2, 40
	if err := st.UpsertPlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	resubscribe(t, st, "internal-noc", "network-quality", "q-small")
	e.produce("network-quality", 100)
	path := "/v1/products/network-quality/stream?from=latest"

	// Streams: two fit, the third is refused, closing one frees a slot.
	sctx, scancel := context.WithCancel(ctx)
	r1, _ := e.streamAs(sctx, path+"&purpose=network-analytics", "internal-noc")
	r2, _ := e.streamAs(ctx, "/v1/products/network-quality/stream?from=latest", "internal-noc")
	defer r2.Body.Close()
	auth := "Authorization"
	tok := "Bearer " + e.token("internal-noc")
	pb := e.problem(path, http.StatusTooManyRequests, "urn:sluice:problem:stream-limit", auth, tok)
	if pb["limit"] != "concurrent_streams" || !strings.Contains(pb["detail"].(string), "2 concurrent streams") {
		t.Fatalf("stream-limit problem %v", pb)
	}
	scancel()
	r1.Body.Close()
	waitFor(t, 5*time.Second, func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/products/network-quality/stream?from=latest", nil)
		req.Header.Set(auth, tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "a stream slot after closing one")
	r2.Body.Close()

	// Monthly: 40 records a month. The streams above read from the end and
	// got none; usage of 25 this month (another replica's, say) leaves 15:
	// a page of 50 is cut to 15, and the next request is refused.
	if err := st.AddUsage(ctx, []store.UsageDelta{{PartnerID: "internal-noc", Product: "network-quality", Purpose: "network-analytics", Day: time.Now(), Records: 25}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the next flush re-reads the month
	resp, body := e.get("/v1/products/network-quality/records?from=earliest&limit=50", auth, tok)
	var pg page
	if resp.StatusCode != 200 || json.Unmarshal(body, &pg) != nil || len(pg.Records) != 15 {
		t.Fatalf("page within the monthly quota: %d, %d records: %s", resp.StatusCode, len(pg.Records), body)
	}
	pb = e.problem("/v1/products/network-quality/records?cursor="+pg.NextCursor, http.StatusForbidden, "urn:sluice:problem:quota-exhausted", auth, tok)
	now := time.Now().UTC()
	next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC).Format(time.RFC3339)
	if pb["resets"] != next || pb["limit"] != "monthly_record_quota" || !strings.Contains(pb["detail"].(string), next) {
		t.Fatalf("quota-exhausted problem %v, want resets %s", pb, next)
	}
	e.problem(path, http.StatusForbidden, "urn:sluice:problem:quota-exhausted", auth, tok)

	// The data owner raises the quota to 50: 10 more. A stream gets exactly
	// those and ends with a quota-exhausted error event.
	p.MonthlyRecordQuota = 50
	if err := st.UpsertPlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool {
		resp, _ := e.get("/v1/products/network-quality/view", auth, tok)
		resp2, _ := e.get("/v1/products/network-quality/records?limit=1&cursor="+pg.NextCursor+"&from=x", auth, tok)
		return resp.StatusCode == 200 && resp2.StatusCode == 400 // authorized again: the 400 is the query's
	}, "the raised quota")
	sresp, sr := e.streamAs(ctx, "/v1/products/network-quality/stream?cursor="+pg.NextCursor, "internal-noc")
	defer sresp.Body.Close()
	streamed := 0
	for {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("stream ended after %d records without a quota error: %v", streamed, err)
		}
		if ev.Type == "record" {
			streamed++
			continue
		}
		if ev.Type == "error" {
			if !strings.Contains(string(ev.Data), "quota-exhausted") {
				t.Fatalf("error event %s", ev.Data)
			}
			break
		}
	}
	if streamed != 10 {
		t.Fatalf("the stream delivered %d records, the raised quota left 10", streamed)
	}
	if m := metric(t, e, `sluice_quota_refusals_total{limit="monthly_record_quota",partner="internal-noc",product="network-quality"}`); m < 3 {
		t.Fatalf("monthly refusals metric %v", m)
	}
}

// TestIntegrationPlanFormats: a plan's formats are the ways its partner may
// read the product. With sse only, REST pages (JSON and NDJSON) are 403
// format-not-in-plan (and the refusal is in the audit trail), a stream
// opens, and the Kafka front door does not list the topic; with json and
// kafka the other way round.
func TestIntegrationPlanFormats(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	st := e.gw.Store()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sseOnly, jsonKafka := quotaPlan("f-sse", 1e6), quotaPlan("f-json-kafka", 1e6)
	sseOnly.Formats = []string{store.FormatSSE}
	jsonKafka.Formats = []string{store.FormatJSON, store.FormatKafka}
	for _, p := range []store.Plan{sseOnly, jsonKafka} {
		if err := st.UpsertPlan(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	e.produce("cdr", 5)
	const page = "/v1/products/cdr/records?from=earliest"
	const stream = "/v1/products/cdr/stream?from=earliest"
	bearer := "Bearer " + e.token("mvno-b")
	kafkaLists := func() bool {
		cl, err := kgo.NewClient(e.kafkaOpts(kafkaOAuth(e.token("mvno-b")))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		topics, _ := kafkaTopics(t, cl)
		return slices.Contains(topics, "cdr")
	}

	sub := resubscribe(t, st, "mvno-b", "cdr", "f-sse")
	pr := e.problem(page, 403, "urn:sluice:problem:format-not-in-plan", "Authorization", bearer)
	if d, _ := pr["detail"].(string); !strings.Contains(d, "plan f-sse") || !strings.Contains(d, "allows sse, not json") {
		t.Errorf("detail %q: want the plan, its formats and the format asked for", d)
	}
	e.problem(page, 403, "urn:sluice:problem:format-not-in-plan", "Authorization", bearer, "Accept", "application/x-ndjson")
	resp, sr := e.streamAs(ctx, stream, "mvno-b")
	// mvno-b's rows may be none of the five: a record or a cursor event
	// says the stream is serving.
	if ev, err := sr.Next(); err != nil || (ev.Type != "record" && ev.Type != "cursor") {
		t.Fatalf("a stream under an sse plan: %+v %v, want a record or a cursor", ev, err)
	}
	defer resp.Body.Close()
	if kafkaLists() {
		t.Error("the front door lists cdr under a plan without kafka")
	}
	var refused bool
	_, evs := auditEvents(t, e)
	for _, ev := range evs {
		if a := ev.Access; a != nil && !a.Allowed && a.Reason == "format-not-in-plan" && a.Subscription == sub.ID && a.Door == "rest" {
			refused = true
		}
	}
	if !refused {
		t.Error("no audit event records the format-not-in-plan refusal")
	}

	// The plan drops sse: the open stream is authorized again and ends.
	sseOnly.Formats = []string{store.FormatJSON}
	if err := st.UpsertPlan(ctx, sseOnly); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("the stream ended without revoked after its plan dropped sse: %v", err)
		}
		if ev.Type == "revoked" {
			if !strings.Contains(string(ev.Data), "format-not-in-plan") {
				t.Errorf("revoked with %s, want format-not-in-plan", ev.Data)
			}
			break
		}
	}

	resubscribe(t, st, "mvno-b", "cdr", "f-json-kafka")
	if resp, body := e.get(page, "Authorization", bearer); resp.StatusCode != 200 {
		t.Fatalf("a JSON page under a json plan: %d %s", resp.StatusCode, body)
	}
	e.problem(stream, 403, "urn:sluice:problem:format-not-in-plan", "Authorization", bearer)
	if !kafkaLists() {
		t.Error("the front door does not list cdr under a plan with kafka")
	}
}

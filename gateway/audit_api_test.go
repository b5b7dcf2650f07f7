package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/sseclient"
)

// The audit trail over HTTP (GET /v1/audit, /v1/audit/stream,
// /v1/audit/keys), read as the demo registry's regulator and compared with
// the audit topic read directly.

// apiAuditPage is GET /v1/audit's JSON answer.
type apiAuditPage struct {
	Events     []json.RawMessage `json:"events"`
	NextCursor string            `json:"next_cursor"`
	CaughtUp   bool              `json:"caught_up"`
}

// withFastCheckpoints seals the audit chain every 200 ms, so that what a
// test reads holds signed checkpoints.
func withFastCheckpoints(c *gateway.Config) { c.Audit.CheckpointInterval = 200 * time.Millisecond }

// auditGet reads one page of the audit trail as the regulator.
func auditGet(t *testing.T, e *env, query string, hdr ...string) (apiAuditPage, *http.Response, []byte) {
	t.Helper()
	resp, body := e.get("/v1/audit"+query, append([]string{"Authorization", e.bearer("regulator")}, hdr...)...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/audit%s: %d %s", query, resp.StatusCode, body)
	}
	var pg apiAuditPage
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(body, &pg); err != nil {
			t.Fatalf("GET /v1/audit%s: %v: %s", query, err, body)
		}
		if h := resp.Header.Get("Sluice-Next-Cursor"); h != pg.NextCursor {
			t.Fatalf("Sluice-Next-Cursor %q, next_cursor %q", h, pg.NextCursor)
		}
		if h := resp.Header.Get("Sluice-Caught-Up"); h != strconv.FormatBool(pg.CaughtUp) {
			t.Fatalf("Sluice-Caught-Up %q, caught_up %v", h, pg.CaughtUp)
		}
	}
	return pg, resp, body
}

// auditAll pages through the audit trail with query (filters and limit)
// until a page is caught up, and returns every event in order and the
// last cursor. Each page's cursor goes into the next request, and no page
// is longer than limit.
func auditAll(t *testing.T, e *env, query string, limit int) ([][]byte, string) {
	t.Helper()
	var out [][]byte
	cur := ""
	for range 10000 {
		q := query + "&limit=" + strconv.Itoa(limit)
		if cur != "" {
			q += "&cursor=" + cur
		}
		pg, _, _ := auditGet(t, e, "?"+strings.TrimPrefix(q, "&"))
		if len(pg.Events) > limit {
			t.Fatalf("a page of %d events with limit %d", len(pg.Events), limit)
		}
		for _, ev := range pg.Events {
			out = append(out, []byte(ev))
		}
		if pg.NextCursor == "" {
			t.Fatal("page without next_cursor")
		}
		cur = pg.NextCursor
		if pg.CaughtUp {
			return out, cur
		}
	}
	t.Fatal("paging did not catch up")
	return nil, ""
}

// topicAudit reads the audit topic directly: the stored bytes of every
// record, per partition in offset order, before the positions of c (all
// of them when c is "").
func topicAudit(t *testing.T, e *env, c string) [][]byte {
	t.Helper()
	var upto []int64
	if c != "" {
		var err error
		if upto, err = cursor.Decode(c, cursor.Tag("audit")); err != nil {
			t.Fatalf("cursor %q: %v", c, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out [][]byte
	err := audit.ReadTopic(ctx, audit.ReadOptions{Brokers: []string{e.gw.KafkaAddr()}, Topic: e.gw.AuditTopic()},
		func(pos audit.Position, r *kgo.Record) error {
			if upto == nil || (int(pos.Partition) < len(upto) && pos.Offset < upto[pos.Partition]) {
				out = append(out, r.Value)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// byChain groups events by chain, each chain's in order: the order the
// audit trail guarantees (a chain lives on one partition), whatever the
// merge across partitions.
func byChain(t *testing.T, evs [][]byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, raw := range evs {
		var h struct{ Chain string }
		if err := json.Unmarshal(raw, &h); err != nil || h.Chain == "" {
			t.Fatalf("not an audit event: %s", raw)
		}
		out[h.Chain] = append(out[h.Chain], string(raw))
	}
	return out
}

// sameEvents asserts that got holds exactly want's events, each chain in
// the same order: none skipped, none repeated.
func sameEvents(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d events, the topic holds %d", len(got), len(want))
	}
	g, w := byChain(t, got), byChain(t, want)
	for chain, wevs := range w {
		gevs := g[chain]
		for i := range max(len(gevs), len(wevs)) {
			switch {
			case i >= len(gevs):
				t.Fatalf("chain %s: events from #%d missing (gap): %s", chain, i, wevs[i])
			case i >= len(wevs):
				t.Fatalf("chain %s: extra event #%d: %s", chain, i, gevs[i])
			case gevs[i] != wevs[i]:
				t.Fatalf("chain %s: event #%d differs (gap, duplicate, reorder or altered bytes):\n  got  %s\n  want %s", chain, i, gevs[i], wevs[i])
			}
		}
	}
	for chain := range g {
		if _, ok := w[chain]; !ok {
			t.Fatalf("events of chain %s, which the topic does not hold", chain)
		}
	}
}

// auditActivity generates audited activity: REST reads as two partners and
// a denied read.
func auditActivity(t *testing.T, e *env) {
	t.Helper()
	e.produce("cdr", 20)
	e.produce("network-quality", 10)
	if resp, body := e.get("/v1/products/cdr/records?from=earliest&limit=10", "Authorization", e.bearer("mvno-a")); resp.StatusCode != 200 {
		t.Fatalf("mvno-a page: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.get("/v1/products/network-quality/records?from=earliest", "Authorization", e.bearer("internal-noc")); resp.StatusCode != 200 {
		t.Fatalf("internal-noc page: %d %s", resp.StatusCode, body)
	}
	e.problem("/v1/products/fraud-alerts/records", 403, "urn:sluice:problem:no-grant", "Authorization", e.bearer("mvno-b"))
}

// decodeEvents decodes stored events.
func decodeEvents(t *testing.T, raws [][]byte) []audit.Event {
	t.Helper()
	out := make([]audit.Event, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			t.Fatalf("event %s: %v", raw, err)
		}
	}
	return out
}

// eventNames reports whether ev's payload names partner (and product, if set).
func eventNames(ev audit.Event, partner, product string) bool {
	type pp struct{ partner, product string }
	var ns []pp
	if a := ev.Access; a != nil {
		ns = append(ns, pp{a.Partner, a.Product})
	}
	if s := ev.Stream; s != nil {
		ns = append(ns, pp{s.Partner, s.Product})
	}
	if d := ev.Delivery; d != nil {
		ns = append(ns, pp{d.Partner, d.Product})
	}
	if l := ev.Lifecycle; l != nil {
		ns = append(ns, pp{l.Partner, l.Product})
	}
	for _, n := range ns {
		if (partner == "" || n.partner == partner) && (product == "" || n.product == product) {
			return true
		}
	}
	return false
}

// TestIntegrationAuditAPIAccess: only regulators read audit events; every
// attempt, refused or not, is recorded; the keys are for any partner.
func TestIntegrationAuditAPIAccess(t *testing.T) {
	e := newEnv(t)
	for _, partner := range []string{"mvno-a", "internal-noc", "admin"} {
		for _, path := range []string{"/v1/audit", "/v1/audit/stream", "/v1/audit?partner=mvno-a"} {
			e.problem(path, 403, "urn:sluice:problem:forbidden-audit", "Authorization", e.bearer(partner))
		}
	}
	for _, path := range []string{"/v1/audit", "/v1/audit/stream", "/v1/audit/keys"} {
		resp, body := e.get(path, "Authorization", "")
		if resp.StatusCode != 401 || !strings.Contains(string(body), "urn:sluice:problem:token-missing") || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s without a token: %d %s", path, resp.StatusCode, body)
		}
	}
	// The keys: public, for any authenticated partner.
	var keys []byte
	for _, partner := range []string{"mvno-a", "regulator"} {
		resp, body := e.get("/v1/audit/keys", "Authorization", e.bearer(partner))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
			t.Fatalf("keys as %s: %d %s %s", partner, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if _, err := audit.ParseKeySet(body); err != nil {
			t.Fatalf("keys as %s: %v: %s", partner, err, body)
		}
		if keys != nil && !bytes.Equal(keys, body) {
			t.Fatalf("keys differ by caller: %s / %s", keys, body)
		}
		keys = body
	}
	e.problem("/v1/audit/keys?format=pem", 400, "urn:sluice:problem:invalid-query", "Authorization", e.bearer("mvno-a"))
	if bytes.Contains(keys, []byte(`"d"`)) {
		t.Fatalf("the key set holds a private key member: %s", keys)
	}

	// Bad queries, as the regulator.
	reg := []string{"Authorization", e.bearer("regulator")}
	productCursor := cursor.Encode(cursor.Tag("cdr"), []int64{0, 0, 0})
	for _, c := range []struct{ query, typ string }{
		{"?kind=bogus", "urn:sluice:problem:invalid-query"},
		{"?partner=MVNO_A", "urn:sluice:problem:invalid-query"},
		{"?to=tomorrow", "urn:sluice:problem:invalid-query"},
		{"?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "urn:sluice:problem:invalid-query"},
		{"?colour=red", "urn:sluice:problem:invalid-query"},
		{"?from=yesterday", "urn:sluice:problem:invalid-from"},
		{"?limit=0", "urn:sluice:problem:invalid-limit"},
		{"?limit=1001", "urn:sluice:problem:invalid-limit"},
		{"?cursor=garbage", "urn:sluice:problem:invalid-cursor"},
		{"?cursor=" + productCursor, "urn:sluice:problem:invalid-cursor"},
		{"?cursor=" + cursor.Encode(cursor.Tag("audit"), []int64{1 << 40}), "urn:sluice:problem:invalid-cursor"},
		{"?from=earliest&cursor=" + cursor.Encode(cursor.Tag("audit"), []int64{0}), "urn:sluice:problem:invalid-query"},
	} {
		e.problem("/v1/audit"+c.query, 400, c.typ, reg...)
	}
	e.problem("/v1/audit/stream?limit=5", 400, "urn:sluice:problem:invalid-query", reg...)

	// Each refusal above is in the trail: an access event of the partner,
	// door audit-rest or audit-sse, denied as not-regulator.
	evs := decodeEvents(t, topicAudit(t, e, ""))
	denied := map[string]int{}
	for _, ev := range evs {
		if a := ev.Access; a != nil && !a.Allowed && a.Reason == "not-regulator" {
			denied[a.Partner+" "+a.Door]++
		}
	}
	for _, partner := range []string{"mvno-a", "internal-noc", "admin"} {
		if denied[partner+" audit-rest"] != 2 || denied[partner+" audit-sse"] != 1 {
			t.Fatalf("refused reads of %s recorded: %v; want 2 audit-rest and 1 audit-sse", partner, denied)
		}
	}
}

// TestIntegrationAuditAPIPaging: paging through the trail with small
// limits neither skips nor repeats an event (compared with the topic read
// directly), the stored bytes verify with the published keys, and the
// filters select what they say.
func TestIntegrationAuditAPIPaging(t *testing.T) {
	e := newEnv(t, withFastCheckpoints)
	auditActivity(t, e)
	// At least one checkpoint after the activity, so that the keys are
	// put to use.
	waitFor(t, 10*time.Second, func() bool {
		evs := decodeEvents(t, topicAudit(t, e, ""))
		return evs[len(evs)-1].Kind == audit.KindCheckpoint
	}, "a checkpoint after the activity")

	// JSON pages of 7.
	got, last := auditAll(t, e, "", 7)
	sameEvents(t, got, topicAudit(t, e, last))
	// NDJSON pages of 5, concatenated: an export that verifies with the
	// published keys.
	var export bytes.Buffer
	cur, n := "", 0
	for {
		q := "?limit=5"
		if cur != "" {
			q += "&cursor=" + cur
		}
		_, resp, body := auditGet(t, e, q, "Accept", "application/x-ndjson")
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
			t.Fatalf("NDJSON page: Content-Type %q", ct)
		}
		lines := bytes.Count(body, []byte("\n"))
		if lines > 5 || (len(body) > 0 && !bytes.HasSuffix(body, []byte("\n"))) {
			t.Fatalf("NDJSON page of %d lines: %q", lines, body)
		}
		export.Write(body)
		n += lines
		cur = resp.Header.Get("Sluice-Next-Cursor")
		if resp.Header.Get("Sluice-Caught-Up") == "true" {
			break
		}
	}
	raws := bytes.Split(bytes.TrimSuffix(export.Bytes(), []byte("\n")), []byte("\n"))
	sameEvents(t, raws, topicAudit(t, e, cur))
	_, keys := e.get("/v1/audit/keys", "Authorization", e.bearer("regulator"))
	ks, err := audit.ParseKeySet(keys)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(bytes.NewReader(export.Bytes()), audit.VerifyOptions{Keys: ks})
	if err != nil || !rep.OK() {
		t.Fatalf("verify the export of %d events: %v %v", n, err, rep.Problems)
	}
	if rep.Events != n || rep.Checkpoints == 0 || rep.KeysFromLog {
		t.Fatalf("verify: %d events (want %d), %d checkpoints, keys from the log %v", rep.Events, n, rep.Checkpoints, rep.KeysFromLog)
	}
	// Bytes altered in transit do not verify: the test would notice.
	bad := bytes.Replace(export.Bytes(), []byte(`"partner":"mvno-a"`), []byte(`"partner":"mvno-x"`), 1)
	if rep, _ := audit.Verify(bytes.NewReader(bad), audit.VerifyOptions{Keys: ks}); rep.OK() {
		t.Fatal("an altered export verifies")
	}

	// Filters, against the events up to a time before the filtered reads
	// (later events are the regulator's own reads).
	cut := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	all, _ := auditAll(t, e, "&to="+url.QueryEscape(cut.Format(time.RFC3339Nano)), 50)
	var want [][]byte
	for _, raw := range topicAudit(t, e, "") {
		if decodeEvents(t, [][]byte{raw})[0].Time.Before(cut) {
			want = append(want, raw)
		}
	}
	sameEvents(t, all, want)
	allEvs := decodeEvents(t, all)
	if len(allEvs) < 10 {
		t.Fatalf("only %d events before %s", len(allEvs), cut)
	}
	count := func(keep func(audit.Event) bool) int {
		n := 0
		for _, ev := range allEvs {
			if keep(ev) {
				n++
			}
		}
		return n
	}
	to := "&to=" + url.QueryEscape(cut.Format(time.RFC3339Nano))
	for _, c := range []struct {
		note, query string
		keep        func(audit.Event) bool
	}{
		{"partner", "&partner=mvno-a", func(ev audit.Event) bool { return eventNames(ev, "mvno-a", "") }},
		{"partner and product", "&partner=mvno-b&product=fraud-alerts", func(ev audit.Event) bool { return eventNames(ev, "mvno-b", "fraud-alerts") }},
		{"product", "&product=cdr", func(ev audit.Event) bool { return eventNames(ev, "", "cdr") }},
		{"kind", "&kind=access", func(ev audit.Event) bool { return ev.Kind == audit.KindAccess }},
		{"kinds", "&kind=chain-start,checkpoint", func(ev audit.Event) bool {
			return ev.Kind == audit.KindChainStart || ev.Kind == audit.KindCheckpoint
		}},
		{"partner and kind", "&partner=mvno-a&kind=delivery", func(ev audit.Event) bool { return ev.Kind == audit.KindDelivery && eventNames(ev, "mvno-a", "") }},
	} {
		want := count(c.keep)
		if want == 0 {
			t.Fatalf("%s: no event to select: the test proves nothing", c.note)
		}
		got, _ := auditAll(t, e, c.query+to, 3)
		evs := decodeEvents(t, got)
		if len(evs) != want {
			t.Errorf("%s (%s): %d events, want %d", c.note, c.query, len(evs), want)
		}
		for _, ev := range evs {
			if !c.keep(ev) {
				t.Errorf("%s (%s): selected %s event %+v", c.note, c.query, ev.Kind, ev)
			}
		}
	}
	// The denial is there for mvno-b and fraud-alerts.
	got, _ = auditAll(t, e, "&partner=mvno-b&product=fraud-alerts&kind=access"+to, 10)
	if evs := decodeEvents(t, got); len(evs) != 1 || evs[0].Access.Allowed || evs[0].Access.Reason != "no-grant" {
		t.Fatalf("mvno-b's denied read of fraud-alerts: %s", bytes.Join(got, []byte("\n")))
	}
	// from and to split the events at an event's time.
	mid := allEvs[len(allEvs)/2].Time
	ms := url.QueryEscape(mid.Format(time.RFC3339Nano))
	before, _ := auditAll(t, e, "&to="+ms, 4)
	after, _ := auditAll(t, e, "&from="+ms+to, 4)
	if len(before)+len(after) != len(allEvs) || len(before) == 0 || len(after) == 0 {
		t.Fatalf("before %s: %d events, from it: %d; together want %d", mid, len(before), len(after), len(allEvs))
	}
	for _, ev := range decodeEvents(t, before) {
		if !ev.Time.Before(mid) {
			t.Fatalf("to=%s selected an event at %s", mid, ev.Time)
		}
	}
	for _, ev := range decodeEvents(t, after) {
		if ev.Time.Before(mid) {
			t.Fatalf("from=%s selected an event at %s", mid, ev.Time)
		}
	}
	// Past the end of a range: no event, caught up.
	_, end := auditAll(t, e, "&to="+ms, 100)
	pg, _, _ := auditGet(t, e, "?to="+ms+"&cursor="+end)
	if len(pg.Events) != 0 || !pg.CaughtUp {
		t.Fatalf("past the end of a range: %d events, caught up %v", len(pg.Events), pg.CaughtUp)
	}

	// The regulator's reads are in the trail too.
	reads := 0
	for _, ev := range decodeEvents(t, topicAudit(t, e, "")) {
		if a := ev.Access; a != nil && a.Partner == "regulator" && a.Allowed && a.Door == "audit-rest" {
			reads++
		}
	}
	if reads < 10 {
		t.Fatalf("%d reads of the regulator recorded", reads)
	}
}

// auditStreamAs opens GET /v1/audit/stream as the regulator.
func auditStreamAs(t *testing.T, e *env, ctx context.Context, query, lastID string) (*http.Response, *sseReader) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/audit/stream"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", e.bearer("regulator"))
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("audit stream%s: %d %s", query, resp.StatusCode, b)
	}
	return resp, sseclient.NewReader(resp.Body)
}

// readAudit reads audit events from r until until returns true for one,
// and returns the events read with the id after the last.
func readAudit(t *testing.T, r *sseReader, until func(audit.Event) bool) ([][]byte, string) {
	t.Helper()
	var out [][]byte
	for {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("audit stream after %d events: %v", len(out), err)
		}
		switch ev.Type {
		case "cursor":
			continue
		case "audit":
		default:
			t.Fatalf("audit stream: unexpected %s event: %s", ev.Type, ev.Data)
		}
		if _, err := cursor.Decode(ev.ID, cursor.Tag("audit")); err != nil {
			t.Fatalf("audit event id %q: %v", ev.ID, err)
		}
		out = append(out, bytes.Clone(ev.Data))
		var a audit.Event
		if err := json.Unmarshal(ev.Data, &a); err != nil {
			t.Fatalf("audit event %s: %v", ev.Data, err)
		}
		if until(a) {
			return out, ev.ID
		}
	}
}

// TestIntegrationAuditAPIStream: the SSE stream delivers new events live,
// resumes with Last-Event-ID with no gap and no duplicate (compared with
// the topic), filters, and ends with a shutdown event.
func TestIntegrationAuditAPIStream(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.produce("cdr", 10)
	resp, sr := auditStreamAs(t, e, ctx, "?from=latest", "")
	// Live: mvno-a reads a page after the stream opened.
	if r, body := e.get("/v1/products/cdr/records?from=earliest", "Authorization", e.bearer("mvno-a")); r.StatusCode != 200 {
		t.Fatalf("mvno-a page: %d %s", r.StatusCode, body)
	}
	first, id := readAudit(t, sr, func(ev audit.Event) bool {
		return ev.Kind == audit.KindDelivery && ev.Delivery.Partner == "mvno-a"
	})
	resp.Body.Close()
	// While the regulator is away: a denial.
	e.problem("/v1/products/fraud-alerts/records", 403, "urn:sluice:problem:no-grant", "Authorization", e.bearer("mvno-b"))
	// Resume, with a from the reconnect ignores, as EventSource would send.
	resp, sr = auditStreamAs(t, e, ctx, "?from=latest", id)
	second, id2 := readAudit(t, sr, func(ev audit.Event) bool {
		return ev.Kind == audit.KindAccess && ev.Access.Partner == "mvno-b" && !ev.Access.Allowed
	})
	resp.Body.Close()
	got := append(first, second...)
	// The topic from the first event on, up to id2.
	all := topicAudit(t, e, id2)
	at := slices.IndexFunc(all, func(raw []byte) bool { return bytes.Equal(raw, got[0]) })
	if at < 0 {
		t.Fatalf("the stream's first event is not in the topic: %s", got[0])
	}
	sameEvents(t, got, all[at:])

	// Filters: only events naming mvno-a, from the start.
	resp, sr = auditStreamAs(t, e, ctx, "?from=earliest&partner=mvno-a", "")
	evs, _ := readAudit(t, sr, func(ev audit.Event) bool { return ev.Kind == audit.KindDelivery })
	resp.Body.Close()
	for _, ev := range decodeEvents(t, evs) {
		if !eventNames(ev, "mvno-a", "") {
			t.Fatalf("partner=mvno-a streamed %+v", ev)
		}
	}

	// Shutdown ends the stream with a shutdown event.
	resp, sr = auditStreamAs(t, e, ctx, "", "")
	defer resp.Body.Close()
	stopped := make(chan struct{})
	go func() { e.stop(); close(stopped) }()
	for {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("audit stream ended without a shutdown event: %v", err)
		}
		if ev.Type == "shutdown" {
			break
		}
	}
	if _, err := sr.Next(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("audit stream goes on after the shutdown event: %v", err)
	}
	<-stopped
}

package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/products/store"
)

// auditEvents reads the gateway's audit topic as it is now: the stored
// bytes of each record, in order, and the events decoded.
func auditEvents(t *testing.T, e *env) ([][]byte, []audit.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var raws [][]byte
	var evs []audit.Event
	err := audit.ReadTopic(ctx, audit.ReadOptions{Brokers: []string{e.gw.KafkaAddr()}, Topic: e.gw.AuditTopic()},
		func(_ audit.Position, r *kgo.Record) error {
			var ev audit.Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				return err
			}
			raws = append(raws, r.Value)
			evs = append(evs, ev)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return raws, evs
}

// describe is an event as the completeness test compares it: kind and the
// fields a regulator reads, without ids and times.
func describe(ev audit.Event) string {
	switch {
	case ev.Access != nil:
		a := ev.Access
		return fmt.Sprintf("access %s %s %s %s allowed=%v reason=%s", a.Door, a.Partner, a.Product, a.Purpose, a.Allowed, a.Reason)
	case ev.Stream != nil:
		s := ev.Stream
		return fmt.Sprintf("%s %s %s %s reason=%s", ev.Kind, s.Door, s.Partner, s.Product, s.Reason)
	case ev.Delivery != nil:
		d := ev.Delivery
		return fmt.Sprintf("delivery %s %s final=%v records=%d", d.Partner, d.Product, d.Final, d.TotalRecords)
	case ev.Lifecycle != nil:
		l := ev.Lifecycle
		return fmt.Sprintf("%s %s %s %s %s->%s by %s", ev.Kind, l.Action, l.Partner, l.Product, l.From, l.To, l.Actor)
	case ev.Admin != nil:
		return fmt.Sprintf("admin %s by %s", ev.Admin.Action, ev.Admin.Actor)
	case ev.Policy != nil:
		return "policy-reload"
	case ev.Consent != nil:
		return "consent " + strings.Join(ev.Consent.OptOuts, ",")
	}
	return string(ev.Kind)
}

// TestIntegrationAuditCompleteness: a scripted session (allowed and denied
// REST reads, two SSE streams, a Kafka client, a revocation by the admin, a
// consent change, a policy reload) leaves exactly the expected events in the audit topic,
// each delivery summary counting what the client received; the topic
// verifies with the published key, and holds no raw subscriber identifier.
func TestIntegrationAuditCompleteness(t *testing.T) {
	dir := policyCopy(t)
	e := newEnv(t, withKafkaFrontDoor(t), func(c *gateway.Config) {
		c.Policy = gateway.PolicyConfig{Dir: dir, WatchInterval: 100 * time.Millisecond}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Before the script: what is recorded at start.
	_, before := auditEvents(t, e)
	e.produce("cdr", 40)

	// 1. REST, allowed: mvno-a reads a page of its own rows.
	resp, body := e.get("/v1/products/cdr/records?from=earliest&limit=100", "Authorization", "Bearer "+e.token("mvno-a"))
	var pg page
	if resp.StatusCode != 200 || json.Unmarshal(body, &pg) != nil {
		t.Fatalf("mvno-a page: %d %s", resp.StatusCode, body)
	}
	restGot := len(pg.Records)
	// 2. REST, denied: mvno-b holds no grant of fraud-alerts.
	e.problem("/v1/products/fraud-alerts/records", 403, "urn:sluice:problem:no-grant", "Authorization", "Bearer "+e.token("mvno-b"))
	// 3. SSE: internal-fraud reads every cdr record, then leaves.
	sresp, sr := e.streamAs(ctx, "/v1/products/cdr/stream?from=earliest", "internal-fraud")
	sseGot := 0
	for sseGot < 40 {
		ev, err := sr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == "record" {
			sseGot++
		}
	}
	sresp.Body.Close()
	// 3b. The Kafka front door: internal-fraud's own Kafka client reads
	// the same 40 records, then disconnects.
	kc := e.kafkaClient(kafkaOAuth(e.token("internal-fraud")), kgo.ConsumeTopics("cdr"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	kafkaGot := len(readKafka(t, kc, 40, 20*time.Second))
	kc.Close()
	// 4. SSE as mvno-b, then the admin revokes its subscription.
	rresp, rr := e.streamAs(ctx, "/v1/products/cdr/stream?from=latest", "mvno-b")
	defer rresp.Body.Close()
	subs, err := e.gw.Store().Subscriptions(ctx, store.Filter{PartnerID: "mvno-b", Product: "cdr", State: store.StateActive})
	if err != nil || len(subs) != 1 {
		t.Fatalf("mvno-b subscriptions %v %v", subs, err)
	}
	req, _ := http.NewRequest(http.MethodPost, e.base+"/v1/subscriptions/"+subs[0].ID+"/revoke", strings.NewReader(`{"reason":"contract ended"}`))
	req.Header.Set("Authorization", "Bearer "+e.token("admin"))
	req.Header.Set("Content-Type", "application/json")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", err, r)
	}
	for {
		ev, err := rr.Next()
		if err != nil {
			t.Fatalf("mvno-b's stream ended without revoked: %v", err)
		}
		if ev.Type == "revoked" {
			break
		}
	}
	// 5. A consent change for a subscriber.
	const msisdn = "4915199887766"
	c := generate.ConsentFor(msisdn, []string{"marketing"}, time.Now())
	e.produceRaw(&kgo.Record{Topic: e.gw.ConsentTopic(), Key: c.Key, Value: c.Value})

	// 5b. mvno-a creates an API key and revokes it (the API's path).
	kreq, _ := http.NewRequest(http.MethodPost, e.base+"/v1/keys", strings.NewReader(`{"ttl_days":1}`))
	kreq.Header.Set("Authorization", "Bearer "+e.token("mvno-a"))
	kresp, err := http.DefaultClient.Do(kreq)
	if err != nil || kresp.StatusCode != 201 {
		t.Fatalf("create key: %v %v", err, kresp)
	}
	var nk struct{ ID, Secret string }
	json.NewDecoder(kresp.Body).Decode(&nk)
	kresp.Body.Close()
	dreq, _ := http.NewRequest(http.MethodDelete, e.base+"/v1/keys/"+nk.ID, nil)
	dreq.Header.Set("Authorization", "Bearer "+e.token("mvno-a"))
	if dresp, err := http.DefaultClient.Do(dreq); err != nil || dresp.StatusCode != 204 {
		t.Fatalf("revoke key: %v %v", err, dresp)
	}
	// 6. A policy reload: an edit of a policy file (a comment: a new
	// revision, the same decisions).
	contracts := filepath.Join(dir, "contracts.rego")
	b, _ := os.ReadFile(contracts)
	if err := os.WriteFile(contracts, append(b, "\n# reviewed by the audit test\n"...), 0o600); err != nil {
		t.Fatal(err)
	}

	// Everything above is recorded within a moment (stream closes are
	// written when the handlers return).
	want := []string{
		"access rest mvno-a cdr billing allowed=true reason=",
		fmt.Sprintf("delivery mvno-a cdr final=true records=%d", restGot),
		"access rest mvno-b fraud-alerts  allowed=false reason=no-grant",
		"access sse internal-fraud cdr fraud-prevention allowed=true reason=",
		"stream-open sse internal-fraud cdr reason=",
		fmt.Sprintf("delivery internal-fraud cdr final=true records=%d", sseGot),
		"stream-close sse internal-fraud cdr reason=client",
		"access kafka internal-fraud cdr fraud-prevention allowed=true reason=",
		"stream-open kafka internal-fraud cdr reason=",
		fmt.Sprintf("delivery internal-fraud cdr final=true records=%d", kafkaGot),
		"stream-close kafka internal-fraud cdr reason=client",
		"access sse mvno-b cdr network-analytics allowed=true reason=",
		"stream-open sse mvno-b cdr reason=",
		"subscription revoke mvno-b cdr active->revoked by admin",
		"admin subscription revoke by admin",
		"access sse mvno-b cdr  allowed=false reason=no-grant", // the stream named no purpose
		"delivery mvno-b cdr final=true records=0",
		"stream-close sse mvno-b cdr reason=revoked",
		"consent marketing",
		"key created mvno-a  ->active by mvno-a",
		"key revoked mvno-a  ->revoked by mvno-a",
		"policy-reload",
	}
	var got []string
	var raws [][]byte
	var last []audit.Event
	waitFor(t, 10*time.Second, func() bool {
		var evs []audit.Event
		raws, evs = auditEvents(t, e)
		last = evs
		got = got[:0]
		for _, ev := range evs[len(before):] {
			if ev.Kind == audit.KindCheckpoint || ev.Kind == audit.KindChainStart {
				continue
			}
			got = append(got, describe(ev))
		}
		return len(got) >= len(want)
	}, "the session's audit events")
	// The stream re-authorization's purpose is empty when the request named
	// none: normalise what the test cannot know in advance.
	sort.Strings(got)
	sorted := append([]string(nil), want...)
	sort.Strings(sorted)
	if strings.Join(got, "\n") != strings.Join(sorted, "\n") {
		t.Fatalf("audit events:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(sorted, "\n  "))
	}

	// The reload names the edited file's new SHA-256; no key secret
	// appears anywhere.
	sum := sha256.Sum256(append(b, "\n# reviewed by the audit test\n"...))
	var reloaded bool
	for _, ev := range last[len(before):] {
		if ev.Policy != nil && ev.Policy.Files["contracts.rego"] == hex.EncodeToString(sum[:]) {
			reloaded = true
		}
	}
	if !reloaded {
		t.Fatal("no policy-reload event names contracts.rego's new SHA-256")
	}
	for i, raw := range raws {
		if bytes.Contains(raw, []byte(nk.Secret)) {
			t.Fatalf("event %d holds the API key's secret", i)
		}
	}

	// The topic verifies with the key the gateway publishes.
	keys, err := audit.ParseKeySet(e.gw.AuditKeys())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(bytes.NewReader(bytes.Join(raws, []byte("\n"))), audit.VerifyOptions{Keys: keys})
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
	// No raw identifier: neither the subscriber whose consent changed nor
	// anything shaped like an MSISDN, IMSI or IMEI.
	for i, raw := range raws {
		if bytes.Contains(raw, []byte(msisdn)) {
			t.Fatalf("event %d holds the raw MSISDN: %s", i, raw)
		}
		if s, end := audit.FindRawIdentifier(raw); s >= 0 {
			t.Fatalf("event %d holds an identifier-shaped value %q: %s", i, raw[s:end], raw)
		}
	}
}

// TestIntegrationAuditFailClosed: with produce requests to the audit topic
// failing at the protocol level (the broker answers them with an error),
// a new request gets 503 audit-unavailable, /readyz says so, and an open
// stream delivers nothing; when the broker takes them again, the stream
// resumes with no gap and requests are served.
func TestIntegrationAuditFailClosed(t *testing.T) {
	e := newEnv(t, withEmbedded, func(c *gateway.Config) {
		c.Audit.AckTimeout = 500 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	failing := auditFault(t, e)

	sresp, sr := e.streamAs(ctx, "/v1/products/network-quality/stream?from=latest", "internal-noc")
	defer sresp.Body.Close()
	records := make(chan string, 100)
	go func() {
		for {
			ev, err := sr.Next()
			if err != nil {
				close(records)
				return
			}
			if ev.Type == "record" {
				records <- ev.ID
			}
		}
	}()
	e.produce("network-quality", 5)
	var ids []string
	for len(ids) < 5 {
		select {
		case id := <-records:
			ids = append(ids, id)
		case <-time.After(10 * time.Second):
			t.Fatal("no records before the fault")
		}
	}

	failing.Store(true)
	e.problem("/v1/products/network-quality/records", 503, "urn:sluice:problem:audit-unavailable")
	e.problem("/v1/products/network-quality/records", 503, "urn:sluice:problem:audit-unavailable") // fails fast now
	if resp, body := e.get("/readyz"); resp.StatusCode != 503 || !strings.Contains(string(body), `"audit"`) {
		t.Fatalf("/readyz while the audit trail is down: %d %s", resp.StatusCode, body)
	}
	if m := metric(t, e, "sluice_audit_healthy"); m != 0 {
		t.Fatalf("sluice_audit_healthy %v while down", m)
	}
	e.produce("network-quality", 5)
	select {
	case id := <-records:
		t.Fatalf("record %s delivered while the audit trail was down", id)
	case <-time.After(2 * time.Second):
	}

	failing.Store(false)
	for len(ids) < 10 {
		select {
		case id := <-records:
			ids = append(ids, id)
		case <-time.After(15 * time.Second):
			t.Fatalf("the stream did not resume after recovery (%d records)", len(ids))
		}
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] == ids[i-1] {
			t.Fatalf("record id %s twice", ids[i])
		}
	}
	select {
	case id, ok := <-records:
		if ok {
			t.Fatalf("an 11th record %s: 10 were produced", id)
		}
	case <-time.After(500 * time.Millisecond):
	}
	if resp, body := e.get("/v1/products/network-quality/records?from=earliest"); resp.StatusCode != 200 {
		t.Fatalf("after recovery: %d %s", resp.StatusCode, body)
	}
}

// TestIntegrationKafkaAuditTopic: on the Kafka front door the audit trail
// is a read-only virtual topic "audit" that only a regulator sees and
// reads, record for record as stored (so the regulator's own Kafka tools
// can archive it and it verifies); any other partner is refused.
func TestIntegrationKafkaAuditTopic(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 10)
	if resp, body := e.get("/v1/products/cdr/records?from=earliest"); resp.StatusCode != 200 {
		t.Fatalf("records: %d %s", resp.StatusCode, body)
	}
	raws, _ := auditEvents(t, e)

	reg := e.kafkaClient(kafkaOAuth(e.token("regulator")), kgo.ConsumeTopics("audit"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if topics, _ := kafkaTopics(t, reg); strings.Join(topics, ",") != "audit" {
		t.Fatalf("the regulator's topics: %v, want [audit]", topics)
	}
	recs := readKafka(t, reg, len(raws), 20*time.Second)
	byOffset := map[int64][]byte{}
	for _, r := range recs {
		if r.Topic != "audit" {
			t.Fatalf("record of topic %s", r.Topic)
		}
		byOffset[r.Offset] = r.Value
	}
	for i, raw := range raws {
		if !bytes.Equal(byOffset[int64(i)], raw) {
			t.Fatalf("audit record at offset %d differs over Kafka:\n  %s\nstored:\n  %s", i, byOffset[int64(i)], raw)
		}
	}
	keys, err := audit.ParseKeySet(e.gw.AuditKeys())
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for i := range len(byOffset) {
		lines = append(lines, byOffset[int64(i)])
	}
	if rep, err := audit.Verify(bytes.NewReader(bytes.Join(lines, []byte("\n"))), audit.VerifyOptions{Keys: keys}); err != nil || !rep.OK() {
		t.Fatalf("the trail read over Kafka does not verify: %v %+v", err, rep.Problems)
	}
	// Writing to it is refused like every write.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.ProduceSync(ctx, &kgo.Record{Topic: "audit", Value: []byte(`{}`)}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to audit: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	// Another partner neither sees nor reads it.
	other := e.kafkaClient(kafkaOAuth(e.token("internal-noc")), kgo.ConsumeTopics("audit"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if topics, _ := kafkaTopics(t, other); slices.Contains(topics, "audit") {
		t.Fatalf("internal-noc sees the audit topic: %v", topics)
	}
	// A fetch of it, asked directly, is refused.
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = -1, 100, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "audit"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 1 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, other.Broker(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch of audit by internal-noc: %+v", resp)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.TopicAuthorizationFailed.Code || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch of audit by internal-noc: error %d, %d bytes of records; want TOPIC_AUTHORIZATION_FAILED and none", p.ErrorCode, len(p.RecordBatches))
	}
}

// TestIntegrationAuditSummaries: a stream's deliveries are summarised at
// least every summary interval, windows chain cursor to cursor, and their
// records add up to what the client received.
func TestIntegrationAuditSummaries(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.Audit.SummaryInterval = 300 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, r := e.streamAs(ctx, "/v1/products/network-quality/stream?from=latest", "internal-noc")
	received := 0
	// Ten rounds of about 250 ms: some 8 intervals, of which the test asks
	// for 4 summaries, so a loaded machine (slow acks) does not fail it.
	for round := range 10 {
		e.produce("network-quality", 5)
		for got := 0; got < 5; {
			ev, err := r.Next()
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if ev.Type == "record" {
				got++
			}
		}
		received += 5
		time.Sleep(250 * time.Millisecond)
	}
	resp.Body.Close()
	var sums []*audit.Delivery
	waitFor(t, 10*time.Second, func() bool {
		_, evs := auditEvents(t, e)
		sums = sums[:0]
		final := false
		for _, ev := range evs {
			if d := ev.Delivery; d != nil && d.Partner == "internal-noc" && d.Product == "network-quality" {
				sums = append(sums, d)
				final = final || d.Final
			}
		}
		return final
	}, "the stream's final summary")
	if len(sums) < 4 {
		t.Fatalf("%d summaries over ~2.5 s at a 300 ms interval, want at least 4", len(sums))
	}
	var total uint64
	for i, d := range sums {
		total += d.Records
		if d.TotalRecords != total {
			t.Fatalf("summary %d: total %d, windows add up to %d", i, d.TotalRecords, total)
		}
		if i > 0 && sums[i-1].Records > 0 && d.FirstCursor != sums[i-1].LastCursor {
			t.Fatalf("summary %d starts at %s, the previous ended at %s", i, d.FirstCursor, sums[i-1].LastCursor)
		}
	}
	if int(total) != received || !sums[len(sums)-1].Final {
		t.Fatalf("summaries count %d records (last final=%v), the client received %d", total, sums[len(sums)-1].Final, received)
	}
}

// auditFault makes the embedded broker answer produce requests to the
// audit topic with TOPIC_AUTHORIZATION_FAILED while the returned flag is
// set: a fault at the protocol level, the gateway's code untouched.
func auditFault(t *testing.T, e *env) *atomic.Bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topic := e.gw.AuditTopic()
	// Produce v13+ names topics by id: learn the audit topic's.
	acl, err := kgo.NewClient(kgo.SeedBrokers(e.gw.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	td, err := kadm.NewClient(acl).ListTopics(ctx, topic)
	acl.Close()
	if err != nil || td[topic].Err != nil {
		t.Fatalf("audit topic: %v %v", err, td)
	}
	topicID := td[topic].ID
	failing := new(atomic.Bool)
	cl := e.gw.EmbeddedBroker()
	cl.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if !failing.Load() || len(pr.Topics) == 0 || (pr.Topics[0].Topic != topic && pr.Topics[0].TopicID != topicID) {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, p := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = p.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	return failing
}

// TestIntegrationKafkaAuditFailClosed: the Kafka front door fails closed
// too: while the audit trail cannot persist, a consumer's fetches get a
// retriable error and no record; after recovery it goes on with no gap.
func TestIntegrationKafkaAuditFailClosed(t *testing.T) {
	e := newEnv(t, withEmbedded, withKafkaFrontDoor(t), func(c *gateway.Config) {
		c.Audit.AckTimeout = 500 * time.Millisecond
	})
	failing := auditFault(t, e)
	cl := e.kafkaClient(kafkaOAuth(e.token("internal-noc")), kgo.ConsumeTopics("network-quality"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RetryTimeout(time.Minute))
	e.produce("network-quality", 5)
	first := readKafka(t, cl, 5, 20*time.Second)

	failing.Store(true)
	// The next access decision fails and the trail turns unhealthy.
	e.problem("/v1/products/network-quality/records", 503, "urn:sluice:problem:audit-unavailable")
	e.produce("network-quality", 5)
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	fs := cl.PollFetches(pctx)
	pcancel()
	if n := len(fs.Records()); n > 0 {
		t.Fatalf("%d records delivered over Kafka while the audit trail was down", n)
	}

	failing.Store(false)
	rest := readKafka(t, cl, 5, 20*time.Second)
	seen := map[string]bool{}
	for _, r := range append(first, rest...) {
		k := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
		if seen[k] {
			t.Fatalf("record %s twice", k)
		}
		seen[k] = true
	}
	if len(seen) != 10 {
		t.Fatalf("%d distinct records after recovery, want 10", len(seen))
	}
}

// policyCopy copies the built-in policy (without its tests) into a new
// directory, for a gateway whose policy the test edits.
func policyCopy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files, _ := filepath.Glob("../policy/rego/*.rego")
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && !strings.HasSuffix(f, "_test.rego") {
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// TestIntegrationAuditPolicyReloadFailed: an edit of the policy that does
// not compile is recorded as a policy-reload event with the error, the
// revision that stays in force and the SHA-256 of the file tried; the
// next edit that compiles is recorded as a reload without error.
func TestIntegrationAuditPolicyReloadFailed(t *testing.T) {
	dir := policyCopy(t)
	e := newEnv(t, func(c *gateway.Config) {
		c.Policy = gateway.PolicyConfig{Dir: dir, WatchInterval: 100 * time.Millisecond}
	})
	reloads := func() []audit.PolicyReload {
		_, evs := auditEvents(t, e)
		var out []audit.PolicyReload
		for _, ev := range evs {
			if ev.Policy != nil {
				out = append(out, *ev.Policy)
			}
		}
		return out
	}
	var got []audit.PolicyReload
	waitFor(t, 10*time.Second, func() bool { got = reloads(); return len(got) == 1 }, "the policy in force at start")
	start := got[0]

	good, err := os.ReadFile(filepath.Join(dir, "contracts.rego"))
	if err != nil {
		t.Fatal(err)
	}
	bad := append(bytes.Clone(good), "\ndecision := {\n"...)
	if err := os.WriteFile(filepath.Join(dir, "contracts.rego"), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { got = reloads(); return len(got) == 2 }, "the failed reload's event")
	badSum := sha256.Sum256(bad)
	if f := got[1]; f.Error == "" || !strings.Contains(f.Error, "contracts.rego:") || f.Revision != start.Revision ||
		f.Files["contracts.rego"] != hex.EncodeToString(badSum[:]) {
		t.Fatalf("failed reload recorded as %+v; want the error naming contracts.rego, revision %s kept, the broken file's SHA-256", f, start.Revision)
	}

	fixed := append(bytes.Clone(good), "\n# fixed\n"...)
	if err := os.WriteFile(filepath.Join(dir, "contracts.rego"), fixed, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { got = reloads(); return len(got) == 3 }, "the fixed reload's event")
	if f := got[2]; f.Error != "" || f.Revision == start.Revision {
		t.Fatalf("fixed reload recorded as %+v, want a new revision without error", f)
	}
}

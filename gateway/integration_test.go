package gateway_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/sseclient"
)

func TestIntegrationCatalog(t *testing.T) {
	e := newEnv(t)
	resp, body := e.get("/v1/products")
	if resp.StatusCode != 200 {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Products []struct {
			ID    string
			Links map[string]string
		}
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, p := range list.Products {
		ids[p.ID] = true
	}
	for _, want := range []string{"network-quality", "fraud-alerts", "cdr", "device-telemetry"} {
		if !ids[want] {
			t.Errorf("product %s not listed in %s", want, body)
		}
	}
	resp, body = e.get("/v1/products/cdr")
	if resp.StatusCode != 200 {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}
	var p struct {
		ID     string
		Fields []struct {
			Name, Classification string
			Type                 json.RawMessage
		}
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	class := map[string]string{}
	for _, f := range p.Fields {
		class[f.Name] = f.Classification
	}
	if class["msisdn"] != "direct-identifier" || class["imsi"] != "direct-identifier" || len(p.Fields) != 15 {
		t.Fatalf("cdr fields/classification wrong: %s", body)
	}
	resp, body = e.get("/v1/products/cdr/schema")
	if resp.StatusCode != 200 {
		t.Fatalf("schema: %d %s", resp.StatusCode, body)
	}
	if _, err := avro.Parse(string(body)); err != nil {
		t.Fatalf("schema does not parse as Avro: %v", err)
	}
	e.problem("/v1/products/nope", 404, "urn:sluice:problem:unknown-product")
	e.problem("/v1/products/nope/stream", 404, "urn:sluice:problem:unknown-product")
	e.problem("/v1/nothing-here", 404, "urn:sluice:problem:not-found")
	e.problem("/v1/products/cdr/schema?version=99", 400, "urn:sluice:problem:invalid-query")
}

func TestIntegrationBadInput(t *testing.T) {
	e := newEnv(t)
	e.produce("cdr", 30)
	for _, tc := range []struct {
		note, path string
		status     int
		typ        string
	}{
		{"garbage cursor", "/v1/products/cdr/records?cursor=garbage", 400, "urn:sluice:problem:invalid-cursor"},
		{"bad base64 cursor", "/v1/products/cdr/records?cursor=c1%21%21", 400, "urn:sluice:problem:invalid-cursor"},
		{"bad from", "/v1/products/cdr/records?from=yesterday", 400, "urn:sluice:problem:invalid-from"},
		{"limit zero", "/v1/products/cdr/records?limit=0", 400, "urn:sluice:problem:invalid-limit"},
		{"limit huge", "/v1/products/cdr/records?limit=100000", 400, "urn:sluice:problem:invalid-limit"},
		{"limit text", "/v1/products/cdr/records?limit=ten", 400, "urn:sluice:problem:invalid-limit"},
		{"unknown param", "/v1/products/cdr/records?colour=red", 400, "urn:sluice:problem:invalid-query"},
		{"cursor and from", "/v1/products/cdr/records?from=earliest&cursor=c1AAAA", 400, "urn:sluice:problem:invalid-query"},
		{"stream bad from", "/v1/products/cdr/stream?from=1999", 400, "urn:sluice:problem:invalid-from"},
		{"stream bad cursor", "/v1/products/cdr/stream?cursor=zzz", 400, "urn:sluice:problem:invalid-cursor"},
	} {
		t.Run(tc.note, func(t *testing.T) { e.problem(tc.path, tc.status, tc.typ) })
	}
	// A cursor of another product.
	_, body := e.get("/v1/products/fraud-alerts/records?from=latest")
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	json.Unmarshal(body, &page)
	e.problem("/v1/products/cdr/records?cursor="+page.NextCursor, 400, "urn:sluice:problem:invalid-cursor")
	e.problem("/v1/products/cdr/stream", 400, "urn:sluice:problem:invalid-cursor", "Last-Event-ID", page.NextCursor)

	// A cursor older than retention: delete the topic's first records.
	_, body = e.get("/v1/products/cdr/records?from=earliest&limit=1")
	json.Unmarshal(body, &page)
	old := page.NextCursor
	ctx := context.Background()
	adm := kadm.NewClient(e.prod)
	ends, err := adm.ListEndOffsets(ctx, e.topic("cdr"))
	if err != nil {
		t.Fatal(err)
	}
	del := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) { del.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset}) })
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	p := e.problem("/v1/products/cdr/records?cursor="+url.QueryEscape(old), 410, "urn:sluice:problem:cursor-expired")
	earliest, _ := p["earliest_cursor"].(string)
	if earliest == "" {
		t.Fatalf("410 without earliest_cursor: %v", p)
	}
	resp, body := e.get("/v1/products/cdr/records?cursor=" + url.QueryEscape(earliest))
	if resp.StatusCode != 200 {
		t.Fatalf("earliest_cursor does not work: %d %s", resp.StatusCode, body)
	}
	e.problem("/v1/products/cdr/stream", 410, "urn:sluice:problem:cursor-expired", "Last-Event-ID", old)
	// A cursor ahead of the log.
	start, err := cursor.Decode(earliest, cursor.Tag("cdr"))
	if err != nil {
		t.Fatal(err)
	}
	start[0] = 1 << 40
	ahead := gatewayCursor(t, e, "cdr", start)
	e.problem("/v1/products/cdr/records?cursor="+ahead, 400, "urn:sluice:problem:invalid-cursor")
}

func gatewayCursor(t *testing.T, e *env, product string, positions []int64) string {
	return cursor.Encode(cursor.Tag(product), positions)
}

func TestIntegrationRESTPaging(t *testing.T) {
	e := newEnv(t)
	e.produce("cdr", 200)
	stop := make(chan struct{})
	var mu sync.Mutex // held while producing; the restart takes it
	var wg sync.WaitGroup
	wg.Go(func() { // keep producing while the client pages
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			mu.Lock()
			e.produce("cdr", 10)
			mu.Unlock()
		}
	})
	var got []pos
	next := ""
	rnd := rand.New(rand.NewPCG(1, 2))
	page := func() int {
		limit := 1 + rnd.IntN(60)
		path := fmt.Sprintf("/v1/products/cdr/records?limit=%d", limit)
		if next != "" {
			path += "&cursor=" + url.QueryEscape(next)
		} else {
			path += "&from=earliest"
		}
		ndjson := rnd.IntN(2) == 0
		var resp *http.Response
		var body []byte
		if ndjson {
			resp, body = e.get(path, "Accept", "application/x-ndjson")
		} else {
			resp, body = e.get(path)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("page: %d %s", resp.StatusCode, body)
		}
		var recs []json.RawMessage
		if ndjson {
			if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
				t.Fatalf("ndjson content type %q", ct)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
				if l != "" {
					recs = append(recs, json.RawMessage(l))
				}
			}
			next = resp.Header.Get("Sluice-Next-Cursor")
		} else {
			var p struct {
				Records    []json.RawMessage
				NextCursor string `json:"next_cursor"`
			}
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("page %s: %v", body, err)
			}
			recs, next = p.Records, p.NextCursor
		}
		if next == "" {
			t.Fatal("page without a next cursor")
		}
		if len(recs) > limit {
			t.Fatalf("page of %d records for limit %d", len(recs), limit)
		}
		for _, r := range recs {
			p, _ := recordPos(t, r)
			got = append(got, p)
		}
		return len(recs)
	}
	for range 40 {
		page()
	}
	mu.Lock()
	e.restart() // a cursor survives a restart with the same data directory
	mu.Unlock()
	for range 20 {
		page()
	}
	close(stop)
	wg.Wait()
	for page() > 0 {
	}
	checkSame(t, got, e.topicPositions("cdr"))
}

func TestIntegrationSSEResume(t *testing.T) {
	e := newEnv(t)
	e.produce("cdr", 100)
	var mu sync.Mutex
	producing := true
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			mu.Lock()
			if producing {
				e.produce("cdr", 5)
			}
			mu.Unlock()
		}
	})
	rnd := rand.New(rand.NewPCG(3, 4))
	var got []pos
	last := ""
	read := func(n int, idleStop time.Duration) int {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		path := "/v1/products/cdr/stream"
		if last == "" {
			path += "?from=earliest"
		}
		resp, r := e.stream(ctx, path, last)
		defer resp.Body.Close()
		count := 0
		for count < n {
			var timer *time.Timer
			if idleStop > 0 {
				timer = time.AfterFunc(idleStop, cancel)
			}
			ev, err := r.Next()
			if timer != nil {
				timer.Stop()
			}
			if err != nil {
				if idleStop > 0 {
					break
				}
				t.Fatalf("stream: %v", err)
			}
			switch ev.Type {
			case "record":
				p, _ := recordPos(t, ev.Data)
				got = append(got, p)
				count++
			case "cursor":
			default:
				t.Fatalf("unexpected event %q: %s", ev.Type, ev.Data)
			}
			if ev.ID == "" {
				t.Fatal("event without id")
			}
			last = ev.ID
		}
		if r.LastEventID() != "" {
			last = r.LastEventID()
		}
		return count
	}
	for i := range 20 {
		read(1+rnd.IntN(80), 0)
		if i == 10 {
			mu.Lock()
			producing = false
			e.restart()
			producing = true
			mu.Unlock()
		}
	}
	close(stop)
	wg.Wait()
	// Drain: read until nothing new arrives for a while.
	for read(1<<30, 2*time.Second) > 0 {
	}
	checkSame(t, got, e.topicPositions("cdr"))
}

func TestIntegrationSchemaEvolution(t *testing.T) {
	e := newEnv(t)
	p, _ := e.cat.Get("cdr")
	if len(p.Versions) < 2 {
		t.Fatalf("cdr has %d schema versions, want at least 2", len(p.Versions))
	}
	v1, v2 := p.Versions[0], p.Versions[len(p.Versions)-1]
	b1, err := avro.Marshal(v1.Schema, sampleRecord(t, v1.Schema, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	framed := append([]byte{0}, binary.BigEndian.AppendUint32(nil, uint32(v1.ID))...)
	framed = append(framed, b1...)
	b2, err := avro.Marshal(v2.Schema, sampleRecord(t, v2.Schema, "v2"))
	if err != nil {
		t.Fatal(err)
	}
	e.produceRaw(
		&kgo.Record{Topic: e.topic("cdr"), Key: []byte("k"), Value: framed},
		&kgo.Record{Topic: e.topic("cdr"), Key: []byte("k"), Value: b2},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, r := e.stream(ctx, "/v1/products/cdr/stream?from=earliest", "")
	defer resp.Body.Close()
	var recs []map[string]any
	for len(recs) < 2 {
		ev, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == "record" {
			_, m := recordPos(t, ev.Data)
			recs = append(recs, m)
		}
	}
	if recs[0]["record_id"] != "record_id-v1" || recs[1]["record_id"] != "record_id-v2" {
		t.Fatalf("records out of order or wrong: %v", recs)
	}
	// Fields v2 added take their defaults in the v1 record.
	v1Names := map[string]bool{}
	for _, f := range v1.Schema.(*avro.RecordSchema).Fields() {
		v1Names[f.Name()] = true
	}
	added := 0
	for _, f := range v2.Schema.(*avro.RecordSchema).Fields() {
		if _, ok := recs[0][f.Name()]; !ok {
			t.Fatalf("v1 record lacks field %s of v2: %v", f.Name(), recs[0])
		}
		if !v1Names[f.Name()] {
			added++
			want, _ := json.Marshal(f.Default())
			if f.Default() == nil {
				want = []byte("null")
			}
			if got, _ := json.Marshal(recs[0][f.Name()]); string(got) != string(want) {
				t.Errorf("v1 record's %s = %s, want the default %s", f.Name(), got, want)
			}
		}
	}
	if added == 0 {
		t.Fatal("v2 adds no field to v1: the test proves nothing")
	}
}

// sampleRecord builds a value for every field of a flat record schema.
func sampleRecord(t *testing.T, s avro.Schema, tag string) map[string]any {
	t.Helper()
	m := map[string]any{}
	for _, f := range s.(*avro.RecordSchema).Fields() {
		m[f.Name()] = sampleValue(t, f.Type(), f.Name()+"-"+tag)
	}
	return m
}

func sampleValue(t *testing.T, s avro.Schema, str string) any {
	switch s := s.(type) {
	case *avro.UnionSchema:
		for _, b := range s.Types() {
			if b.Type() != avro.Null {
				return sampleValue(t, b, str)
			}
		}
		return nil
	case *avro.EnumSchema:
		return s.Symbols()[0]
	case *avro.ArraySchema:
		return []any{sampleValue(t, s.Items(), str)}
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.String:
			return str
		case avro.Int:
			if s.Logical() != nil {
				return time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
			}
			return 7
		case avro.Long:
			if s.Logical() != nil {
				return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			}
			return int64(7)
		case avro.Float:
			return float32(1.5)
		case avro.Double:
			return 1.5
		case avro.Boolean:
			return true
		case avro.Bytes:
			return []byte(str)
		}
	}
	t.Fatalf("sampleValue: unsupported schema %s", s)
	return nil
}

func TestIntegrationDecodeErrorSkipped(t *testing.T) {
	e := newEnv(t)
	good := e.produce("cdr", 1)
	e.produceRaw(&kgo.Record{Topic: e.topic("cdr"), Key: good[0].Key, Value: []byte{0xff, 0xfe, 0x01}})
	e.produceRaw(&kgo.Record{Topic: e.topic("cdr"), Key: good[0].Key, Value: []byte{0, 0, 0, 0x7f, 0x7f, 1}}) // unknown schema id
	e.produceRaw(&kgo.Record{Topic: e.topic("cdr"), Key: good[0].Key, Value: nil})
	e.produce("cdr", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, r := e.stream(ctx, "/v1/products/cdr/stream?from=earliest", "")
	defer resp.Body.Close()
	n := 0
	for n < 2 {
		ev, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == "record" {
			n++
		}
	}
	_, body := e.get("/v1/products/cdr/records?from=earliest")
	var page struct{ Records []json.RawMessage }
	json.Unmarshal(body, &page)
	if len(page.Records) != 2 {
		t.Fatalf("REST page has %d records, want the 2 good ones: %s", len(page.Records), body)
	}
	_, metrics := e.get("/metrics")
	if !strings.Contains(string(metrics), `sluice_decode_errors_total{product="cdr",reason="malformed"}`) ||
		!strings.Contains(string(metrics), `sluice_decode_errors_total{product="cdr",reason="unknown_schema"}`) {
		t.Fatalf("decode errors not counted:\n%s", grep(string(metrics), "decode_errors"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metric returns the value of one sample line of /metrics.
func metric(t testing.TB, e *env, series string) float64 {
	t.Helper()
	_, body := e.get("/metrics")
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, series+" ") {
			var v float64
			fmt.Sscan(strings.TrimPrefix(l, series+" "), &v)
			return v
		}
	}
	return -1
}

func TestIntegrationFanout1000(t *testing.T) {
	const subs = 1000
	const records = 50
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: subs, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var ready, done sync.WaitGroup
	tok := e.token("internal-noc")
	errs := make(chan error, subs)
	counts := make([]int, subs)
	for i := range subs {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/products/network-quality/stream?from=latest", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				ready.Done()
				errs <- err
				return
			}
			defer resp.Body.Close()
			r := sseclient.NewReader(bufio.NewReaderSize(resp.Body, 4096))
			ready.Done()
			for counts[i] < records {
				ev, err := r.Next()
				if err != nil {
					errs <- fmt.Errorf("subscriber %d after %d records: %w", i, counts[i], err)
					return
				}
				if ev.Type == "record" {
					counts[i]++
				}
			}
		}()
	}
	ready.Wait()
	waitFor(t, 30*time.Second, func() bool {
		return metric(t, e, `sluice_active_streams{product="network-quality",protocol="sse"}`) == subs
	}, "1000 active streams")
	if v := metric(t, e, `sluice_views{product="network-quality"}`); v != 1 {
		t.Fatalf("views = %v, want 1 (one encoding shared by all subscribers)", v)
	}
	e.produce("network-quality", records)
	done.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, c := range counts {
		if c != records {
			t.Fatalf("subscriber %d got %d records, want %d", i, c, records)
		}
	}
	if v := metric(t, e, `sluice_upstream_readers{product="network-quality"}`); v != 1 {
		t.Fatalf("upstream readers = %v, want 1", v)
	}
	if v := metric(t, e, `sluice_upstream_records_total{product="network-quality"}`); v != records {
		t.Fatalf("upstream records read = %v, want %d: each record read once for all subscribers", v, records)
	}
	if v := metric(t, e, `sluice_records_delivered_total{product="network-quality",protocol="sse"}`); v != subs*records {
		t.Fatalf("delivered = %v, want %d", v, subs*records)
	}
}

func waitFor(t testing.TB, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIntegrationStalledSubscriber(t *testing.T) {
	e := newEnv(t, func(c *gateway.Config) { c.Hub.RingSize = 256 })
	// The stalled client sends its request and then reads nothing.
	stalled, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /v1/products/cdr/stream?from=latest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", e.token("internal-fraud"))
	waitFor(t, 10*time.Second, func() bool {
		return metric(t, e, `sluice_active_streams{product="cdr",protocol="sse"}`) == 1
	}, "the stalled stream to open")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, r := e.stream(ctx, "/v1/products/cdr/stream?from=latest", "")
	defer resp.Body.Close()
	// Enough data to fill the stalled connection's socket buffers many times.
	const batches, per = 40, 500
	go func() {
		for range batches {
			e.produce("cdr", per)
		}
	}()
	var got []pos
	for len(got) < batches*per {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("healthy subscriber after %d records: %v", len(got), err)
		}
		if ev.Type == "record" {
			p, _ := recordPos(t, ev.Data)
			got = append(got, p)
		}
	}
	all := e.topicPositions("cdr")
	checkSame(t, got, all)
	// The stalled subscriber now reads: it catches up from Kafka with no gap.
	br := bufio.NewReader(stalled)
	tp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	sr := sseclient.NewReader(tp.Body)
	var late []pos
	stalled.SetReadDeadline(time.Now().Add(60 * time.Second))
	for len(late) < len(all) {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("stalled subscriber after %d of %d records: %v", len(late), len(all), err)
		}
		if ev.Type == "record" {
			p, _ := recordPos(t, ev.Data)
			late = append(late, p)
		}
	}
	checkSame(t, late, all)
	if v := metric(t, e, `sluice_direct_reads_total{product="cdr",reason="catch_up"}`); v < 1 {
		t.Fatalf("the stalled subscriber never read Kafka directly (catch_up reads = %v): the test did not exercise catch-up", v)
	}
}

func TestIntegrationShutdownEndsStreams(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, r := e.stream(ctx, "/v1/products/cdr/stream", "")
	defer resp.Body.Close()
	waitFor(t, 10*time.Second, func() bool {
		return metric(t, e, `sluice_active_streams{product="cdr",protocol="sse"}`) == 1
	}, "the stream to open")
	go e.stop()
	for {
		ev, err := r.Next()
		if err != nil {
			t.Fatalf("stream ended without a shutdown event: %v", err)
		}
		if ev.Type == "shutdown" {
			if !strings.Contains(string(ev.Data), `"reconnect":true`) {
				t.Fatalf("shutdown event %s does not ask to reconnect", ev.Data)
			}
			break
		}
	}
	if _, err := r.Next(); err != io.EOF && err != io.ErrUnexpectedEOF {
		t.Fatalf("after shutdown: %v, want end of stream", err)
	}
}

// TestIntegrationExternalSchemaRegistry: a record framed with a schema id
// the catalog does not know is resolved through the configured Schema
// Registry (a real HTTP registry: franz-go's srfake), then read as the
// product's current schema.
func TestIntegrationExternalSchemaRegistry(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	e := newEnv(t, func(c *gateway.Config) { c.SchemaRegistryURL = reg.URL() })
	// A producer's newer writer schema: the current cdr schema plus a field
	// sluice's catalog does not know (it is skipped on reading)...
	p, _ := e.cat.Get("cdr")
	var js map[string]any
	if err := json.Unmarshal([]byte(p.Current().Schema.String()), &js); err != nil {
		t.Fatal(err)
	}
	js["fields"] = append(js["fields"].([]any), map[string]any{"name": "tariff_code", "type": "string"})
	writer, _ := json.Marshal(js)
	reg.SeedSchema("telco.cdr-value", 7, 9001, sr.Schema{Schema: string(writer)})
	// ... and one that lacks fields the reader needs: counted and skipped.
	reg.SeedSchema("telco.cdr-value", 8, 9002, sr.Schema{Schema: `{"type":"record","name":"Cdr","namespace":"sluice.telco","fields":[{"name":"record_id","type":"string"}]}`})
	ws, err := avro.Parse(string(writer))
	if err != nil {
		t.Fatal(err)
	}
	val := sampleRecord(t, p.Current().Schema, "x")
	val["record_id"], val["tariff_code"] = "from-registry", "T1"
	body, err := avro.Marshal(ws, val)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(id uint32, b []byte) []byte {
		return append(append([]byte{0}, binary.BigEndian.AppendUint32(nil, id)...), b...)
	}
	e.produceRaw(&kgo.Record{Topic: e.topic("cdr"), Value: frame(9002, []byte{2, 'x'})})
	e.produceRaw(&kgo.Record{Topic: e.topic("cdr"), Value: frame(9001, body)})
	var page struct{ Records []map[string]any }
	waitFor(t, 10*time.Second, func() bool {
		_, b := e.get("/v1/products/cdr/records?from=earliest")
		json.Unmarshal(b, &page)
		return len(page.Records) == 1
	}, "the registry-framed record")
	r := page.Records[0]
	if r["record_id"] != "from-registry" || r["msisdn"] != "msisdn-x" {
		t.Fatalf("record resolved wrongly: %v", r)
	}
	if v := metric(t, e, `sluice_decode_errors_total{product="cdr",reason="incompatible_schema"}`); v < 1 {
		t.Fatalf("the incompatible record was not counted (%v)", v)
	}
	if _, ok := r["tariff_code"]; ok {
		t.Fatalf("a writer-only field leaked into the output: %v", r)
	}
}

// TestIntegrationFromTimestamp: from=<RFC 3339> starts at the first record
// at or after that time, on REST and SSE.
func TestIntegrationFromTimestamp(t *testing.T) {
	e := newEnv(t)
	// Timestamps in the past on both sides of the cut: brokers refuse
	// records too far in the future (Kafka: message.timestamp.after.max.ms).
	now := time.Now()
	cut := now.Add(-5 * time.Minute)
	var recs []*kgo.Record
	for i := range 35 {
		r, err := e.gen.Next("cdr")
		if err != nil {
			t.Fatal(err)
		}
		ts := now.Add(-10 * time.Minute).Add(time.Duration(i) * time.Second) // 20 before the cut
		if i >= 20 {
			ts = cut.Add(time.Duration(i-20) * time.Second) // 15 at or after it
		}
		recs = append(recs, &kgo.Record{Topic: e.topic("cdr"), Key: r.Key, Value: r.Value, Timestamp: ts})
	}
	e.produceRaw(recs...)
	old := recs[:20]
	from := url.QueryEscape(cut.UTC().Format(time.RFC3339Nano))
	_, body := e.get("/v1/products/cdr/records?limit=1000&from=" + from)
	var page struct{ Records []map[string]any }
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 15 {
		t.Fatalf("from=%s returned %d records, want the 15 at or after it (and none of the %d before)", cut, len(page.Records), len(old))
	}
	for _, r := range page.Records {
		ts, _ := time.Parse(time.RFC3339Nano, r["_timestamp"].(string))
		if ts.Before(cut.Truncate(time.Millisecond)) {
			t.Fatalf("record at %s is before from=%s", ts, cut)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, r := e.stream(ctx, "/v1/products/cdr/stream?from="+from, "")
	defer resp.Body.Close()
	ev, err := r.Next()
	for err == nil && ev.Type != "record" {
		ev, err = r.Next()
	}
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(ev.Data, &m)
	if ts, _ := time.Parse(time.RFC3339Nano, m["_timestamp"].(string)); ts.Before(cut.Truncate(time.Millisecond)) {
		t.Fatalf("stream from=%s began with a record at %s", cut, ts)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/gateway/sseclient"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
)

func TestHistBucketsContiguous(t *testing.T) {
	// Every value maps to a bucket whose bounds contain it, and buckets
	// tile the value range without gaps or overlaps.
	prevHi := int64(-1)
	for i := 0; i < histBuckets; i++ {
		lo, hi := histBounds(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d = [%d, %d], previous ended at %d", i, lo, hi, prevHi)
		}
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but its bounds map to %d and %d", i, lo, hi, histIndex(lo), histIndex(hi))
		}
		if lo >= histLinear && float64(hi-lo+1)/float64(lo) > 1.0/64+1e-9 {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/64 of its values", i, lo, hi)
		}
		prevHi = hi
	}
	if prevHi != 1<<histMaxBits-1 {
		t.Fatalf("buckets end at %d, want %d", prevHi, int64(1<<histMaxBits-1))
	}
	if got := histIndex(1 << 50); got != histBuckets-1 {
		t.Fatalf("huge value maps to bucket %d, want the last (%d)", got, histBuckets-1)
	}
	if got := histIndex(-5); got != 0 {
		t.Fatalf("negative value maps to bucket %d", got)
	}
}

func TestHistQuantilesExactBelow128(t *testing.T) {
	var h latencyHist
	for v := int64(1); v <= 100; v++ {
		h.Record(v)
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {0.999, 100}, {1, 100}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 || h.Mean() != 50.5 {
		t.Fatalf("count %d max %d mean %v", h.Count(), h.Max(), h.Mean())
	}
}

func TestHistQuantilesAgainstSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h latencyHist
	var vals []int64
	for range 200_000 {
		// Log-normal-ish latencies from 50 µs to seconds.
		v := int64(50 * (1 + r.ExpFloat64()*r.ExpFloat64()*200))
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact {
			t.Errorf("Quantile(%v) = %d understates the exact %d", q, got, exact)
		}
		if float64(got-exact) > float64(exact)/64+1 {
			t.Errorf("Quantile(%v) = %d, exact %d: more than 1/64 over", q, got, exact)
		}
	}
}

func TestHistMerge(t *testing.T) {
	var a, b, all latencyHist
	for v := range int64(1000) {
		all.Record(v * 37)
		if v%3 == 0 {
			a.Record(v * 37)
		} else {
			b.Record(v * 37)
		}
	}
	var m latencyHist
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&latencyHist{})
	if m != all {
		t.Fatal("merge of parts differs from recording everything into one")
	}
	var empty latencyHist
	if empty.Quantile(0.99) != 0 || empty.Mean() != 0 {
		t.Fatal("empty histogram must report 0")
	}
	var one latencyHist
	one.Record(123_456)
	if got := one.Quantile(0.5); got != 123_456 {
		t.Fatalf("single value: p50 = %d, want it exactly (capped by max)", got)
	}
}

func TestHistRecordAllocs(t *testing.T) {
	var h latencyHist
	if n := testing.AllocsPerRun(1000, func() { h.Record(12345) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func TestExtractTimestamp(t *testing.T) {
	want := time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC).UnixMilli()
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"a":1,"_partition":2,"_offset":3,"_timestamp":"2026-11-25T10:00:00.123Z"}`, true},
		// A field value that looks like the key comes before the real one.
		{`{"note":"\"_timestamp\":\"1999-01-01T00:00:00.000Z","_partition":0,"_offset":0,"_timestamp":"2026-11-25T10:00:00.123Z"}`, true},
		// Other RFC 3339 forms go through time.Parse.
		{`{"_timestamp":"2026-11-25T11:00:00.123+01:00"}`, true},
		{`{"_timestamp":"2026-11-25T10:00:00.123456Z"}`, true},
		{`{"_timestamp":"2026-13-25T10:00:00.123Z"}`, false},
		{`{"_timestamp":"yesterday"}`, false},
		{`{"_timestamp":"2026-11-25T10:00:00.123Z`, false},
		{`{"a":1}`, false},
		{``, false},
	} {
		got, ok := extractTimestamp([]byte(c.in))
		if ok != c.ok || (ok && got != want) {
			t.Errorf("extractTimestamp(%s) = %d, %v; want %d, %v", c.in, got, ok, want, c.ok)
		}
	}
	epoch, ok := extractTimestamp([]byte(`{"_timestamp":"1970-01-01T00:00:00.000Z"}`))
	if !ok || epoch != 0 {
		t.Fatalf("epoch: %d %v", epoch, ok)
	}
	data := []byte(`{"x":"y","_partition":1,"_offset":2,"_timestamp":"2026-11-25T10:00:00.123Z"}`)
	if n := testing.AllocsPerRun(1000, func() { extractTimestamp(data) }); n != 0 {
		t.Fatalf("extractTimestamp allocates %v times on sluice's format", n)
	}
}

func TestExtractPosition(t *testing.T) {
	p, o, ok := extractPosition([]byte(`{"a":"b","_partition":5,"_offset":123456789,"_timestamp":"2026-11-25T10:00:00.123Z"}`))
	if !ok || p != 5 || o != 123456789 {
		t.Fatalf("got %d %d %v", p, o, ok)
	}
	for _, bad := range []string{`{}`, `{"_partition":x,"_offset":1,`, `{"_partition":1,"_offsets":1,`, `{"_partition":1,"_offset":1}`} {
		if _, _, ok := extractPosition([]byte(bad)); ok {
			t.Errorf("extractPosition(%s) ok", bad)
		}
	}
}

func TestMetricValue(t *testing.T) {
	body := []byte(`# HELP sluice_active_streams Open streaming connections.
# TYPE sluice_active_streams gauge
sluice_active_streams{product="cdr",protocol="sse"} 1000
sluice_active_streams{product="fraud-alerts",protocol="sse"} 2
sluice_active_streams_other{product="cdr",protocol="sse"} 7
process_resident_memory_bytes 1.2345e+08
go_goroutines 42
`)
	if v, ok := metricValue(body, "sluice_active_streams", `product="cdr"`, `protocol="sse"`); !ok || v != 1000 {
		t.Fatalf("active cdr = %v %v", v, ok)
	}
	if v, ok := metricValue(body, "sluice_active_streams"); !ok || v != 1002 {
		t.Fatalf("active all = %v %v", v, ok)
	}
	if v, ok := metricValue(body, "process_resident_memory_bytes"); !ok || v != 1.2345e8 {
		t.Fatalf("rss = %v %v", v, ok)
	}
	if _, ok := metricValue(body, "sluice_active_streams", `product="none"`); ok {
		t.Fatal("matched a label value that is not there")
	}
}

// The bench's encoder must produce what sluice's identity view serves: the
// fields of the current schema in order, then the three meta fields, as
// valid JSON. (--verify checks byte equality against a live gateway.)
func TestIdentityEncoder(t *testing.T) {
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Get("cdr")
	codec, err := newCodec(p)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate.New(cat, generate.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	enc := view.NewIdentity("bench", codec.Layout())
	rec := codec.Layout().NewRecord()
	var want []string
	for _, f := range codec.Layout().Fields {
		want = append(want, f.Name)
	}
	want = append(want, "_partition", "_offset", "_timestamp")
	buf := make([]byte, 0, 4096)
	for i := range 200 {
		r, err := gen.Next("cdr")
		if err != nil {
			t.Fatal(err)
		}
		if err := codec.Decode(context.Background(), r.Value, rec); err != nil {
			t.Fatal(err)
		}
		buf = appendIdentity(enc, buf[:0], rec, 3, int64(i), 1764064800123)
		dec := json.NewDecoder(bytes.NewReader(buf))
		if _, err := dec.Token(); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("record %d: %v: %s", i, err, buf)
			}
			keys = append(keys, k.(string))
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("record %d: %v: %s", i, err, buf)
			}
		}
		if !slices.Equal(keys, want) {
			t.Fatalf("keys %v, want %v", keys, want)
		}
		if !strings.HasSuffix(string(buf), `"_partition":3,"_offset":`+strconv.Itoa(i)+`,"_timestamp":"2025-11-25T10:00:00.123Z"}`) {
			t.Fatalf("meta: %s", buf)
		}
		if ts, ok := extractTimestamp(buf); !ok || ts != 1764064800123 {
			t.Fatalf("timestamp round trip: %d %v", ts, ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { buf = appendIdentity(enc, buf[:0], rec, 1, 2, 3) }); n != 0 {
		t.Fatalf("encoder allocates %v times", n)
	}
}

func TestParseBenchFlags(t *testing.T) {
	var sink bytes.Buffer
	o, err := parseBenchFlags(nil, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if o.records != 200_000 || o.rate != 2000 || o.duration != 10*time.Second || !slices.Equal(o.subscribers, []int{1, 100, 1000}) ||
		!o.phases["baseline"] || !o.phases["replay"] || !o.phases["fanout"] || o.target != "" {
		t.Fatalf("defaults: %+v", o)
	}
	for _, bad := range [][]string{
		{"--target", "http://x:1"},
		{"--brokers", "x:1"},
		{"--target", "x:1", "--brokers", "x:1"},
		{"--subscribers", "1,0"},
		{"--phases", "replay,nope"},
		{"--rate", "0"},
		{"--wire-sasl", "scram"},
		{"--wire-format", "protobuf"},
		{"--fetch-partition-max-bytes", "100"},
		{"--target", "http://x:1", "--brokers", "x:1", "--phases", "wire"}, // no --front-door
		{"extra"},
	} {
		if _, err := parseBenchFlags(bad, &sink); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	o, err = parseBenchFlags([]string{"--target", "http://127.0.0.1:8080/", "--brokers", "127.0.0.1:9092", "--subscribers", "5", "--phases", "fanout"}, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if o.target != "http://127.0.0.1:8080" || len(o.brokers) != 1 || !slices.Equal(o.subscribers, []int{5}) || o.phases["replay"] {
		t.Fatalf("%+v", o)
	}
	o, err = parseBenchFlags([]string{"--phases", "baseline,wire", "--wire-partner", "mvno-b", "--fetch-partition-max-bytes", "4194304"}, &sink)
	if err != nil {
		t.Fatal(err)
	}
	if !o.phases["wire"] || o.phases["replay"] || o.wirePartner != "mvno-b" || o.wireSASL != "oauthbearer" || !o.frontDoorTLS ||
		o.fetchPartitionMaxBytes != 4<<20 || o.fetchMaxBytes != 50<<20 {
		t.Fatalf("wire flags: %+v", o)
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"--rate", "100", "--subscribers", "1,10", "--target", "http://a b"})
	if got != `sluice bench --rate 100 --subscribers 1,10 --target "http://a b"` {
		t.Fatal(got)
	}
}

// sluiceStream returns n record events as sluice writes them, with a
// leading comment and retry hint, heartbeats and a cursor event mixed in.
func sluiceStream(n int) []byte {
	var b bytes.Buffer
	b.WriteString(": sluice stream of cdr\nretry: 2000\n\n")
	for i := range n {
		fmt.Fprintf(&b, "id: c1AAAAAAAAAAAAAAAAAAAAAA%d\nevent: record\ndata: {\"record_id\":\"r-%d\",\"msisdn\":\"4917000%05d\",\"_partition\":%d,\"_offset\":%d,\"_timestamp\":\"2026-11-25T10:00:00.123Z\"}\n\n", i, i, i, i%6, i)
		if i%7 == 0 {
			b.WriteString(": heartbeat\n\n")
		}
		if i%11 == 0 {
			b.WriteString("id: c1X\nevent: cursor\ndata: {\"cursor\":\"c1X\"}\n\n")
		}
	}
	return b.Bytes()
}

func TestLeanScannerMatchesSSEClient(t *testing.T) {
	streams := map[string][]byte{
		"sluice": sluiceStream(300),
		"crlf":   bytes.ReplaceAll(sluiceStream(50), []byte("\n"), []byte("\r\n")),
		"edge":   []byte(": c\n\nevent: a\n\ndata\n\ndata: x\ndata: y\n\ndata:nospace\nevent: e\n\ndata:  two spaces\n\nid: 9\nevent: record\ndata: {}\n\n"),
		"long":   []byte("event: record\ndata: " + strings.Repeat("x", 200_000) + "\n\n"),
	}
	for name, in := range streams {
		t.Run(name, func(t *testing.T) {
			ref := sseclient.NewReader(bytes.NewReader(in))
			lean := newLeanScanner(bytes.NewReader(in))
			for i := 0; ; i++ {
				want, werr := ref.Next()
				typ, data, err := lean.next()
				if (werr == nil) != (err == nil) {
					t.Fatalf("event %d: sseclient err %v, lean err %v", i, werr, err)
				}
				if werr != nil {
					return
				}
				if string(typ) != want.Type || !bytes.Equal(data, want.Data) {
					t.Fatalf("event %d: lean (%q, %.80q), sseclient (%q, %.80q)", i, typ, data, want.Type, want.Data)
				}
			}
		})
	}
}

func TestLeanScannerAllocs(t *testing.T) {
	in := sluiceStream(2000)
	lean := newLeanScanner(bytes.NewReader(in))
	lean.next() // warm up the buffers
	if n := testing.AllocsPerRun(1000, func() {
		if _, _, err := lean.next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("lean scanner allocates %v times per event", n)
	}
}

// BenchmarkSSEParse compares the fan-out clients' per-event cost: the
// bench's lean scanner and gateway/sseclient, on sluice's event format.
func BenchmarkSSEParse(b *testing.B) {
	in := sluiceStream(10_000)
	records := int64(bytes.Count(in, []byte("event: record\n")))
	b.Run("lean", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			s := newLeanScanner(bytes.NewReader(in))
			for {
				typ, data, err := s.next()
				if err != nil {
					break
				}
				if string(typ) == "record" {
					extractTimestamp(data)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*records), "ns/record")
	})
	b.Run("sseclient", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			r := sseclient.NewReader(bytes.NewReader(in))
			for {
				ev, err := r.Next()
				if err != nil {
					break
				}
				if ev.Type == "record" {
					extractTimestamp(ev.Data)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*records), "ns/record")
	})
}

// The wire phase end to end with a few hundred records: an in-process
// gateway, the direct read from its embedded broker and the read through
// its Kafka front door (TLS, SASL) as a partner. Values are checked for
// sanity only, never for speed. The live round is left out (--wire-live
// =false): it is exercised by running the bench, not by this test.
func TestBenchWirePhase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway")
	}
	const n = 300
	for _, c := range []struct {
		note string
		args []string
		all  bool // the view keeps every row
	}{
		{"internal-noc over OAUTHBEARER: every row, identifiers pseudonymised", nil, true},
		{"mvno-b over PLAIN with an API key: its own rows only", []string{"--wire-sasl", "plain", "--wire-partner", "mvno-b", "--wire-quiet", "700ms"}, false},
		{"internal-noc with Avro values", []string{"--wire-format", "avro"}, true},
	} {
		t.Run(c.note, func(t *testing.T) {
			var out, errs bytes.Buffer
			args := append([]string{"--records", strconv.Itoa(n), "--phases", "wire", "--wire-live=false", "--repeat", "2", "--json", "--stall", "20s"}, c.args...)
			if err := bench(args, &out, &errs); err != nil {
				t.Fatalf("bench: %v\n%s", err, errs.String())
			}
			var rep benchReport
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("report: %v\n%s", err, out.String())
			}
			w := rep.Wire
			if w == nil || w.Direct == nil || w.Front == nil || len(w.DirectRuns) != 2 || len(w.FrontRuns) != 2 {
				t.Fatalf("wire report lacks a side or a run: %s", out.String())
			}
			if w.FrontDoor == "" || !w.TLS || w.FrontTopic != "cdr" {
				t.Fatalf("front door %q, TLS %v, topic %q", w.FrontDoor, w.TLS, w.FrontTopic)
			}
			for _, r := range []*wireReadResult{w.Direct, w.Front} {
				if !r.Complete || r.Records <= 0 || r.ValueBytes <= 0 || r.Seconds <= 0 || r.RecordsPerS <= 0 || r.MBPerS <= 0 ||
					r.FetchesWithRecords < 1 || r.Fetches < r.FetchesWithRecords || r.WireBytes <= 0 ||
					r.FetchP50ms <= 0 || r.FetchP99ms < r.FetchP50ms || r.OrderErrors != 0 || r.Throttled != 0 {
					t.Fatalf("%s: implausible result %+v", r.Path, *r)
				}
			}
			if w.Direct.Records != n {
				t.Fatalf("direct read %d records, want %d", w.Direct.Records, n)
			}
			if c.all && w.Front.Records != n {
				t.Fatalf("the front door delivered %d records, want all %d", w.Front.Records, n)
			}
			if !c.all && (w.Front.Records == 0 || w.Front.Records >= n) {
				t.Fatalf("the front door delivered %d of %d records, want a filtered share", w.Front.Records, n)
			}
			if w.Ratio <= 0 || len(w.Ratios) != 2 || len(w.AddedP99s) != 2 {
				t.Fatalf("ratio %v (%v), added p99 %v", w.Ratio, w.Ratios, w.AddedP99s)
			}
			// The reference of the same work in the client (JSON only)
			// keeps exactly the records the front door delivered, with the
			// same value bytes.
			switch {
			case w.Format == "avro" && w.DirectView != nil:
				t.Fatalf("a direct + view reference for Avro values: %+v", *w.DirectView)
			case w.Format != "avro":
				dv := w.DirectView
				if dv == nil || len(w.DirectViewRuns) != 2 || w.ViewRatio <= 0 || len(w.ViewRatios) != 2 {
					t.Fatalf("no direct + view reference: %s", out.String())
				}
				if !dv.Complete || dv.Records != w.Front.Records || dv.ValueBytes != w.Front.ValueBytes || dv.RecordsPerS <= 0 {
					t.Fatalf("direct + view kept %d records (%d bytes), the front door delivered %d (%d bytes)",
						dv.Records, dv.ValueBytes, w.Front.Records, w.Front.ValueBytes)
				}
			}
			// The front door serves the governed view, as JSON with the
			// position meta fields, not the upstream record; or as Avro
			// under the view's schema id.
			identity := append(slices.Clone(w.UpstreamFields), "_partition", "_offset", "_timestamp")
			switch w.Format {
			case "avro":
				if len(w.FrontFields) != 1 || !strings.HasPrefix(w.FrontFields[0], "schema id ") {
					t.Fatalf("Avro values: %v", w.FrontFields)
				}
			default:
				if !slices.Contains(w.FrontFields, "_offset") || slices.Equal(w.FrontFields, identity) {
					t.Fatalf("front door fields %v, upstream %v: want the masked view", w.FrontFields, w.UpstreamFields)
				}
			}
			var md bytes.Buffer
			writeMarkdown(&md, &rep)
			for _, want := range []string{"### Kafka front door (wire)", "| direct | ", "| front door | ", "Front door / direct records/s"} {
				if !strings.Contains(md.String(), want) {
					t.Fatalf("markdown lacks %q:\n%s", want, md.String())
				}
			}
		})
	}
}

package view_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/masking"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/schemas"
)

func mustSpec(t testing.TB, m map[string]any, key []byte) *masking.Transform {
	t.Helper()
	s, err := masking.ParseSpec(m)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := masking.Compile(s, key)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// mvnoBPlan is the mvno-b analytics contract written by hand: its rows only,
// MSISDN pseudonymised, IMSI dropped, IMEI cut to the TAC, time to the
// minute, and some fields not listed (so dropped).
func mvnoBPlan(t testing.TB, l *schemas.Layout, optedOut map[string]bool) view.Plan {
	key, err := masking.DeriveKey([]byte(strings.Repeat("s", 32)), "mvno-b", "")
	if err != nil {
		t.Fatal(err)
	}
	mvno, _ := l.Field("mvno_id")
	idx := mvno.Index
	return view.Plan{
		Key:     "mvno-b/cdr/network-analytics/r1",
		Row:     func(r *schemas.Record) bool { return string(r.Values[idx].Bytes) == "mvno-b" },
		Consent: func(subject []byte) bool { return optedOut[string(subject)] },
		Subject: "msisdn",
		Fields: []view.FieldPlan{
			{Name: "record_id"},
			{Name: "msisdn", Transform: mustSpec(t, map[string]any{"op": "pseudonymise"}, key)},
			{Name: "imsi", Transform: mustSpec(t, map[string]any{"op": "drop"}, key)},
			{Name: "imei", Transform: mustSpec(t, map[string]any{"op": "keep-prefix", "n": 8}, key)},
			{Name: "mvno_id"},
			{Name: "service"},
			{Name: "start_time", Transform: mustSpec(t, map[string]any{"op": "generalise-time", "unit": "minute"}, key)},
			{Name: "duration_s"},
			{Name: "bytes_up"},
			{Name: "bytes_down"},
		},
	}
}

func TestGovernedMvnoB(t *testing.T) {
	codec, _, recs := cdrFixture(t, "mixed")
	l := codec.Layout()
	optedOut := map[string]bool{}
	g, err := view.NewGoverned(l, mvnoBPlan(t, l, optedOut))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := avro.Parse(string(g.Schema())); err != nil {
		t.Fatalf("view schema %s does not parse: %v", g.Schema(), err)
	}
	rec := l.NewRecord()
	kept, seen, withheld := 0, map[string]bool{}, ""
	defer func() {
		if withheld == "" && !t.Failed() {
			t.Error("no subscriber opted out: consent not exercised")
		}
	}()
	for i, b := range recs {
		if err := codec.Decode(context.Background(), b, rec); err != nil {
			t.Fatal(err)
		}
		clearMSISDN := string(rec.Values[mustField(t, l, "msisdn")].Bytes)
		clearIMEI := string(rec.Values[mustField(t, l, "imei")].Bytes)
		out, ok := g.Append(nil, rec, view.Meta{Offset: int64(i)})
		mine := string(rec.Values[mustField(t, l, "mvno_id")].Bytes) == "mvno-b" && !optedOut[clearMSISDN]
		if ok != mine {
			t.Fatalf("record %d: kept=%v for mvno %s", i, ok, rec.Values[mustField(t, l, "mvno_id")].Bytes)
		}
		if !ok {
			continue
		}
		kept++
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("invalid JSON %s: %v", out, err)
		}
		for _, gone := range []string{"imsi", "cell_id", "charge", "roaming"} {
			if _, ok := m[gone]; ok {
				t.Fatalf("field %s not in the plan but present: %s", gone, out)
			}
		}
		if m["msisdn"] == clearMSISDN || strings.Contains(string(out), clearMSISDN) {
			t.Fatalf("clear MSISDN leaked: %s", out)
		}
		if m["imei"] != clearIMEI[:8] {
			t.Fatalf("imei = %v, want TAC %s", m["imei"], clearIMEI[:8])
		}
		if ts, _ := m["start_time"].(string); !strings.HasSuffix(ts, ":00.000Z") {
			t.Fatalf("start_time not truncated to the minute: %v", m["start_time"])
		}
		if !seen[clearMSISDN] && len(seen) == 3 {
			withheld = clearMSISDN
		}
		seen[clearMSISDN] = true
		if withheld == clearMSISDN {
			optedOut[clearMSISDN] = true // this subscriber opts out now
		}
	}
	if kept == 0 {
		t.Fatal("no mvno-b rows in the fixture: the test proves nothing")
	}
}

func mustField(t testing.TB, l *schemas.Layout, name string) int {
	f, ok := l.Field(name)
	if !ok {
		t.Fatalf("no field %s", name)
	}
	return f.Index
}

func TestGovernedRejectsBadPlans(t *testing.T) {
	codec, _, _ := cdrFixture(t, "plain")
	l := codec.Layout()
	key := make([]byte, 32)
	for _, tc := range []struct {
		note string
		plan view.Plan
	}{
		{"unknown field", view.Plan{Fields: []view.FieldPlan{{Name: "nope"}}}},
		{"time op on a string", view.Plan{Fields: []view.FieldPlan{{Name: "msisdn", Transform: mustSpec(t, map[string]any{"op": "generalise-time", "unit": "hour"}, key)}}}},
		{"location without pair", view.Plan{Fields: []view.FieldPlan{{Name: "charge", Transform: mustSpec(t, map[string]any{"op": "generalise-location", "meters": 1000}, key)}}}},
		{"consent subject missing", view.Plan{Consent: func([]byte) bool { return false }, Subject: "nope"}},
	} {
		if _, err := view.NewGoverned(l, tc.plan); err == nil {
			t.Errorf("%s: plan accepted", tc.note)
		}
	}
}

// TestGovernedZeroAllocs: decoding a record and encoding it by a governed
// view, as JSON and in its Avro form, allocates nothing.
func TestGovernedZeroAllocs(t *testing.T) {
	codec, _, recs := cdrFixture(t, "mixed")
	l := codec.Layout()
	g, err := view.NewGoverned(l, mvnoBPlan(t, l, map[string]bool{"x": true}))
	if err != nil {
		t.Fatal(err)
	}
	av, err := view.NewAvro(g, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		v    view.View
	}{{"governed view", g}, {"Avro view", av}} {
		rec := l.NewRecord()
		buf := make([]byte, 0, 4096)
		i := 0
		if n := testing.AllocsPerRun(2000, func() {
			codec.Decode(context.Background(), recs[i%len(recs)], rec)
			buf, _ = c.v.Append(buf[:0], rec, view.Meta{Offset: int64(i)})
			i++
		}); n != 0 {
			t.Fatalf("%s allocates %v per record, want 0", c.name, n)
		}
	}
}

// BenchmarkGovernedHandPlan: a hand-written mvno-b-like plan: decode,
// row filter, consent check, pseudonymise/cut/truncate, JSON encode.
func BenchmarkGovernedHandPlan(b *testing.B) {
	codec, _, recs := cdrFixture(b, "mixed")
	l := codec.Layout()
	// Every row is for this partner in the benchmark: worst case.
	p := mvnoBPlan(b, l, map[string]bool{"none": true})
	p.Row = nil
	g, err := view.NewGoverned(l, p)
	if err != nil {
		b.Fatal(err)
	}
	rec := l.NewRecord()
	buf := make([]byte, 0, 4096)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		codec.Decode(ctx, recs[i%len(recs)], rec)
		buf, _ = g.Append(buf[:0], rec, view.Meta{Offset: int64(i)})
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
}

var _ = generate.ConsentTopic

package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gateway/internal/consent"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/schemas"
)

// planFixture compiles the shipped policy's plans with no Kafka: catalog,
// partners, engine and codecs as the gateway builds them.
func planFixture(tb testing.TB) (*access, *products.Catalog, *products.Partners, map[string]*schemas.Codec) {
	tb.Helper()
	cat, err := products.LoadDefault()
	if err != nil {
		tb.Fatal(err)
	}
	partners, err := products.LoadDefaultPartners()
	if err != nil {
		tb.Fatal(err)
	}
	engine, err := policy.New(policy.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	codecs := map[string]*schemas.Codec{}
	layouts := map[string]*schemas.Layout{}
	for _, p := range cat.Products {
		var vs []schemas.SchemaVersion
		for _, v := range p.Versions {
			vs = append(vs, schemas.SchemaVersion{Version: v.Version, ID: v.ID, Schema: v.Schema})
		}
		c, err := schemas.NewCodec(p.ID, schemas.Framing(p.Framing), vs, nil)
		if err != nil {
			tb.Fatal(err)
		}
		codecs[p.ID], layouts[p.ID] = c, c.Layout()
	}
	a := newAccess(nil, partners, engine, consent.Loaded("consent", "network-analytics", "marketing"), []byte(strings.Repeat("k", 32)), layouts)
	return a, cat, partners, codecs
}

// BenchmarkPlanCompile: what opening a subscription costs: the OPA
// decision and partial evaluation, masking compile, view compile.
func BenchmarkPlanCompile(b *testing.B) {
	a, cat, partners, _ := planFixture(b)
	p, _ := cat.Get("cdr")
	partner, _ := partners.Get("mvno-b")
	b.ReportAllocs()
	for b.Loop() {
		if pl := a.compile(context.Background(), partner, p, "network-analytics"); pl.view == nil {
			b.Fatalf("denied: %s (%v)", pl.decision.Reason, pl.err)
		}
	}
}

// BenchmarkMvnoBView: the per-record path of the shipped mvno-b analytics
// view of cdr: decode, row filter, field treatments (record_id HMAC
// pseudonym, MSISDN FF1 pseudonym, IMEI to TAC, cell to site, time to the
// minute), consent lookup, JSON encode. Every record is measured, kept or
// not; kept/record says which share was for mvno-b.
func BenchmarkMvnoBView(b *testing.B) {
	a, cat, partners, codecs := planFixture(b)
	p, _ := cat.Get("cdr")
	partner, _ := partners.Get("mvno-b")
	d, err := a.engine.Decide(context.Background(), PolicyInput(partner, p, "network-analytics"))
	if err != nil || !d.Allow {
		b.Fatalf("decision: %v %+v", err, d)
	}
	codec := codecs["cdr"]
	gen, err := generate.New(cat, generate.Options{Seed: 3, Framing: "mixed"})
	if err != nil {
		b.Fatal(err)
	}
	var recs [][]byte
	for len(recs) < 1024 {
		r, _ := gen.Next("cdr")
		recs = append(recs, r.Value)
	}
	for _, tc := range []struct {
		name string
		row  policy.Condition
	}{
		{"shipped", d.Row}, // the real row condition: most rows are other MVNOs'
		{"all-rows-kept", policy.Condition{Always: true}}, // worst case: every row is treated and encoded
	} {
		b.Run(tc.name, func(b *testing.B) {
			dd := d
			dd.Row = tc.row
			benchView(b, compileDecision(b, a, partner, p, dd), codec, recs)
		})
	}
}

func benchView(b *testing.B, pl view.View, codec *schemas.Codec, recs [][]byte) {
	rec := codec.Layout().NewRecord()
	buf := make([]byte, 0, 4096)
	ctx := context.Background()
	kept := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := codec.Decode(ctx, recs[i%len(recs)], rec); err != nil {
			b.Fatal(err)
		}
		var ok bool
		buf, ok = pl.Append(buf[:0], rec, view.Meta{Offset: int64(i)})
		if ok {
			kept++
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
	b.ReportMetric(float64(kept)/float64(b.N), "kept/record")
}

func compileDecision(tb testing.TB, a *access, partner *products.Partner, p *products.Product, d policy.Decision) view.View {
	tb.Helper()
	pl := a.compileFrom(partner, p, "network-analytics", d)
	if pl.view == nil {
		tb.Fatalf("plan not compiled: %v", pl.err)
	}
	return pl.view
}

package view_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/gateway/internal/testkit"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/schemas"
)

// productFixture decodes n generated records of a catalog product.
func productFixture(t testing.TB, product string, n int) (*schemas.Codec, [][]byte) {
	t.Helper()
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, ok := cat.Get(product)
	if !ok {
		t.Fatalf("no product %s", product)
	}
	var vs []schemas.SchemaVersion
	for _, v := range p.Versions {
		vs = append(vs, schemas.SchemaVersion{Version: v.Version, ID: v.ID, Schema: v.Schema})
	}
	codec, err := schemas.NewCodec(p.ID, schemas.Framing(p.Framing), vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate.New(cat, generate.Options{Seed: 11, Framing: "mixed"})
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for range n {
		r, err := gen.Next(product)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r.Value)
	}
	return codec, recs
}

// checkAvroMatchesJSON decodes an Avro view value (wire format) with the
// view schema and compares every field with the JSON view's.
func checkAvroMatchesJSON(t *testing.T, schema avro.Schema, id uint32, av, js []byte) {
	t.Helper()
	if len(av) < 5 || av[0] != 0 || binary.BigEndian.Uint32(av[1:5]) != id {
		t.Fatalf("no wire format header with id %d: % x", id, av[:min(len(av), 5)])
	}
	var got map[string]any
	if err := avro.Unmarshal(schema, av[5:], &got); err != nil {
		t.Fatalf("Avro does not decode with the view schema: %v", err)
	}
	var want map[string]any
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	for _, meta := range []string{"_partition", "_offset", "_timestamp"} {
		delete(want, meta)
	}
	// Normalise through JSON so numbers compare as float64 on both sides.
	b, _ := json.Marshal(testkit.AvroAsJSON(got, schema))
	var norm map[string]any
	if err := json.Unmarshal(b, &norm); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(norm, want) {
		t.Fatalf("Avro and JSON differ:\navro %s\njson %s", b, js)
	}
}

// TestAvroMatchesJSON: for every catalog product, the full view and (for
// cdr) the masked mvno-b view encode every record in Avro that decodes,
// with the view schema, to the JSON view's values field for field.
func TestAvroMatchesJSON(t *testing.T) {
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range cat.Products {
		t.Run(p.ID, func(t *testing.T) {
			codec, recs := productFixture(t, p.ID, 500)
			l := codec.Layout()
			plans := map[string]view.Plan{}
			full := view.Plan{Key: "all"}
			for _, f := range l.Fields {
				full.Fields = append(full.Fields, view.FieldPlan{Name: f.Name})
			}
			plans["full"] = full
			if p.ID == "cdr" {
				mb := mvnoBPlan(t, l, map[string]bool{})
				mb.Row = nil
				plans["mvno-b"] = mb
			}
			for name, pl := range plans {
				g, err := view.NewGoverned(l, pl)
				if err != nil {
					t.Fatal(err)
				}
				av, err := view.NewAvro(g, 42)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if av.Key() == g.Key() {
					t.Fatal("the Avro view shares the JSON view's key")
				}
				schema, err := schemas.Parse(g.Schema())
				if err != nil {
					t.Fatal(err)
				}
				rec := l.NewRecord()
				for i, b := range recs {
					if err := codec.Decode(context.Background(), b, rec); err != nil {
						t.Fatal(err)
					}
					m := view.Meta{Partition: 1, Offset: int64(i), Timestamp: 1_700_000_000_000}
					js, ok1 := g.Append(nil, rec, m)
					a, ok2 := av.Append(nil, rec, m)
					if ok1 != ok2 {
						t.Fatalf("%s record %d: kept json=%v avro=%v", name, i, ok1, ok2)
					}
					if ok1 {
						checkAvroMatchesJSON(t, schema, 42, a, js)
					}
				}
			}
		})
	}
}

// BenchmarkViewEncode: the same decoded cdr records encoded by the
// mvno-b view as JSON and as Avro (wire format), per record; decode is
// outside the timed loop.
func BenchmarkViewEncode(b *testing.B) {
	for _, product := range []string{"cdr", "fraud-alerts"} {
		codec, raw := productFixture(b, product, 256)
		l := codec.Layout()
		var p view.Plan
		if product == "cdr" {
			p = mvnoBPlan(b, l, map[string]bool{"none": true})
			p.Row = nil
		} else {
			p = view.Plan{Key: "all"}
			for _, f := range l.Fields {
				p.Fields = append(p.Fields, view.FieldPlan{Name: f.Name})
			}
		}
		g, err := view.NewGoverned(l, p)
		if err != nil {
			b.Fatal(err)
		}
		av, err := view.NewAvro(g, 1)
		if err != nil {
			b.Fatal(err)
		}
		recs := make([]*schemas.Record, len(raw))
		for i, r := range raw {
			recs[i] = l.NewRecord()
			if err := codec.Decode(context.Background(), r, recs[i]); err != nil {
				b.Fatal(err)
			}
		}
		for _, enc := range []struct {
			name string
			v    view.View
		}{{"json", g}, {"avro", av}} {
			b.Run(product+"/"+enc.name, func(b *testing.B) {
				buf := make([]byte, 0, 4096)
				size := 0
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					buf, _ = enc.v.Append(buf[:0], recs[i%len(recs)], view.Meta{Offset: int64(i)})
					size += len(buf)
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
				b.ReportMetric(float64(size)/float64(b.N), "B/record")
			})
		}
	}
}

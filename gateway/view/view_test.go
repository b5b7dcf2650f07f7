package view_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/schemas"
)

// cdrFixture returns the cdr codec, its identity view and generated records
// (plain and Schema Registry framed, several schema versions).
func cdrFixture(t testing.TB, framing string) (*schemas.Codec, view.View, [][]byte) {
	t.Helper()
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := cat.Get("cdr")
	var vs []schemas.SchemaVersion
	for _, v := range p.Versions {
		vs = append(vs, schemas.SchemaVersion{Version: v.Version, ID: v.ID, Schema: v.Schema})
	}
	codec, err := schemas.NewCodec(p.ID, schemas.Framing(p.Framing), vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate.New(cat, generate.Options{Seed: 7, Framing: framing})
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for range 1024 {
		r, err := gen.Next("cdr")
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r.Value)
	}
	return codec, view.NewIdentity(p.ID, codec.Layout()), recs
}

func TestIdentityJSON(t *testing.T) {
	codec, v, recs := cdrFixture(t, "mixed")
	rec := codec.Layout().NewRecord()
	for i, b := range recs {
		if err := codec.Decode(context.Background(), b, rec); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out, ok := v.Append(nil, rec, view.Meta{Partition: 2, Offset: int64(i), Timestamp: 1764064800123})
		if !ok {
			t.Fatal("identity view filtered a record")
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("record %d: invalid JSON %s: %v", i, out, err)
		}
		if len(m) != len(codec.Layout().Fields)+3 {
			t.Fatalf("record %d has %d keys, want %d fields + 3 meta: %s", i, len(m), len(codec.Layout().Fields), out)
		}
		if m["_partition"] != 2.0 || m["_offset"] != float64(i) || m["_timestamp"] != "2025-11-25T10:00:00.123Z" {
			t.Fatalf("meta wrong: %s", out)
		}
		if s, _ := m["msisdn"].(string); len(s) < 10 {
			t.Fatalf("msisdn missing: %s", out)
		}
	}
}

// The per-record path (Avro bytes -> JSON bytes) must not allocate.
func TestIdentityZeroAllocs(t *testing.T) {
	codec, v, recs := cdrFixture(t, "mixed")
	rec := codec.Layout().NewRecord()
	buf := make([]byte, 0, 4096)
	ctx := context.Background()
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		if err := codec.Decode(ctx, recs[i%len(recs)], rec); err != nil {
			t.Fatal(err)
		}
		buf, _ = v.Append(buf[:0], rec, view.Meta{Partition: 1, Offset: int64(i), Timestamp: 1764064800123})
		i++
	})
	if allocs != 0 {
		t.Fatalf("decode+encode allocates %v times per record, want 0", allocs)
	}
}

// BenchmarkCDRToJSON measures the per-record path for the 15-field CDR:
// wire framing, Avro decode with schema resolution, JSON encode.
func BenchmarkCDRToJSON(b *testing.B) {
	for _, framing := range []string{"plain", "mixed"} {
		b.Run(framing, func(b *testing.B) {
			codec, v, recs := cdrFixture(b, framing)
			rec := codec.Layout().NewRecord()
			buf := make([]byte, 0, 4096)
			ctx := context.Background()
			b.ReportAllocs()
			var bytes int
			i := 0
			for b.Loop() {
				if err := codec.Decode(ctx, recs[i%len(recs)], rec); err != nil {
					b.Fatal(err)
				}
				buf, _ = v.Append(buf[:0], rec, view.Meta{Partition: 1, Offset: int64(i), Timestamp: 1764064800123})
				bytes += len(buf)
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
			b.ReportMetric(float64(bytes)/float64(b.N), "json-bytes/record")
		})
	}
}

package products_test

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
)

func TestDefaultCatalog(t *testing.T) {
	c, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Products) < 4 {
		t.Fatalf("%d products, want 4 or more", len(c.Products))
	}
	for _, id := range []string{"cdr", "device-telemetry", "fraud-alerts", "network-quality"} {
		p, ok := c.Get(id)
		if !ok {
			t.Errorf("product %q missing", id)
			continue
		}
		if p.Source != "products/catalog/"+id+".yaml" {
			t.Errorf("%s: source %q", id, p.Source)
		}
		if len(p.Fields) != len(p.Current().Schema.(*avro.RecordSchema).Fields()) {
			t.Errorf("%s: %d classified fields, schema has %d", id, len(p.Fields), len(p.Current().Schema.(*avro.RecordSchema).Fields()))
		}
		for _, f := range p.Current().Schema.(*avro.RecordSchema).Fields() {
			if f.Doc() == "" {
				t.Errorf("%s: field %q has no doc", id, f.Name())
			}
		}
	}
	cdr, _ := c.Get("cdr")
	if n := len(cdr.Current().Schema.(*avro.RecordSchema).Fields()); n != 15 {
		t.Errorf("cdr current version has %d fields, want 15", n)
	}
	if len(cdr.Versions) < 2 {
		t.Errorf("cdr has %d schema versions, want 2 or more", len(cdr.Versions))
	}
	for _, f := range []string{"imsi", "msisdn", "imei"} {
		if spec, _ := cdr.Field(f); spec.Classification != products.ClassDirectIdentifier {
			t.Errorf("cdr.%s classified %q", f, spec.Classification)
		}
	}
	for i := 1; i < len(c.Products); i++ {
		if c.Products[i-1].ID >= c.Products[i].ID {
			t.Errorf("products not sorted by id: %s before %s", c.Products[i-1].ID, c.Products[i].ID)
		}
	}
}

// TestVersionsPairwiseReadable writes generated records with every schema
// version and reads them with every newer one through Avro schema
// resolution: fields both versions have come through unchanged, fields the
// newer one added take their defaults.
func TestVersionsPairwiseReadable(t *testing.T) {
	c, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	g, err := generate.New(c, generate.Options{Seed: 11, Framing: generate.FramingRegistry})
	if err != nil {
		t.Fatal(err)
	}
	compat := avro.NewSchemaCompatibility()
	for _, p := range c.Products {
		t.Run(p.ID, func(t *testing.T) {
			written, reads := map[int]int{}, 0
			for range 200 {
				rec, err := g.Next(p.ID)
				if err != nil {
					t.Fatal(err)
				}
				_, writer, ok := c.SchemaByID(int(binary.BigEndian.Uint32(rec.Value[1:5])))
				if rec.Value[0] != 0 || !ok {
					t.Fatalf("record not framed with a known schema id: % x", rec.Value[:5])
				}
				written[writer.Version]++
				body := rec.Value[5:]
				var asWritten map[string]any
				if err := avro.Unmarshal(writer.Schema, body, &asWritten); err != nil {
					t.Fatal(err)
				}
				for _, reader := range p.Versions {
					if reader.Version <= writer.Version {
						continue
					}
					resolved, err := compat.Resolve(reader.Schema, writer.Schema)
					if err != nil {
						t.Fatalf("version %d cannot read version %d: %v", reader.Version, writer.Version, err)
					}
					reads++
					var asRead map[string]any
					if err := avro.Unmarshal(resolved, body, &asRead); err != nil {
						t.Fatalf("version %d data read as version %d: %v", writer.Version, reader.Version, err)
					}
					for _, f := range reader.Schema.(*avro.RecordSchema).Fields() {
						got, old := asRead[f.Name()], asWritten[f.Name()]
						if _, inOld := asWritten[f.Name()]; inOld {
							if !reflect.DeepEqual(got, old) {
								t.Errorf("v%d->v%d field %s: read %v, written %v", writer.Version, reader.Version, f.Name(), got, old)
							}
						} else if fmt.Sprint(got) != fmt.Sprint(f.Default()) {
							t.Errorf("v%d->v%d new field %s: read %v, want the default %v", writer.Version, reader.Version, f.Name(), got, f.Default())
						}
					}
				}
			}
			if len(p.Versions) > 1 && reads == 0 {
				t.Error("no record read with a newer version than it was written with")
			}
			for _, v := range p.Versions {
				if written[v.Version] == 0 {
					t.Errorf("no record written with version %d (got %v)", v.Version, written)
				}
			}
		})
	}
}

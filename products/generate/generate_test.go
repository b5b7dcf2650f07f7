package generate_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/schemas"
)

var start = time.Date(2026, 5, 1, 18, 30, 0, 0, time.UTC)

func defaultCatalog(t testing.TB) *products.Catalog {
	t.Helper()
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func newGen(t testing.TB, cat *products.Catalog, opts generate.Options) *generate.Generator {
	t.Helper()
	if opts.Start.IsZero() {
		opts.Start = start
	}
	g, err := generate.New(cat, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// decoded is a record decoded with the schema version it was written with.
type decoded struct {
	rec     generate.Record
	framed  bool
	version products.SchemaVersion
	fields  map[string]any
}

// decode checks a record's framing and decodes its body with its writer
// schema, insisting that the body re-encodes to the same bytes (so nothing
// was left over or misread).
func decode(t *testing.T, cat *products.Catalog, rec generate.Record) decoded {
	t.Helper()
	p, ok := cat.Get(rec.Product)
	if !ok {
		t.Fatalf("record of unknown product %q", rec.Product)
	}
	if rec.Topic != p.Topic {
		t.Fatalf("%s record on topic %q, want %q", p.ID, rec.Topic, p.Topic)
	}
	d := decoded{rec: rec, version: p.Current()}
	body := rec.Value
	if len(body) >= 5 && body[0] == 0 {
		id := int(binary.BigEndian.Uint32(body[1:5]))
		q, v, ok := cat.SchemaByID(id)
		if !ok || q != p {
			t.Fatalf("%s record framed with schema id %d, not one of the product's", p.ID, id)
		}
		d.framed, d.version, body = true, v, body[5:]
	}
	if err := avro.Unmarshal(d.version.Schema, body, &d.fields); err != nil {
		t.Fatalf("%s record does not decode with version %d: %v", p.ID, d.version.Version, err)
	}
	// Re-encoded, the record has the same size (nothing left over) and
	// decodes the same (Avro maps may come out in another order).
	again, err := avro.Marshal(d.version.Schema, d.fields)
	var back map[string]any
	if err == nil {
		err = avro.Unmarshal(d.version.Schema, again, &back)
	}
	if err != nil || len(again) != len(body) || !reflect.DeepEqual(back, d.fields) {
		t.Fatalf("%s record (version %d) does not round-trip (%d bytes, re-encoded %d): %v", p.ID, d.version.Version, len(body), len(again), err)
	}
	return d
}

func str(t *testing.T, d decoded, field string) string {
	t.Helper()
	v, ok := d.fields[field]
	if !ok {
		if d.version.Schema.(*avro.RecordSchema).Fields() != nil {
			for _, f := range d.version.Schema.(*avro.RecordSchema).Fields() {
				if f.Name() == field {
					t.Fatalf("%s: field %q missing from decoded record", d.rec.Product, field)
				}
			}
		}
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case map[string]any: // union
		s, _ := v["string"].(string)
		return s
	case nil:
		return ""
	}
	t.Fatalf("%s: field %q is %T, want string", d.rec.Product, field, v)
	return ""
}

func checkMSISDN(t *testing.T, product, field, s string) {
	t.Helper()
	if !generate.ValidMSISDN(s) || !strings.HasPrefix(s, "49") || len(s) < 12 || len(s) > 13 {
		t.Errorf("%s %s %q: want 49 + 10 or 11 digits", product, field, s)
	}
}

func TestRecordsDecodeWithValidIdentifiers(t *testing.T) {
	cat := defaultCatalog(t)
	if len(cat.Products) < 4 {
		t.Fatalf("default catalog has %d products, want 4 or more", len(cat.Products))
	}
	g := newGen(t, cat, generate.Options{Seed: 7})
	mvnos := map[string]bool{"mvno-a": true, "mvno-b": true, "mvno-c": true, "mvno-d": true, "mvno-e": true}
	for _, p := range cat.Products {
		t.Run(p.ID, func(t *testing.T) {
			for range 400 {
				rec, err := g.Next(p.ID)
				if err != nil {
					t.Fatal(err)
				}
				d := decode(t, cat, rec)
				if rec.Time.IsZero() {
					t.Fatal("record without time")
				}
				switch p.ID {
				case "cdr", "fraud-alerts":
					imsi := str(t, d, "imsi")
					if !generate.ValidIMSI(imsi) || !strings.HasPrefix(imsi, "262") {
						t.Errorf("imsi %q: want 15 digits starting 262", imsi)
					}
					msisdn := str(t, d, "msisdn")
					checkMSISDN(t, p.ID, "msisdn", msisdn)
					if string(rec.Key) != msisdn {
						t.Errorf("key %q, want the msisdn %q", rec.Key, msisdn)
					}
					if imei := str(t, d, "imei"); (imei != "" || p.ID == "cdr") && !generate.ValidIMEI(imei) {
						t.Errorf("imei %q fails the Luhn check", imei)
					}
					if m := str(t, d, "mvno_id"); !mvnos[m] {
						t.Errorf("mvno_id %q", m)
					}
				}
				switch p.ID {
				case "cdr":
					if id := str(t, d, "record_id"); !generate.ValidUUID(id) {
						t.Errorf("record_id %q", id)
					}
					if c := str(t, d, "cell_id"); !generate.ValidCellID(c) {
						t.Errorf("cell_id %q", c)
					}
					if st := d.fields["start_time"].(time.Time); st.After(rec.Time) {
						t.Errorf("start_time %v after the record was written (%v)", st, rec.Time)
					}
					roaming := d.fields["roaming"].(bool)
					if v, ok := d.fields["visited_mcc"]; ok && (v != nil) != roaming {
						t.Errorf("roaming %v but visited_mcc %v", roaming, v)
					}
				case "fraud-alerts":
					if id := str(t, d, "alert_id"); !generate.ValidUUID(id) {
						t.Errorf("alert_id %q", id)
					}
					if s := d.fields["score"].(float64); s < 0 || s > 1 {
						t.Errorf("score %v outside 0..1", s)
					}
					for _, n := range d.fields["related_numbers"].([]any) {
						if !generate.ValidMSISDN(n.(string)) || strings.HasPrefix(n.(string), "49") {
							t.Errorf("related number %q: want a foreign E.164 number", n)
						}
					}
					if ev := str(t, d, "evidence"); ev == "" || strings.Contains(ev, str(t, d, "msisdn")) {
						t.Errorf("evidence %q empty or naming the subscriber", ev)
					}
				case "network-quality":
					c := str(t, d, "cell_id")
					if !generate.ValidCellID(c) || !strings.HasPrefix(c, "262-01-") || string(rec.Key) != c {
						t.Errorf("cell_id %q (key %q)", c, rec.Key)
					}
					if iv := d.fields["interval_start"].(time.Time); !iv.Equal(iv.Truncate(time.Minute)) || iv.After(rec.Time) {
						t.Errorf("interval_start %v not a past minute (record time %v)", iv, rec.Time)
					}
					for _, f := range []string{"prb_utilisation_pct", "availability_pct"} {
						if v := d.fields[f].(float64); v < 0 || v > 100 {
							t.Errorf("%s %v outside 0..100", f, v)
						}
					}
				case "device-telemetry":
					if !generate.ValidIMEI(str(t, d, "imei")) || !generate.ValidICCID(str(t, d, "iccid")) {
						t.Errorf("imei %q / iccid %q fail the Luhn check", str(t, d, "imei"), str(t, d, "iccid"))
					}
					if id := str(t, d, "device_id"); id == "" || string(rec.Key) != id {
						t.Errorf("device_id %q, key %q", id, rec.Key)
					}
					if c := str(t, d, "cell_id"); !generate.ValidCellID(c) {
						t.Errorf("cell_id %q", c)
					}
					if pl := str(t, d, "platform"); !strings.HasPrefix(pl, "iot-") {
						t.Errorf("platform %q", pl)
					}
				}
			}
		})
	}
}

func TestFramingMixed(t *testing.T) {
	cat := defaultCatalog(t)
	g := newGen(t, cat, generate.Options{Seed: 3})
	plain, framed := 0, map[int]int{}
	const n = 600
	for range n {
		rec, err := g.Next("cdr")
		if err != nil {
			t.Fatal(err)
		}
		d := decode(t, cat, rec)
		if d.framed {
			framed[d.version.Version]++
		} else {
			plain++
		}
	}
	if plain < n*35/100 || plain > n*65/100 {
		t.Errorf("%d of %d records plain, want about half", plain, n)
	}
	if len(framed) < 2 || framed[1] == 0 || framed[2] == 0 {
		t.Errorf("framed records by version %v, want versions 1 and 2", framed)
	}
}

func TestFramingPlainAndRegistry(t *testing.T) {
	cat := defaultCatalog(t)
	for _, mode := range []string{generate.FramingPlain, generate.FramingRegistry} {
		g := newGen(t, cat, generate.Options{Seed: 3, Framing: mode})
		for range 100 {
			rec, err := g.Next("cdr")
			if err != nil {
				t.Fatal(err)
			}
			if d := decode(t, cat, rec); d.framed != (mode == generate.FramingRegistry) {
				t.Fatalf("%s: got a record framed=%v", mode, d.framed)
			}
		}
	}
}

// withSchemas returns a schema FS holding the shipped schemas plus extra.
func withSchemas(t *testing.T, extra map[string]string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(schemas.Files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(schemas.Files, path)
		m[path] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range extra {
		m[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

// catalogWith returns the default catalog files, edited, plus extra files.
func catalogWith(t *testing.T, edit func(name, src string) string, extra map[string]string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	entries, err := fs.ReadDir(products.DefaultCatalog, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := fs.ReadFile(products.DefaultCatalog, "catalog/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		m["catalog/"+e.Name()] = &fstest.MapFile{Data: []byte(edit(e.Name(), string(data)))}
	}
	for name, data := range extra {
		m["catalog/"+name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

func TestProductFramingWins(t *testing.T) {
	catFS := catalogWith(t, func(name, src string) string {
		if name == "cdr.yaml" {
			return strings.Replace(src, "framing: auto", "framing: plain", 1)
		}
		return src
	}, nil)
	cat, err := products.Load(catFS, "catalog", schemas.Files)
	if err != nil {
		t.Fatal(err)
	}
	g := newGen(t, cat, generate.Options{Seed: 3, Framing: generate.FramingRegistry})
	for range 50 {
		rec, _ := g.Next("cdr")
		if decode(t, cat, rec).framed {
			t.Fatal("cdr is plain in the catalog, but a record came framed")
		}
		rec, _ = g.Next("fraud-alerts")
		if !decode(t, cat, rec).framed {
			t.Fatal("registry framing asked for, but a fraud-alerts record came plain")
		}
	}
}

func TestDeterministic(t *testing.T) {
	cat := defaultCatalog(t)
	run := func(seed int64) []generate.Record {
		g := newGen(t, cat, generate.Options{Seed: seed})
		var out []generate.Record
		for i := range 400 {
			p := cat.Products[i%len(cat.Products)].ID
			if i%3 == 0 {
				p = "cdr"
			}
			rec, err := g.Next(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
		return out
	}
	a, b, c := run(42), run(42), run(43)
	if !reflect.DeepEqual(a, b) {
		t.Error("two generators with seed 42 differ")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("seeds 42 and 43 produce the same records")
	}
}

func TestNetworkQualityOncePerCellPerInterval(t *testing.T) {
	cat := defaultCatalog(t)
	g := newGen(t, cat, generate.Options{Seed: 1})
	seen := map[time.Time]map[string]bool{}
	for range 3 * 60 {
		rec, err := g.Next("network-quality")
		if err != nil {
			t.Fatal(err)
		}
		d := decode(t, cat, rec)
		iv := d.fields["interval_start"].(time.Time)
		if seen[iv] == nil {
			seen[iv] = map[string]bool{}
		}
		if seen[iv][string(rec.Key)] {
			t.Fatalf("cell %s reported twice for interval %v", rec.Key, iv)
		}
		seen[iv][string(rec.Key)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("180 records over %d intervals, want 3 intervals of 60 cells", len(seen))
	}
	for iv, cells := range seen {
		if len(cells) != 60 {
			t.Errorf("interval %v: %d cells, want 60", iv, len(cells))
		}
	}
}

// A product without a model, with every kind of Avro type, and a cdr
// version 3 with a field the model does not know.
const (
	kitchenSink = `{"type":"record","name":"Sink","namespace":"sluice.test","fields":[
 {"name":"msisdn","type":"string"},
 {"name":"imsi","type":"string"},
 {"name":"id","type":{"type":"string","logicalType":"uuid"}},
 {"name":"flag","type":"boolean"},
 {"name":"n","type":"int"},
 {"name":"big","type":"long"},
 {"name":"f","type":"float"},
 {"name":"site_lat","type":"double"},
 {"name":"raw","type":"bytes"},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"tod","type":{"type":"int","logicalType":"time-millis"}},
 {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
 {"name":"hash","type":{"type":"fixed","name":"Hash","size":16}},
 {"name":"price","type":{"type":"fixed","name":"Price","size":8,"logicalType":"decimal","precision":12,"scale":3}},
 {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
 {"name":"maybe","type":["null","string"],"default":null},
 {"name":"when","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
 {"name":"either","type":["int","string","Kind"]},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":"double"}},
 {"name":"node","type":{"type":"record","name":"Node","fields":[
   {"name":"label","type":"string"},
   {"name":"children","type":{"type":"array","items":"Node"}},
   {"name":"next","type":["null","Node"],"default":null}]}}
]}`
	sinkProduct = `id: sink
title: Sink
description: Every Avro type.
owner: {team: Test, email: test@example.com}
topic: test.sink
schema:
  subject: test.sink-value
  versions:
    - {version: 1, id: 901, file: avro/sink.v1.avsc}
classification:
  msisdn: direct-identifier
  imsi: direct-identifier
  id: public
  flag: public
  n: public
  big: public
  f: public
  site_lat: public
  raw: public
  day: public
  tod: public
  at: public
  amount: sensitive
  hash: public
  price: public
  kind: public
  maybe: public
  when: public
  either: public
  tags: public
  attrs: public
  node: public
freshness_sla: 1m
replay_window: 1h
`
)

func TestUnknownProductsAndFields(t *testing.T) {
	cdrV2, err := fs.ReadFile(schemas.Files, "avro/cdr.v2.avsc")
	if err != nil {
		t.Fatal(err)
	}
	cdrV3 := strings.Replace(string(cdrV2), `{"name": "currency"`,
		`{"name": "tariff_id", "type": "string", "default": "unknown", "doc": "x"},
    {"name": "currency"`, 1)
	catFS := catalogWith(t, func(name, src string) string {
		if name == "cdr.yaml" {
			src = strings.Replace(src, "      file: avro/cdr.v2.avsc\n", "      file: avro/cdr.v2.avsc\n    - version: 3\n      id: 103\n      file: avro/cdr.v3.avsc\n", 1)
			src = strings.Replace(src, "  currency: public\n", "  currency: public\n  tariff_id: public\n", 1)
		}
		return src
	}, map[string]string{"sink.yaml": sinkProduct})
	cat, err := products.Load(catFS, "catalog", withSchemas(t, map[string]string{
		"avro/sink.v1.avsc": kitchenSink,
		"avro/cdr.v3.avsc":  cdrV3,
	}))
	if err != nil {
		t.Fatal(err)
	}
	g := newGen(t, cat, generate.Options{Seed: 5, Framing: generate.FramingPlain})
	for range 200 {
		rec, err := g.Next("sink")
		if err != nil {
			t.Fatal(err)
		}
		d := decode(t, cat, rec)
		if string(rec.Key) != str(t, d, "msisdn") {
			t.Fatalf("key %q, want the msisdn %q", rec.Key, str(t, d, "msisdn"))
		}
		checkMSISDN(t, "sink", "msisdn", str(t, d, "msisdn"))
		if imsi := str(t, d, "imsi"); !generate.ValidIMSI(imsi) {
			t.Fatalf("imsi %q", imsi)
		}
	}
	for range 50 {
		rec, err := g.Next("cdr")
		if err != nil {
			t.Fatal(err)
		}
		if d := decode(t, cat, rec); str(t, d, "tariff_id") == "" || d.version.Version != 3 {
			t.Fatalf("cdr v3 record: version %d, tariff_id %q", d.version.Version, str(t, d, "tariff_id"))
		}
	}
}

func TestOptionsValidated(t *testing.T) {
	cat := defaultCatalog(t)
	for _, tt := range []struct {
		opts generate.Options
		want string
	}{
		{generate.Options{Rate: -1}, "rate -1 records/s out of range"},
		{generate.Options{Rate: 2e6}, "out of range"},
		{generate.Options{Framing: "avro"}, `unknown framing "avro" (want mixed, plain or registry)`},
		{generate.Options{SubscribersPerMVNO: -5}, "subscribers per MVNO out of range"},
	} {
		if _, err := generate.New(cat, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tt.opts, err, tt.want)
		}
	}
	if _, err := generate.New(&products.Catalog{}, generate.Options{}); err == nil {
		t.Error("New with an empty catalog succeeded")
	}
	g := newGen(t, cat, generate.Options{})
	if _, err := g.Next("nope"); err == nil || !strings.Contains(err.Error(), `unknown product "nope"`) {
		t.Errorf("Next(nope) = %v", err)
	}
}

func TestRunPaces(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 2 s")
	}
	cat := defaultCatalog(t)
	const rate = 1000
	g := newGen(t, cat, generate.Options{Seed: 9, Rate: rate})
	var count atomic.Int64
	byProduct := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	began := time.Now()
	err := g.Run(ctx, func(_ context.Context, rec generate.Record) error {
		count.Add(1)
		byProduct[rec.Product]++
		return nil
	})
	elapsed := time.Since(began)
	if err != nil {
		t.Fatalf("Run = %v, want nil after the context ends", err)
	}
	got := float64(count.Load()) / elapsed.Seconds()
	if got < rate*0.8 || got > rate*1.2 {
		t.Errorf("Run emitted %d records in %v: %.0f/s, want %d/s ±20%%", count.Load(), elapsed, got, rate)
	}
	if byProduct["cdr"] <= byProduct["device-telemetry"] || byProduct["device-telemetry"] == 0 || byProduct["network-quality"] == 0 {
		t.Errorf("records by product %v: want cdr most frequent, then device-telemetry, some network-quality", byProduct)
	}
	t.Logf("%d records in %v by product %v", count.Load(), elapsed.Round(time.Millisecond), byProduct)
}

func TestRunHighRate(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a rate test; the race detector slows generation ~10x")
	}
	cat := defaultCatalog(t)
	const rate = 10_000
	g := newGen(t, cat, generate.Options{Seed: 9, Rate: rate})
	var count int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	began := time.Now()
	if err := g.Run(ctx, func(context.Context, generate.Record) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := float64(count) / time.Since(began).Seconds(); got < rate*0.8 || got > rate*1.2 {
		t.Errorf("%.0f records/s, want %d ±20%%", got, rate)
	}
}

func TestRunReturnsEmitError(t *testing.T) {
	cat := defaultCatalog(t)
	g := newGen(t, cat, generate.Options{Rate: 500})
	boom := errors.New("boom")
	n := 0
	err := g.Run(context.Background(), func(context.Context, generate.Record) error {
		if n++; n == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
	// An emit that fails because the context ended is a clean stop.
	ctx, cancel := context.WithCancel(context.Background())
	err = g.Run(ctx, func(ctx context.Context, _ generate.Record) error {
		cancel()
		return ctx.Err()
	})
	if err != nil {
		t.Fatalf("Run = %v, want nil when emit fails with the ended context", err)
	}
}

func BenchmarkNext(b *testing.B) {
	cat := defaultCatalog(b)
	for _, p := range cat.Products {
		b.Run(p.ID, func(b *testing.B) {
			g := newGen(b, cat, generate.Options{Seed: 1})
			b.ReportAllocs()
			var size int
			for b.Loop() {
				rec, err := g.Next(p.ID)
				if err != nil {
					b.Fatal(err)
				}
				size += len(rec.Value)
			}
			b.ReportMetric(float64(size)/float64(b.N), "B/record")
		})
	}
}

func ExampleGenerator_Next() {
	cat, err := products.LoadDefault()
	if err != nil {
		panic(err)
	}
	g, err := generate.New(cat, generate.Options{Seed: 1, Framing: generate.FramingPlain})
	if err != nil {
		panic(err)
	}
	rec, err := g.Next("cdr")
	if err != nil {
		panic(err)
	}
	var cdr map[string]any
	p, _ := cat.Get("cdr")
	if err := avro.Unmarshal(p.Current().Schema, rec.Value, &cdr); err != nil {
		panic(err)
	}
	fmt.Println(rec.Topic, string(rec.Key) == cdr["msisdn"], generate.ValidIMEI(cdr["imei"].(string)))
	// Output: telco.cdr true true
}

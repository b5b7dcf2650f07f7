package schemas

import (
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

// TestFieldEncoderRoundTrip: Avro written by hamba/avro, decoded into
// Values and encoded again field by field, decodes to hamba's values, for
// every kind the decoder reports: scalars, logical types, nullable unions
// in both branch orders, a general union, and (as KindJSON text) records,
// arrays and maps, including nested timestamps, bytes, enums and decimals.
func TestFieldEncoderRoundTrip(t *testing.T) {
	schema := `{"type":"record","name":"R","fields":[
	 {"name":"b","type":"boolean"},
	 {"name":"i","type":"int"},
	 {"name":"l","type":"long"},
	 {"name":"f","type":"float"},
	 {"name":"d","type":"double"},
	 {"name":"s","type":"string"},
	 {"name":"u","type":{"type":"string","logicalType":"uuid"}},
	 {"name":"by","type":"bytes"},
	 {"name":"fx","type":{"type":"fixed","name":"F4","size":4}},
	 {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
	 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
	 {"name":"tu","type":{"type":"long","logicalType":"timestamp-micros"}},
	 {"name":"dt","type":{"type":"int","logicalType":"date"}},
	 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
	 {"name":"decf","type":{"type":"fixed","name":"D8","size":8,"logicalType":"decimal","precision":12,"scale":3}},
	 {"name":"n1","type":["null","string"]},
	 {"name":"n2","type":["string","null"]},
	 {"name":"n3","type":["null","long"]},
	 {"name":"gu","type":["null","int","string"]},
	 {"name":"arr","type":{"type":"array","items":"string"}},
	 {"name":"arri","type":{"type":"array","items":"int"}},
	 {"name":"esc","type":{"type":"array","items":"string"}},
	 {"name":"m","type":{"type":"map","values":{"type":"long","logicalType":"timestamp-millis"}}},
	 {"name":"rec","type":{"type":"record","name":"In","fields":[
	   {"name":"x","type":"E"},{"name":"y","type":["null","bytes"]},{"name":"z","type":{"type":"array","items":"double"}}]}}
	]}`
	s, err := Parse([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 25, 10, 0, 0, 123_000_000, time.UTC)
	v := map[string]any{
		"b": true, "i": int32(-7), "l": int64(1) << 40, "f": float32(1.25), "d": -2.5e-8, "s": "héllo \"q\"",
		"u": "0b8c8c6e-5f4a-4b43-9b8e-0c6f2b6c1a11", "by": []byte{0, 1, 2, 255}, "fx": [4]byte{9, 8, 7, 6}, "e": "C",
		"ts": ts, "tu": ts.Add(456 * time.Microsecond), "dt": time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
		"dec": big.NewRat(-12345, 100), "decf": big.NewRat(987654321, 1000),
		"n1": nil, "n2": "set", "n3": int64(5), "gu": map[string]any{"string": "x"},
		"arr": []string{"a", "b,c"}, "arri": []int32{1, -2, 300}, "esc": []string{`a"b`, "c\\d"},
		"m":   map[string]any{"k": ts},
		"rec": map[string]any{"x": "B", "y": []byte("yy"), "z": []float64{1.5, -0.25}},
	}
	want, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLayout(s)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder(s, l)
	if err != nil {
		t.Fatal(err)
	}
	rec := l.NewRecord()
	if err := dec.Decode(want, rec); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i, f := range s.(*avro.RecordSchema).Fields() {
		e, err := NewFieldEncoder(f.Type())
		if err != nil {
			t.Fatalf("%s: %v", f.Name(), err)
		}
		if got, err = e.Append(got, &rec.Values[i]); err != nil {
			t.Fatalf("%s (%s %s): %v", f.Name(), rec.Values[i].Kind, rec.Values[i].Bytes, err)
		}
	}
	// Equal as values: hamba writes array and map blocks with their byte
	// size (a negative count), which the encoder does not; both are Avro.
	var gv, wv map[string]any
	if err := avro.Unmarshal(s, got, &gv); err != nil {
		t.Fatalf("re-encoded record does not decode: %v\n% x", err, got)
	}
	if err := avro.Unmarshal(s, want, &wv); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gv, wv) {
		t.Fatalf("re-encoded record differs:\n got %v\nwant %v", gv, wv)
	}

	// A null for a field that cannot be null is an error, not bad bytes.
	e, _ := NewFieldEncoder(s.(*avro.RecordSchema).Fields()[1].Type())
	if _, err := e.Append(nil, &Value{Kind: KindNull}); err == nil {
		t.Error("null encoded as an int")
	}
}

package schemas

import (
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
)

// rec builds a record schema from field JSON snippets.
func rec(name string, fields ...string) string {
	return `{"type":"record","name":"` + name + `","fields":[` + strings.Join(fields, ",") + `]}`
}

func fld(name, typ string) string { return `{"name":"` + name + `","type":` + typ + `}` }

func fldDef(name, typ, def string) string {
	return `{"name":"` + name + `","type":` + typ + `,"default":` + def + `}`
}

const (
	tsMillis  = `{"type":"long","logicalType":"timestamp-millis"}`
	tsMicros  = `{"type":"long","logicalType":"timestamp-micros"}`
	dateType  = `{"type":"int","logicalType":"date"}`
	uuidType  = `{"type":"string","logicalType":"uuid"}`
	decBytes  = `{"type":"bytes","logicalType":"decimal","precision":20,"scale":2}`
	decFixed  = `{"type":"fixed","name":"Money","size":8,"logicalType":"decimal","precision":18,"scale":4}`
	timeMilli = `{"type":"int","logicalType":"time-millis"}`
)

var (
	enumABC  = `{"type":"enum","name":"E","symbols":["A","B","C"]}`
	pointRec = `{"type":"record","name":"Point","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}`
)

type roundTrip struct {
	note    string
	writer  string
	reader  string // "" = writer
	value   map[string]any
	want    string // JSON object of all reader fields
	wantErr error  // sentinel the Decode error must wrap
	kinds   map[string]Kind
}

func TestRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	tests := []roundTrip{
		{
			note: "every primitive",
			writer: rec("P", fld("n", `"null"`), fld("b", `"boolean"`), fld("i", `"int"`), fld("l", `"long"`),
				fld("f", `"float"`), fld("d", `"double"`), fld("by", `"bytes"`), fld("s", `"string"`)),
			value: map[string]any{"n": nil, "b": true, "i": -42, "l": int64(1) << 40, "f": float32(1.5), "d": -2.25,
				"by": []byte{0, 1, 255}, "s": "héllo \"q\"\n\x01"},
			want: `{"n":null,"b":true,"i":-42,"l":1099511627776,"f":1.5,"d":-2.25,"by":"AAH/","s":"héllo \"q\"\n\u0001"}`,
			kinds: map[string]Kind{"n": KindNull, "b": KindBool, "i": KindInt, "l": KindLong, "f": KindFloat,
				"d": KindDouble, "by": KindBytes, "s": KindString},
		},
		{
			note:   "integer extremes and float precision",
			writer: rec("P", fld("i1", `"int"`), fld("i2", `"int"`), fld("l1", `"long"`), fld("l2", `"long"`), fld("f", `"float"`), fld("d", `"double"`), fld("b", `"boolean"`)),
			value: map[string]any{"i1": math.MinInt32, "i2": math.MaxInt32, "l1": int64(math.MinInt64), "l2": int64(math.MaxInt64),
				"f": float32(0.1), "d": 1e21, "b": false},
			want: `{"i1":-2147483648,"i2":2147483647,"l1":-9223372036854775808,"l2":9223372036854775807,"f":0.1,"d":1e+21,"b":false}`,
		},
		{
			note:   "NaN and infinity become null",
			writer: rec("P", fld("f", `"float"`), fld("d", `"double"`)),
			value:  map[string]any{"f": float32(math.Inf(1)), "d": math.NaN()},
			want:   `{"f":null,"d":null}`,
		},
		{
			note:   "nullable null-first, set and null",
			writer: rec("P", fld("a", `["null","string"]`), fld("b", `["null","long"]`)),
			value:  map[string]any{"a": "x", "b": nil},
			want:   `{"a":"x","b":null}`,
			kinds:  map[string]Kind{"a": KindString, "b": KindNull},
		},
		{
			note:   "nullable null-second, set and null",
			writer: rec("P", fld("a", `["string","null"]`), fld("b", `["long","null"]`)),
			value:  map[string]any{"a": nil, "b": int64(7)},
			want:   `{"a":null,"b":7}`,
		},
		{
			note:   "nullable order flipped between writer and reader",
			writer: rec("P", fld("a", `["null","string"]`), fld("b", `["null","int"]`)),
			reader: rec("P", fld("a", `["string","null"]`), fld("b", `["long","null"]`)),
			value:  map[string]any{"a": "x", "b": 3},
			want:   `{"a":"x","b":3}`,
			kinds:  map[string]Kind{"b": KindLong},
		},
		{
			note:   "non-union writer read as nullable reader",
			writer: rec("P", fld("a", `"string"`)),
			reader: rec("P", fld("a", `["null","string"]`)),
			value:  map[string]any{"a": "x"},
			want:   `{"a":"x"}`,
		},
		{
			note:   "nullable writer read as non-union reader, value present",
			writer: rec("P", fld("a", `["null","string"]`)),
			reader: rec("P", fld("a", `"string"`)),
			value:  map[string]any{"a": "x"},
			want:   `{"a":"x"}`,
		},
		{
			note:    "nullable writer read as non-union reader, value null",
			writer:  rec("P", fld("a", `["null","string"]`)),
			reader:  rec("P", fld("a", `"string"`)),
			value:   map[string]any{"a": nil},
			wantErr: ErrIncompatible,
		},
		{
			note:   "enum same schema",
			writer: rec("P", fld("e", enumABC)),
			value:  map[string]any{"e": "C"},
			want:   `{"e":"C"}`,
			kinds:  map[string]Kind{"e": KindEnum},
		},
		{
			note:   "enum resolved by symbol name, not index",
			writer: rec("P", fld("e", enumABC)),
			reader: rec("P", fld("e", `{"type":"enum","name":"E","symbols":["C","B","A","D"]}`)),
			value:  map[string]any{"e": "A"},
			want:   `{"e":"A"}`,
		},
		{
			note:   "enum symbol missing in reader takes the reader default",
			writer: rec("P", fld("e", `{"type":"enum","name":"E","symbols":["A","B","X"]}`)),
			reader: rec("P", fld("e", `{"type":"enum","name":"E","symbols":["A","B","UNKNOWN"],"default":"UNKNOWN"}`)),
			value:  map[string]any{"e": "X"},
			want:   `{"e":"UNKNOWN"}`,
		},
		{
			note:    "enum symbol missing in reader without default fails the record",
			writer:  rec("P", fld("e", `{"type":"enum","name":"E","symbols":["A","B","X"]}`)),
			reader:  rec("P", fld("e", `{"type":"enum","name":"E","symbols":["A","B"]}`)),
			value:   map[string]any{"e": "X"},
			wantErr: ErrIncompatible,
		},
		{
			note:   "enum symbol missing in reader, but another symbol read fine",
			writer: rec("P", fld("e", `{"type":"enum","name":"E","symbols":["A","B","X"]}`)),
			reader: rec("P", fld("e", `{"type":"enum","name":"E","symbols":["B","A"]}`)),
			value:  map[string]any{"e": "B"},
			want:   `{"e":"B"}`,
		},
		{
			note:   "fixed",
			writer: rec("P", fld("f", `{"type":"fixed","name":"F4","size":4}`)),
			value:  map[string]any{"f": [4]byte{0xde, 0xad, 0xbe, 0xef}},
			want:   `{"f":"3q2+7w=="}`,
			kinds:  map[string]Kind{"f": KindFixed},
		},
		{
			note: "arrays of ints, strings, records, and empty",
			writer: rec("P", fld("ai", `{"type":"array","items":"int"}`), fld("as", `{"type":"array","items":"string"}`),
				fld("ar", `{"type":"array","items":`+pointRec+`}`), fld("ae", `{"type":"array","items":"long"}`)),
			value: map[string]any{"ai": []any{1, -2, 3}, "as": []any{"a", "b\"c"},
				"ar": []any{map[string]any{"x": 1, "y": 2}, map[string]any{"x": 3, "y": 4}}, "ae": []any{}},
			want:  `{"ai":[1,-2,3],"as":["a","b\"c"],"ar":[{"x":1,"y":2},{"x":3,"y":4}],"ae":[]}`,
			kinds: map[string]Kind{"ai": KindJSON, "ar": KindJSON},
		},
		{
			note:   "maps, with keys needing escapes",
			writer: rec("P", fld("m", `{"type":"map","values":"long"}`), fld("e", `{"type":"map","values":"string"}`)),
			value:  map[string]any{"m": map[string]any{"a": int64(1), "q\"k\n": int64(2)}, "e": map[string]any{}},
			want:   `{"m":{"a":1,"q\"k\n":2},"e":{}}`,
		},
		{
			note: "nested records two levels deep",
			writer: rec("Outer", fld("id", `"string"`),
				fld("loc", `{"type":"record","name":"Loc","fields":[{"name":"cell","type":"string"},{"name":"p","type":`+pointRec+`}]}`)),
			value: map[string]any{"id": "o1", "loc": map[string]any{"cell": "c9", "p": map[string]any{"x": 5, "y": -6}}},
			want:  `{"id":"o1","loc":{"cell":"c9","p":{"x":5,"y":-6}}}`,
			kinds: map[string]Kind{"loc": KindJSON},
		},
		{
			note: "nested record evolution: removed, added with default, promoted",
			writer: rec("Outer", fld("loc", `{"type":"record","name":"Loc","fields":[
				{"name":"cell","type":"string"},{"name":"gone","type":{"type":"array","items":"string"}},{"name":"n","type":"int"}]}`)),
			reader: rec("Outer", fld("loc", `{"type":"record","name":"Loc","fields":[
				{"name":"cell","type":"string"},{"name":"added","type":"string","default":"dflt"},{"name":"n","type":"double"},
				{"name":"tail","type":["null","long"],"default":null}]}`)),
			value: map[string]any{"loc": map[string]any{"cell": "c9", "gone": []any{"x", "y"}, "n": 7}},
			want:  `{"loc":{"cell":"c9","added":"dflt","n":7,"tail":null}}`,
		},
		{
			note: "nested record fields reordered are written in reader order",
			writer: rec("Outer", fld("loc", `{"type":"record","name":"Loc","fields":[
				{"name":"b","type":"string"},{"name":"a","type":"int"},{"name":"skip","type":"string"}]}`)),
			reader: rec("Outer", fld("loc", `{"type":"record","name":"Loc","fields":[
				{"name":"a","type":"int"},{"name":"z","type":"boolean","default":true},{"name":"b","type":"string"}]}`)),
			value: map[string]any{"loc": map[string]any{"b": "bee", "a": 1, "skip": "s"}},
			want:  `{"loc":{"a":1,"z":true,"b":"bee"}}`,
		},
		{
			note: "logical types",
			writer: rec("P", fld("ts", tsMillis), fld("tu", tsMicros), fld("d", dateType), fld("u", uuidType),
				fld("dec", decBytes), fld("fx", decFixed), fld("tm", timeMilli)),
			value: map[string]any{"ts": ts, "tu": ts, "d": ts, "u": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
				"dec": big.NewRat(-12345, 100), "fx": big.NewRat(5, 10000), "tm": 3_600_000},
			want: `{"ts":"2026-11-25T10:00:00.123Z","tu":"2026-11-25T10:00:00.123456Z","d":"2026-11-25",
				"u":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","dec":"-123.45","fx":"0.0005","tm":3600000}`,
			kinds: map[string]Kind{"ts": KindTimestampMillis, "tu": KindTimestampMicros, "d": KindDate, "u": KindString,
				"dec": KindString, "fx": KindString, "tm": KindInt},
		},
		{
			note:   "timestamps before the epoch",
			writer: rec("P", fld("ts", tsMillis), fld("tu", tsMicros), fld("d", dateType)),
			value:  map[string]any{"ts": int64(-1), "tu": int64(-1), "d": -1},
			want:   `{"ts":"1969-12-31T23:59:59.999Z","tu":"1969-12-31T23:59:59.999999Z","d":"1969-12-31"}`,
		},
		{
			note:   "timestamp-millis read as timestamp-micros and back",
			writer: rec("P", fld("a", tsMillis), fld("b", tsMicros)),
			reader: rec("P", fld("a", tsMicros), fld("b", tsMillis)),
			value:  map[string]any{"a": int64(1_764_064_800_123), "b": int64(-1)},
			want:   `{"a":"2025-11-25T10:00:00.123000Z","b":"1969-12-31T23:59:59.999Z"}`,
		},
		{
			note:   "wide decimal (more than 8 bytes)",
			writer: rec("P", fld("dec", `{"type":"bytes","logicalType":"decimal","precision":38,"scale":10}`)),
			value: map[string]any{"dec": func() *big.Rat {
				r, _ := new(big.Rat).SetString("-1234567890123456789012345678.0123456789")
				return r
			}()},
			want: `{"dec":"-1234567890123456789012345678.0123456789"}`,
		},
		{
			note:   "reader fields added with defaults of every kind",
			writer: rec("P", fld("id", `"string"`)),
			reader: rec("P", fld("id", `"string"`),
				fldDef("s", `"string"`, `"x\"y"`), fldDef("i", `"int"`, `-3`), fldDef("l", `"long"`, `4102444800000`),
				fldDef("f", `"float"`, `0.5`), fldDef("d", `"double"`, `2.5`), fldDef("b", `"boolean"`, `true`),
				fldDef("by", `"bytes"`, `"\u00ff\u0000"`), fldDef("fx", `{"type":"fixed","name":"F2","size":2}`, `"ab"`),
				fldDef("e", enumABC, `"B"`), fldDef("n", `["null","string"]`, `null`), fldDef("ns", `["string","null"]`, `"dflt"`),
				fldDef("ts", tsMillis, `0`), fldDef("dt", dateType, `1`), fldDef("dec", decBytes, `"\u0004\u00d2"`),
				fldDef("arr", `{"type":"array","items":"int"}`, `[1,2]`), fldDef("m", `{"type":"map","values":"string"}`, `{"k":"v","a":"b"}`),
				fldDef("r", pointRec, `{"x":1,"y":2}`), fldDef("nr", `["null","Point"]`, `null`),
				fldDef("u", `["int","string"]`, `4`)),
			value: map[string]any{"id": "r1"},
			want: `{"id":"r1","s":"x\"y","i":-3,"l":4102444800000,"f":0.5,"d":2.5,"b":true,"by":"/wA=","fx":"YWI=",
				"e":"B","n":null,"ns":"dflt","ts":"1970-01-01T00:00:00.000Z","dt":"1970-01-02","dec":"12.34","arr":[1,2],
				"m":{"a":"b","k":"v"},"r":{"x":1,"y":2},"nr":null,"u":4}`,
			kinds: map[string]Kind{"e": KindEnum, "n": KindNull, "ns": KindString, "arr": KindJSON, "nr": KindNull, "u": KindJSON},
		},
		{
			note:   "promotions",
			writer: rec("P", fld("il", `"int"`), fld("if", `"int"`), fld("id", `"int"`), fld("lf", `"long"`), fld("ld", `"long"`), fld("fd", `"float"`), fld("sb", `"string"`), fld("bs", `"bytes"`)),
			reader: rec("P", fld("il", `"long"`), fld("if", `"float"`), fld("id", `"double"`), fld("lf", `"float"`), fld("ld", `"double"`), fld("fd", `"double"`), fld("sb", `"bytes"`), fld("bs", `"string"`)),
			value: map[string]any{"il": 7, "if": 16777217, "id": -5, "lf": int64(1) << 40, "ld": int64(3),
				"fd": float32(0.1), "sb": "hi", "bs": []byte("yo")},
			want: `{"il":7,"if":16777216,"id":-5,"lf":1099511600000,"ld":3,"fd":0.10000000149011612,"sb":"aGk=","bs":"yo"}`,
			kinds: map[string]Kind{"il": KindLong, "if": KindFloat, "id": KindDouble, "lf": KindFloat, "ld": KindDouble,
				"fd": KindDouble, "sb": KindBytes, "bs": KindString},
		},
		{
			note:   "promotion inside arrays and maps",
			writer: rec("P", fld("a", `{"type":"array","items":"int"}`), fld("m", `{"type":"map","values":"float"}`)),
			reader: rec("P", fld("a", `{"type":"array","items":"double"}`), fld("m", `{"type":"map","values":"double"}`)),
			value:  map[string]any{"a": []any{1, 2}, "m": map[string]any{"k": float32(0.5)}},
			want:   `{"a":[1,2],"m":{"k":0.5}}`,
		},
		{
			note:   "top-level fields reordered",
			writer: rec("P", fld("c", `"string"`), fld("a", `"int"`), fld("b", `"boolean"`)),
			reader: rec("P", fld("a", `"int"`), fld("b", `"boolean"`), fld("c", `"string"`)),
			value:  map[string]any{"c": "see", "a": 1, "b": true},
			want:   `{"a":1,"b":true,"c":"see"}`,
		},
		{
			note: "writer fields removed from the reader are skipped, every type",
			writer: rec("P", fld("x1", `"string"`), fld("x2", pointRec), fld("keep", `"int"`),
				fld("x3", `{"type":"array","items":"string"}`), fld("x4", `{"type":"map","values":"double"}`),
				fld("x5", `["null","string","long"]`), fld("x6", `{"type":"fixed","name":"F3","size":3}`), fld("x7", `"float"`),
				fld("x8", enumABC), fld("x9", `"boolean"`), fld("x10", `"bytes"`), fld("x11", `"null"`), fld("last", `"string"`)),
			reader: rec("P", fld("keep", `"int"`), fld("last", `"string"`)),
			value: map[string]any{"x1": "gone", "x2": map[string]any{"x": 1, "y": 2}, "keep": 42,
				"x3": []any{"a"}, "x4": map[string]any{"k": 1.5}, "x5": map[string]any{"long": int64(9)},
				"x6": [3]byte{1, 2, 3}, "x7": float32(1), "x8": "B", "x9": true, "x10": []byte{1}, "x11": nil, "last": "end"},
			want: `{"keep":42,"last":"end"}`,
		},
		{
			note:   "field matched through a reader alias",
			writer: rec("P", fld("old_name", `"string"`)),
			reader: rec("P", `{"name":"new_name","type":"string","aliases":["old_name"]}`),
			value:  map[string]any{"old_name": "v"},
			want:   `{"new_name":"v"}`,
		},
		{
			note:   "general unions at top level and nested",
			writer: rec("P", fld("u", `["int","string","null"]`), fld("v", `["int","string"]`), fld("a", `{"type":"array","items":["null","int","string"]}`)),
			value: map[string]any{"u": map[string]any{"string": "s"}, "v": map[string]any{"int": 3},
				"a": []any{nil, map[string]any{"int": 1}, map[string]any{"string": "x"}}},
			want:  `{"u":"s","v":3,"a":[null,1,"x"]}`,
			kinds: map[string]Kind{"u": KindJSON, "v": KindJSON},
		},
		{
			note:   "general union null branch reports KindNull",
			writer: rec("P", fld("u", `["int","string","null"]`)),
			value:  map[string]any{"u": nil},
			want:   `{"u":null}`,
			kinds:  map[string]Kind{"u": KindNull},
		},
		{
			note:   "writer union narrowed: reader union picks by type",
			writer: rec("P", fld("u", `["null","int","string"]`)),
			reader: rec("P", fld("u", `["null","string","long"]`)),
			value:  map[string]any{"u": map[string]any{"int": 5}},
			want:   `{"u":5}`,
		},
		{
			note:   "non-union writer read as general reader union",
			writer: rec("P", fld("u", `"int"`)),
			reader: rec("P", fld("u", `["string","long"]`)),
			value:  map[string]any{"u": 12},
			want:   `{"u":12}`,
			kinds:  map[string]Kind{"u": KindJSON},
		},
		{
			note:   "nullable record",
			writer: rec("P", fld("p", `["null",`+pointRec+`]`), fld("q", `["Point","null"]`)),
			value:  map[string]any{"p": map[string]any{"Point": map[string]any{"x": 1, "y": 2}}, "q": nil},
			want:   `{"p":{"x":1,"y":2},"q":null}`,
			kinds:  map[string]Kind{"p": KindJSON, "q": KindNull},
		},
		{
			note:   "recursive schema (linked list)",
			writer: `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}`,
			value: map[string]any{"v": 1, "next": map[string]any{"Node": map[string]any{"v": 2,
				"next": map[string]any{"Node": map[string]any{"v": 3, "next": nil}}}}},
			want: `{"v":1,"next":{"v":2,"next":{"v":3,"next":null}}}`,
		},
		{
			note:   "invalid UTF-8 in a string is replaced",
			writer: rec("P", fld("s", `"string"`), fld("m", `{"type":"map","values":"string"}`)),
			value:  map[string]any{"s": "a\xffb", "m": map[string]any{"k\xfe": "v\xc3"}},
			want:   `{"s":"a\ufffdb","m":{"k\ufffd":"v\ufffd"}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.note, func(t *testing.T) {
			w := mustParse(t, tc.writer)
			r := w
			if tc.reader != "" {
				r = mustParse(t, tc.reader)
			}
			l := mustLayout(t, r)
			d := mustDecoder(t, w, l)
			src := mustMarshal(t, w, tc.value)
			rc := l.NewRecord()
			// Decode twice into the same Record: reuse must not leak state.
			for range 2 {
				err := d.Decode(src, rc)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("Decode error = %v, want %v", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				jsonEqual(t, appendObject(nil, keys(l), rc), tc.want)
			}
			for name, k := range tc.kinds {
				f, ok := l.Field(name)
				if !ok {
					t.Fatalf("no field %q", name)
				}
				if got := rc.Values[f.Index].Kind; got != k {
					t.Errorf("field %q: Value.Kind = %v, want %v", name, got, k)
				}
			}
		})
	}
}

// TestNestedReorderBytes checks the exact bytes of a reordered nested
// record: reader field order, no stray bytes left from the assembly.
func TestNestedReorderBytes(t *testing.T) {
	w := mustParse(t, rec("O", fld("r", `{"type":"record","name":"R","fields":[
		{"name":"b","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"q","type":"int"},{"name":"p","type":"string"}]}}},
		{"name":"a","type":"int"}]}`), fld("after", `"string"`)))
	r := mustParse(t, rec("O", fld("r", `{"type":"record","name":"R","fields":[
		{"name":"a","type":"int"},
		{"name":"b","type":{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"p","type":"string"},{"name":"q","type":"long"}]}}}]}`), fld("after", `"string"`)))
	l := mustLayout(t, r)
	d := mustDecoder(t, w, l)
	src := mustMarshal(t, w, map[string]any{"r": map[string]any{"a": 7, "b": []any{
		map[string]any{"q": 1, "p": "one"}, map[string]any{"q": 2, "p": "two"}}}, "after": "z"})
	rc := l.NewRecord()
	if err := d.Decode(src, rc); err != nil {
		t.Fatal(err)
	}
	if got, want := string(rc.Values[0].Bytes), `{"a":7,"b":[{"p":"one","q":1},{"p":"two","q":2}]}`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := string(rc.Values[1].Bytes); got != "z" {
		t.Fatalf("after = %q", got)
	}
}

// TestNegativeBlockCount decodes arrays and maps written with negative block
// counts (count, then byte size), which hamba/avro does not produce.
func TestNegativeBlockCount(t *testing.T) {
	w := mustParse(t, rec("P", fld("a", `{"type":"array","items":"int"}`), fld("m", `{"type":"map","values":"int"}`), fld("s", `{"type":"array","items":"int"}`)))
	r := mustParse(t, rec("P", fld("a", `{"type":"array","items":"int"}`), fld("m", `{"type":"map","values":"int"}`)))
	l := mustLayout(t, r)
	d := mustDecoder(t, w, l)
	src := []byte{
		0x03, 0x04, 0x02, 0x04, // a: block of -2 items, 2 bytes: 1, 2
		0x02, 0x06, 0x00, // then block of 1 item: 3, end
		0x01, 0x04, 0x02, 'k', 0x0a, 0x00, // m: block of -1 item, 4 bytes... see below
		0x03, 0x04, 0x02, 0x04, 0x00, // s (skipped): -2 items, 2 bytes, end
	}
	// Fix m's block: -1 item with byte size 3: key "k" (2 bytes) + value 5 (1 byte).
	src[7], src[8] = 0x01, 0x06
	rc := l.NewRecord()
	if err := d.Decode(src, rc); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, appendObject(nil, keys(l), rc), `{"a":[1,2,3],"m":{"k":5}}`)
}

// TestMalformed feeds invalid bodies: every one must fail with ErrMalformed
// and none may panic.
func TestMalformed(t *testing.T) {
	w := mustParse(t, rec("P", fld("s", `"string"`), fld("i", `"int"`), fld("b", `"boolean"`), fld("u", `["null","long"]`),
		fld("a", `{"type":"array","items":"null"}`), fld("e", enumABC), fld("d", `"double"`)))
	l := mustLayout(t, w)
	d := mustDecoder(t, w, l)
	good := mustMarshal(t, w, map[string]any{"s": "abc", "i": 5, "b": true, "u": int64(3), "a": []any{nil, nil}, "e": "B", "d": 1.0})
	rc := l.NewRecord()
	if err := d.Decode(good, rc); err != nil {
		t.Fatalf("valid record: %v", err)
	}
	for n := range len(good) {
		if err := d.Decode(good[:n], rc); !errors.Is(err, ErrMalformed) {
			t.Errorf("prefix of %d/%d bytes: err = %v, want ErrMalformed", n, len(good), err)
		}
	}
	cases := []struct {
		note string
		src  []byte
	}{
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"negative string length", []byte{0x01}},
		{"string length beyond input", []byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 'a'}},
		{"varint longer than 10 bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{"int out of 32-bit range", []byte{0x00, 0x80, 0x80, 0x80, 0x80, 0x20}},
		{"boolean byte 2", []byte{0x00, 0x02, 0x02}},
		{"union index out of range", []byte{0x00, 0x02, 0x01, 0x04}},
		{"negative union index", []byte{0x00, 0x02, 0x01, 0x01}},
		{"huge array count of zero-size items", []byte{0x00, 0x02, 0x01, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"enum index out of range", []byte{0x00, 0x02, 0x01, 0x00, 0x00, 0x08}},
		{"double cut short", []byte{0x00, 0x02, 0x01, 0x00, 0x00, 0x02, 1, 2, 3}},
	}
	for _, c := range cases {
		err := d.Decode(c.src, rc)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", c.note, err)
		}
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: err %T is not a *DecodeError", c.note, err)
		}
	}
}

// TestZeroSizeItemBudget: many zero-byte items are bounded per record.
func TestZeroSizeItemBudget(t *testing.T) {
	w := mustParse(t, rec("P", fld("a", `{"type":"array","items":"null"}`)))
	l := mustLayout(t, w)
	d := mustDecoder(t, w, l)
	rc := l.NewRecord()
	ok := mustMarshal(t, w, map[string]any{"a": make([]any, 1000)})
	if err := d.Decode(ok, rc); err != nil {
		t.Fatalf("1000 nulls: %v", err)
	}
	if n := strings.Count(string(rc.Values[0].Bytes), "null"); n != 1000 {
		t.Fatalf("got %d nulls", n)
	}
	// Repeated blocks of 60000 nulls: each block header is 3 bytes.
	var src []byte
	for range 3 {
		src = append(src, 0xc0, 0xa9, 0x07) // zig-zag 60000
	}
	src = append(src, 0)
	if err := d.Decode(src, rc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("180000 nulls from 10 bytes: err = %v, want ErrMalformed", err)
	}
}

func TestDepthLimit(t *testing.T) {
	w := mustParse(t, `{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}`)
	l := mustLayout(t, w)
	d := mustDecoder(t, w, l)
	rc := l.NewRecord()
	src := append(bytesRepeat(0x02, 200), 0x00)
	if err := d.Decode(src, rc); !errors.Is(err, ErrMalformed) {
		t.Fatalf("200 levels: err = %v, want ErrMalformed", err)
	}
	src = append(bytesRepeat(0x02, 20), 0x00)
	if err := d.Decode(src, rc); err != nil {
		t.Fatalf("20 levels: %v", err)
	}
}

func bytesRepeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func TestLayout(t *testing.T) {
	l := mustLayout(t, cdrSchema(t))
	if len(l.Fields) != 15 {
		t.Fatalf("%d fields", len(l.Fields))
	}
	for _, c := range []struct {
		name     string
		kind     Kind
		nullable bool
	}{
		{"record_id", KindString, false}, {"service", KindEnum, false}, {"start_time", KindTimestampMillis, false},
		{"duration_s", KindInt, false}, {"roaming", KindBool, false}, {"visited_mcc", KindString, true}, {"charge", KindDouble, false},
	} {
		f, ok := l.Field(c.name)
		if !ok {
			t.Fatalf("no field %q", c.name)
		}
		if f.Kind != c.kind || f.Nullable != c.nullable || l.Fields[f.Index].Name != c.name {
			t.Errorf("%s: kind %v nullable %v index %d", c.name, f.Kind, f.Nullable, f.Index)
		}
	}
	if _, ok := l.Field("nope"); ok {
		t.Error("found a field that does not exist")
	}
	if _, err := NewLayout(mustParse(t, `"string"`)); err == nil {
		t.Error("NewLayout accepted a non-record schema")
	}
}

// TestDecoderConcurrent shares one Decoder between goroutines, each with its
// own Record (run with -race).
func TestDecoderConcurrent(t *testing.T) {
	s := cdrSchema(t)
	l := mustLayout(t, s)
	d := mustDecoder(t, s, l)
	src := mustMarshal(t, s, sampleCDR())
	done := make(chan error)
	for range 4 {
		go func() {
			rc := l.NewRecord()
			var err error
			for range 200 {
				if err = d.Decode(src, rc); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPromotedValues checks the Values views see (not only their JSON):
// int -> float rounds to float32 precision, int -> double is exact.
func TestPromotedValues(t *testing.T) {
	w := mustParse(t, rec("P", fld("f", `"int"`), fld("d", `"long"`), fld("l", `"int"`)))
	l := mustLayout(t, mustParse(t, rec("P", fld("f", `"float"`), fld("d", `"double"`), fld("l", `"long"`))))
	d := mustDecoder(t, w, l)
	rc := l.NewRecord()
	if err := d.Decode(mustMarshal(t, w, map[string]any{"f": 16777217, "d": int64(1<<53 + 1), "l": -3}), rc); err != nil {
		t.Fatal(err)
	}
	if got := rc.Values[0]; got.Kind != KindFloat || got.Float != 16777216 {
		t.Errorf("int->float = %+v, want 16777216", got)
	}
	if got := rc.Values[1]; got.Kind != KindDouble || got.Float != float64(1<<53) {
		t.Errorf("long->double = %+v", got)
	}
	if got := rc.Values[2]; got.Kind != KindLong || got.Int != -3 {
		t.Errorf("int->long = %+v", got)
	}
}

// TestBlockCountBeyondInput: a block count larger than the bytes left is
// rejected up front, before any item is read.
func TestBlockCountBeyondInput(t *testing.T) {
	w := mustParse(t, rec("P", fld("a", `{"type":"array","items":"int"}`)))
	l := mustLayout(t, w)
	d := mustDecoder(t, w, l)
	// count 2^40 then three items' worth of bytes.
	src := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02, 0x02, 0x04, 0x06}
	err := d.Decode(src, l.NewRecord())
	if !errors.Is(err, ErrMalformed) || !errors.Is(err, errBlockCount) {
		t.Fatalf("err = %v, want the block count rejected", err)
	}
}

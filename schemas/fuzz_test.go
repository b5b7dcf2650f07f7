package schemas

import (
	"context"
	"encoding/json"
	"math/big"
	"os"
	"testing"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
)

func richSchemas(t testing.TB) (writer, reader avro.Schema) {
	t.Helper()
	w, err := ParseFile(os.DirFS("testdata"), "rich_writer.avsc")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseFile(os.DirFS("testdata"), "rich_reader.avsc")
	if err != nil {
		t.Fatal(err)
	}
	return w, r
}

func richValue() map[string]any {
	hop := func(node string, us int64) map[string]any { return map[string]any{"at": us, "node": node} }
	inner := map[string]any{
		"id": "inner", "n": -1, "gone": map[string]any{}, "kind": "X", "f": float32(-0.5),
		"tags": []any{}, "attrs": map[string]any{}, "loc": nil, "u": nil,
		"fx": [4]byte{9, 9, 9, 9}, "amount": big.NewRat(0, 1), "next": nil, "day": 0, "ok": false,
	}
	return map[string]any{
		"id": "r-1", "n": 42,
		"gone": map[string]any{"g": []any{nil, map[string]any{"double": 1.5}}},
		"kind": "B", "f": float32(2.25), "tags": []any{"t1", "t\"2"}, "attrs": map[string]any{"a": 1, "b": -2},
		"loc": map[string]any{"sluice.test.Loc": map[string]any{"cell": "c-7", "lat": float32(48.5),
			"hops": []any{hop("n1", 1_764_064_800_123_456), hop("n2", -1)}}},
		"u":  map[string]any{"string": "ünïcode"},
		"fx": [4]byte{1, 2, 3, 4}, "amount": big.NewRat(-123456789, 1000),
		"next": map[string]any{"sluice.test.Rich": inner},
		"day":  20782, "ok": true,
	}
}

// TestRichPair decodes the fuzz corpus' seed record, checking the
// evolution of every kind of field at once.
func TestRichPair(t *testing.T) {
	w, r := richSchemas(t)
	l := mustLayout(t, r)
	d := mustDecoder(t, w, l)
	rc := l.NewRecord()
	if err := d.Decode(mustMarshal(t, w, richValue()), rc); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, appendObject(nil, keys(l), rc), `{"ok":true,"id":"ci0x","n":42,"kind":"B","f":2.25,
		"tags":["dDE=","dCIy"],"attrs":{"a":1,"b":-2},
		"loc":{"hops":[{"node":"n1","at":"2025-11-25T10:00:00.123Z"},{"node":"n2","at":"1969-12-31T23:59:59.999Z"}],"cell":"c-7","alt":-1},
		"u":"ünïcode","fx":"AQIDBA==","amount":"-123456.789",
		"next":{"ok":false,"id":"aW5uZXI=","n":-1,"kind":"OTHER","f":-0.5,"tags":[],"attrs":{},"loc":null,"u":null,
			"fx":"CQkJCQ==","amount":"0.000","next":null,"day":"1970-01-01","added":{"k":"v"}},
		"day":"2026-11-25","added":{"k":"v"}}`)
}

// FuzzDecode feeds arbitrary bytes to a Codec (auto framing, catalog ids)
// and to a Decoder over a schema pair that exercises every resolution rule.
// Neither may panic; a successful decode must yield valid JSON; scratch
// memory must stay within a fixed multiple of the input size.
func FuzzDecode(f *testing.F) {
	w, r := richSchemas(f)
	rl := mustLayout(f, r)
	rich := mustDecoder(f, w, rl)
	richKeys := keys(rl)
	seed := mustMarshal(f, w, richValue())
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(framed(11, seed))

	cdrS := cdrSchema(f)
	codec, err := NewCodec("cdr", FramingAuto, []SchemaVersion{
		{Version: 1, ID: 7, Schema: cdrS},
		{Version: 2, ID: 8, Schema: cdrS},
	}, nil)
	if err != nil {
		f.Fatal(err)
	}
	cdrKeys := keys(codec.Layout())
	plain := mustMarshal(f, cdrS, sampleCDR())
	f.Add(plain)
	f.Add(framed(7, plain))
	f.Add(framed(8, plain[:20]))
	f.Add([]byte{0, 0, 0, 0, 99, 1, 2, 3})

	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(rc *Record, keys [][]byte) {
			out := appendObject(nil, keys, rc)
			if !json.Valid(out) {
				t.Fatalf("decoded record is not valid JSON: %s", out)
			}
			if limit := 64*len(data) + 4096; cap(rc.scratch) > 2*limit {
				t.Fatalf("scratch grew to %d bytes for %d input bytes", cap(rc.scratch), len(data))
			}
		}
		rc := codec.Layout().NewRecord()
		if err := codec.Decode(context.Background(), data, rc); err == nil {
			check(rc, cdrKeys)
		}
		rr := rl.NewRecord()
		if err := rich.Decode(data, rr); err == nil {
			check(rr, richKeys)
		}
	})
}

// FuzzAppendJSONString: the output is one valid JSON string that decodes to
// the input with each invalid UTF-8 byte replaced by U+FFFD.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"b\`, "\x00\x1f\x7f", "héllo 世界", "\xff\xfe", "\xed\xa0\x80", "a\u2028b", "abcdefgh\"ijklmnop\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := AppendJSONString([]byte("prefix"), in)
		if string(out[:6]) != "prefix" {
			t.Fatal("dst prefix clobbered")
		}
		out = out[6:]
		if !utf8.Valid(out) {
			t.Fatalf("output is not valid UTF-8: %q", out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("invalid JSON %q: %v", out, err)
		}
		if want := string([]rune(string(in))); got != want {
			t.Fatalf("round trip of %q: got %q, want %q", in, got, want)
		}
	})
}

// TestRichPairAllocs: nested, reordered, defaulted and decimal fields
// allocate nothing once the Record's scratch has grown.
func TestRichPairAllocs(t *testing.T) {
	w, r := richSchemas(t)
	l := mustLayout(t, r)
	d := mustDecoder(t, w, l)
	src := mustMarshal(t, w, richValue())
	rc := l.NewRecord()
	ks := keys(l)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(200, func() {
		if err := d.Decode(src, rc); err != nil {
			t.Fatal(err)
		}
		buf = appendObject(buf[:0], ks, rc)
	})
	if allocs != 0 {
		t.Fatalf("rich record allocated %.1f times per decode, want 0", allocs)
	}
}

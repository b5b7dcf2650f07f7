package schemas

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct{ note, in, want string }{
		{"empty", "", `""`},
		{"plain", "hello world", `"hello world"`},
		{"long plain", "abcdefghijklmnopqrstuvwxyz0123456789", `"abcdefghijklmnopqrstuvwxyz0123456789"`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"quote in an 8-byte chunk tail", `abcdefgh"ij`, `"abcdefgh\"ij"`},
		{"control characters", "\n\r\t\b\f\x00\x1f", `"\n\r\t\b\f\u0000\u001f"`},
		{"DEL is literal", "\x7f", "\"\x7f\""},
		{"multi-byte UTF-8", "héllo 世界 🚀", `"héllo 世界 🚀"`},
		{"invalid byte", "a\xffb", `"a\ufffdb"`},
		{"truncated sequence", "ab\xe4\xb8", `"ab\ufffd\ufffd"`},
		{"surrogate half", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"overlong encoding", "\xc0\xaf", `"\ufffd\ufffd"`},
		{"line and paragraph separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"html is literal", "<a&b>", `"<a&b>"`},
	}
	for _, tc := range tests {
		if got := string(AppendJSONString([]byte("x"), []byte(tc.in))); got != "x"+tc.want {
			t.Errorf("%s: got %s, want %s", tc.note, got[1:], tc.want)
		}
	}
	if got := string(AppendJSONKey(nil, `we"ird`)); got != `"we\"ird":` {
		t.Errorf("AppendJSONKey = %s", got)
	}
}

func TestAppendJSONValue(t *testing.T) {
	tests := []struct {
		note string
		v    Value
		want string
	}{
		{"null", Value{Kind: KindNull}, `null`},
		{"true", Value{Kind: KindBool, Int: 1}, `true`},
		{"false", Value{Kind: KindBool}, `false`},
		{"int", Value{Kind: KindInt, Int: -7}, `-7`},
		{"long max", Value{Kind: KindLong, Int: math.MaxInt64}, `9223372036854775807`},
		{"float32 precision", Value{Kind: KindFloat, Float: float64(float32(0.1))}, `0.1`},
		{"double", Value{Kind: KindDouble, Float: 0.1}, `0.1`},
		{"double tiny", Value{Kind: KindDouble, Float: 1e-7}, `1e-7`},
		{"double huge", Value{Kind: KindDouble, Float: 1e21}, `1e+21`},
		{"double integral", Value{Kind: KindDouble, Float: 100}, `100`},
		{"negative zero", Value{Kind: KindDouble, Float: math.Copysign(0, -1)}, `-0`},
		{"NaN", Value{Kind: KindDouble, Float: math.NaN()}, `null`},
		{"-Inf", Value{Kind: KindFloat, Float: math.Inf(-1)}, `null`},
		{"string", Value{Kind: KindString, Bytes: []byte("a\"b")}, `"a\"b"`},
		{"bytes", Value{Kind: KindBytes, Bytes: []byte{0xff, 0x00}}, `"/wA="`},
		{"fixed", Value{Kind: KindFixed, Bytes: []byte("abc")}, `"YWJj"`},
		{"enum", Value{Kind: KindEnum, Int: 2, Bytes: []byte("DATA")}, `"DATA"`},
		{"timestamp millis", Value{Kind: KindTimestampMillis, Int: 1795600800123}, `"2026-11-25T10:00:00.123Z"`},
		{"timestamp micros", Value{Kind: KindTimestampMicros, Int: 1795600800123456}, `"2026-11-25T10:00:00.123456Z"`},
		{"timestamp epoch", Value{Kind: KindTimestampMillis}, `"1970-01-01T00:00:00.000Z"`},
		{"timestamp year 0", Value{Kind: KindTimestampMillis, Int: -62167219200000}, `"0000-01-01T00:00:00.000Z"`},
		{"timestamp before year 0 is a number", Value{Kind: KindTimestampMillis, Int: -62167219200001}, `-62167219200001`},
		{"timestamp after 9999 is a number", Value{Kind: KindTimestampMicros, Int: 253402300800000000}, `253402300800000000`},
		{"timestamp min int64", Value{Kind: KindTimestampMicros, Int: math.MinInt64}, `-9223372036854775808`},
		{"date", Value{Kind: KindDate, Int: 20782}, `"2026-11-25"`},
		{"date leap day", Value{Kind: KindDate, Int: 11016}, `"2000-02-29"`},
		{"json", Value{Kind: KindJSON, Bytes: []byte(`{"a":[1]}`)}, `{"a":[1]}`},
		{"json empty", Value{Kind: KindJSON}, `null`},
		{"unknown kind", Value{Kind: Kind(200)}, `null`},
	}
	for _, tc := range tests {
		got := string(AppendJSONValue(nil, &tc.v))
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.note, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%s: invalid JSON %s", tc.note, got)
		}
	}
}

// TestTimestampsMatchTime compares the hand-written calendar arithmetic
// with package time over random instants in years 0000-9999.
func TestTimestampsMatchTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
	for range 20000 {
		us := lo + rng.Int64N(hi-lo+1)
		tm := time.UnixMicro(us).UTC()
		v := Value{Kind: KindTimestampMicros, Int: us}
		if got, want := string(AppendJSONValue(nil, &v)), `"`+tm.Format("2006-01-02T15:04:05.000000Z")+`"`; got != want {
			t.Fatalf("micros %d: got %s want %s", us, got, want)
		}
		ms := floorDiv(us, 1000)
		v = Value{Kind: KindTimestampMillis, Int: ms}
		if got, want := string(AppendJSONValue(nil, &v)), `"`+time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")+`"`; got != want {
			t.Fatalf("millis %d: got %s want %s", ms, got, want)
		}
		days := floorDiv(us, 86_400_000_000)
		v = Value{Kind: KindDate, Int: days}
		if got, want := string(AppendJSONValue(nil, &v)), `"`+time.Unix(days*86400, 0).UTC().Format("2006-01-02")+`"`; got != want {
			t.Fatalf("days %d: got %s want %s", days, got, want)
		}
	}
}

// TestFloatsMatchEncodingJSON: doubles format exactly as encoding/json does.
func TestFloatsMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		f := math.Float64frombits(rng.Uint64())
		if i%2 == 0 {
			f = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		want, _ := json.Marshal(f)
		v := Value{Kind: KindDouble, Float: f}
		if got := AppendJSONValue(nil, &v); string(got) != string(want) {
			t.Fatalf("%v: got %s want %s", f, got, want)
		}
		f32 := float32(f)
		if math.IsInf(float64(f32), 0) {
			continue
		}
		want, _ = json.Marshal(f32)
		v = Value{Kind: KindFloat, Float: float64(f32)}
		if got := AppendJSONValue(nil, &v); string(got) != string(want) {
			t.Fatalf("float32 %v: got %s want %s", f32, got, want)
		}
	}
}

func TestAppendDecimal(t *testing.T) {
	tests := []struct {
		in    []byte
		scale int
		want  string
	}{
		{nil, 0, "0"},
		{nil, 2, "0.00"},
		{[]byte{0x30, 0x39}, 2, "123.45"},
		{[]byte{0xcf, 0xc7}, 2, "-123.45"},
		{[]byte{0x05}, 3, "0.005"},
		{[]byte{0xff}, 0, "-1"},
		{[]byte{0x80, 0, 0, 0, 0, 0, 0, 0}, 0, "-9223372036854775808"},
		{[]byte{0x00, 0x80, 0, 0, 0, 0, 0, 0, 0}, 0, "9223372036854775808"},
		{[]byte{0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0, "-9223372036854775809"},
		{[]byte{0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 1, "34028236692093846346337460743176821145.6"},
	}
	for _, tc := range tests {
		got, err := appendDecimal(nil, tc.in, tc.scale)
		if err != nil || string(got) != tc.want {
			t.Errorf("appendDecimal(%x, %d) = %s, %v; want %s", tc.in, tc.scale, got, err, tc.want)
		}
	}
	if _, err := appendDecimal(nil, make([]byte, maxDecimalBytes+1), 0); err == nil {
		t.Error("accepted an oversized decimal")
	}
}

package masking

import (
	"strings"
	"testing"
)

var (
	sinkBytes []byte
	sinkInt   int64
	sinkFloat float64
)

// hotCase is one op's per-record call, shared by the allocation test and the
// benchmarks.
type hotCase struct {
	name string
	spec string
	call func(t *Transform, dst []byte) []byte
}

var longText = []byte(strings.Repeat("Musterstraße 1, 10115 Berlin; ", 30)) // 930 bytes

var hotCases = []hotCase{
	{"keep/string", `{"op":"keep"}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(msisdn)) }},
	{"redact/null", `{"op":"redact"}`, func(t *Transform, dst []byte) []byte {
		if t.IsNull() {
			return dst
		}
		return t.AppendString(dst, []byte(msisdn))
	}},
	{"redact/text", `{"op":"redact","replacement":"REDACTED"}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(msisdn)) }},
	{"pseudonymise/msisdn", `{"op":"pseudonymise"}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(msisdn)) }},
	{"pseudonymise/imsi-long", `{"op":"pseudonymise","prefix":"p_"}`, func(t *Transform, dst []byte) []byte { return t.AppendInt(dst, 262011234567890) }},
	{"pseudonymise/930B-text", `{"op":"pseudonymise"}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, longText) }},
	{"pseudonymise-format/msisdn-keep2", `{"op":"pseudonymise-format","format":"msisdn","keep_digits":2}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(msisdn)) }},
	{"pseudonymise-format/imsi-keep5", `{"op":"pseudonymise-format","format":"imsi","keep_digits":5}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(imsi)) }},
	{"pseudonymise-format/imei-keep8-luhn", `{"op":"pseudonymise-format","format":"imei","keep_digits":8}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(imei)) }},
	{"pseudonymise-format/iccid-long", `{"op":"pseudonymise-format","format":"iccid","keep_digits":2}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(iccid)) }},
	{"pseudonymise-format/msisdn-int", `{"op":"pseudonymise-format","format":"msisdn","keep_digits":2}`, func(t *Transform, dst []byte) []byte { return t.AppendInt(dst, 4915112345678) }},
	{"keep-prefix/imei-tac", `{"op":"keep-prefix","n":8}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(imei)) }},
	{"keep-prefix/imei-fill", `{"op":"keep-prefix","n":8,"fill":"*"}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(imei)) }},
	{"keep-prefix/int", `{"op":"keep-prefix","n":8}`, func(t *Transform, dst []byte) []byte { return t.AppendInt(dst, 490154203237518) }},
	{"keep-suffix/msisdn-fill", `{"op":"keep-suffix","n":4,"fill":"•"}`, func(t *Transform, dst []byte) []byte { return t.AppendString(dst, []byte(msisdn)) }},
	{"generalise-location/1km", `{"op":"generalise-location","meters":1000}`, func(t *Transform, dst []byte) []byte {
		lat, lon := t.LatLon(52.520008, 13.404954)
		sinkFloat = lat + lon
		return dst
	}},
	{"generalise-time/hour", `{"op":"generalise-time","unit":"hour"}`, func(t *Transform, dst []byte) []byte {
		sinkInt = t.Int(1779025527891)
		return dst
	}},
	{"bucket/width-int", `{"op":"bucket","width":10}`, func(t *Transform, dst []byte) []byte {
		sinkInt = t.Int(37)
		return dst
	}},
	{"bucket/width-float", `{"op":"bucket","width":0.25}`, func(t *Transform, dst []byte) []byte {
		sinkFloat = t.Float(0.8731)
		return dst
	}},
	{"bucket/bounds-int", `{"op":"bucket","bounds":[0,18,25,35,50,65]}`, func(t *Transform, dst []byte) []byte {
		sinkInt = t.Int(42)
		return dst
	}},
}

// TestHotPathAllocs pins zero allocations for every op's per-record call
// with a pre-sized buffer.
func TestHotPathAllocs(t *testing.T) {
	key := partnerKey(t, "mvno-a")
	for _, hc := range hotCases {
		t.Run(hc.name, func(t *testing.T) {
			tr := compileJSON(t, hc.spec, key)
			dst := make([]byte, 0, 4096)
			allocs := testing.AllocsPerRun(200, func() {
				sinkBytes = hc.call(tr, dst[:0])
			})
			if allocs != 0 {
				t.Fatalf("%s: %v allocs per call, want 0", hc.name, allocs)
			}
		})
	}
}

func BenchmarkOps(b *testing.B) {
	key := partnerKey(b, "mvno-a")
	for _, hc := range hotCases {
		b.Run(hc.name, func(b *testing.B) {
			tr := compileJSON(b, hc.spec, key)
			dst := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				dst = hc.call(tr, dst[:0])
			}
			sinkBytes = dst
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	key := partnerKey(b, "mvno-a")
	for _, spec := range []Spec{
		{Op: OpKeepPrefix, N: 8},
		{Op: OpPseudonymise},
		{Op: OpPseudonymiseFormat, Format: FormatMSISDN, KeepDigits: 2},
	} {
		b.Run(string(spec.Op), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(spec, key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDeriveKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DeriveKey(testSecret, "mvno-a", ""); err != nil {
			b.Fatal(err)
		}
	}
}

package masking

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

// FuzzParseSpec: any JSON either fails with ErrInvalidSpec or yields a spec
// that validates, round-trips through Map, compiles, and whose transform
// applies to every input kind it accepts without panicking.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		`{"op":"keep"}`, `{"op":"drop"}`, `{"op":"redact","replacement":null}`, `{"op":"redact","replacement":"x"}`,
		`{"op":"pseudonymise","prefix":"p_"}`, `{"op":"pseudonymise-format","format":"imei","keep_digits":8}`,
		`{"op":"keep-prefix","n":8,"fill":"*"}`, `{"op":"keep-suffix","n":4}`,
		`{"op":"generalise-location","meters":1000,"axis":"lat","pair":"lon"}`, `{"op":"generalise-time","unit":"day"}`,
		`{"op":"bucket","width":0.1}`, `{"op":"bucket","bounds":[0,18,25]}`, `{"op":"bucket","width":1e308}`,
		`{"op":"keep-prefix","n":1e400}`, `{"op":"bucket","bounds":[-1e308,1e308]}`, `{}`, `[]`, `"x"`, `{"op":null}`,
	} {
		f.Add([]byte(s))
	}
	key := partnerKey(f, "mvno-a")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpecJSON(data)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed spec does not validate: %v", err)
		}
		back, err := ParseSpec(s.Map())
		if err != nil || !reflect.DeepEqual(normalise(back), normalise(s)) {
			t.Fatalf("Map round trip: %+v, %v; want %+v", back, err, s)
		}
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("marshal %+v: %v", s, err)
		}
		tr, err := Compile(s, key)
		if err != nil {
			t.Fatalf("Compile(%+v): %v", s, err)
		}
		_ = tr.String()
		for _, in := range []Kind{KindString, KindInt, KindFloat} {
			out, err := tr.OutputKind(in)
			if err != nil {
				continue
			}
			switch {
			case in == KindString && out == KindString:
				tr.AppendString(nil, []byte("+49 151 12345678"))
				tr.AppendString(nil, data)
			case in == KindInt && out == KindString:
				tr.AppendInt(nil, math.MinInt64)
				tr.AppendInt(nil, 490154203237518)
			case in == KindFloat && out == KindString:
				tr.AppendFloat(nil, math.NaN())
			case in == KindInt && out == KindInt:
				for _, v := range []int64{math.MinInt64, -1, 0, 1, math.MaxInt64} {
					tr.Int(v)
				}
			case in == KindFloat && out == KindFloat:
				for _, v := range []float64{math.Inf(-1), -1e308, math.Copysign(0, -1), 0.3, 1e308, math.Inf(1), math.NaN()} {
					tr.Float(v)
					tr.LatLon(v, v)
				}
			}
		}
	})
}

var fuzzFormats = [...]Format{FormatDigits, FormatMSISDN, FormatIMSI, FormatIMEI, FormatICCID}

// FuzzFormatPreserving: for any input, pseudonymise-format keeps the length
// and leaves separators in place; for digit input it outputs digits only,
// keeps the requested prefix, produces a valid Luhn digit where the format
// has one, and enciphers the free digits exactly as literal FF1 does.
func FuzzFormatPreserving(f *testing.F) {
	f.Add([]byte(msisdn), uint8(2), uint8(1), false)
	f.Add([]byte(imei), uint8(8), uint8(3), false)
	f.Add([]byte(iccid), uint8(4), uint8(4), false)
	f.Add([]byte("+49 (151) 1234-5678"), uint8(2), uint8(1), true)
	f.Add([]byte("12345"), uint8(0), uint8(0), false)
	f.Add([]byte("\xff\x00abc"), uint8(0), uint8(0), true)
	key := partnerKey(f, "mvno-a")
	var transforms [len(fuzzFormats)][]*Transform
	for i, format := range fuzzFormats {
		maxKeep, _ := maxKeepDigits(format)
		for keep := 0; keep <= maxKeep; keep++ {
			transforms[i] = append(transforms[i], MustCompile(Spec{Op: OpPseudonymiseFormat, Format: format, KeepDigits: keep}, key))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, keepSel, formatSel uint8, raw bool) {
		fi := int(formatSel) % len(fuzzFormats)
		tr := transforms[fi][int(keepSel)%len(transforms[fi])]
		in := data
		if !raw {
			in = make([]byte, len(data))
			for i, c := range data {
				in[i] = '0' + c%10
			}
		}
		out := tr.AppendString(nil, in)
		if again := tr.AppendString(make([]byte, 0, 1), in); string(again) != string(out) {
			t.Fatalf("not deterministic: %q then %q", out, again)
		}
		if len(out) != len(in) {
			t.Fatalf("length %d -> %d", len(in), len(out))
		}
		for i := range in {
			if fpeSeparator(in[i]) != fpeSeparator(out[i]) || fpeSeparator(in[i]) && in[i] != out[i] {
				t.Fatalf("byte %d: %q -> %q", i, in[i], out[i])
			}
			if !fpeSeparator(out[i]) && (out[i] < '0' || out[i] > '9') {
				t.Fatalf("byte %d: %q is not a digit", i, out[i])
			}
		}
		if raw {
			return
		}
		// Digit input: check against the documented rule and literal FF1.
		n := len(in)
		body := n
		check := hasCheckDigit(tr.format, n)
		if check {
			body--
		}
		if body < MinFreeDigits || n > maxFPEDigits || body-min(tr.spec.KeepDigits, body-MinFreeDigits) > MaxFreeDigits {
			for i, c := range out {
				if c != '0' {
					t.Fatalf("unencipherable %q: byte %d is %q, want masked", in, i, c)
				}
			}
			return
		}
		keep := min(tr.spec.KeepDigits, body-MinFreeDigits)
		if string(out[:keep]) != string(in[:keep]) {
			t.Fatalf("prefix %q lost: %q -> %q", in[:keep], in, out)
		}
		want := ff1Reference(tr.secrets.block, in[keep:body], in[:keep])
		if string(out[keep:body]) != string(want) {
			t.Fatalf("free digits %q -> %q, literal FF1 gives %q", in[keep:body], out[keep:body], want)
		}
		if check && !luhnValid(out) {
			t.Fatalf("%q -> %q fails the Luhn check", in, out)
		}
	})
}

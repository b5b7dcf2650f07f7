package masking

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Realistic identifiers used throughout.
const (
	imsi   = "262011234567890" // MCC 262 (DE), MNC 01
	msisdn = "4915112345678"   // +49 151 12345678
	imei   = "490154203237518" // valid Luhn, TAC 49015420
	iccid  = "89310410106543789305"
)

var testSecret = []byte("sluice-test-server-secret-0123456789abcdef")

func partnerKey(t testing.TB, partner string) []byte {
	t.Helper()
	k, err := DeriveKey(testSecret, partner, "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func compileJSON(t testing.TB, spec string, key []byte) *Transform {
	t.Helper()
	s, err := ParseSpecJSON([]byte(spec))
	if err != nil {
		t.Fatalf("ParseSpecJSON(%s): %v", spec, err)
	}
	tr, err := Compile(s, key)
	if err != nil {
		t.Fatalf("Compile(%s): %v", spec, err)
	}
	return tr
}

// apply runs tr on a Go value the way a view does: it asks OutputKind, then
// calls the matching method. The result is a string, int64, float64 or nil
// (null); dropped values return errDropped.
func apply(t testing.TB, tr *Transform, in any) any {
	t.Helper()
	var kind Kind
	switch in.(type) {
	case string:
		kind = KindString
	case int64:
		kind = KindInt
	case float64:
		kind = KindFloat
	default:
		t.Fatalf("apply: unsupported input %T", in)
	}
	out, err := tr.OutputKind(kind)
	if err != nil {
		t.Fatalf("%s.OutputKind(%s): %v", tr, kind, err)
	}
	switch out {
	case KindNone:
		if !tr.Dropped() {
			t.Fatalf("%s: OutputKind none but not Dropped", tr)
		}
		return errDropped
	case KindNull:
		if !tr.IsNull() {
			t.Fatalf("%s: OutputKind null but not IsNull", tr)
		}
		return nil
	case KindString:
		switch v := in.(type) {
		case string:
			return string(tr.AppendString(nil, []byte(v)))
		case int64:
			return string(tr.AppendInt(nil, v))
		case float64:
			return string(tr.AppendFloat(nil, v))
		}
	case KindInt:
		return tr.Int(in.(int64))
	case KindFloat:
		return tr.Float(in.(float64))
	}
	t.Fatalf("%s: unexpected output kind %s", tr, out)
	return nil
}

var errDropped = errors.New("dropped")

// TestDeterministicOps pins the output of every unkeyed op: JSON spec in,
// value in, value out.
func TestDeterministicOps(t *testing.T) {
	for _, tc := range []struct {
		note string
		spec string
		in   any
		want any
	}{
		{"keep string", `{"op":"keep"}`, msisdn, msisdn},
		{"keep int", `{"op":"keep"}`, int64(42), int64(42)},
		{"keep float", `{"op":"keep"}`, 0.25, 0.25},
		{"drop", `{"op":"drop"}`, imsi, errDropped},
		{"redact to null", `{"op":"redact"}`, msisdn, nil},
		{"redact explicit null", `{"op":"redact","replacement":null}`, int64(7), nil},
		{"redact to text", `{"op":"redact","replacement":"REDACTED"}`, msisdn, "REDACTED"},
		{"redact int to text", `{"op":"redact","replacement":"***"}`, int64(262011234567890), "***"},
		{"redact float to text", `{"op":"redact","replacement":""}`, 52.52, ""},

		{"IMEI to TAC", `{"op":"keep-prefix","n":8}`, imei, "49015420"},
		{"IMEI to TAC, masked", `{"op":"keep-prefix","n":8,"fill":"*"}`, imei, "49015420*******"},
		{"IMEI long to TAC", `{"op":"keep-prefix","n":8}`, int64(490154203237518), "49015420"},
		{"IMSI keeps MCC+MNC", `{"op":"keep-prefix","n":5,"fill":"x"}`, imsi, "26201xxxxxxxxxx"},
		{"prefix longer than value", `{"op":"keep-prefix","n":40,"fill":"*"}`, msisdn, msisdn},
		{"prefix counts runes", `{"op":"keep-prefix","n":2,"fill":"*"}`, "Jürgen", "Jü****"},
		{"prefix of empty", `{"op":"keep-prefix","n":3,"fill":"*"}`, "", ""},
		{"MSISDN last 4", `{"op":"keep-suffix","n":4}`, msisdn, "5678"},
		{"MSISDN last 4, multibyte fill", `{"op":"keep-suffix","n":4,"fill":"•"}`, msisdn, "•••••••••5678"},
		{"negative int suffix", `{"op":"keep-suffix","n":3,"fill":"#"}`, int64(-12345), "###345"},
		{"suffix longer than value", `{"op":"keep-suffix","n":99}`, "abc", "abc"},
		{"suffix of invalid UTF-8 counts bytes", `{"op":"keep-suffix","n":1,"fill":"*"}`, "a\xffb", "**b"},

		{"time to second", `{"op":"generalise-time","unit":"second"}`, int64(1779025527891), int64(1779025527000)},
		{"time to minute", `{"op":"generalise-time","unit":"minute"}`, int64(1779025527891), int64(1779025500000)},
		{"time to hour", `{"op":"generalise-time","unit":"hour"}`, int64(1779025527891), int64(1779022800000)},
		{"time to UTC day", `{"op":"generalise-time","unit":"day"}`, int64(1779025527891), int64(1778976000000)},
		{"pre-epoch floors down", `{"op":"generalise-time","unit":"second"}`, int64(-1), int64(-1000)},
		{"pre-epoch day", `{"op":"generalise-time","unit":"day"}`, int64(-86400001), int64(-172800000)},
		{"min int does not overflow", `{"op":"generalise-time","unit":"day"}`, int64(math.MinInt64), int64(math.MinInt64)},

		{"bucket int width", `{"op":"bucket","width":10}`, int64(37), int64(30)},
		{"bucket int negative floors", `{"op":"bucket","width":10}`, int64(-3), int64(-10)},
		{"bucket int exact", `{"op":"bucket","width":10}`, int64(40), int64(40)},
		{"bucket float width", `{"op":"bucket","width":0.5}`, 2.75, 2.5},
		{"bucket float on a boundary", `{"op":"bucket","width":0.1}`, 0.3, 0.3},
		{"bucket float tenth", `{"op":"bucket","width":0.1}`, 0.37, 0.3},
		{"bucket float negative", `{"op":"bucket","width":0.1}`, -0.05, -0.1},
		{"bucket float no negative zero", `{"op":"bucket","width":1}`, math.Copysign(0, -1), 0.0},
		{"bucket float megabytes", `{"op":"bucket","width":1000000}`, 1234567.8, 1000000.0},
		{"bucket bounds age", `{"op":"bucket","bounds":[0,18,25,35,50,65]}`, int64(42), int64(35)},
		{"bucket bounds on bound", `{"op":"bucket","bounds":[0,18,25,35,50,65]}`, int64(18), int64(18)},
		{"bucket bounds above last", `{"op":"bucket","bounds":[0,18,25,35,50,65]}`, int64(90), int64(65)},
		{"bucket bounds below first clamps", `{"op":"bucket","bounds":[0,18,25,35,50,65]}`, int64(-5), int64(0)},
		{"bucket bounds float", `{"op":"bucket","bounds":[0,0.5,0.9]}`, 0.93, 0.9},
		{"bucket bounds int bounds on float", `{"op":"bucket","bounds":[0,18,25]}`, 17.9, 0.0},
		{"bucket fraud score", `{"op":"bucket","width":0.25}`, 0.8731, 0.75},
	} {
		t.Run(tc.note, func(t *testing.T) {
			tr := compileJSON(t, tc.spec, nil)
			got := apply(t, tr, tc.in)
			if got != tc.want {
				t.Fatalf("%s on %#v = %#v, want %#v", tr, tc.in, got, tc.want)
			}
			if f, ok := got.(float64); ok && f == 0 && math.Signbit(f) {
				t.Fatalf("%s on %#v = -0", tr, tc.in)
			}
		})
	}
}

// TestOutputKind pins which kinds each op takes and what it makes of them,
// the table the gateway derives view schemas from.
func TestOutputKind(t *testing.T) {
	key := partnerKey(t, "mvno-a")
	const bad = Kind(255)
	for _, tc := range []struct {
		note             string
		spec             string
		str, ints, float Kind
	}{
		{"keep", `{"op":"keep"}`, KindString, KindInt, KindFloat},
		{"drop", `{"op":"drop"}`, KindNone, KindNone, KindNone},
		{"redact null", `{"op":"redact"}`, KindNull, KindNull, KindNull},
		{"redact text", `{"op":"redact","replacement":"x"}`, KindString, KindString, KindString},
		{"pseudonymise", `{"op":"pseudonymise"}`, KindString, KindString, bad},
		{"pseudonymise-format", `{"op":"pseudonymise-format","format":"imsi"}`, KindString, KindString, bad},
		{"keep-prefix", `{"op":"keep-prefix","n":3}`, KindString, KindString, bad},
		{"keep-suffix", `{"op":"keep-suffix","n":3}`, KindString, KindString, bad},
		{"generalise-location", `{"op":"generalise-location","meters":500}`, bad, bad, KindFloat},
		{"generalise-time", `{"op":"generalise-time","unit":"hour"}`, bad, KindInt, bad},
		{"bucket int width", `{"op":"bucket","width":5}`, bad, KindInt, KindFloat},
		{"bucket fractional width", `{"op":"bucket","width":0.5}`, bad, bad, KindFloat},
		{"bucket fractional bounds", `{"op":"bucket","bounds":[0,0.5]}`, bad, bad, KindFloat},
	} {
		t.Run(tc.note, func(t *testing.T) {
			tr := compileJSON(t, tc.spec, key)
			for in, want := range map[Kind]Kind{KindString: tc.str, KindInt: tc.ints, KindFloat: tc.float} {
				got, err := tr.OutputKind(in)
				if want == bad {
					if !errors.Is(err, ErrUnsupportedKind) {
						t.Errorf("OutputKind(%s) = %s, %v; want ErrUnsupportedKind", in, got, err)
					}
					continue
				}
				if err != nil || got != want {
					t.Errorf("OutputKind(%s) = %s, %v; want %s", in, got, err, want)
				}
			}
			if _, err := tr.OutputKind(KindNull); !errors.Is(err, ErrUnsupportedKind) {
				t.Errorf("OutputKind(null) err = %v, want ErrUnsupportedKind", err)
			}
		})
	}
}

// TestMisuseFailsClosed calls methods that do not apply: they must never
// return the input in clear.
func TestMisuseFailsClosed(t *testing.T) {
	key := partnerKey(t, "mvno-a")
	for _, spec := range []string{
		`{"op":"drop"}`, `{"op":"redact"}`, `{"op":"generalise-time","unit":"day"}`,
		`{"op":"generalise-location","meters":100,"axis":"lon"}`, `{"op":"bucket","width":0.5}`,
		`{"op":"pseudonymise"}`, `{"op":"pseudonymise-format"}`, `{"op":"keep-prefix","n":2}`,
	} {
		tr := compileJSON(t, spec, key)
		if k, _ := tr.OutputKind(KindString); k != KindString {
			if got := tr.AppendString(nil, []byte(msisdn)); len(got) != 0 {
				t.Errorf("%s: AppendString = %q, want nothing", tr, got)
			}
		}
		if k, _ := tr.OutputKind(KindInt); k != KindString {
			if got := tr.AppendInt(nil, 4915112345678); len(got) != 0 {
				t.Errorf("%s: AppendInt = %q, want nothing", tr, got)
			}
		}
		if k, _ := tr.OutputKind(KindInt); k != KindInt {
			if got := tr.Int(4915112345678); got != 0 {
				t.Errorf("%s: Int = %d, want 0", tr, got)
			}
		}
		if k, _ := tr.OutputKind(KindFloat); k != KindString {
			if got := tr.AppendFloat(nil, 52.52); len(got) != 0 {
				t.Errorf("%s: AppendFloat = %q, want nothing", tr, got)
			}
		}
		if tr.Spec().Axis == AxisLon {
			if got := tr.Float(13.4); got != 0 {
				t.Errorf("%s: Float on a longitude = %v, want 0", tr, got)
			}
		}
		if tr.Op() != OpGeneraliseLocation {
			if lat, lon := tr.LatLon(52.52, 13.4); !math.IsNaN(lat) || !math.IsNaN(lon) {
				t.Errorf("%s: LatLon = %v, %v, want NaN", tr, lat, lon)
			}
		}
	}
}

var pseudonymRE = regexp.MustCompile(`^[a-z2-7]{26}$`)

func TestPseudonymise(t *testing.T) {
	keyA, keyB := partnerKey(t, "mvno-a"), partnerKey(t, "mvno-b")
	a := compileJSON(t, `{"op":"pseudonymise"}`, keyA)
	b := compileJSON(t, `{"op":"pseudonymise"}`, keyB)
	for _, tc := range []struct{ note, in string }{
		{"IMSI", imsi}, {"MSISDN", msisdn}, {"IMEI", imei}, {"ICCID", iccid},
		{"empty", ""}, {"e-mail", "erika.mustermann@example.de"},
		{"long text", strings.Repeat("Musterstraße 1, 10115 Berlin; ", 20)},
	} {
		t.Run(tc.note, func(t *testing.T) {
			p1 := string(a.AppendString(nil, []byte(tc.in)))
			p2 := string(a.AppendString(make([]byte, 0, 3), []byte(tc.in)))
			if !pseudonymRE.MatchString(p1) {
				t.Fatalf("pseudonym %q is not 26 base32 characters", p1)
			}
			if p1 != p2 {
				t.Fatalf("same input, same key: %q != %q", p1, p2)
			}
			if p1 == tc.in {
				t.Fatalf("pseudonym equals input")
			}
			if pb := string(b.AppendString(nil, []byte(tc.in))); pb == p1 {
				t.Fatalf("partners mvno-a and mvno-b share pseudonym %q", p1)
			}
			// Interop: the documented construction, computed with crypto/hmac.
			sub, err := hkdf.Expand(sha256.New, keyA, pseudonymiseLabel, 32)
			if err != nil {
				t.Fatal(err)
			}
			m := hmac.New(sha256.New, sub)
			m.Write([]byte(tc.in))
			if want := pseudonymEncoding.EncodeToString(m.Sum(nil)[:16]); p1 != want {
				t.Fatalf("pseudonym %q, want HMAC-SHA256 %q", p1, want)
			}
		})
	}

	t.Run("int and string agree", func(t *testing.T) {
		s := string(a.AppendString(nil, []byte(imsi)))
		n := string(a.AppendInt(nil, 262011234567890))
		if s != n {
			t.Fatalf("string %q, long %q", s, n)
		}
	})
	t.Run("prefix", func(t *testing.T) {
		p := compileJSON(t, `{"op":"pseudonymise","prefix":"psn:"}`, keyA)
		got := string(p.AppendString([]byte("x="), []byte(msisdn)))
		want := "x=psn:" + string(a.AppendString(nil, []byte(msisdn)))
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("appends after existing bytes", func(t *testing.T) {
		dst := []byte(`{"msisdn":"`)
		got := a.AppendString(dst, []byte(msisdn))
		if !bytes.HasPrefix(got, []byte(`{"msisdn":"`)) || len(got) != len(dst)+26 {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("scratch cleared", func(t *testing.T) {
		buf := make([]byte, 0, 512)
		out := a.AppendString(buf, []byte(msisdn))
		if rest := out[len(out):cap(out)]; !bytes.Equal(rest, make([]byte, len(rest))) {
			t.Fatalf("spare capacity holds scratch: %x", rest[:64])
		}
	})
	t.Run("pinned", func(t *testing.T) {
		// Pseudonyms are a contract with partners: a change to the key schedule
		// or encoding must be deliberate (and versioned).
		if got := string(a.AppendString(nil, []byte(msisdn))); got != pinnedPseudonymMSISDN {
			t.Fatalf("pseudonym of %s for mvno-a = %q, pinned %q", msisdn, got, pinnedPseudonymMSISDN)
		}
	})
}

// Pinned outputs under testSecret for partner mvno-a.
const (
	pinnedPseudonymMSISDN = "4og6wu6c3t4mx4diiwxyizov6e"
	pinnedFormatMSISDN    = "4901881223858"
	pinnedFormatIMEI      = "490154200189233"
)

func TestPseudonymiseNoCollisions(t *testing.T) {
	tr := compileJSON(t, `{"op":"pseudonymise"}`, partnerKey(t, "mvno-a"))
	seen := make(map[string]int64, 10_000)
	var buf []byte
	for i := range int64(10_000) {
		n := 4915112340000 + i
		buf = tr.AppendInt(buf[:0], n)
		if prev, dup := seen[string(buf)]; dup {
			t.Fatalf("%d and %d share pseudonym %s", prev, n, buf)
		}
		seen[string(buf)] = n
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func TestPseudonymiseFormat(t *testing.T) {
	keyA, keyB := partnerKey(t, "mvno-a"), partnerKey(t, "mvno-b")
	for _, tc := range []struct {
		note string
		spec string
		in   string
		keep int // leading digits that must survive
		luhn bool
	}{
		{"MSISDN keeps country code", `{"op":"pseudonymise-format","format":"msisdn","keep_digits":2}`, msisdn, 2, false},
		{"MSISDN keeps network prefix", `{"op":"pseudonymise-format","format":"msisdn","keep_digits":5}`, msisdn, 5, false},
		{"MSISDN nothing kept", `{"op":"pseudonymise-format","format":"msisdn"}`, msisdn, 0, false},
		{"IMSI keeps MCC+MNC", `{"op":"pseudonymise-format","format":"imsi","keep_digits":5}`, imsi, 5, false},
		{"IMEI keeps TAC, valid Luhn", `{"op":"pseudonymise-format","format":"imei","keep_digits":8}`, imei, 8, true},
		{"IMEI nothing kept, valid Luhn", `{"op":"pseudonymise-format","format":"imei"}`, imei, 0, true},
		{"ICCID keeps 89+country, valid Luhn", `{"op":"pseudonymise-format","format":"iccid","keep_digits":4}`, iccid, 4, true},
		{"generic digits", `{"op":"pseudonymise-format","keep_digits":3}`, "0012345678901234567890", 3, false},
		{"14-digit IMEI has no check digit", `{"op":"pseudonymise-format","format":"imei","keep_digits":8}`, "49015420323751", 8, false},
	} {
		t.Run(tc.note, func(t *testing.T) {
			a := compileJSON(t, tc.spec, keyA)
			b := compileJSON(t, tc.spec, keyB)
			p1 := string(a.AppendString(nil, []byte(tc.in)))
			p2 := string(a.AppendString(make([]byte, 0, 1), []byte(tc.in)))
			pb := string(b.AppendString(nil, []byte(tc.in)))
			if len(p1) != len(tc.in) || !isDigits(p1) {
				t.Fatalf("pseudonym %q of %q: not %d digits", p1, tc.in, len(tc.in))
			}
			if p1[:tc.keep] != tc.in[:tc.keep] {
				t.Fatalf("pseudonym %q lost prefix %q", p1, tc.in[:tc.keep])
			}
			if p1 == tc.in || p1[tc.keep:] == tc.in[tc.keep:] {
				t.Fatalf("pseudonym %q equals input %q", p1, tc.in)
			}
			if p1 != p2 {
				t.Fatalf("same key, same input: %q != %q", p1, p2)
			}
			if pb == p1 {
				t.Fatalf("partners share pseudonym %q", p1)
			}
			if tc.luhn && !luhnValid([]byte(p1)) {
				t.Fatalf("pseudonym %q fails the Luhn check", p1)
			}
			if n, err := strconv.ParseInt(tc.in, 10, 64); err == nil && tc.in[0] != '0' {
				if pi := string(a.AppendInt(nil, n)); pi != p1 {
					t.Fatalf("long %d gives %q, string gives %q", n, pi, p1)
				}
			}
		})
	}

	a := compileJSON(t, `{"op":"pseudonymise-format","format":"msisdn","keep_digits":2}`, keyA)
	t.Run("separators stay in place", func(t *testing.T) {
		plain := string(a.AppendString(nil, []byte("4915112345678")))
		got := string(a.AppendString(nil, []byte("+49 151-1234 5678")))
		if len(got) != len("+49 151-1234 5678") || got[0] != '+' || got[3] != ' ' || got[7] != '-' || got[12] != ' ' {
			t.Fatalf("got %q", got)
		}
		if digitsOnly(got) != plain {
			t.Fatalf("digits of %q differ from pseudonym %q of the bare number", got, plain)
		}
	})
	t.Run("prefix is the tweak", func(t *testing.T) {
		// Same free digits under another country code: unrelated pseudonyms.
		p49 := string(a.AppendString(nil, []byte("4915112345678")))
		p43 := string(a.AppendString(nil, []byte("4315112345678")))
		if p49[2:] == p43[2:] {
			t.Fatalf("free digits %s shared across prefixes", p49[2:])
		}
	})
	t.Run("short value keeps fewer digits", func(t *testing.T) {
		tr := compileJSON(t, `{"op":"pseudonymise-format","format":"msisdn","keep_digits":5}`, keyA)
		got := string(tr.AppendString(nil, []byte("4930123")))
		if len(got) != 7 || !isDigits(got) || got[:1] != "4" || got == "4930123" {
			t.Fatalf("got %q, want 7 digits keeping only 1", got)
		}
	})
	for _, tc := range []struct{ note, in, want string }{
		{"fewer than 6 digits are masked", "11223", "00000"},
		{"short code with plus", "+112", "+000"},
		{"letters are masked", "49151abc45678", "0000000000000"},
		{"no digits", "unknown", "0000000"},
		{"empty", "", ""},
		{"too many digits", strings.Repeat("9", 70), strings.Repeat("0", 70)},
	} {
		t.Run(tc.note, func(t *testing.T) {
			if got := string(a.AppendString(nil, []byte(tc.in))); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("negative long keeps its sign", func(t *testing.T) {
		got := string(a.AppendInt(nil, -4915112345678))
		if got[0] != '-' || got[1:] != string(a.AppendString(nil, []byte(msisdn))) {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("pinned", func(t *testing.T) {
		if got := string(a.AppendString(nil, []byte(msisdn))); got != pinnedFormatMSISDN {
			t.Fatalf("msisdn keep 2 of %s = %q, pinned %q", msisdn, got, pinnedFormatMSISDN)
		}
		e := compileJSON(t, `{"op":"pseudonymise-format","format":"imei","keep_digits":8}`, keyA)
		if got := string(e.AppendString(nil, []byte(imei))); got != pinnedFormatIMEI {
			t.Fatalf("imei keep 8 of %s = %q, pinned %q", imei, got, pinnedFormatIMEI)
		}
	})
}

func digitsOnly(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// TestPseudonymiseFormatCollisions reports collisions among 10k MSISDNs of
// one range: FF1 is a permutation, so there must be none. For the trade-off
// it also counts what an HMAC-derived digit stream (the simpler design this
// package does not use) would give for the same free digits.
func TestPseudonymiseFormatCollisions(t *testing.T) {
	key := partnerKey(t, "mvno-a")
	for _, keep := range []int{2, 5, 7} {
		tr := compileJSON(t, fmt.Sprintf(`{"op":"pseudonymise-format","format":"msisdn","keep_digits":%d}`, keep), key)
		free := 13 - keep
		seen := make(map[string]struct{}, 10_000)
		seenStream := make(map[string]struct{}, 10_000)
		collisions, streamCollisions := 0, 0
		var buf []byte
		for i := range int64(10_000) {
			n := 4915112340000 + i
			buf = tr.AppendInt(buf[:0], n)
			if _, dup := seen[string(buf)]; dup {
				collisions++
			}
			seen[string(buf)] = struct{}{}

			m := hmac.New(sha256.New, key)
			m.Write(strconv.AppendInt(nil, n, 10))
			var stream []byte
			for _, b := range m.Sum(nil)[:free] {
				stream = append(stream, '0'+b%10) // a keyed digit stream, slightly biased
			}
			if _, dup := seenStream[string(stream)]; dup {
				streamCollisions++
			}
			seenStream[string(stream)] = struct{}{}
		}
		t.Logf("keep_digits=%d (%d free digits): FF1 %d collisions among 10000 MSISDNs; an HMAC digit stream would have %d (expected ~%.3g)",
			keep, free, collisions, streamCollisions, 1e8/(2*math.Pow(10, float64(free))))
		if collisions != 0 {
			t.Errorf("keep_digits=%d: %d collisions, FF1 must have none", keep, collisions)
		}
	}
}

// TestNotReversibleByEnumeration plays the attacker: given the pseudonym of
// an MSISDN and the range it lies in, enumerate the range. With the right
// key that finds it (the space is small: that is the point); with another
// partner's key or an unkeyed SHA-256 it finds nothing. The key, derived from
// a server secret that never leaves the gateway, is what protects it.
func TestNotReversibleByEnumeration(t *testing.T) {
	const lo, hi = 4915112340000, 4915112350000 // 10^4 candidates, target inside
	keyA, keyB := partnerKey(t, "mvno-a"), partnerKey(t, "mvno-b")
	unkeyed := func(dst []byte, n int64) []byte {
		sum := sha256.Sum256(strconv.AppendInt(nil, n, 10))
		return pseudonymEncoding.AppendEncode(dst, sum[:16])
	}
	for _, tc := range []struct {
		note string
		spec string
	}{
		{"pseudonymise", `{"op":"pseudonymise"}`},
		{"pseudonymise-format", `{"op":"pseudonymise-format","format":"msisdn","keep_digits":2}`},
	} {
		t.Run(tc.note, func(t *testing.T) {
			target := string(compileJSON(t, tc.spec, keyA).AppendString(nil, []byte(msisdn)))
			search := func(f func(dst []byte, n int64) []byte) (found []int64) {
				var buf []byte
				for n := int64(lo); n < hi; n++ {
					if buf = f(buf[:0], n); string(buf) == target {
						found = append(found, n)
					}
				}
				return found
			}
			if got := search(compileJSON(t, tc.spec, keyA).AppendInt); len(got) != 1 || got[0] != 4915112345678 {
				t.Fatalf("with the key, enumeration found %v, want [%s]", got, msisdn)
			}
			if got := search(compileJSON(t, tc.spec, keyB).AppendInt); len(got) != 0 {
				t.Fatalf("with another partner's key, enumeration found %v", got)
			}
			if got := search(unkeyed); len(got) != 0 {
				t.Fatalf("with unkeyed SHA-256, enumeration found %v", got)
			}
		})
	}
}

func TestDeriveKey(t *testing.T) {
	k1, err := DeriveKey(testSecret, "mvno-a", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != KeyLen {
		t.Fatalf("key is %d bytes, want %d", len(k1), KeyLen)
	}
	again, _ := DeriveKey(bytes.Clone(testSecret), "mvno-a", "")
	if !bytes.Equal(k1, again) {
		t.Fatal("DeriveKey is not a pure function of its inputs")
	}
	for _, tc := range []struct{ note, partner, purpose string }{
		{"other partner", "mvno-b", ""},
		{"purpose-scoped", "mvno-a", "marketing"},
		{"length-prefixed, no concatenation ambiguity", "mvno-", "a"},
	} {
		k, err := DeriveKey(testSecret, tc.partner, tc.purpose)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(k, k1) {
			t.Errorf("%s: same key as mvno-a", tc.note)
		}
	}
	if k, _ := DeriveKey(testSecret, "mvno", "-a"); bytes.Equal(k, mustDerive(t, "mvno-", "a")) {
		t.Error("(mvno, -a) and (mvno-, a) share a key")
	}

	short := []byte("0123456789abcdef0123456789abcde") // 31 bytes
	_, err = DeriveKey(short, "mvno-a", "")
	if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "31 bytes, must be >= 32") {
		t.Fatalf("short secret: err = %v", err)
	}
	if strings.Contains(err.Error(), string(short)) || strings.Contains(err.Error(), hex.EncodeToString(short)) {
		t.Fatalf("error leaks the secret: %v", err)
	}
	if _, err := DeriveKey(testSecret, "", ""); !errors.Is(err, ErrKey) {
		t.Fatalf("empty partner: err = %v", err)
	}
}

func mustDerive(t *testing.T, partner, purpose string) []byte {
	t.Helper()
	k, err := DeriveKey(testSecret, partner, purpose)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCompileKeyErrors(t *testing.T) {
	for _, tc := range []struct {
		note string
		spec Spec
		key  []byte
		want string
	}{
		{"pseudonymise without key", Spec{Op: OpPseudonymise}, nil, `op "pseudonymise" needs a key`},
		{"format without key", Spec{Op: OpPseudonymiseFormat}, nil, `op "pseudonymise-format" needs a key`},
		{"short key", Spec{Op: OpPseudonymise}, []byte("short-key-material-1234"), "key is 23 bytes, must be >= 32"},
	} {
		t.Run(tc.note, func(t *testing.T) {
			_, err := Compile(tc.spec, tc.key)
			if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrKey containing %q", err, tc.want)
			}
			if len(tc.key) > 0 && strings.Contains(err.Error(), string(tc.key)) {
				t.Fatalf("error leaks key: %v", err)
			}
		})
	}
	if _, err := Compile(Spec{Op: OpKeep}, nil); err != nil {
		t.Fatalf("unkeyed op without key: %v", err)
	}
}

// TestNoKeyMaterialInOutput formats keyed transforms every way a caller
// might log them and looks for the key and the derived pads.
func TestNoKeyMaterialInOutput(t *testing.T) {
	key := partnerKey(t, "mvno-a")
	for _, spec := range []string{`{"op":"pseudonymise","prefix":"p_"}`, `{"op":"pseudonymise-format","format":"imsi","keep_digits":5}`} {
		tr := compileJSON(t, spec, key)
		js, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("compiled", "transform", tr)
		outputs := []string{
			tr.String(), fmt.Sprint(tr), fmt.Sprintf("%v|%+v|%#v|%s|%q", tr, tr, tr, tr, tr),
			fmt.Sprintf("%+v|%#v", *tr, *tr), fmt.Sprint(tr.Describe()), string(js), logged.String(),
		}
		needles := []string{string(key), hex.EncodeToString(key), fmt.Sprint(key), fmt.Sprintf("%x", key[:8])}
		if tr.secrets.block == nil {
			needles = append(needles, string(tr.secrets.inner[:8]), fmt.Sprint(tr.secrets.inner[:8]), fmt.Sprintf("%x", tr.secrets.inner[:8]))
		}
		for _, out := range outputs {
			for _, n := range needles {
				if strings.Contains(out, n) {
					t.Fatalf("%s output leaks key material: %q", spec, out)
				}
			}
		}
		for _, out := range []string{fmt.Sprintf("%v|%+v|%#v|%s|%x", tr.secrets, *tr.secrets, tr.secrets, *tr.secrets, tr.secrets)} {
			if strings.Count(out, redactedKey) != 5 {
				t.Fatalf("secrets format as %q", out)
			}
		}
		if tr.Describe()["keyed"] != true {
			t.Fatalf("Describe does not say keyed: %v", tr.Describe())
		}
	}
}

func TestStringAndDescribe(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{`{"op":"keep"}`, "keep"},
		{`{"op":"redact"}`, "redact(replacement=null)"},
		{`{"op":"redact","replacement":"n/a"}`, `redact(replacement="n/a")`},
		{`{"op":"keep-prefix","n":8,"fill":"*"}`, `keep-prefix(fill="*", n=8)`},
		{`{"op":"pseudonymise-format","format":"msisdn","keep_digits":2}`, `pseudonymise-format(format="msisdn", keep_digits=2)`},
		{`{"op":"pseudonymise-format"}`, `pseudonymise-format(format="digits")`},
		{`{"op":"generalise-location","meters":1000,"axis":"lat","pair":"lon"}`, `generalise-location(axis="lat", meters=1000, pair="lon")`},
		{`{"op":"bucket","bounds":[0,18,25]}`, `bucket(bounds=[0 18 25])`},
		{`{"op":"bucket","width":0.5}`, `bucket(width=0.5)`},
	} {
		tr := compileJSON(t, tc.spec, partnerKey(t, "mvno-a"))
		if got := tr.String(); got != tc.want {
			t.Errorf("String() = %s, want %s", got, tc.want)
		}
	}
}

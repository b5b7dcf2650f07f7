package masking

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Kind is the type of a field value, as the caller holds it: strings and
// bytes are KindString, ints and epoch-millis timestamps KindInt, doubles
// KindFloat.
type Kind uint8

// Kinds.
const (
	KindNone   Kind = iota // no value: the field is omitted (drop)
	KindNull               // JSON null / Avro null
	KindString             // string or bytes
	KindInt                // int64, including epoch-millis timestamps
	KindFloat              // float64
)

func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindNull:
		return "null"
	case KindString:
		return "string"
	case KindInt:
		return "int"
	case KindFloat:
		return "float"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ErrUnsupportedKind is wrapped by OutputKind errors: the op cannot take a
// value of that kind.
var ErrUnsupportedKind = errors.New("op does not support this value kind")

// Transform is a compiled Spec: immutable, safe for concurrent use, and free
// of allocations on its per-value methods. Build one with Compile.
//
// Which per-value method applies depends on the input kind and on
// OutputKind(input):
//
//	input   OutputKind  method
//	string  string      AppendString
//	int     string      AppendInt
//	float   string      AppendFloat
//	int     int         Int
//	float   float       Float
//	(pair)  float       LatLon
//
// Calling a method that does not apply (including any on a dropped or
// null-redacted field) is a caller bug; it fails closed: Append methods
// append nothing, Int and Float return 0, LatLon returns NaN. It never returns
// the input in clear.
//
// Append methods append to dst and return the extended slice, like
// strconv's, and do not allocate when dst has enough spare capacity. The
// keyed ops also use spare capacity past the returned length as scratch, up
// to len(in)+96 bytes past len(dst) for pseudonymise and len(in)+16 for
// pseudonymise-format, and clear it afterwards; in must not overlap
// dst[len(dst):cap(dst)].
type Transform struct {
	spec    Spec
	format  Format
	secrets *secrets // keyed ops only

	repl   []byte // redact replacement
	prefix []byte // pseudonymise prefix
	fill   []byte // keep-prefix / keep-suffix fill character, UTF-8

	unit int64 // generalise-time unit, millis

	// bucket
	width      float64
	widthInt   int64 // > 0 when width is an integer that fits
	widthDec   int   // decimals of width, -1 when none fits in 15
	bounds     []float64
	boundsInt  []int64 // non-nil when every bound is an integer that fits
	intOutputs bool    // bucket can map ints to ints
}

// Compile checks a spec and prepares it for per-value use. Keyed ops
// (pseudonymise, pseudonymise-format) need the recipient's key, at least
// KeyLen bytes (see DeriveKey); other ops ignore key. Errors wrap
// ErrInvalidSpec or ErrKey and never include key material.
func Compile(s Spec, key []byte) (*Transform, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s.Bounds = slices.Clone(s.Bounds)
	if s.Replacement != nil {
		r := *s.Replacement
		s.Replacement = &r
	}
	if s.Op == OpPseudonymiseFormat {
		s.Format = s.format()
	}
	t := &Transform{spec: s, format: s.Format}
	if s.Op.Keyed() {
		sec, err := newSecrets(s.Op, key)
		if err != nil {
			return nil, err
		}
		t.secrets = sec
	}
	switch s.Op {
	case OpRedact:
		if s.Replacement != nil {
			t.repl = []byte(*s.Replacement)
		}
	case OpPseudonymise:
		t.prefix = []byte(s.Prefix)
	case OpKeepPrefix, OpKeepSuffix:
		t.fill = []byte(s.Fill)
	case OpGeneraliseTime:
		t.unit, _ = unitMillis(s.Unit)
	case OpBucket:
		t.compileBucket()
	}
	return t, nil
}

// MustCompile is Compile for specs known to be valid, as in tests; it panics
// on error.
func MustCompile(s Spec, key []byte) *Transform {
	t, err := Compile(s, key)
	if err != nil {
		panic(err)
	}
	return t
}

const maxExactInt = 1 << 53 // floats beyond this are all integers, ints beyond it are not all floats

func (t *Transform) compileBucket() {
	if t.spec.Bounds != nil {
		t.bounds = t.spec.Bounds
		ints := make([]int64, len(t.bounds))
		for i, b := range t.bounds {
			if b != math.Trunc(b) || math.Abs(b) > maxExactInt {
				ints = nil
				break
			}
			ints[i] = int64(b)
		}
		t.boundsInt = ints
		t.intOutputs = ints != nil
		return
	}
	t.width = t.spec.Width
	if t.width == math.Trunc(t.width) && t.width <= maxExactInt {
		t.widthInt = int64(t.width)
		t.intOutputs = true
	}
	t.widthDec = -1
	s := strconv.FormatFloat(t.width, 'f', -1, 64)
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			if dec := len(s) - i - 1; dec <= 15 {
				t.widthDec = dec
			}
			return
		}
	}
	t.widthDec = 0
}

// Spec returns the compiled spec, with defaults filled in (format). It holds
// no key material.
func (t *Transform) Spec() Spec {
	s := t.spec
	s.Bounds = slices.Clone(s.Bounds)
	return s
}

// Op returns the transform's op.
func (t *Transform) Op() Op { return t.spec.Op }

// Dropped reports whether the field is to be omitted from the output.
func (t *Transform) Dropped() bool { return t.spec.Op == OpDrop }

// IsNull reports whether the field's output is always null (redact without
// a replacement).
func (t *Transform) IsNull() bool { return t.spec.Op == OpRedact && t.spec.Replacement == nil }

// OutputKind returns the kind of value the transform produces from an input
// of kind in, so the gateway can derive a view's schema: a pseudonymised
// long becomes a string, a null-redacted field null, a dropped one none. An
// op that cannot take that kind returns an error wrapping
// ErrUnsupportedKind (for example generalise-time on a string); the gateway
// should refuse the plan.
func (t *Transform) OutputKind(in Kind) (Kind, error) {
	if in != KindString && in != KindInt && in != KindFloat {
		return 0, fmt.Errorf("masking: %s: input kind %s: %w", t.spec.Op, in, ErrUnsupportedKind)
	}
	bad := func() (Kind, error) {
		return 0, fmt.Errorf("masking: %s cannot transform a %s value: %w", t.spec.Op, in, ErrUnsupportedKind)
	}
	switch t.spec.Op {
	case OpKeep:
		return in, nil
	case OpDrop:
		return KindNone, nil
	case OpRedact:
		if t.spec.Replacement == nil {
			return KindNull, nil
		}
		return KindString, nil
	case OpPseudonymise, OpPseudonymiseFormat, OpKeepPrefix, OpKeepSuffix:
		// Ints become digit strings: a pseudonym may start with 0, which a
		// long cannot hold, and a prefix of an int is text.
		if in == KindFloat {
			return bad()
		}
		return KindString, nil
	case OpGeneraliseLocation:
		if in != KindFloat {
			return bad()
		}
		return KindFloat, nil
	case OpGeneraliseTime:
		if in != KindInt {
			return bad()
		}
		return KindInt, nil
	case OpBucket:
		switch {
		case in == KindFloat:
			return KindFloat, nil
		case in == KindInt && t.intOutputs:
			return KindInt, nil
		case in == KindInt:
			return 0, fmt.Errorf("masking: bucket %s maps ints to fractions: use integer width/bounds for an int field: %w",
				t.spec, ErrUnsupportedKind)
		}
		return bad()
	}
	return bad()
}

// AppendString appends the transform of a string or bytes value.
func (t *Transform) AppendString(dst, in []byte) []byte {
	switch t.spec.Op {
	case OpKeep:
		return append(dst, in...)
	case OpRedact:
		return append(dst, t.repl...)
	case OpPseudonymise:
		l := len(dst)
		return t.secrets.appendPseudonym(append(dst, in...), l, t.prefix)
	case OpPseudonymiseFormat:
		l := len(dst)
		return t.appendFormatPseudonym(append(dst, in...), l)
	case OpKeepPrefix:
		return t.appendKeepPrefix(dst, in)
	case OpKeepSuffix:
		return t.appendKeepSuffix(dst, in)
	}
	return dst
}

// AppendInt appends the transform of an int whose output kind is string:
// the value is transformed as its decimal text (so a long 4915112345678 and a
// string "4915112345678" get the same pseudonym). keep appends the decimal
// text.
func (t *Transform) AppendInt(dst []byte, in int64) []byte {
	switch t.spec.Op {
	case OpKeep:
		return strconv.AppendInt(dst, in, 10)
	case OpRedact:
		return append(dst, t.repl...)
	case OpPseudonymise:
		l := len(dst)
		return t.secrets.appendPseudonym(strconv.AppendInt(dst, in, 10), l, t.prefix)
	case OpPseudonymiseFormat:
		l := len(dst)
		return t.appendFormatPseudonym(strconv.AppendInt(dst, in, 10), l)
	case OpKeepPrefix, OpKeepSuffix:
		var buf [20]byte
		text := strconv.AppendInt(buf[:0], in, 10)
		if t.spec.Op == OpKeepPrefix {
			return t.appendKeepPrefix(dst, text)
		}
		return t.appendKeepSuffix(dst, text)
	}
	return dst
}

// AppendFloat appends the transform of a float whose output kind is string
// (redact with a replacement). keep appends the shortest decimal text.
func (t *Transform) AppendFloat(dst []byte, in float64) []byte {
	switch t.spec.Op {
	case OpKeep:
		return strconv.AppendFloat(dst, in, 'g', -1, 64)
	case OpRedact:
		return append(dst, t.repl...)
	}
	return dst
}

// Int returns the transform of an int whose output kind is int: keep,
// generalise-time (floor to the unit, UTC) and bucket.
func (t *Transform) Int(in int64) int64 {
	switch t.spec.Op {
	case OpKeep:
		return in
	case OpGeneraliseTime:
		return floorMultiple(in, t.unit)
	case OpBucket:
		if !t.intOutputs {
			return 0
		}
		if t.boundsInt != nil {
			i, found := slices.BinarySearch(t.boundsInt, in)
			if !found {
				i = max(i-1, 0) // below the first bound: the first bound
			}
			return t.boundsInt[i]
		}
		return floorMultiple(in, t.widthInt)
	}
	return 0
}

// Float returns the transform of a float whose output kind is float: keep,
// bucket, and generalise-location of a latitude (Axis "lat"). A longitude
// (or a coordinate without an axis) needs its pair: use LatLon; Float
// returns 0 for it. NaN stays NaN.
func (t *Transform) Float(in float64) float64 {
	switch t.spec.Op {
	case OpKeep:
		return in
	case OpBucket:
		return t.bucketFloat(in)
	case OpGeneraliseLocation:
		if t.spec.Axis == AxisLat {
			lat, _ := GeneraliseLatLon(in, 0, t.spec.Meters)
			return lat
		}
	}
	return 0
}

// LatLon returns the transform of a coordinate pair: generalise-location
// snaps it to its grid cell (see GeneraliseLatLon), keep returns it as is.
func (t *Transform) LatLon(lat, lon float64) (float64, float64) {
	switch t.spec.Op {
	case OpKeep:
		return lat, lon
	case OpGeneraliseLocation:
		return GeneraliseLatLon(lat, lon, t.spec.Meters)
	}
	return math.NaN(), math.NaN()
}

// floorMultiple returns the largest multiple of w (> 0) at or below x; if
// that is below math.MinInt64, math.MinInt64.
func floorMultiple(x, w int64) int64 {
	if w <= 1 {
		return x
	}
	q := x / w
	if x%w < 0 {
		q--
	}
	if q < math.MinInt64/w {
		return math.MinInt64
	}
	return q * w
}

var pow10f = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// bucketTolerance is how close (in bucket widths) a value may sit below a
// bucket boundary and still count as on it: 0.3/0.1 is 2.9999999999999996 in
// float64, and 0.3 belongs in the 0.3 bucket.
const bucketTolerance = 1e-9

func (t *Transform) bucketFloat(x float64) float64 {
	if math.IsNaN(x) {
		return x
	}
	if t.bounds != nil {
		i, found := slices.BinarySearch(t.bounds, x)
		if !found {
			i = max(i-1, 0)
		}
		return t.bounds[i]
	}
	if math.IsInf(x, 0) {
		return x
	}
	q := x / t.width
	if r := math.Round(q); math.Abs(q-r) <= bucketTolerance {
		q = r
	} else {
		q = math.Floor(q)
	}
	y := q * t.width
	if t.widthDec >= 0 {
		if z := y * pow10f[t.widthDec]; math.Abs(z) < maxExactInt {
			y = math.Round(z) / pow10f[t.widthDec]
		}
	}
	if y == 0 {
		y = 0 // no -0
	}
	return y
}

// appendKeepPrefix keeps the first N characters (runes; an invalid byte
// counts as one) and fills or drops the rest.
func (t *Transform) appendKeepPrefix(dst, in []byte) []byte {
	n := t.spec.N
	i := 0
	for ; n > 0 && i < len(in); n-- {
		if in[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRune(in[i:])
		i += size
	}
	dst = append(dst, in[:i]...)
	if len(t.fill) > 0 {
		dst = t.appendFill(dst, utf8.RuneCount(in[i:]))
	}
	return dst
}

// appendFill appends n fill characters.
func (t *Transform) appendFill(dst []byte, n int) []byte {
	l := len(dst)
	dst = slices.Grow(dst, n*len(t.fill))[:l+n*len(t.fill)]
	if len(t.fill) == 1 {
		c := t.fill[0]
		for i := l; i < len(dst); i++ {
			dst[i] = c
		}
		return dst
	}
	for i := l; i < len(dst); i += len(t.fill) {
		copy(dst[i:], t.fill)
	}
	return dst
}

// appendKeepSuffix keeps the last N characters and fills or drops the rest.
func (t *Transform) appendKeepSuffix(dst, in []byte) []byte {
	total := utf8.RuneCount(in)
	drop := total - t.spec.N
	if drop <= 0 {
		return append(dst, in...)
	}
	i := 0
	for range drop {
		if in[i] < utf8.RuneSelf {
			i++
		} else {
			_, size := utf8.DecodeRune(in[i:])
			i += size
		}
	}
	if len(t.fill) > 0 {
		dst = t.appendFill(dst, drop)
	}
	return append(dst, in[i:]...)
}

// String describes the transform for explain output, e.g.
// pseudonymise-format(format="msisdn", keep_digits=2). It never includes key
// material.
func (t *Transform) String() string { return t.spec.String() }

// Describe returns the op and its parameters in the form ParseSpec reads,
// for explain output and audit records. It never includes key material; a
// keyed op says only that it is keyed ("keyed": true), which ParseSpec does
// not accept back.
func (t *Transform) Describe() map[string]any {
	m := t.spec.Map()
	if t.spec.Op.Keyed() {
		m["keyed"] = true
	}
	return m
}

// Format implements fmt.Formatter so that no verb (%v, %+v, %#v) prints the
// struct and its key material: all print String.
func (t *Transform) Format(f fmt.State, verb rune) {
	if t == nil {
		_, _ = io.WriteString(f, "<nil masking.Transform>")
		return
	}
	_, _ = io.WriteString(f, t.String())
}

// LogValue implements slog.LogValuer: the spec, never key material.
func (t *Transform) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalJSON implements json.Marshaler with Describe, for explain output.
func (t *Transform) MarshalJSON() ([]byte, error) { return json.Marshal(t.Describe()) }

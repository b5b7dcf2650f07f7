package masking

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Op names a field transform. The values are the wire and configuration names
// used in policy outputs.
type Op string

// The transforms. See the package documentation for what each one does.
const (
	OpKeep               Op = "keep"
	OpDrop               Op = "drop"
	OpRedact             Op = "redact"
	OpPseudonymise       Op = "pseudonymise"
	OpPseudonymiseFormat Op = "pseudonymise-format"
	OpKeepPrefix         Op = "keep-prefix"
	OpKeepSuffix         Op = "keep-suffix"
	OpGeneraliseLocation Op = "generalise-location"
	OpGeneraliseTime     Op = "generalise-time"
	OpBucket             Op = "bucket"
)

// ops lists every known op in documentation order.
var ops = []Op{
	OpKeep, OpDrop, OpRedact, OpPseudonymise, OpPseudonymiseFormat,
	OpKeepPrefix, OpKeepSuffix, OpGeneraliseLocation, OpGeneraliseTime, OpBucket,
}

// Keyed reports whether the op needs a key (see DeriveKey).
func (o Op) Keyed() bool { return o == OpPseudonymise || o == OpPseudonymiseFormat }

// Format selects the identifier family for pseudonymise-format.
type Format string

// Formats for pseudonymise-format. The zero value means FormatDigits.
const (
	FormatDigits Format = "digits" // any digit string
	FormatMSISDN Format = "msisdn" // E.164 number, up to 15 digits
	FormatIMSI   Format = "imsi"   // 15 digits: MCC + MNC + MSIN
	FormatIMEI   Format = "imei"   // 15 digits with a Luhn check digit (14 and 16 digit forms have none)
	FormatICCID  Format = "iccid"  // 19-20 digits, the last one a Luhn check digit
)

// Time units for generalise-time.
const (
	UnitSecond = "second"
	UnitMinute = "minute"
	UnitHour   = "hour"
	UnitDay    = "day"
)

// Axes for generalise-location.
const (
	AxisLat = "lat"
	AxisLon = "lon"
)

// Bounds on parameters, checked by Spec.Validate.
const (
	// MinFreeDigits is the smallest number of digits pseudonymise-format
	// enciphers (NIST SP 800-38G Rev. 1 requires a domain of at least 10^6).
	MinFreeDigits = 6
	// MaxFreeDigits is the largest number of digits pseudonymise-format
	// enciphers in one value; longer digit strings are masked to zeros.
	MaxFreeDigits = 36

	maxKeepN       = 4096
	maxReplacement = 256
	maxPrefix      = 32
	maxPairName    = 256
	maxBounds      = 1024
	maxMeters      = 10_000_000
	maxGenericKeep = 30
	maxBoundsShown = 8
)

// Spec is one field transform as a policy decides it: the op and its
// parameters, no key material. The zero value of every parameter means its
// default; parameters that do not belong to the op must be zero.
//
// Its JSON form (ParseSpec, Spec.Map) uses the lower-case snake_case names given
// in each field's comment.
type Spec struct {
	// Op is the transform ("op"). Required.
	Op Op

	// Replacement is what redact writes ("replacement"); nil (or JSON null,
	// or absent) means the field becomes null. At most 256 bytes of UTF-8.
	Replacement *string

	// Prefix is prepended to a pseudonymise output ("prefix"), so readers can
	// tell pseudonyms from identifiers. Default "". At most 32 characters from
	// [A-Za-z0-9._~:-].
	Prefix string

	// Format is the identifier family for pseudonymise-format ("format"):
	// digits (default), msisdn, imsi, imei or iccid.
	Format Format
	// KeepDigits is how many leading digits pseudonymise-format leaves in
	// clear ("keep_digits"), e.g. 2 for a country code, 5 for MCC+MNC, 8 for an
	// IMEI TAC. Default 0. Bounded so that at least MinFreeDigits digits of a
	// full-length identifier are enciphered: msisdn, imsi <= 9; imei <= 8;
	// iccid <= 12; digits <= 30.
	KeepDigits int

	// N is how many characters keep-prefix / keep-suffix keep ("n"). Required,
	// 1..4096.
	N int
	// Fill is one character that replaces each dropped character
	// ("fill"), e.g. "*" turns an IMEI into "35209900*******". Default ""
	// truncates instead.
	Fill string

	// Meters is the grid cell size of generalise-location ("meters").
	// Required, 1..10,000,000.
	Meters float64
	// Axis says which coordinate of the pair this field holds ("axis"): "lat",
	// "lon" or "" (unspecified). Masking only uses it in Transform.Float.
	Axis string
	// Pair names the field holding the other coordinate ("pair"). Opaque to
	// masking; the gateway uses it to find the value it passes to LatLon.
	Pair string

	// Unit is the truncation unit of generalise-time ("unit"): second, minute,
	// hour or day (UTC). Required.
	Unit string

	// Width is the bucket width of bucket ("width"): values map to the
	// largest multiple of Width at or below them. Exactly one of Width and
	// Bounds must be set.
	Width float64
	// Bounds are ascending bucket lower bounds of bucket ("bounds"): a value
	// maps to the largest bound at or below it, values below the first bound
	// map to the first bound. 1..1024 finite, strictly increasing values.
	Bounds []float64
}

// ErrInvalidSpec is wrapped by every error ParseSpec, Spec.Validate and
// Compile return for a bad spec.
var ErrInvalidSpec = errors.New("invalid masking spec")

// ErrKey is wrapped by errors about key material: a keyed op compiled without
// a key, a key or server secret that is too short, an empty partner id.
var ErrKey = errors.New("invalid masking key")

// specError builds an ErrInvalidSpec error.
func specError(op Op, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if op == "" {
		return fmt.Errorf("masking: %s: %w", msg, ErrInvalidSpec)
	}
	return fmt.Errorf("masking: op %q: %s: %w", op, msg, ErrInvalidSpec)
}

// paramKeys lists the JSON keys each op accepts besides "op".
var paramKeys = map[Op][]string{
	OpKeep:               nil,
	OpDrop:               nil,
	OpRedact:             {"replacement"},
	OpPseudonymise:       {"prefix"},
	OpPseudonymiseFormat: {"format", "keep_digits"},
	OpKeepPrefix:         {"fill", "n"},
	OpKeepSuffix:         {"fill", "n"},
	OpGeneraliseLocation: {"axis", "meters", "pair"},
	OpGeneraliseTime:     {"unit"},
	OpBucket:             {"bounds", "width"},
}

func knownOps() string {
	names := make([]string, len(ops))
	for i, o := range ops {
		names[i] = string(o)
	}
	return strings.Join(names, ", ")
}

// ParseSpec reads a spec from its JSON-like form, as decoded from a policy
// output or configuration: {"op": "keep-prefix", "n": 8, "fill": "*"}.
// Numbers may be float64, json.Number or any Go integer type. It is strict:
// an unknown op, a key the op does not take, a value of the wrong type or out
// of bounds is an error naming it.
func ParseSpec(m map[string]any) (Spec, error) {
	var s Spec
	rawOp, ok := m["op"]
	if !ok {
		return s, specError("", `missing "op" (one of %s)`, knownOps())
	}
	opName, ok := rawOp.(string)
	if !ok {
		return s, specError("", `"op" must be a string, got %s`, describeValue(rawOp))
	}
	s.Op = Op(opName)
	allowed, ok := paramKeys[s.Op]
	if !ok {
		return s, specError("", "unknown op %q (known: %s)", opName, knownOps())
	}
	var unknown []string
	for k := range m {
		if k != "op" && !slices.Contains(allowed, k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		allowedText := "none"
		if len(allowed) > 0 {
			allowedText = strings.Join(allowed, ", ")
		}
		return s, specError(s.Op, "unknown key %s (allowed: %s)", strings.Join(unknown, ", "), allowedText)
	}

	var err error
	for _, k := range allowed {
		v, present := m[k]
		if !present {
			continue
		}
		switch k {
		case "replacement":
			if v != nil {
				r, ok := v.(string)
				if !ok {
					return s, specError(s.Op, "replacement must be a string or null, got %s", describeValue(v))
				}
				s.Replacement = &r
			}
		case "prefix":
			s.Prefix, err = stringParam(s.Op, k, v)
		case "format":
			var f string
			f, err = stringParam(s.Op, k, v)
			s.Format = Format(f)
		case "keep_digits":
			s.KeepDigits, err = intParam(s.Op, k, v)
		case "n":
			s.N, err = intParam(s.Op, k, v)
		case "fill":
			s.Fill, err = stringParam(s.Op, k, v)
		case "meters":
			s.Meters, err = floatParam(s.Op, k, v)
		case "axis":
			s.Axis, err = stringParam(s.Op, k, v)
		case "pair":
			s.Pair, err = stringParam(s.Op, k, v)
		case "unit":
			s.Unit, err = stringParam(s.Op, k, v)
		case "width":
			s.Width, err = floatParam(s.Op, k, v)
		case "bounds":
			s.Bounds, err = floatsParam(s.Op, k, v)
		}
		if err != nil {
			return Spec{}, err
		}
	}
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// ParseSpecJSON decodes and parses one spec from JSON.
func ParseSpecJSON(data []byte) (Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return Spec{}, specError("", "decode JSON: %v", err)
	}
	if dec.More() {
		return Spec{}, specError("", "decode JSON: trailing data after the spec object")
	}
	if m == nil {
		return Spec{}, specError("", "spec must be a JSON object, got null")
	}
	return ParseSpec(m)
}

// UnmarshalJSON implements json.Unmarshaler with ParseSpecJSON's strictness.
func (s *Spec) UnmarshalJSON(data []byte) error {
	v, err := ParseSpecJSON(data)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalJSON implements json.Marshaler with the Map form.
func (s Spec) MarshalJSON() ([]byte, error) { return json.Marshal(s.Map()) }

// Map returns the spec in the form ParseSpec reads: "op" plus every
// parameter that differs from its default (redact always carries
// "replacement", null when the field becomes null). It never holds key
// material: specs have none.
func (s Spec) Map() map[string]any {
	m := map[string]any{"op": string(s.Op)}
	switch s.Op {
	case OpRedact:
		if s.Replacement == nil {
			m["replacement"] = nil
		} else {
			m["replacement"] = *s.Replacement
		}
	case OpPseudonymise:
		if s.Prefix != "" {
			m["prefix"] = s.Prefix
		}
	case OpPseudonymiseFormat:
		m["format"] = string(s.format())
		if s.KeepDigits != 0 {
			m["keep_digits"] = s.KeepDigits
		}
	case OpKeepPrefix, OpKeepSuffix:
		m["n"] = s.N
		if s.Fill != "" {
			m["fill"] = s.Fill
		}
	case OpGeneraliseLocation:
		m["meters"] = s.Meters
		if s.Axis != "" {
			m["axis"] = s.Axis
		}
		if s.Pair != "" {
			m["pair"] = s.Pair
		}
	case OpGeneraliseTime:
		m["unit"] = s.Unit
	case OpBucket:
		if s.Bounds != nil {
			m["bounds"] = slices.Clone(s.Bounds)
		} else {
			m["width"] = s.Width
		}
	}
	return m
}

// String renders the spec for explain output: op(key=value, ...), keys
// sorted, e.g. keep-prefix(fill="*", n=8).
func (s Spec) String() string {
	m := s.Map()
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "op" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(string(s.Op))
	if len(keys) == 0 {
		return b.String()
	}
	b.WriteByte('(')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteByte('=')
		switch v := m[k].(type) {
		case nil:
			b.WriteString("null")
		case string:
			b.WriteString(strconv.Quote(v))
		case int:
			b.WriteString(strconv.Itoa(v))
		case float64:
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		case []float64:
			b.WriteByte('[')
			for j, f := range v {
				if j > 0 {
					b.WriteByte(' ')
				}
				if j == maxBoundsShown && len(v) > maxBoundsShown+1 {
					fmt.Fprintf(&b, "... %d more", len(v)-j)
					break
				}
				b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
			}
			b.WriteByte(']')
		default:
			fmt.Fprint(&b, v)
		}
	}
	b.WriteByte(')')
	return b.String()
}

func (s Spec) format() Format {
	if s.Format == "" {
		return FormatDigits
	}
	return s.Format
}

// maxKeepDigits is the largest KeepDigits for a format: the format's
// full-length identifier keeps at least MinFreeDigits digits enciphered.
func maxKeepDigits(f Format) (int, bool) {
	switch f {
	case FormatDigits:
		return maxGenericKeep, true
	case FormatMSISDN, FormatIMSI:
		return 15 - MinFreeDigits, true
	case FormatIMEI:
		return 14 - MinFreeDigits, true
	case FormatICCID:
		return 19 - 1 - MinFreeDigits, true
	}
	return 0, false
}

// Validate checks the spec: a known op, its parameters within bounds, and no
// parameter set that the op does not take. Errors wrap ErrInvalidSpec and
// name the parameter, the value and the bound.
func (s Spec) Validate() error {
	allowed, ok := paramKeys[s.Op]
	if !ok {
		if s.Op == "" {
			return specError("", "missing op (one of %s)", knownOps())
		}
		return specError("", "unknown op %q (known: %s)", s.Op, knownOps())
	}
	// Strictness for specs built in Go: a parameter the op does not take
	// must be zero, as ParseSpec would have rejected its key.
	set := map[string]bool{
		"replacement": s.Replacement != nil,
		"prefix":      s.Prefix != "",
		"format":      s.Format != "",
		"keep_digits": s.KeepDigits != 0,
		"n":           s.N != 0,
		"fill":        s.Fill != "",
		"meters":      s.Meters != 0,
		"axis":        s.Axis != "",
		"pair":        s.Pair != "",
		"unit":        s.Unit != "",
		"width":       s.Width != 0,
		"bounds":      s.Bounds != nil,
	}
	var extra []string
	for k, isSet := range set {
		if isSet && !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return specError(s.Op, "%s is not a parameter of %s", strings.Join(extra, ", "), s.Op)
	}

	switch s.Op {
	case OpRedact:
		if s.Replacement != nil {
			r := *s.Replacement
			if len(r) > maxReplacement {
				return specError(s.Op, "replacement is %d bytes, must be <= %d", len(r), maxReplacement)
			}
			if !utf8.ValidString(r) {
				return specError(s.Op, "replacement %q is not valid UTF-8", r)
			}
		}
	case OpPseudonymise:
		if len(s.Prefix) > maxPrefix {
			return specError(s.Op, "prefix %q is %d bytes, must be <= %d", s.Prefix, len(s.Prefix), maxPrefix)
		}
		for _, c := range []byte(s.Prefix) {
			if !isPrefixByte(c) {
				return specError(s.Op, "prefix %q has %q, allowed are A-Z a-z 0-9 . _ ~ : -", s.Prefix, rune(c))
			}
		}
	case OpPseudonymiseFormat:
		maxKeep, ok := maxKeepDigits(s.format())
		if !ok {
			return specError(s.Op, "unknown format %q (known: digits, msisdn, imsi, imei, iccid)", s.Format)
		}
		if s.KeepDigits < 0 || s.KeepDigits > maxKeep {
			return specError(s.Op, "keep_digits %d out of range 0..%d for format %s (at least %d digits must stay enciphered)",
				s.KeepDigits, maxKeep, s.format(), MinFreeDigits)
		}
	case OpKeepPrefix, OpKeepSuffix:
		if s.N < 1 || s.N > maxKeepN {
			return specError(s.Op, "n %d out of range 1..%d (use redact to drop the whole value)", s.N, maxKeepN)
		}
		if s.Fill != "" {
			r, size := utf8.DecodeRuneInString(s.Fill)
			if size != len(s.Fill) || r == utf8.RuneError || !unicode.IsPrint(r) {
				return specError(s.Op, "fill %q must be exactly one printable character", s.Fill)
			}
		}
	case OpGeneraliseLocation:
		if !(s.Meters >= 1 && s.Meters <= maxMeters) { // also rejects NaN
			return specError(s.Op, "meters %v out of range 1..%d", s.Meters, maxMeters)
		}
		if s.Axis != "" && s.Axis != AxisLat && s.Axis != AxisLon {
			return specError(s.Op, `axis %q must be "lat", "lon" or absent`, s.Axis)
		}
		if len(s.Pair) > maxPairName {
			return specError(s.Op, "pair is %d bytes, must be <= %d", len(s.Pair), maxPairName)
		}
	case OpGeneraliseTime:
		if _, ok := unitMillis(s.Unit); !ok {
			if s.Unit == "" {
				return specError(s.Op, "missing unit (second, minute, hour or day)")
			}
			return specError(s.Op, "unknown unit %q (second, minute, hour or day)", s.Unit)
		}
	case OpBucket:
		switch {
		case s.Bounds != nil && s.Width != 0:
			return specError(s.Op, "width and bounds are exclusive: set one")
		case s.Bounds != nil:
			if len(s.Bounds) == 0 || len(s.Bounds) > maxBounds {
				return specError(s.Op, "bounds has %d values, must have 1..%d", len(s.Bounds), maxBounds)
			}
			for i, b := range s.Bounds {
				if math.IsNaN(b) || math.IsInf(b, 0) {
					return specError(s.Op, "bounds[%d] %v is not finite", i, b)
				}
				if i > 0 && b <= s.Bounds[i-1] {
					return specError(s.Op, "bounds[%d] %v must be > bounds[%d] %v (strictly increasing)", i, b, i-1, s.Bounds[i-1])
				}
			}
		default:
			if !(s.Width > 0) || math.IsInf(s.Width, 0) {
				return specError(s.Op, "width %v must be a finite number > 0 (or set bounds)", s.Width)
			}
		}
	}
	return nil
}

func isPrefixByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '~' || c == ':' || c == '-'
}

func unitMillis(unit string) (int64, bool) {
	switch unit {
	case UnitSecond:
		return 1000, true
	case UnitMinute:
		return 60 * 1000, true
	case UnitHour:
		return 3600 * 1000, true
	case UnitDay:
		return 86400 * 1000, true
	}
	return 0, false
}

func describeValue(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, float32, json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func stringParam(op Op, key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", specError(op, "%s must be a string, got %s", key, describeValue(v))
	}
	return s, nil
}

// number converts the numeric types a JSON or Rego decoder produces.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	}
	return 0, false
}

func floatParam(op Op, key string, v any) (float64, error) {
	f, ok := number(v)
	if !ok {
		return 0, specError(op, "%s must be a number, got %s", key, describeValue(v))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, specError(op, "%s %v is not finite", key, f)
	}
	return f, nil
}

func intParam(op Op, key string, v any) (int, error) {
	f, err := floatParam(op, key, v)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, specError(op, "%s %v must be an integer", key, f)
	}
	return int(f), nil
}

func floatsParam(op Op, key string, v any) ([]float64, error) {
	switch a := v.(type) {
	case []float64:
		return slices.Clone(a), nil
	case []int:
		out := make([]float64, len(a))
		for i, n := range a {
			out[i] = float64(n)
		}
		return out, nil
	case []any:
		if len(a) > maxBounds {
			return nil, specError(op, "%s has %d values, must have 1..%d", key, len(a), maxBounds)
		}
		out := make([]float64, len(a))
		for i, e := range a {
			f, err := floatParam(op, fmt.Sprintf("%s[%d]", key, i), e)
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	}
	return nil, specError(op, "%s must be an array of numbers, got %s", key, describeValue(v))
}

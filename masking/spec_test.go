package masking

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func strptr(s string) *string { return &s }

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		note string
		in   string
		want Spec
		err  string // substring; "" means success
	}{
		{note: "keep", in: `{"op":"keep"}`, want: Spec{Op: OpKeep}},
		{note: "drop", in: `{"op":"drop"}`, want: Spec{Op: OpDrop}},
		{note: "redact null by default", in: `{"op":"redact"}`, want: Spec{Op: OpRedact}},
		{note: "redact explicit null", in: `{"op":"redact","replacement":null}`, want: Spec{Op: OpRedact}},
		{note: "redact text", in: `{"op":"redact","replacement":"***"}`, want: Spec{Op: OpRedact, Replacement: strptr("***")}},
		{note: "pseudonymise prefix", in: `{"op":"pseudonymise","prefix":"psn:"}`, want: Spec{Op: OpPseudonymise, Prefix: "psn:"}},
		{note: "format", in: `{"op":"pseudonymise-format","format":"imei","keep_digits":8}`, want: Spec{Op: OpPseudonymiseFormat, Format: FormatIMEI, KeepDigits: 8}},
		{note: "keep-prefix", in: `{"op":"keep-prefix","n":8,"fill":"*"}`, want: Spec{Op: OpKeepPrefix, N: 8, Fill: "*"}},
		{note: "integral float n", in: `{"op":"keep-suffix","n":4.0}`, want: Spec{Op: OpKeepSuffix, N: 4}},
		{note: "location", in: `{"op":"generalise-location","meters":1000,"axis":"lat","pair":"lon"}`, want: Spec{Op: OpGeneraliseLocation, Meters: 1000, Axis: AxisLat, Pair: "lon"}},
		{note: "time", in: `{"op":"generalise-time","unit":"hour"}`, want: Spec{Op: OpGeneraliseTime, Unit: UnitHour}},
		{note: "bucket width", in: `{"op":"bucket","width":0.25}`, want: Spec{Op: OpBucket, Width: 0.25}},
		{note: "bucket bounds", in: `{"op":"bucket","bounds":[0,18,25.5]}`, want: Spec{Op: OpBucket, Bounds: []float64{0, 18, 25.5}}},

		{note: "not an object", in: `[1]`, err: "decode JSON"},
		{note: "null", in: `null`, err: "must be a JSON object"},
		{note: "trailing data", in: `{"op":"keep"} {}`, err: "trailing data"},
		{note: "missing op", in: `{"n":3}`, err: `missing "op"`},
		{note: "op not a string", in: `{"op":3}`, err: `"op" must be a string, got a number`},
		{note: "unknown op", in: `{"op":"pseudonymize"}`, err: `unknown op "pseudonymize" (known: keep, drop, redact, pseudonymise,`},
		{note: "unknown key named", in: `{"op":"keep-prefix","n":8,"meters":3}`, err: `op "keep-prefix": unknown key "meters" (allowed: fill, n)`},
		{note: "unknown keys sorted", in: `{"op":"keep","z":1,"a":2}`, err: `unknown key "a", "z" (allowed: none)`},
		{note: "replacement wrong type", in: `{"op":"redact","replacement":5}`, err: "replacement must be a string or null, got a number"},
		{note: "replacement too long", in: `{"op":"redact","replacement":"` + strings.Repeat("x", 257) + `"}`, err: "replacement is 257 bytes, must be <= 256"},
		{note: "prefix charset", in: `{"op":"pseudonymise","prefix":"a/b"}`, err: `prefix "a/b" has '/'`},
		{note: "unknown format", in: `{"op":"pseudonymise-format","format":"imeisv"}`, err: `unknown format "imeisv"`},
		{note: "keep_digits bound", in: `{"op":"pseudonymise-format","format":"imei","keep_digits":9}`, err: "keep_digits 9 out of range 0..8 for format imei"},
		{note: "keep_digits negative", in: `{"op":"pseudonymise-format","keep_digits":-1}`, err: "keep_digits -1 out of range 0..30"},
		{note: "keep_digits fraction", in: `{"op":"pseudonymise-format","keep_digits":2.5}`, err: "keep_digits 2.5 must be an integer"},
		{note: "n missing", in: `{"op":"keep-prefix"}`, err: "n 0 out of range 1..4096"},
		{note: "n string", in: `{"op":"keep-prefix","n":"8"}`, err: "n must be a number, got a string"},
		{note: "fill two characters", in: `{"op":"keep-prefix","n":8,"fill":"**"}`, err: `fill "**" must be exactly one printable character`},
		{note: "fill control", in: `{"op":"keep-prefix","n":8,"fill":"\n"}`, err: "exactly one printable character"},
		{note: "meters missing", in: `{"op":"generalise-location"}`, err: "meters 0 out of range 1..10000000"},
		{note: "meters huge", in: `{"op":"generalise-location","meters":1e9}`, err: "out of range"},
		{note: "axis", in: `{"op":"generalise-location","meters":10,"axis":"x"}`, err: `axis "x" must be "lat", "lon" or absent`},
		{note: "unit missing", in: `{"op":"generalise-time"}`, err: "missing unit"},
		{note: "unit unknown", in: `{"op":"generalise-time","unit":"week"}`, err: `unknown unit "week"`},
		{note: "bucket neither", in: `{"op":"bucket"}`, err: "width 0 must be a finite number > 0 (or set bounds)"},
		{note: "bucket both", in: `{"op":"bucket","width":1,"bounds":[0]}`, err: "width and bounds are exclusive"},
		{note: "bucket empty bounds", in: `{"op":"bucket","bounds":[]}`, err: "bounds has 0 values"},
		{note: "bucket unsorted", in: `{"op":"bucket","bounds":[0,5,5]}`, err: "bounds[2] 5 must be > bounds[1] 5"},
		{note: "bucket bounds not numbers", in: `{"op":"bucket","bounds":[0,"a"]}`, err: "bounds[1] must be a number, got a string"},
		{note: "bucket negative width", in: `{"op":"bucket","width":-1}`, err: "width -1 must be a finite number > 0"},
	} {
		t.Run(tc.note, func(t *testing.T) {
			got, err := ParseSpecJSON([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalidSpec) {
					t.Fatalf("err = %v, want ErrInvalidSpec containing %q", err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), "masking: ") {
					t.Fatalf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			// Round trip: Map is what ParseSpec reads, JSON included.
			back, err := ParseSpec(got.Map())
			if err != nil || !reflect.DeepEqual(normalise(back), normalise(got)) {
				t.Fatalf("ParseSpec(Map()) = %+v, %v; want %+v", back, err, got)
			}
			js, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			var fromJSON Spec
			if err := json.Unmarshal(js, &fromJSON); err != nil || !reflect.DeepEqual(normalise(fromJSON), normalise(got)) {
				t.Fatalf("JSON round trip %s = %+v, %v", js, fromJSON, err)
			}
		})
	}
}

// normalise fills defaults that Map writes out explicitly.
func normalise(s Spec) Spec {
	if s.Op == OpPseudonymiseFormat {
		s.Format = s.format()
	}
	return s
}

func TestParseSpecNumberTypes(t *testing.T) {
	for _, n := range []any{8, int64(8), uint8(8), 8.0, float32(8), json.Number("8")} {
		s, err := ParseSpec(map[string]any{"op": "keep-prefix", "n": n})
		if err != nil || s.N != 8 {
			t.Errorf("n as %T: %+v, %v", n, s, err)
		}
	}
	s, err := ParseSpec(map[string]any{"op": "bucket", "bounds": []int{0, 10}})
	if err != nil || !reflect.DeepEqual(s.Bounds, []float64{0, 10}) {
		t.Errorf("bounds as []int: %+v, %v", s, err)
	}
}

// TestValidateStrictForGoSpecs: a Spec built in Go is as strict as parsed
// JSON: parameters of other ops are errors.
func TestValidateStrictForGoSpecs(t *testing.T) {
	for _, tc := range []struct {
		note string
		spec Spec
		err  string
	}{
		{"n on keep", Spec{Op: OpKeep, N: 3}, `op "keep": n is not a parameter of keep`},
		{"two strays sorted", Spec{Op: OpDrop, Unit: "day", Meters: 3}, "meters, unit is not a parameter"},
		{"empty op", Spec{}, "missing op"},
		{"unknown op", Spec{Op: "mask"}, `unknown op "mask"`},
		{"NaN meters", Spec{Op: OpGeneraliseLocation, Meters: nan()}, "meters NaN out of range"},
		{"NaN bound", Spec{Op: OpBucket, Bounds: []float64{0, nan()}}, "bounds[1] NaN is not finite"},
		{"Inf width", Spec{Op: OpBucket, Width: inf()}, "must be a finite number"},
	} {
		t.Run(tc.note, func(t *testing.T) {
			err := tc.spec.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			if _, cerr := Compile(tc.spec, nil); cerr == nil {
				t.Fatal("Compile accepted an invalid spec")
			}
		})
	}
}

func TestCompileCopiesSpec(t *testing.T) {
	bounds := []float64{0, 10, 20}
	repl := "x"
	tr := MustCompile(Spec{Op: OpBucket, Bounds: bounds}, nil)
	bounds[1] = 15
	if got := tr.Int(12); got != 10 {
		t.Fatalf("compiled transform follows caller's slice: %d", got)
	}
	r := MustCompile(Spec{Op: OpRedact, Replacement: &repl}, nil)
	repl = "y"
	if got := string(r.AppendString(nil, nil)); got != "x" {
		t.Fatalf("compiled transform follows caller's string: %q", got)
	}
	s := tr.Spec()
	s.Bounds[0] = -1
	if tr.Spec().Bounds[0] != 0 {
		t.Fatal("Spec() exposes internal slice")
	}
}

func nan() float64 { return math.NaN() }
func inf() float64 { return math.Inf(1) }

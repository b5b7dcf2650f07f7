package view

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/sluicehq/sluice/masking"
	"github.com/sluicehq/sluice/schemas"
)

// Predicate decides whether a record is for the audience. It must not
// allocate and must be safe for concurrent use.
type Predicate func(rec *schemas.Record) bool

// ConsentCheck reports whether the subject of a record opted out (the
// record must then be withheld).
type ConsentCheck func(subject []byte) bool

// Governed is a partner's compiled view of a product: row predicate,
// consent check, field transforms and JSON encoder. Fields the plan does
// not list are dropped.
type Governed struct {
	key     string
	row     Predicate
	consent ConsentCheck
	subject int // field index of the consent subject, -1 if none
	fields  []outField
	schema  json.RawMessage
	avro    avroPlan // the Avro encoders, compiled at the first NewAvro
}

type outField struct {
	name  string
	key   []byte // `"name":`
	index int
	t     *masking.Transform // nil: keep
	out   masking.Kind
	kind  schemas.Kind // reader kind of the input
	pair  int          // generalise-location: index of the other coordinate
	isLat bool
}

// FieldPlan is one output field: the transform to apply (nil or keep: the
// value as is).
type FieldPlan struct {
	Name      string
	Transform *masking.Transform
}

// Plan is what NewGoverned compiles.
type Plan struct {
	Key     string       // unique per partner, product, purpose, policy revision
	Row     Predicate    // nil: every row
	Consent ConsentCheck // nil: no consent check
	Subject string       // field holding the consent subject (with Consent)
	Fields  []FieldPlan  // in output order; unlisted fields are dropped
}

// ErrPlan wraps every reason a plan cannot be compiled; the gateway then
// denies (fail closed).
var ErrPlan = errors.New("view: plan cannot be applied to the product")

func maskingKind(k schemas.Kind) (masking.Kind, bool) {
	switch k {
	case schemas.KindString, schemas.KindBytes, schemas.KindFixed, schemas.KindEnum:
		return masking.KindString, true
	case schemas.KindInt, schemas.KindLong, schemas.KindTimestampMillis, schemas.KindDate:
		return masking.KindInt, true
	case schemas.KindFloat, schemas.KindDouble:
		return masking.KindFloat, true
	}
	return masking.KindNone, false
}

// coordinatePair finds the other coordinate of a latitude/longitude field.
func coordinatePair(l *schemas.Layout, name string) (other string, isLat bool) {
	for _, p := range [][2]string{{"lat", "lon"}, {"latitude", "longitude"}, {"lat", "lng"}} {
		for _, sep := range []string{"", "_"} {
			if base, ok := strings.CutSuffix(name, sep+p[0]); ok && (sep != "" || base == "") {
				return base + sep + p[1], true
			}
			if base, ok := strings.CutSuffix(name, sep+p[1]); ok && (sep != "" || base == "") {
				return base + sep + p[0], false
			}
		}
	}
	return "", false
}

// NewGoverned compiles a plan over a product's layout.
func NewGoverned(l *schemas.Layout, p Plan) (*Governed, error) {
	g := &Governed{key: p.Key, row: p.Row, consent: p.Consent, subject: -1}
	if p.Consent != nil {
		f, ok := l.Field(p.Subject)
		if !ok || f.Kind != schemas.KindString {
			return nil, fmt.Errorf("%w: consent subject field %q is not a string field", ErrPlan, p.Subject)
		}
		g.subject = f.Index
	}
	var schemaFields []map[string]any
	for _, fp := range p.Fields {
		f, ok := l.Field(fp.Name)
		if !ok {
			return nil, fmt.Errorf("%w: field %q is not in the product", ErrPlan, fp.Name)
		}
		of := outField{name: f.Name, index: f.Index, kind: f.Kind, pair: -1}
		t := fp.Transform
		if t != nil && t.Op() == masking.OpKeep {
			t = nil
		}
		if t != nil && t.Dropped() {
			continue
		}
		outType := json.RawMessage(f.Schema.String())
		if t != nil {
			in, ok := maskingKind(f.Kind)
			if !ok {
				return nil, fmt.Errorf("%w: field %q of type %s cannot be masked with %s", ErrPlan, f.Name, f.Kind, t)
			}
			out, err := t.OutputKind(in)
			if err != nil {
				return nil, fmt.Errorf("%w: field %q: %v", ErrPlan, f.Name, err)
			}
			if f.Kind == schemas.KindEnum && t.Op() != masking.OpRedact {
				return nil, fmt.Errorf("%w: enum field %q can only be kept, dropped or redacted", ErrPlan, f.Name)
			}
			if t.Op() == masking.OpGeneraliseLocation {
				other, isLat := coordinatePair(l, f.Name)
				if sp := t.Spec(); sp.Pair != "" { // the policy names the pair
					other, isLat = sp.Pair, sp.Axis != masking.AxisLon
				}
				of2, ok := l.Field(other)
				if other == "" || !ok || (of2.Kind != schemas.KindDouble && of2.Kind != schemas.KindFloat) {
					return nil, fmt.Errorf("%w: generalise-location on %q needs its coordinate pair (lat/lon)", ErrPlan, f.Name)
				}
				of.pair, of.isLat = of2.Index, isLat
			}
			of.t, of.out = t, out
			switch out {
			case masking.KindString:
				outType = json.RawMessage(`"string"`)
			case masking.KindNull:
				outType = json.RawMessage(`"null"`)
			}
			if f.Nullable && out != masking.KindNull {
				outType = json.RawMessage(`["null",` + string(outType) + `]`)
			}
		}
		g.fields = append(g.fields, of)
		schemaFields = append(schemaFields, map[string]any{"name": f.Name, "type": outType})
	}
	for i := range g.fields {
		g.fields[i].key = schemas.AppendJSONKey(nil, g.fields[i].name)
	}
	name := "View"
	if l.Schema != nil {
		name = l.Schema.Name() + "View"
	}
	g.schema, _ = json.Marshal(map[string]any{"type": "record", "name": name, "namespace": "sluice.view", "fields": schemaFields})
	return g, nil
}

// Key implements View.
func (g *Governed) Key() string { return g.key }

// Subject returns the record's consent subject, or nil when the view does
// not check consent. The hub keeps it with the encoded event (in memory,
// never sent) so consent is checked again at delivery.
func (g *Governed) Subject(rec *schemas.Record) []byte {
	if g.consent == nil {
		return nil
	}
	return rec.Values[g.subject].Bytes
}

// Withheld reports whether an event with this subject must not be
// delivered now (its subject opted out after it was encoded).
func (g *Governed) Withheld(subject []byte) bool {
	return g.consent != nil && subject != nil && g.consent(subject)
}

// Schema is the Avro schema of the view's records (without the _partition,
// _offset and _timestamp metadata): dropped fields vanish, masked fields
// change type (a pseudonymised long becomes a string).
func (g *Governed) Schema() json.RawMessage { return g.schema }

// Append implements View.
func (g *Governed) Append(dst []byte, rec *schemas.Record, m Meta) ([]byte, bool) {
	if !g.admit(rec) {
		return dst, false
	}
	sep := byte('{')
	for i := range g.fields {
		f := &g.fields[i]
		dst = append(dst, sep)
		sep = ','
		dst = append(dst, f.key...)
		v := &rec.Values[f.index]
		if f.t == nil {
			dst = schemas.AppendJSONValue(dst, v)
			continue
		}
		if v.Kind == schemas.KindNull || f.out == masking.KindNull {
			dst = append(dst, "null"...)
			continue
		}
		dst = g.appendMasked(dst, f, rec, v)
	}
	if len(g.fields) == 0 {
		dst = append(dst, '{')
	} else {
		dst = append(dst, ',')
	}
	return AppendMeta(dst, m), true
}

// appendString appends the field's transform of v when its output is a
// string: numbers are transformed as their decimal text.
func (f *outField) appendString(dst []byte, v *schemas.Value) []byte {
	switch v.Kind {
	case schemas.KindInt, schemas.KindLong, schemas.KindTimestampMillis, schemas.KindDate:
		return f.t.AppendInt(dst, v.Int)
	case schemas.KindFloat, schemas.KindDouble:
		return f.t.AppendFloat(dst, v.Float)
	}
	return f.t.AppendString(dst, v.Bytes)
}

// admit applies the row predicate and the consent check.
func (g *Governed) admit(rec *schemas.Record) bool {
	if g.row != nil && !g.row(rec) {
		return false
	}
	if g.consent != nil {
		v := &rec.Values[g.subject]
		if v.Kind == schemas.KindNull || g.consent(v.Bytes) {
			return false // no subject or opted out: withheld
		}
	}
	return true
}

func (g *Governed) appendMasked(dst []byte, f *outField, rec *schemas.Record, v *schemas.Value) []byte {
	switch f.out {
	case masking.KindString:
		dst = append(dst, '"')
		mark := len(dst)
		dst = f.appendString(dst, v)
		if needsEscape(dst[mark:]) {
			var tmp [256]byte
			raw := append(tmp[:0], dst[mark:]...)
			dst = schemas.AppendJSONString(dst[:mark-1], raw)
			return dst
		}
		return append(dst, '"')
	case masking.KindInt:
		out := schemas.Value{Kind: v.Kind, Int: f.t.Int(v.Int)}
		return schemas.AppendJSONValue(dst, &out)
	case masking.KindFloat:
		x := maskFloat(f, rec, v)
		if math.IsNaN(x) {
			return append(dst, "null"...)
		}
		out := schemas.Value{Kind: schemas.KindDouble, Float: x}
		return schemas.AppendJSONValue(dst, &out)
	}
	return append(dst, "null"...)
}

// maskFloat applies a float transform (generalise-location takes the
// other coordinate too).
func maskFloat(f *outField, rec *schemas.Record, v *schemas.Value) float64 {
	x := v.Float
	if f.pair >= 0 {
		o := rec.Values[f.pair].Float
		if f.isLat {
			x, _ = f.t.LatLon(x, o)
		} else {
			_, x = f.t.LatLon(o, x)
		}
		return x
	}
	return f.t.Float(x)
}

func needsEscape(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return true
		}
	}
	return false
}

package view

import (
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/masking"
	"github.com/sluicehq/sluice/schemas"
)

// Avro is a governed view encoded as Avro in Schema Registry wire format:
// magic byte 0, the view schema's registry id (4 bytes, big-endian), then
// the Avro binary of the record per Governed.Schema. It is the same view
// (rows, consent, field transforms) as its Governed, only the encoding
// differs, and it has its own key, so the hub keeps its bytes in a ring of
// their own and encodes each record once for all its subscribers.
//
// Values are those of the JSON encoding, field for field, with what Avro
// can say and JSON cannot: NaN and infinities stay numbers (JSON writes
// null) unless the field is nullable, where they are null as in JSON. The
// _partition, _offset and _timestamp members of the JSON are not in the
// view schema and not in the Avro record: Kafka clients have them as the
// record's own partition, offset and timestamp.
type Avro struct {
	g   *Governed
	id  uint32
	key string
}

var _ ConsentView = (*Avro)(nil)

// avroPlan is a Governed's Avro encoders, one per output field, compiled
// from the parsed view schema at the first NewAvro.
type avroPlan struct {
	once sync.Once
	enc  []*schemas.FieldEncoder
	err  error
}

// NewAvro returns g's Avro view with its Schema Registry id (the id under
// which g.Schema() is served). It fails when the view schema cannot be
// encoded (ErrPlan), which callers treat as a denial.
func NewAvro(g *Governed, id uint32) (*Avro, error) {
	p := &g.avro
	p.once.Do(func() {
		s, err := schemas.Parse(g.schema)
		if err != nil {
			p.err = fmt.Errorf("%w: view schema: %v", ErrPlan, err)
			return
		}
		rec, ok := s.(*avro.RecordSchema)
		if !ok || len(rec.Fields()) != len(g.fields) {
			p.err = fmt.Errorf("%w: view schema does not match the view's fields", ErrPlan)
			return
		}
		for _, f := range rec.Fields() {
			e, err := schemas.NewFieldEncoder(f.Type())
			if err != nil {
				p.err = fmt.Errorf("%w: field %s: %v", ErrPlan, f.Name(), err)
				return
			}
			p.enc = append(p.enc, e)
		}
	})
	if p.err != nil {
		return nil, p.err
	}
	return &Avro{g: g, id: id, key: g.key + "/avro/" + strconv.FormatUint(uint64(id), 10)}, nil
}

// Key implements View: the Governed's key, the format and the schema id.
func (a *Avro) Key() string { return a.key }

// SchemaID is the registry id in every record's header.
func (a *Avro) SchemaID() uint32 { return a.id }

// Governed returns the view this encodes.
func (a *Avro) Governed() *Governed { return a.g }

// Subject implements ConsentView.
func (a *Avro) Subject(rec *schemas.Record) []byte { return a.g.Subject(rec) }

// Withheld implements ConsentView.
func (a *Avro) Withheld(subject []byte) bool { return a.g.Withheld(subject) }

// Append implements View; m is not encoded (see Avro). A value the view
// schema cannot hold (which a compiled view does not produce) leaves the
// record out, as an undecodable one: fail closed, never a half record.
func (a *Avro) Append(dst []byte, rec *schemas.Record, _ Meta) ([]byte, bool) {
	g := a.g
	if !g.admit(rec) {
		return dst, false
	}
	start := len(dst)
	dst = schemas.AppendConfluentHeader(dst, a.id)
	enc := g.avro.enc
	var err error
	for i := range g.fields {
		f, e := &g.fields[i], enc[i]
		v := &rec.Values[f.index]
		if f.t == nil || v.Kind == schemas.KindNull || f.out == masking.KindNull {
			if f.out == masking.KindNull {
				v = &schemas.Value{Kind: schemas.KindNull}
			}
			if dst, err = e.Append(dst, v); err != nil {
				return dst[:start], false
			}
			continue
		}
		switch f.out {
		case masking.KindString:
			dst = e.AppendValueBranch(dst)
			mark := len(dst)
			dst = schemas.PrefixAvroLength(f.appendString(dst, v), mark)
		case masking.KindInt:
			out := schemas.Value{Kind: v.Kind, Int: f.t.Int(v.Int)}
			dst, err = e.Append(dst, &out)
		case masking.KindFloat:
			out := schemas.Value{Kind: schemas.KindDouble, Float: maskFloat(f, rec, v)}
			if math.IsNaN(out.Float) && e.Nullable() {
				out.Kind = schemas.KindNull // as the JSON's null
			}
			dst, err = e.Append(dst, &out)
		default:
			err = schemas.ErrEncode
		}
		if err != nil {
			return dst[:start], false
		}
	}
	return dst, true
}

package generate

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/products"
)

// filler supplies one field the product's model does not set: every field
// of a product without a model, and fields a newer schema version added
// before anyone taught the model about them.
type filler struct {
	name string
	gen  valueGen
}

// valueGen returns a value hamba/avro encodes with the schema it was made
// for.
type valueGen func(g *Generator, t time.Time) any

func newFiller(f *avro.Field) filler {
	return filler{name: f.Name(), gen: genFor(f.Type(), f.Name(), 0)}
}

// genericModel fills every field of a product's current schema from its
// type, and from its name for identifiers, picking one subscriber, device
// and cell per record so identifiers agree.
type genericModel struct {
	names []string
	gens  []valueGen
	key   string // field holding the record key, or ""
}

func newGenericModel(p *products.Product) *genericModel {
	m := &genericModel{}
	rec := p.Current().Schema.(*avro.RecordSchema)
	for _, f := range rec.Fields() {
		m.names = append(m.names, f.Name())
		m.gens = append(m.gens, genFor(f.Type(), f.Name(), 0))
	}
	for _, k := range []string{"msisdn", "device_id", "cell_id", "imsi"} {
		for _, f := range rec.Fields() {
			if f.Name() == k && f.Type().Type() == avro.String {
				m.key = k
				break
			}
		}
		if m.key != "" {
			break
		}
	}
	return m
}

func (m *genericModel) fields() []string { return m.names }

func (m *genericModel) build(g *Generator, t time.Time) (string, map[string]any, time.Time) {
	rec := make(map[string]any, len(m.names))
	for i, name := range m.names {
		rec[name] = m.gens[i](g, t)
	}
	key, _ := rec[m.key].(string)
	return key, rec, t
}

func (g *Generator) sub() *subscriber {
	if g.recSub == nil {
		g.recSub = g.w.pickSubscriber(g.r)
	}
	return g.recSub
}

func (g *Generator) dev() *device {
	if g.recDev == nil {
		g.recDev = g.w.devices[pick(g.r, g.w.devCum)]
	}
	return g.recDev
}

func (g *Generator) cell() *cell {
	if g.recCell == nil {
		g.recCell = g.w.cells[g.r.IntN(len(g.w.cells))]
	}
	return g.recCell
}

// maxDepth bounds recursive schemas (a record holding an optional list of
// itself).
const maxDepth = 4

// genFor returns a generator of values for schema s, for a field called
// name.
func genFor(s avro.Schema, name string, depth int) valueGen {
	lname := strings.ToLower(name)
	switch s := s.(type) {
	case *avro.RefSchema:
		return genFor(s.Schema(), name, depth)
	case *avro.PrimitiveSchema:
		return genPrimitive(s, lname)
	case *avro.EnumSchema:
		symbols := s.Symbols()
		return func(g *Generator, _ time.Time) any { return symbols[g.r.IntN(len(symbols))] }
	case *avro.FixedSchema:
		return genFixed(s)
	case *avro.ArraySchema:
		if depth >= maxDepth {
			return func(*Generator, time.Time) any { return []any{} }
		}
		item := genFor(s.Items(), name, depth+1)
		return func(g *Generator, t time.Time) any {
			out := make([]any, g.r.IntN(3))
			for i := range out {
				out[i] = item(g, t)
			}
			return out
		}
	case *avro.MapSchema:
		if depth >= maxDepth {
			return func(*Generator, time.Time) any { return map[string]any{} }
		}
		val := genFor(s.Values(), name, depth+1)
		return func(g *Generator, t time.Time) any {
			out := map[string]any{}
			for i := range g.r.IntN(3) {
				out[fmt.Sprintf("key-%d", i)] = val(g, t)
			}
			return out
		}
	case *avro.RecordSchema:
		fields := s.Fields()
		gens := make([]valueGen, len(fields))
		for i, f := range fields {
			if depth >= maxDepth {
				gens[i] = genZero(f.Type())
				continue
			}
			gens[i] = genFor(f.Type(), f.Name(), depth+1)
		}
		return func(g *Generator, t time.Time) any {
			out := make(map[string]any, len(fields))
			for i, f := range fields {
				out[f.Name()] = gens[i](g, t)
			}
			return out
		}
	case *avro.UnionSchema:
		return genUnion(s, name, depth)
	}
	return func(*Generator, time.Time) any { return nil }
}

// genZero ends recursion: null for a nullable union, an empty collection,
// or the type's simplest value.
func genZero(s avro.Schema) valueGen {
	switch s := s.(type) {
	case *avro.UnionSchema:
		if s.Nullable() {
			return func(*Generator, time.Time) any { return map[string]any(nil) }
		}
	case *avro.ArraySchema:
		return func(*Generator, time.Time) any { return []any{} }
	case *avro.MapSchema:
		return func(*Generator, time.Time) any { return map[string]any{} }
	}
	return genFor(s, "", maxDepth)
}

// genUnion wraps the value of a branch as {branch name: value}, the union
// form hamba/avro encodes unambiguously; null is a nil map. A nullable
// union is null a third of the time.
func genUnion(s *avro.UnionSchema, name string, depth int) valueGen {
	type branch struct {
		name string
		gen  valueGen
	}
	var branches []branch
	for _, b := range s.Types() {
		if b.Type() == avro.Null {
			continue
		}
		branches = append(branches, branch{unionName(b), genFor(b, name, depth+1)})
	}
	nullable := s.Nullable() || len(branches) < len(s.Types())
	return func(g *Generator, t time.Time) any {
		if len(branches) == 0 || (nullable && g.r.IntN(3) == 0) {
			return map[string]any(nil)
		}
		b := branches[g.r.IntN(len(branches))]
		return map[string]any{b.name: b.gen(g, t)}
	}
}

// unionName is how hamba/avro names a union branch: the full name of a
// named type, else the type with its logical type, e.g. long.timestamp-millis.
func unionName(s avro.Schema) string {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	name := string(s.Type())
	if ls, ok := s.(avro.LogicalTypeSchema); ok && ls.Logical() != nil {
		name += "." + string(ls.Logical().Type())
	}
	return name
}

func genPrimitive(s *avro.PrimitiveSchema, lname string) valueGen {
	var logical avro.LogicalType
	if s.Logical() != nil {
		logical = s.Logical().Type()
	}
	switch s.Type() {
	case avro.Null:
		return func(*Generator, time.Time) any { return nil }
	case avro.Boolean:
		return func(g *Generator, _ time.Time) any { return g.r.IntN(2) == 0 }
	case avro.Int:
		switch logical {
		case avro.Date:
			return func(_ *Generator, t time.Time) any { return t.UTC().Truncate(24 * time.Hour) }
		case avro.TimeMillis:
			return func(_ *Generator, t time.Time) any {
				return t.Sub(t.UTC().Truncate(24 * time.Hour)).Truncate(time.Millisecond)
			}
		}
		return func(g *Generator, _ time.Time) any { return g.r.IntN(1000) }
	case avro.Long:
		switch logical {
		case avro.TimestampMillis, avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros:
			return func(_ *Generator, t time.Time) any { return t }
		case avro.TimeMicros:
			return func(_ *Generator, t time.Time) any {
				return t.Sub(t.UTC().Truncate(24 * time.Hour)).Truncate(time.Microsecond)
			}
		}
		return func(g *Generator, _ time.Time) any { return g.r.Int64N(1_000_000) }
	case avro.Float:
		return func(g *Generator, _ time.Time) any { return float32(round(100*g.r.Float64(), 2)) }
	case avro.Double:
		return genDouble(lname)
	case avro.Bytes:
		if logical == avro.Decimal {
			return genDecimal(s.Logical())
		}
		return func(g *Generator, _ time.Time) any {
			b := make([]byte, 8)
			for i := range b {
				b[i] = byte(g.r.IntN(256))
			}
			return b
		}
	case avro.String:
		if logical == avro.UUID {
			return func(g *Generator, _ time.Time) any { return newUUID(g.r) }
		}
		return genString(lname)
	}
	return func(*Generator, time.Time) any { return nil }
}

func genDouble(lname string) valueGen {
	switch {
	case lname == "lat" || lname == "latitude" || strings.HasSuffix(lname, "_lat") || strings.HasSuffix(lname, "_latitude"):
		return func(g *Generator, _ time.Time) any { return g.cell().lat }
	case lname == "lon" || lname == "lng" || lname == "longitude" || strings.HasSuffix(lname, "_lon") ||
		strings.HasSuffix(lname, "_lng") || strings.HasSuffix(lname, "_longitude"):
		return func(g *Generator, _ time.Time) any { return g.cell().lon }
	case strings.Contains(lname, "score") || strings.Contains(lname, "probability"):
		return func(g *Generator, _ time.Time) any { return round(g.r.Float64(), 3) }
	}
	return func(g *Generator, _ time.Time) any { return round(100*g.r.Float64(), 2) }
}

func genString(lname string) valueGen {
	switch {
	case strings.Contains(lname, "imsi"):
		return func(g *Generator, _ time.Time) any { return g.sub().imsi }
	case strings.Contains(lname, "msisdn") || strings.Contains(lname, "phone"):
		return func(g *Generator, _ time.Time) any { return g.sub().msisdn }
	case strings.Contains(lname, "imei"):
		return func(g *Generator, _ time.Time) any { return g.sub().imei }
	case strings.Contains(lname, "iccid"):
		return func(g *Generator, _ time.Time) any { return g.sub().iccid }
	case strings.Contains(lname, "mvno"):
		return func(g *Generator, _ time.Time) any { return g.sub().mvno.id }
	case strings.Contains(lname, "cell"):
		return func(g *Generator, _ time.Time) any { return g.cell().id }
	case lname == "region":
		return func(g *Generator, _ time.Time) any { return g.cell().region }
	case lname == "device_id":
		return func(g *Generator, _ time.Time) any { return g.dev().id }
	case lname == "platform":
		return func(g *Generator, _ time.Time) any { return g.dev().platform }
	}
	prefix := lname
	if prefix == "" {
		prefix = "value"
	}
	return func(g *Generator, _ time.Time) any { return fmt.Sprintf("%s-%04d", prefix, g.r.IntN(10000)) }
}

func genDecimal(l avro.LogicalSchema) valueGen {
	scale := 0
	if d, ok := l.(*avro.DecimalLogicalSchema); ok {
		scale = d.Scale()
	}
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)
	return func(g *Generator, _ time.Time) any {
		return new(big.Rat).SetFrac(big.NewInt(g.r.Int64N(1_000_000)), den)
	}
}

func genFixed(s *avro.FixedSchema) valueGen {
	if s.Logical() != nil {
		switch s.Logical().Type() {
		case avro.Decimal:
			return genDecimal(s.Logical())
		case avro.Duration:
			return func(g *Generator, _ time.Time) any {
				return avro.LogicalDuration{Days: uint32(g.r.IntN(30)), Milliseconds: uint32(g.r.IntN(86_400_000))}
			}
		}
	}
	typ := reflect.ArrayOf(s.Size(), reflect.TypeFor[byte]())
	return func(g *Generator, _ time.Time) any {
		v := reflect.New(typ).Elem()
		for i := range s.Size() {
			v.Index(i).SetUint(uint64(g.r.IntN(256)))
		}
		return v.Interface()
	}
}

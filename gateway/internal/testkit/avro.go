package testkit

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"
)

// AvroAsJSON turns a value hamba/avro decoded with schema s into the JSON
// value sluice's JSON encoding gives the same field (timestamps RFC 3339
// with ms, dates as days, bytes base64, float32 by its shortest text, NaN
// and infinities null, numbers as float64), for comparing the two
// encodings field by field.
func AvroAsJSON(x any, s avro.Schema) any {
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	if u, ok := s.(*avro.UnionSchema); ok {
		if x == nil {
			return nil
		}
		if m, ok := x.(map[string]any); ok && len(m) == 1 {
			for name, v := range m {
				for _, b := range u.Types() {
					if n, ok := b.(avro.NamedSchema); (ok && n.FullName() == name) || string(b.Type()) == name {
						return AvroAsJSON(v, b)
					}
				}
			}
		}
		for _, b := range u.Types() {
			if b.Type() != avro.Null {
				return AvroAsJSON(x, b)
			}
		}
	}
	switch v := x.(type) {
	case time.Time:
		if ls, ok := s.(avro.LogicalTypeSchema); ok && ls.Logical() != nil && ls.Logical().Type() == avro.Date {
			return v.UTC().Format(time.DateOnly)
		}
		return v.UTC().Format("2006-01-02T15:04:05.000Z")
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	case float32:
		f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
		return f
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return v
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	case int:
		return float64(v)
	case []any:
		a, _ := s.(*avro.ArraySchema)
		out := make([]any, len(v))
		for i := range v {
			out[i] = AvroAsJSON(v[i], a.Items())
		}
		return out
	case map[string]any:
		out := map[string]any{}
		switch t := s.(type) {
		case *avro.RecordSchema:
			for _, f := range t.Fields() {
				out[f.Name()] = AvroAsJSON(v[f.Name()], f.Type())
			}
		case *avro.MapSchema:
			for k, e := range v {
				out[k] = AvroAsJSON(e, t.Values())
			}
		}
		return out
	}
	return x
}

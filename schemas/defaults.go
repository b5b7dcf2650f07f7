package schemas

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/hamba/avro/v2"
)

// Field defaults arrive from hamba/avro already validated against the field
// type (ints as int, longs as int64, floats as float32, bytes as []byte,
// fixed as a [N]byte array, records and maps as map[string]any, unions as
// a value of their first branch). They are encoded once, at compile time.

// defaultValue turns the default of a top-level reader field into the Value
// the Decoder copies into every record that lacks the field.
func defaultValue(s avro.Schema, v any) (Value, error) {
	s = deref(s)
	if u, ok := s.(*avro.UnionSchema); ok {
		first := deref(u.Types()[0])
		if first.Type() == avro.Null {
			return Value{Kind: KindNull}, nil
		}
		if k, _ := classify(u); k != KindJSON {
			return scalarDefault(first, v)
		}
		js, err := defaultJSON(nil, first, v)
		return Value{Kind: KindJSON, Bytes: slices.Clip(js)}, err
	}
	if _, ok := scalarKind(s); ok {
		return scalarDefault(s, v)
	}
	js, err := defaultJSON(nil, s, v)
	return Value{Kind: KindJSON, Bytes: slices.Clip(js)}, err
}

// defaultJSON appends the JSON of default v of reader type s.
func defaultJSON(dst []byte, s avro.Schema, v any) ([]byte, error) {
	s = deref(s)
	switch t := s.(type) {
	case *avro.UnionSchema:
		return defaultJSON(dst, t.Types()[0], v)
	case *avro.ArraySchema:
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("array default is %T", v)
		}
		dst = append(dst, '[')
		for i, e := range arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = defaultJSON(dst, t.Items(), e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("map default is %T", v)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONKey(dst, k)
			var err error
			if dst, err = defaultJSON(dst, t.Values(), m[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record default is %T", v)
		}
		dst = append(dst, '{')
		for i, f := range t.Fields() {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONKey(dst, f.Name())
			fv, ok := m[f.Name()]
			if !ok {
				if !f.HasDefault() {
					return nil, fmt.Errorf("record default lacks field %q", f.Name())
				}
				fv = f.Default()
			}
			var err error
			if dst, err = defaultJSON(dst, f.Type(), fv); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	}
	val, err := scalarDefault(s, v)
	if err != nil {
		return nil, err
	}
	return AppendJSONValue(dst, &val), nil
}

// scalarDefault converts default v of scalar (non-union) reader type s.
func scalarDefault(s avro.Schema, v any) (Value, error) {
	s = deref(s)
	kind, _ := scalarKind(s)
	val := Value{Kind: kind}
	bad := func() (Value, error) { return Value{}, fmt.Errorf("%s default has type %T", typeName(s), v) }
	switch s.Type() {
	case avro.Null:
		return val, nil
	case avro.Boolean:
		b, ok := v.(bool)
		if !ok {
			return bad()
		}
		if b {
			val.Int = 1
		}
	case avro.Int, avro.Long:
		i, ok := toInt64(v)
		if !ok {
			return bad()
		}
		val.Int = i
	case avro.Float, avro.Double:
		f, ok := toFloat64(v)
		if !ok {
			return bad()
		}
		if s.Type() == avro.Float {
			f = float64(float32(f))
		}
		val.Float = f
	case avro.String:
		str, ok := v.(string)
		if !ok {
			return bad()
		}
		val.Bytes = []byte(str)
	case avro.Bytes, avro.Fixed:
		b, ok := toBytes(v)
		if !ok {
			return bad()
		}
		if scale, ok := decimalScale(s); ok {
			txt, err := appendDecimal(nil, b, scale)
			if err != nil {
				return Value{}, err
			}
			b = txt
		}
		val.Bytes = b
	case avro.Enum:
		str, ok := v.(string)
		if !ok {
			return bad()
		}
		i := slices.Index(s.(*avro.EnumSchema).Symbols(), str)
		if i < 0 {
			return Value{}, fmt.Errorf("enum default %q is not a symbol of %s", str, typeName(s))
		}
		val.Int, val.Bytes = int64(i), []byte(str)
	default:
		return bad()
	}
	val.Bytes = slices.Clip(val.Bytes)
	return val, nil
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		return int64(n), true
	case float32:
		return int64(n), true
	}
	return 0, false
}

func toFloat64(v any) (float64, bool) {
	switch n := v.(type) {
	case float32:
		return float64(n), true
	case float64:
		return n, true
	}
	if i, ok := toInt64(v); ok {
		return float64(i), true
	}
	return 0, false
}

func toBytes(v any) ([]byte, bool) {
	switch b := v.(type) {
	case []byte:
		return b, true
	case string:
		out := make([]byte, 0, len(b))
		for _, r := range b {
			if r > 255 {
				return nil, false
			}
			out = append(out, byte(r))
		}
		return out, true
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Array && rv.Type().Elem().Kind() == reflect.Uint8 {
		out := make([]byte, rv.Len())
		reflect.Copy(reflect.ValueOf(out), rv)
		return out, true
	}
	return nil, false
}

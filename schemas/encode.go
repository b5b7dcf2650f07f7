package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// The Avro binary encoder: the way back from decoded Values to Avro, for
// output in Avro (the Kafka front door's Schema Registry format). A
// FieldEncoder is compiled once per field schema and appends one Value;
// scalar values (every top-level field that is not KindJSON) encode with
// no allocation. KindJSON values (records, arrays, maps, general unions)
// carry only their JSON text, which is parsed and encoded by the schema:
// correct, but it allocates (encoding/json), so it is the slow path.

// Errors of the encoder.
var (
	// ErrEncode: a value does not fit the schema it is encoded as.
	ErrEncode = errors.New("schemas: value does not fit the Avro schema")
)

// AppendAvroLong appends x as an Avro int or long (zigzag varint).
func AppendAvroLong(dst []byte, x int64) []byte {
	return binary.AppendUvarint(dst, uint64(x<<1)^uint64(x>>63))
}

// AppendAvroBytes appends b as Avro bytes or string (length, then bytes).
func AppendAvroBytes(dst, b []byte) []byte {
	dst = AppendAvroLong(dst, int64(len(b)))
	return append(dst, b...)
}

// PrefixAvroLength turns dst[mark:], bytes just appended, into an Avro
// bytes or string value by inserting their length before them. It lets a
// caller write a string of unknown length in place, without a scratch
// buffer.
func PrefixAvroLength(dst []byte, mark int) []byte {
	return insertLong(dst, mark, int64(len(dst)-mark))
}

// AppendConfluentHeader appends the Schema Registry wire format header:
// magic byte 0 and the schema id, 4 bytes big-endian.
func AppendConfluentHeader(dst []byte, id uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, 0), id)
}

// FieldEncoder appends one top-level Value as Avro binary of a field's
// schema (the schema the value is written with: for views, the view
// schema's field type). It is immutable and safe for concurrent use.
type FieldEncoder struct {
	nullIndex  int // union branch of null; -1 when the schema has no null
	valueIndex int // union branch of the value, -1 when not a union
	sc         encScalar
	json       *encNode // non-nil: values arrive as KindJSON text (complex or general union)
}

type encScalar struct {
	typ     avro.Type
	size    int // fixed
	scale   int // decimal
	decimal bool
	symbols int // enum
}

// NewFieldEncoder compiles the encoder of one field schema.
func NewFieldEncoder(s avro.Schema) (*FieldEncoder, error) {
	s = deref(s)
	e := &FieldEncoder{nullIndex: -1, valueIndex: -1}
	if u, ok := s.(*avro.UnionSchema); ok {
		var other []int
		for i, b := range u.Types() {
			if b.Type() == avro.Null {
				e.nullIndex = i
			} else {
				other = append(other, i)
			}
		}
		switch {
		case len(other) == 0:
			return e, nil
		case len(other) == 1:
			if sc, ok := newEncScalar(u.Types()[other[0]]); ok {
				e.valueIndex, e.sc = other[0], sc
				return e, nil
			}
		}
	} else if s.Type() == avro.Null {
		e.sc.typ = avro.Null
		return e, nil
	} else if sc, ok := newEncScalar(s); ok {
		e.sc = sc
		return e, nil
	}
	n, err := newEncNode(s, 0)
	if err != nil {
		return nil, err
	}
	e.json = n
	return e, nil
}

func newEncScalar(s avro.Schema) (encScalar, bool) {
	s = deref(s)
	sc := encScalar{typ: s.Type()}
	switch t := s.(type) {
	case *avro.PrimitiveSchema:
		switch t.Type() {
		case avro.Boolean, avro.Int, avro.Long, avro.Float, avro.Double, avro.String, avro.Bytes:
		default:
			return sc, false
		}
	case *avro.FixedSchema:
		sc.size = t.Size()
	case *avro.EnumSchema:
		sc.symbols = len(t.Symbols())
	default:
		return sc, false
	}
	sc.scale, sc.decimal = decimalScale(s)
	return sc, true
}

// Append appends v. A value of the wrong kind for the schema (a null for
// a field that cannot be null, an enum index out of range, decimal text
// that is not a number) is an error wrapping ErrEncode; dst may then hold
// a partial value and should be discarded.
func (e *FieldEncoder) Append(dst []byte, v *Value) ([]byte, error) {
	if e.json != nil {
		if v.Kind == KindNull && e.nullIndex >= 0 && e.json.typ == avro.Union {
			return AppendAvroLong(dst, int64(e.nullIndex)), nil
		}
		return e.json.appendJSONText(dst, v)
	}
	if v.Kind == KindNull {
		switch {
		case e.nullIndex >= 0:
			return AppendAvroLong(dst, int64(e.nullIndex)), nil
		case e.sc.typ == avro.Null:
			return dst, nil
		}
		return dst, fmt.Errorf("%w: null for a field that cannot be null", ErrEncode)
	}
	if e.valueIndex >= 0 {
		dst = AppendAvroLong(dst, int64(e.valueIndex))
	} else if e.nullIndex >= 0 || e.sc.typ == avro.Null {
		return dst, fmt.Errorf("%w: a %s value for a null-only field", ErrEncode, v.Kind)
	}
	return e.sc.append(dst, v)
}

func (sc *encScalar) append(dst []byte, v *Value) ([]byte, error) {
	switch sc.typ {
	case avro.Boolean:
		if v.Int != 0 {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case avro.Int, avro.Long:
		return AppendAvroLong(dst, v.Int), nil
	case avro.Float:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(v.Float))), nil
	case avro.Double:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float)), nil
	case avro.String:
		return AppendAvroBytes(dst, v.Bytes), nil
	case avro.Bytes, avro.Fixed:
		b := v.Bytes
		if sc.decimal {
			var err error
			if b, err = decimalBytes(b, sc.scale, sc.size); err != nil {
				return dst, err
			}
		}
		if sc.typ == avro.Bytes {
			return AppendAvroBytes(dst, b), nil
		}
		if len(b) != sc.size {
			return dst, fmt.Errorf("%w: %d bytes for a fixed of size %d", ErrEncode, len(b), sc.size)
		}
		return append(dst, b...), nil
	case avro.Enum:
		if v.Int < 0 || v.Int >= int64(sc.symbols) {
			return dst, fmt.Errorf("%w: enum index %d of %d symbols", ErrEncode, v.Int, sc.symbols)
		}
		return AppendAvroLong(dst, v.Int), nil
	}
	return dst, fmt.Errorf("%w: type %s", ErrEncode, sc.typ)
}

// decimalBytes turns decimal text ("-123.45") into the big-endian two's
// complement unscaled integer of the scale: minimal length, or size bytes
// (sign-extended) for a fixed. Rare (no shipped schema has decimals), so
// it uses math/big.
func decimalBytes(text []byte, scale, size int) ([]byte, error) {
	s := string(text)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > scale {
		return nil, fmt.Errorf("%w: decimal %q has more than %d fraction digits", ErrEncode, text, scale)
	}
	var n big.Int
	if _, ok := n.SetString(whole+frac+strings.Repeat("0", scale-len(frac)), 10); !ok {
		return nil, fmt.Errorf("%w: decimal %q is not a number", ErrEncode, text)
	}
	if neg {
		n.Neg(&n)
	}
	// Two's complement: the minimal byte length that keeps the sign bit.
	l := (n.BitLen() + 8) / 8
	if size > 0 {
		if l > size {
			return nil, fmt.Errorf("%w: decimal %q does not fit %d bytes", ErrEncode, text, size)
		}
		l = size
	}
	out := make([]byte, l)
	if n.Sign() >= 0 {
		n.FillBytes(out)
		return out, nil
	}
	// -x = 2^(8l) - x
	var m big.Int
	m.Lsh(big.NewInt(1), uint(8*l))
	m.Add(&m, &n)
	m.FillBytes(out)
	return out, nil
}

// encNode encodes a JSON value (as the decoder writes it for KindJSON) as
// Avro of one schema.
type encNode struct {
	typ      avro.Type
	sc       encScalar
	logical  avro.LogicalType
	symbols  map[string]int
	items    *encNode // array items, map values
	fields   []encField
	branches []*encNode // union
}

type encField struct {
	name string
	node *encNode
}

func newEncNode(s avro.Schema, depth int) (*encNode, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("schemas: schema nesting deeper than %d", maxDepth)
	}
	s = deref(s)
	n := &encNode{typ: s.Type(), logical: logical(s)}
	var err error
	switch t := s.(type) {
	case *avro.UnionSchema:
		for _, b := range t.Types() {
			bn, err := newEncNode(b, depth+1)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, bn)
		}
	case *avro.RecordSchema:
		for _, f := range t.Fields() {
			fn, err := newEncNode(f.Type(), depth+1)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, encField{name: f.Name(), node: fn})
		}
	case *avro.ArraySchema:
		n.items, err = newEncNode(t.Items(), depth+1)
	case *avro.MapSchema:
		n.items, err = newEncNode(t.Values(), depth+1)
	case *avro.EnumSchema:
		n.symbols = map[string]int{}
		for i, sym := range t.Symbols() {
			n.symbols[sym] = i
		}
		n.sc, _ = newEncScalar(s)
	case *avro.NullSchema:
	default:
		var ok bool
		if n.sc, ok = newEncScalar(s); !ok {
			return nil, fmt.Errorf("schemas: cannot encode Avro type %s", typeName(s))
		}
	}
	return n, err
}

func (n *encNode) appendJSONText(dst []byte, v *Value) ([]byte, error) {
	if v.Kind == KindJSON {
		if out, ok := n.appendScalarArray(dst, v.Bytes); ok {
			return out, nil
		}
	}
	var x any
	if v.Kind == KindJSON {
		dec := json.NewDecoder(bytes.NewReader(v.Bytes))
		dec.UseNumber()
		if err := dec.Decode(&x); err != nil {
			return dst, fmt.Errorf("%w: %v", ErrEncode, err)
		}
	} else {
		// A scalar arriving where the schema is complex (a general union
		// whose branch decoded to a scalar): its JSON form.
		var tmp [64]byte
		dec := json.NewDecoder(bytes.NewReader(AppendJSONValue(tmp[:0], v)))
		dec.UseNumber()
		if err := dec.Decode(&x); err != nil {
			return dst, fmt.Errorf("%w: %v", ErrEncode, err)
		}
	}
	return n.append(dst, x)
}

// appendScalarArray is the fast path of the commonest complex field, an
// array of strings or integers (error codes, related numbers), read from
// its JSON text without encoding/json and without allocating. ok is false
// (dst unchanged) for anything else, e.g. a string with escapes; the
// general path then handles it.
func (n *encNode) appendScalarArray(dst, js []byte) ([]byte, bool) {
	if n.typ != avro.Array || len(js) < 2 || js[0] != '[' || js[len(js)-1] != ']' {
		return dst, false
	}
	it := n.items.typ
	if it != avro.String && it != avro.Int && it != avro.Long || n.items.logical != "" {
		return dst, false
	}
	start := len(dst)
	body := js[1 : len(js)-1]
	count := 0
	for i := 0; i < len(body); {
		if count > 0 {
			if body[i] != ',' {
				return dst[:start], false
			}
			i++
		}
		if it == avro.String {
			if i >= len(body) || body[i] != '"' {
				return dst[:start], false
			}
			end := i + 1
			for end < len(body) && body[end] != '"' && body[end] != '\\' {
				end++
			}
			if end >= len(body) || body[end] != '"' {
				return dst[:start], false
			}
			dst = AppendAvroBytes(dst, body[i+1:end])
			i = end + 1
		} else {
			end := i
			for end < len(body) && body[end] != ',' {
				end++
			}
			x, err := strconv.ParseInt(string(body[i:end]), 10, 64) // no allocation: the conversion is not kept
			if err != nil || it == avro.Int && x != int64(int32(x)) {
				return dst[:start], false
			}
			dst = AppendAvroLong(dst, x)
			i = end
		}
		count++
	}
	if count > 0 {
		dst = insertLong(dst, start, int64(count))
	}
	return append(dst, 0), true
}

// insertLong inserts x as an Avro long at dst[at].
func insertLong(dst []byte, at int, x int64) []byte {
	var hdr [binary.MaxVarintLen64]byte
	h := AppendAvroLong(hdr[:0], x)
	n := len(dst) - at
	dst = append(dst, h...)
	copy(dst[at+len(h):], dst[at:at+n])
	copy(dst[at:], h)
	return dst
}

func (n *encNode) append(dst []byte, x any) ([]byte, error) {
	bad := func() ([]byte, error) {
		return dst, fmt.Errorf("%w: JSON %T for Avro %s", ErrEncode, x, n.typ)
	}
	switch n.typ {
	case avro.Null:
		if x != nil {
			return bad()
		}
		return dst, nil
	case avro.Union:
		for i, b := range n.branches {
			if (x == nil) != (b.typ == avro.Null) {
				continue
			}
			out, err := b.append(AppendAvroLong(dst, int64(i)), x)
			if err == nil {
				return out, nil
			}
		}
		return bad()
	case avro.Record:
		m, ok := x.(map[string]any)
		if !ok {
			return bad()
		}
		for _, f := range n.fields {
			var err error
			if dst, err = f.node.append(dst, m[f.name]); err != nil {
				return dst, fmt.Errorf("field %s: %w", f.name, err)
			}
		}
		return dst, nil
	case avro.Array:
		a, ok := x.([]any)
		if !ok {
			return bad()
		}
		if len(a) > 0 {
			dst = AppendAvroLong(dst, int64(len(a)))
			for _, it := range a {
				var err error
				if dst, err = n.items.append(dst, it); err != nil {
					return dst, err
				}
			}
		}
		return append(dst, 0), nil
	case avro.Map:
		m, ok := x.(map[string]any)
		if !ok {
			return bad()
		}
		if len(m) > 0 {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			dst = AppendAvroLong(dst, int64(len(m)))
			for _, k := range keys {
				dst = AppendAvroBytes(dst, []byte(k))
				var err error
				if dst, err = n.items.append(dst, m[k]); err != nil {
					return dst, err
				}
			}
		}
		return append(dst, 0), nil
	case avro.Enum:
		s, ok := x.(string)
		i, known := n.symbols[s]
		if !ok || !known {
			return bad()
		}
		return AppendAvroLong(dst, int64(i)), nil
	}
	// Scalars, in the JSON form AppendJSONValue gives them.
	v := Value{}
	switch n.typ {
	case avro.Boolean:
		b, ok := x.(bool)
		if !ok {
			return bad()
		}
		if b {
			v.Int = 1
		}
	case avro.Int, avro.Long:
		switch t := x.(type) {
		case json.Number:
			i, err := t.Int64()
			if err != nil {
				return bad()
			}
			v.Int = i
		case string: // timestamps and dates in RFC 3339
			i, ok := parseTimeText(t, n.logical)
			if !ok {
				return bad()
			}
			v.Int = i
		default:
			return bad()
		}
		if n.typ == avro.Int && v.Int != int64(int32(v.Int)) {
			return bad()
		}
	case avro.Float, avro.Double:
		switch t := x.(type) {
		case json.Number:
			f, err := t.Float64()
			if err != nil {
				return bad()
			}
			v.Float = f
		case nil: // NaN and infinities are written as null
			v.Float = math.NaN()
		default:
			return bad()
		}
	case avro.String:
		s, ok := x.(string)
		if !ok {
			return bad()
		}
		v.Bytes = []byte(s)
	case avro.Bytes, avro.Fixed:
		s, ok := x.(string)
		if !ok {
			return bad()
		}
		if n.sc.decimal {
			v.Bytes = []byte(s)
		} else {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return bad()
			}
			v.Bytes = b
		}
	}
	return n.sc.append(dst, &v)
}

// parseTimeText reads the RFC 3339 forms AppendJSONValue writes for
// timestamps and dates back into their Avro numbers.
func parseTimeText(s string, l avro.LogicalType) (int64, bool) {
	switch l {
	case avro.TimestampMillis, avro.TimestampMicros:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, false
		}
		if l == avro.TimestampMillis {
			return t.UnixMilli(), true
		}
		return t.UnixMicro(), true
	case avro.Date:
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return 0, false
		}
		return int64(math.Floor(float64(t.Unix()) / 86400)), true
	}
	return 0, false
}

// AppendValueBranch appends the union branch index of a non-null value
// (nothing when the schema is not a union): for callers that write the
// value itself, e.g. a string in place followed by PrefixAvroLength.
func (e *FieldEncoder) AppendValueBranch(dst []byte) []byte {
	if e.valueIndex >= 0 {
		return AppendAvroLong(dst, int64(e.valueIndex))
	}
	return dst
}

// Nullable reports whether the schema takes null.
func (e *FieldEncoder) Nullable() bool { return e.nullIndex >= 0 || e.sc.typ == avro.Null }

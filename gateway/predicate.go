package gateway

import (
	"cmp"
	"encoding/json"
	"fmt"

	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/schemas"
)

// compileCondition turns a policy row condition into a Go predicate over a
// decoded record, following policy.Term's semantics: eq needs the same
// JSON type, order comparisons need two numbers or two strings, a missing
// field is null. It returns nil for Always. The predicate does not allocate.
func compileCondition(c policy.Condition, l *schemas.Layout) (view.Predicate, error) {
	switch {
	case c.Always:
		return nil, nil
	case c.Never || len(c.Any) == 0:
		return func(*schemas.Record) bool { return false }, nil
	}
	var ors [][]view.Predicate
	for _, conj := range c.Any {
		var ands []view.Predicate
		for _, t := range conj {
			p, err := compileTerm(t, l)
			if err != nil {
				return nil, err
			}
			ands = append(ands, p)
		}
		ors = append(ors, ands)
	}
	return func(r *schemas.Record) bool {
	next:
		for _, ands := range ors {
			for _, p := range ands {
				if !p(r) {
					continue next
				}
			}
			return true
		}
		return false
	}, nil
}

// constant is a condition constant by JSON type.
type constant struct {
	isNull, isBool, isNum, isStr bool
	b                            bool
	n                            float64
	s                            string
}

func toConstant(v any) (constant, error) {
	switch x := v.(type) {
	case nil:
		return constant{isNull: true}, nil
	case bool:
		return constant{isBool: true, b: x}, nil
	case float64:
		return constant{isNum: true, n: x}, nil
	case int:
		return constant{isNum: true, n: float64(x)}, nil
	case int64:
		return constant{isNum: true, n: float64(x)}, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return constant{}, fmt.Errorf("row condition: number %s: %w", x, err)
		}
		return constant{isNum: true, n: f}, nil
	case string:
		return constant{isStr: true, s: x}, nil
	}
	return constant{}, fmt.Errorf("row condition: constant of type %T not supported", v)
}

// fieldClass is how a field's values compare.
type fieldClass int

const (
	classOther fieldClass = iota
	classStr
	classInt
	classFloat
	classBool
)

func classOf(k schemas.Kind) fieldClass {
	switch k {
	case schemas.KindString, schemas.KindEnum:
		return classStr
	case schemas.KindInt, schemas.KindLong, schemas.KindTimestampMillis, schemas.KindTimestampMicros, schemas.KindDate:
		return classInt
	case schemas.KindFloat, schemas.KindDouble:
		return classFloat
	case schemas.KindBool:
		return classBool
	}
	return classOther
}

// eqFunc returns a predicate for field == c.
func eqFunc(idx int, class fieldClass, c constant) view.Predicate {
	switch {
	case c.isNull:
		return func(r *schemas.Record) bool { return r.Values[idx].Kind == schemas.KindNull }
	case c.isStr && class == classStr:
		s := c.s
		return func(r *schemas.Record) bool {
			v := &r.Values[idx]
			return v.Kind != schemas.KindNull && string(v.Bytes) == s
		}
	case c.isNum && class == classInt:
		n := c.n
		return func(r *schemas.Record) bool {
			v := &r.Values[idx]
			return v.Kind != schemas.KindNull && float64(v.Int) == n
		}
	case c.isNum && class == classFloat:
		n := c.n
		return func(r *schemas.Record) bool {
			v := &r.Values[idx]
			return v.Kind != schemas.KindNull && v.Float == n
		}
	case c.isBool && class == classBool:
		b := c.b
		return func(r *schemas.Record) bool {
			v := &r.Values[idx]
			return v.Kind != schemas.KindNull && (v.Int != 0) == b
		}
	}
	return func(*schemas.Record) bool { return false } // different JSON types
}

func not(p view.Predicate) view.Predicate { return func(r *schemas.Record) bool { return !p(r) } }

func compileTerm(t policy.Term, l *schemas.Layout) (view.Predicate, error) {
	f, ok := l.Field(t.Field)
	if !ok {
		// A field the record does not have is null.
		var isNullEq bool
		switch t.Op {
		case policy.OpEq:
			isNullEq = t.Value == nil
		case policy.OpNeq:
			isNullEq = t.Value != nil
		case policy.OpIn, policy.OpNotIn:
			hasNull := false
			for _, v := range t.Values {
				hasNull = hasNull || v == nil
			}
			isNullEq = hasNull == (t.Op == policy.OpIn)
		}
		return func(*schemas.Record) bool { return isNullEq }, nil
	}
	idx, class := f.Index, classOf(f.Kind)
	switch t.Op {
	case policy.OpEq, policy.OpNeq:
		c, err := toConstant(t.Value)
		if err != nil {
			return nil, err
		}
		p := eqFunc(idx, class, c)
		if t.Op == policy.OpNeq {
			return not(p), nil
		}
		return p, nil
	case policy.OpIn, policy.OpNotIn:
		strs := map[string]struct{}{}
		var others []view.Predicate
		for _, v := range t.Values {
			c, err := toConstant(v)
			if err != nil {
				return nil, err
			}
			if c.isStr {
				strs[c.s] = struct{}{}
				continue
			}
			others = append(others, eqFunc(idx, class, c))
		}
		p := func(r *schemas.Record) bool {
			v := &r.Values[idx]
			if class == classStr && v.Kind != schemas.KindNull {
				if _, ok := strs[string(v.Bytes)]; ok {
					return true
				}
			}
			for _, o := range others {
				if o(r) {
					return true
				}
			}
			return false
		}
		if t.Op == policy.OpNotIn {
			return not(p), nil
		}
		return p, nil
	case policy.OpLt, policy.OpLte, policy.OpGt, policy.OpGte:
		c, err := toConstant(t.Value)
		if err != nil {
			return nil, err
		}
		holds := func(d int) bool {
			switch t.Op {
			case policy.OpLt:
				return d < 0
			case policy.OpLte:
				return d <= 0
			case policy.OpGt:
				return d > 0
			}
			return d >= 0
		}
		// Precompute the outcome table so the predicate does not capture t.
		lt, eq, gt := holds(-1), holds(0), holds(1)
		pick := func(d int) bool {
			switch {
			case d < 0:
				return lt
			case d > 0:
				return gt
			}
			return eq
		}
		switch {
		case c.isNum && class == classInt:
			n := c.n
			return func(r *schemas.Record) bool {
				v := &r.Values[idx]
				if v.Kind == schemas.KindNull {
					return false
				}
				x := float64(v.Int)
				return pick(cmp.Compare(x, n))
			}, nil
		case c.isNum && class == classFloat:
			n := c.n
			return func(r *schemas.Record) bool {
				v := &r.Values[idx]
				if v.Kind == schemas.KindNull {
					return false
				}
				return pick(cmp.Compare(v.Float, n))
			}, nil
		case c.isStr && class == classStr:
			s := c.s
			return func(r *schemas.Record) bool {
				v := &r.Values[idx]
				if v.Kind == schemas.KindNull {
					return false
				}
				return pick(cmp.Compare(string(v.Bytes), s))
			}, nil
		}
		return func(*schemas.Record) bool { return false }, nil
	}
	return nil, fmt.Errorf("row condition: operator %q not supported", t.Op)
}

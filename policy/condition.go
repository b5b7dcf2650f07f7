package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Op is the operator of a row condition Term.
type Op string

// The operators of a Term. Value holds the constant of every operator but
// OpIn and OpNotIn, whose constants are in Values.
const (
	OpEq    Op = "eq"     // field == Value
	OpNeq   Op = "neq"    // field != Value
	OpLt    Op = "lt"     // field < Value
	OpLte   Op = "lte"    // field <= Value
	OpGt    Op = "gt"     // field > Value
	OpGte   Op = "gte"    // field >= Value
	OpIn    Op = "in"     // field equals one of Values
	OpNotIn Op = "not-in" // field equals none of Values
)

// Condition says which records of a product a partner sees: the row rule of
// the policy with the record left unknown, reduced to comparisons of record
// fields with constants. Exactly one of three forms holds:
//
//   - Always: every record passes (Any is empty);
//   - Never: no record passes (Any is empty);
//   - otherwise a record passes if it satisfies every Term of at least one
//     Conjunction in Any (an OR of ANDs).
//
// The zero Condition is none of these and must be treated as Never.
type Condition struct {
	Always bool          `json:"always,omitempty"`
	Never  bool          `json:"never,omitempty"`
	Any    []Conjunction `json:"any,omitempty"`
}

// Conjunction is a set of Terms that must all hold.
type Conjunction []Term

// Term compares one top-level field of the record with constants.
//
// Field values are those of the decoded Avro record: strings (also enum
// symbols, UUIDs), numbers (ints, longs, doubles; timestamps as epoch
// milliseconds), booleans, or null. The semantics, which Matches implements
// and the gateway's compiled predicate must follow:
//
//   - eq holds when the field and Value are the same JSON type and equal
//     (numbers compare numerically, an int 5 equals 5.0); neq is its
//     negation, so a field of another type, or null, is not equal.
//   - lt, lte, gt and gte hold only when both are numbers or both are
//     strings (byte-wise order); any other pair, null included, is false.
//     This is stricter than Rego, which orders values of different types;
//     stricter only ever drops records.
//   - in holds when eq holds for one of Values; not-in is its negation.
//   - A field the record does not have is null. Decide refuses Terms on
//     fields the product does not have, and the gateway resolves records
//     to the current schema, so this concerns only hand-built records.
type Term struct {
	Field  string `json:"field"`
	Op     Op     `json:"op"`
	Value  any    `json:"value,omitempty"`  // string, float64, bool or nil
	Values []any  `json:"values,omitempty"` // for OpIn and OpNotIn
}

// maxConjunctions bounds the size of a row condition: a residual larger
// than this is refused rather than compiled.
const maxConjunctions = 4096

// UnsupportedError is a row rule whose residual the translator does not
// understand. Decide denies with its message.
type UnsupportedError struct {
	Expr   string // the residual expression, in Rego syntax
	Detail string // what about it is not supported
}

func (e *UnsupportedError) Error() string {
	return "row condition not supported: " + e.Detail + ": " + e.Expr
}

// conditionFrom translates the result of partially evaluating the row rule
// into a Condition: no query means no record passes, an empty query means
// every record passes, any other query is a conjunction of Terms.
func conditionFrom(pq *rego.PartialQueries) (Condition, error) {
	if len(pq.Support) > 0 {
		names := make([]string, 0, len(pq.Support))
		for _, m := range pq.Support {
			names = append(names, m.Package.Path.String())
		}
		return Condition{}, &UnsupportedError{
			Expr:   strings.Join(names, ", "),
			Detail: "the row rule needs support rules the gateway cannot compile (default values, functions or negations over the record)",
		}
	}
	if len(pq.Queries) == 0 {
		return Condition{Never: true}, nil
	}
	if len(pq.Queries) > maxConjunctions {
		return Condition{}, &UnsupportedError{
			Expr:   fmt.Sprintf("%d alternatives", len(pq.Queries)),
			Detail: fmt.Sprintf("more than %d alternatives", maxConjunctions),
		}
	}
	var c Condition
	for _, body := range pq.Queries {
		conj, err := conjunctionFrom(body)
		if err != nil {
			return Condition{}, err
		}
		if len(conj) == 0 {
			return Condition{Always: true}, nil
		}
		c.Any = append(c.Any, conj)
	}
	return c.simplify(), nil
}

// simplify turns alternatives that each test one field for equality (as
// `some c in cells; input.record.cell_id == c` partially evaluates) into one
// OpIn term.
func (c Condition) simplify() Condition {
	if len(c.Any) < 2 {
		return c
	}
	field := ""
	values := make([]any, 0, len(c.Any))
	for _, conj := range c.Any {
		if len(conj) != 1 || conj[0].Op != OpEq || (field != "" && conj[0].Field != field) {
			return c
		}
		field = conj[0].Field
		values = append(values, conj[0].Value)
	}
	return Condition{Any: []Conjunction{{{Field: field, Op: OpIn, Values: values}}}}
}

func conjunctionFrom(body ast.Body) (Conjunction, error) {
	conj := make(Conjunction, 0, len(body))
	for _, expr := range body {
		t, skip, err := termFrom(expr)
		if err != nil {
			return nil, err
		}
		if !skip {
			conj = append(conj, t)
		}
	}
	return conj, nil
}

// negated maps each operator to the one that holds when it does not.
var negated = map[Op]Op{
	OpEq: OpNeq, OpNeq: OpEq, OpLt: OpGte, OpLte: OpGt, OpGt: OpLte, OpGte: OpLt,
	OpIn: OpNotIn, OpNotIn: OpIn,
}

// mirrored maps each comparison to the one that holds with its operands
// swapped: 5 < x is x > 5.
var mirrored = map[Op]Op{OpEq: OpEq, OpNeq: OpNeq, OpLt: OpGt, OpLte: OpGte, OpGt: OpLt, OpGte: OpLte}

// comparisons maps Rego's built-in comparison operators to Ops. "eq" is
// unification (=), which partial evaluation also emits for ==.
var comparisons = map[string]Op{
	"eq": OpEq, "equal": OpEq, "neq": OpNeq,
	"lt": OpLt, "lte": OpLte, "gt": OpGt, "gte": OpGte,
}

// termFrom translates one residual expression. skip reports an expression
// that always holds (the constant true).
func termFrom(expr *ast.Expr) (t Term, skip bool, err error) {
	unsupported := func(detail string) (Term, bool, error) {
		return Term{}, false, &UnsupportedError{Expr: expr.String(), Detail: detail}
	}
	if len(expr.With) > 0 {
		return unsupported("with modifiers")
	}
	switch {
	case expr.IsCall():
		op, args := expr.Operator().String(), expr.Operands()
		if op == "internal.member_2" && len(args) == 2 {
			field, ok := recordField(args[0])
			if !ok {
				return unsupported("membership of something other than a top-level input.record field")
			}
			values, ok := scalars(args[1])
			if !ok {
				return unsupported("membership in something other than a constant array or set of strings, numbers, booleans or null")
			}
			t = Term{Field: field, Op: OpIn, Values: values}
			break
		}
		cmp, ok := comparisons[op]
		if ok && len(args) == 3 && args[2].Equal(ast.BooleanTerm(true)) {
			// x := a == b leaves equal(a, b, true): the comparison holds.
			// With false the record could also lack the field, which no
			// Term expresses, so that form stays unsupported.
			args = args[:2]
		}
		if !ok || len(args) != 2 {
			return unsupported(fmt.Sprintf("operator %s", op))
		}
		for _, a := range args {
			if call, ok := a.Value.(ast.Call); ok {
				return unsupported(fmt.Sprintf("function %s of the record", call[0]))
			}
		}
		lf, lok := recordField(args[0])
		rf, rok := recordField(args[1])
		switch {
		case lok && rok:
			return unsupported("comparison of two record fields")
		case lok:
			v, ok := scalar(args[1])
			if !ok {
				return unsupported("comparison with something other than a string, number, boolean or null constant")
			}
			t = Term{Field: lf, Op: cmp, Value: v}
		case rok:
			v, ok := scalar(args[0])
			if !ok {
				return unsupported("comparison with something other than a string, number, boolean or null constant")
			}
			t = Term{Field: rf, Op: mirrored[cmp], Value: v}
		default:
			return unsupported("comparison that involves no top-level input.record field")
		}
	case isTerm(expr):
		term := expr.Terms.(*ast.Term)
		if b, ok := term.Value.(ast.Boolean); ok && bool(b) && !expr.Negated {
			return Term{}, true, nil
		}
		field, ok := recordField(term)
		if !ok {
			return unsupported("expression that is neither a comparison nor a record field")
		}
		// A bare field holds in Rego when it is defined and not false.
		// Requiring true is stricter for non-boolean fields, and its
		// negation requiring false is stricter than "undefined or false":
		// both only ever drop records.
		if expr.Negated {
			return Term{Field: field, Op: OpEq, Value: false}, false, nil
		}
		return Term{Field: field, Op: OpEq, Value: true}, false, nil
	default:
		return unsupported("expression form")
	}
	if expr.Negated {
		t.Op = negated[t.Op]
	}
	return t, false, nil
}

func isTerm(expr *ast.Expr) bool {
	_, ok := expr.Terms.(*ast.Term)
	return ok
}

// recordRef is the reference every row condition is about.
var recordRef = ast.MustParseRef("input.record")

// recordField reports whether t is input.record.<name> and returns name.
func recordField(t *ast.Term) (string, bool) {
	ref, ok := t.Value.(ast.Ref)
	if !ok || len(ref) != 3 || !ref.HasPrefix(recordRef) {
		return "", false
	}
	s, ok := ref[2].Value.(ast.String)
	if !ok || s == "" {
		return "", false
	}
	return string(s), true
}

// scalar converts a constant string, number, boolean or null.
func scalar(t *ast.Term) (any, bool) {
	switch v := t.Value.(type) {
	case ast.String:
		return string(v), true
	case ast.Boolean:
		return bool(v), true
	case ast.Null:
		return nil, true
	case ast.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, false
		}
		return f, true
	}
	return nil, false
}

// scalars converts a constant array or set of scalars.
func scalars(t *ast.Term) ([]any, bool) {
	var terms []*ast.Term
	switch v := t.Value.(type) {
	case *ast.Array:
		terms = make([]*ast.Term, 0, v.Len())
		v.Foreach(func(e *ast.Term) { terms = append(terms, e) })
	case ast.Set:
		terms = v.Slice()
	default:
		return nil, false
	}
	out := make([]any, 0, len(terms))
	for _, e := range terms {
		s, ok := scalar(e)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// Matches reports whether a record passes the condition, with the semantics
// documented on Term. record maps top-level field names to values as
// encoding/json decodes them (string, float64 or json.Number, bool, nil) or
// as Go integers. It is the reference the gateway's compiled predicates are
// tested against, not a per-record fast path.
func (c Condition) Matches(record map[string]any) bool {
	if c.Always {
		return true
	}
	if c.Never {
		return false
	}
	for _, conj := range c.Any {
		if conj.matches(record) {
			return true
		}
	}
	return false
}

func (conj Conjunction) matches(record map[string]any) bool {
	for _, t := range conj {
		if !t.matches(record[t.Field]) {
			return false
		}
	}
	return true
}

func (t Term) matches(v any) bool {
	switch t.Op {
	case OpEq:
		return equal(v, t.Value)
	case OpNeq:
		return !equal(v, t.Value)
	case OpIn, OpNotIn:
		found := slices.ContainsFunc(t.Values, func(c any) bool { return equal(v, c) })
		return found == (t.Op == OpIn)
	case OpLt, OpLte, OpGt, OpGte:
		c, ok := compare(v, t.Value)
		if !ok {
			return false
		}
		switch t.Op {
		case OpLt:
			return c < 0
		case OpLte:
			return c <= 0
		case OpGt:
			return c > 0
		default:
			return c >= 0
		}
	}
	return false
}

// number converts the numeric representations Matches accepts.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func equal(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

// compare orders two numbers or two strings; ok is false for any other pair.
func compare(a, b any) (int, bool) {
	if x, ok := number(a); ok {
		y, ok := number(b)
		if !ok {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	x, ok := a.(string)
	y, ok2 := b.(string)
	if !ok || !ok2 {
		return 0, false
	}
	return strings.Compare(x, y), true
}

// String renders the condition for people: "all rows", "no rows", or the
// terms joined by "and", alternatives by "or", e.g.
// mvno_id == "mvno-b" or cell_id in ["262-01-1A00001", "262-01-1A00002"].
func (c Condition) String() string {
	switch {
	case c.Always:
		return "all rows"
	case c.Never || len(c.Any) == 0:
		return "no rows"
	}
	parts := make([]string, len(c.Any))
	for i, conj := range c.Any {
		parts[i] = conj.String()
		if len(c.Any) > 1 && len(conj) > 1 {
			parts[i] = "(" + parts[i] + ")"
		}
	}
	return strings.Join(parts, " or ")
}

func (conj Conjunction) String() string {
	parts := make([]string, len(conj))
	for i, t := range conj {
		parts[i] = t.String()
	}
	return strings.Join(parts, " and ")
}

var opSymbols = map[Op]string{
	OpEq: "==", OpNeq: "!=", OpLt: "<", OpLte: "<=", OpGt: ">", OpGte: ">=",
	OpIn: "in", OpNotIn: "not in",
}

func (t Term) String() string {
	sym, ok := opSymbols[t.Op]
	if !ok {
		sym = string(t.Op)
	}
	if t.Op == OpIn || t.Op == OpNotIn {
		vals := make([]string, len(t.Values))
		for i, v := range t.Values {
			vals[i] = literal(v)
		}
		return fmt.Sprintf("%s %s [%s]", t.Field, sym, strings.Join(vals, ", "))
	}
	return fmt.Sprintf("%s %s %s", t.Field, sym, literal(t.Value))
}

func literal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

// TestRowConditions partially evaluates row rules (with the input of
// simpleInput: mvno_id "mvno-b", cells ["c1", "c2"], max 10) and checks the
// Condition they become.
func TestRowConditions(t *testing.T) {
	eq := func(f string, v any) Term { return Term{Field: f, Op: OpEq, Value: v} }
	one := func(ts ...Term) Condition { return Condition{Any: []Conjunction{ts}} }
	for _, tc := range []struct {
		note string
		rows string
		want Condition
		text string // Condition.String()
	}{
		{"equality with a partner attribute", `row if input.record.mvno_id == input.partner.attributes.mvno_id`,
			one(eq("mvno_id", "mvno-b")), `mvno_id == "mvno-b"`},
		{"unification", `row if input.record.mvno_id = "mvno-b"`,
			one(eq("mvno_id", "mvno-b")), `mvno_id == "mvno-b"`},
		{"constant first", `row if "x" == input.record.a`,
			one(eq("a", "x")), `a == "x"`},
		{"inequality", `row if input.record.a != "x"`,
			one(Term{Field: "a", Op: OpNeq, Value: "x"}), `a != "x"`},
		{"less than, constant first", `row if 5 < input.record.n`,
			one(Term{Field: "n", Op: OpGt, Value: 5.0}), `n > 5`},
		{"at most", `row if input.record.n <= 10.5`,
			one(Term{Field: "n", Op: OpLte, Value: 10.5}), `n <= 10.5`},
		{"at least an attribute", `row if input.record.n >= input.partner.attributes.max`,
			one(Term{Field: "n", Op: OpGte, Value: 10.0}), `n >= 10`},
		{"greater, constant first", `row if 0 >= input.record.n`,
			one(Term{Field: "n", Op: OpLte, Value: 0.0}), `n <= 0`},
		{"null", `row if input.record.visited_mcc == null`,
			one(eq("visited_mcc", nil)), `visited_mcc == null`},
		{"boolean field", `row if input.record.roaming`,
			one(eq("roaming", true)), `roaming == true`},
		{"boolean field negated", `row if not input.record.roaming`,
			one(eq("roaming", false)), `roaming == false`},
		{"negated equality", `row if not input.record.a == "x"`,
			one(Term{Field: "a", Op: OpNeq, Value: "x"}), `a != "x"`},
		{"negated comparison", `row if not input.record.n < 3`,
			one(Term{Field: "n", Op: OpGte, Value: 3.0}), `n >= 3`},
		{"membership in an attribute", `row if input.record.cell_id in input.partner.attributes.cells`,
			one(Term{Field: "cell_id", Op: OpIn, Values: []any{"c1", "c2"}}), `cell_id in ["c1", "c2"]`},
		{"membership in a set", `row if input.record.n in {3, 1}`,
			one(Term{Field: "n", Op: OpIn, Values: []any{1.0, 3.0}}), `n in [1, 3]`},
		{"negated membership", `row if not input.record.cell_id in {"c9"}`,
			one(Term{Field: "cell_id", Op: OpNotIn, Values: []any{"c9"}}), `cell_id not in ["c9"]`},
		{"iteration becomes membership", `row if {
	some c in input.partner.attributes.cells
	input.record.cell_id == c
}`, one(Term{Field: "cell_id", Op: OpIn, Values: []any{"c1", "c2"}}), `cell_id in ["c1", "c2"]`},
		{"conjunction", `row if {
	input.record.mvno_id == "mvno-b"
	input.record.n > 1
	input.record.roaming == false
}`, one(eq("mvno_id", "mvno-b"), Term{Field: "n", Op: OpGt, Value: 1.0}, eq("roaming", false)),
			`mvno_id == "mvno-b" and n > 1 and roaming == false`},
		{"disjunction", `row if input.record.a == "x"

row if {
	input.record.b == "y"
	input.record.n < 2
}`, Condition{Any: []Conjunction{{eq("a", "x")}, {eq("b", "y"), Term{Field: "n", Op: OpLt, Value: 2.0}}}},
			`a == "x" or (b == "y" and n < 2)`},
		{"a comparison assigned", `row := x if x := input.record.a == 1`, one(eq("a", 1.0)), `a == 1`},
		{"a default does not matter", `default row := false

row if input.record.a == "x"`, one(eq("a", "x")), `a == "x"`},
		{"a helper function is inlined", `row if ok(input.record.a)

ok(x) if x == 1

ok(x) if x == 2`, one(Term{Field: "a", Op: OpIn, Values: []any{1.0, 2.0}}), `a in [1, 2]`},
		{"known conditions vanish", `row if {
	input.partner.type == "mvno"
	input.record.a == "x"
}`, one(eq("a", "x")), `a == "x"`},
		{"always", `row if input.partner.type == "mvno"`, Condition{Always: true}, "all rows"},
		{"always, one alternative without record conditions", `row if input.record.a == "x"

row := true`, Condition{Always: true}, "all rows"},
		{"never: known condition false", `row if {
	input.partner.type == "iot"
	input.record.a == "x"
}`, Condition{Never: true}, "no rows"},
		{"never: empty attribute", `row if {
	some c in input.partner.attributes.none
	input.record.cell_id == c
}`, Condition{Never: true}, "no rows"},
	} {
		t.Run(tc.note, func(t *testing.T) {
			e, _ := newTestEngine(t, rowPolicy(tc.rows))
			d, err := decide(t, e, simpleInput())
			if err != nil || !d.Allow {
				t.Fatalf("Decide: %v, %+v", err, d)
			}
			if !reflect.DeepEqual(d.Row, tc.want) {
				t.Errorf("row\n%#v\nwant\n%#v", d.Row, tc.want)
			}
			if s := d.Row.String(); s != tc.text {
				t.Errorf("String() = %s, want %s", s, tc.text)
			}
		})
	}
}

// TestRowConditionsUnsupported checks that residuals outside Condition deny.
func TestRowConditionsUnsupported(t *testing.T) {
	for _, tc := range []struct {
		note, rows, detail string
	}{
		{"two record fields", `row if input.record.a == input.record.b`, "comparison of two record fields"},
		{"a function of the record", `row if startswith(input.record.cell_id, "262-01")`, "operator startswith"},
		{"a nested field", `row if input.record.a.b == 1`, "no top-level input.record field"},
		{"a composite constant", `row if input.record.a == [1]`, "string, number, boolean or null constant"},
		{"an aggregate", `row if count(input.record.codes) > 1`, "function count of the record"},
		{"membership in a record field", `row if "x" in input.record.list`, "membership"},
		{"membership of composites", `row if input.record.a in [[1]]`, "membership in something other than"},
		{"the whole record", `row if input.record == {}`, "no top-level input.record field"},
		{"a field the product lacks", `row if input.record.mvnoid != "mvno-a"`, `product "cdr" has no field "mvnoid"`},
		{"support rules", `row if not g

g if {
	some c in input.record.cells
	c == "x"
}`, "support rules"},
		{"iteration over the record", `row if {
	some c in input.record.cells
	c == "x"
}`, "no top-level input.record field"},
		{"every", `row if every c in input.record.cells { c == "x" }`, "expression form"},
		{"with", `row if input.record.a == 1 with input.partner as {}`, "with modifiers"},
		{"a comparison compared with false", `row if false == (input.record.a == 1)`, "operator equal"},
	} {
		t.Run(tc.note, func(t *testing.T) {
			e, _ := newTestEngine(t, rowPolicy(tc.rows))
			d, err := decide(t, e, simpleInput())
			if d.Allow || !errors.Is(err, ErrFailed) {
				t.Fatalf("allow %v, err %v", d.Allow, err)
			}
			if !d.Row.Never || d.Fields != nil {
				t.Errorf("denial carries %+v", d)
			}
			if !strings.HasPrefix(d.Reason, "row condition not supported: ") || !strings.Contains(d.Reason, tc.detail) {
				t.Errorf("reason %q, want it to start with \"row condition not supported: \" and mention %q", d.Reason, tc.detail)
			}
		})
	}
}

// TestMatchesAgreesWithOPA evaluates row rules on concrete records with OPA
// and with the translated Condition: Condition never lets through a record
// OPA rejects, and for well-typed records both agree.
func TestMatchesAgreesWithOPA(t *testing.T) {
	rows := []string{
		`row if input.record.mvno_id == input.partner.attributes.mvno_id`,
		`row if input.record.cell_id in input.partner.attributes.cells`,
		`row if not input.record.cell_id in input.partner.attributes.cells`,
		`row if {
	input.record.n > 2
	input.record.n <= input.partner.attributes.max
}`,
		`row if not input.record.n < 5

row if input.record.mvno_id != "mvno-b"`,
		`row if input.record.roaming`,
		`row if not input.record.roaming`,
		`row if 3 >= input.record.n`,
	}
	// Well-typed values per field, and ill-typed ones.
	good := map[string][]any{
		"mvno_id": {"mvno-a", "mvno-b"},
		"cell_id": {"c1", "c2", "c3"},
		"n":       {1.0, 2.0, 3.0, 5.0, 10.0, 11.0},
		"roaming": {true, false},
	}
	bad := map[string][]any{
		"mvno_id": {nil, 7.0},
		"cell_id": {nil, 1.0},
		"n":       {nil, "5", true},
		"roaming": {nil, "yes"},
	}
	records := func(values map[string][]any) []map[string]any {
		out := []map[string]any{{}}
		for _, f := range []string{"mvno_id", "cell_id", "n", "roaming"} {
			var next []map[string]any
			for _, r := range out {
				for _, v := range values[f] {
					c := map[string]any{f: v}
					for k, x := range r {
						c[k] = x
					}
					next = append(next, c)
				}
			}
			out = next
		}
		return out
	}
	mixed := map[string][]any{}
	for f := range good {
		mixed[f] = append(append([]any{}, good[f]...), bad[f]...)
	}
	in := simpleInput()
	for _, r := range rows {
		src := rowPolicy(r)["p.rego"]
		e, _ := newTestEngine(t, rowPolicy(r))
		d, err := decide(t, e, in)
		if err != nil || !d.Allow {
			t.Fatalf("%s: %v %+v", r, err, d)
		}
		q, err := rego.New(rego.Module("p.rego", src), rego.Query("data.sluice.row == true")).PrepareForEval(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		opa := func(record map[string]any) bool {
			b, _ := json.Marshal(in)
			var doc map[string]any
			_ = json.Unmarshal(b, &doc)
			doc["record"] = record
			rs, err := q.Eval(context.Background(), rego.EvalInput(doc))
			if err != nil {
				t.Fatal(err)
			}
			return len(rs) > 0
		}
		for _, rec := range records(mixed) {
			if d.Row.Matches(rec) && !opa(rec) {
				t.Errorf("%s: %s lets through %v, which OPA rejects", r, d.Row, rec)
			}
		}
		for _, rec := range records(good) {
			if got, want := d.Row.Matches(rec), opa(rec); got != want {
				t.Errorf("%s: %s on %v = %v, OPA says %v", r, d.Row, rec, got, want)
			}
		}
	}
}

func TestConditionMatches(t *testing.T) {
	c := Condition{Any: []Conjunction{
		{{Field: "mvno_id", Op: OpEq, Value: "mvno-b"}, {Field: "n", Op: OpGte, Value: 5.0}},
		{{Field: "cell_id", Op: OpIn, Values: []any{"c1", "c3"}}},
	}}
	for _, tc := range []struct {
		rec  map[string]any
		want bool
	}{
		{map[string]any{"mvno_id": "mvno-b", "n": 5}, true},
		{map[string]any{"mvno_id": "mvno-b", "n": int64(4)}, false},
		{map[string]any{"mvno_id": "mvno-b", "n": json.Number("6")}, true},
		{map[string]any{"mvno_id": "mvno-b", "n": "6"}, false},
		{map[string]any{"mvno_id": "mvno-a", "n": 9.0}, false},
		{map[string]any{"cell_id": "c1"}, true},
		{map[string]any{"cell_id": "c2"}, false},
		{map[string]any{}, false},
	} {
		if got := c.Matches(tc.rec); got != tc.want {
			t.Errorf("Matches(%v) = %v, want %v", tc.rec, got, tc.want)
		}
	}
	if (Condition{}).Matches(map[string]any{}) {
		t.Error("the zero Condition matches")
	}
	if !(Condition{Always: true}).Matches(nil) || (Condition{Never: true}).Matches(nil) {
		t.Error("Always/Never")
	}
	null := Condition{Any: []Conjunction{{{Field: "visited_mcc", Op: OpEq, Value: nil}}}}
	if !null.Matches(map[string]any{}) || !null.Matches(map[string]any{"visited_mcc": nil}) || null.Matches(map[string]any{"visited_mcc": "262"}) {
		t.Error("a missing field is not null")
	}
	if got := fmt.Sprint(c); got != `(mvno_id == "mvno-b" and n >= 5) or cell_id in ["c1", "c3"]` {
		t.Errorf("String() = %s", got)
	}
}

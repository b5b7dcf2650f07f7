package policy

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the want of testdata/decide.json from the shipped policy's decisions")

// decideCase is one case of testdata/decide.json. In its input, "partner"
// may name a demo partner and "product" a product of testdata/products.json
// instead of spelling them out.
type decideCase struct {
	Note  string          `json:"note"`
	Input json.RawMessage `json:"input"`
	Want  json.RawMessage `json:"want,omitempty"`
}

func (c decideCase) resolve(t *testing.T, products map[string]Product) Input {
	t.Helper()
	var raw struct {
		Partner json.RawMessage `json:"partner"`
		Grant   Grant           `json:"grant"`
		Product json.RawMessage `json:"product"`
	}
	if err := json.Unmarshal(c.Input, &raw); err != nil {
		t.Fatal(err)
	}
	in := Input{Grant: raw.Grant}
	var name string
	if json.Unmarshal(raw.Partner, &name) == nil {
		p, ok := demoPartners[name]
		if !ok {
			t.Fatalf("no demo partner %q", name)
		}
		in.Partner = p
	} else if len(raw.Partner) > 0 {
		if err := json.Unmarshal(raw.Partner, &in.Partner); err != nil {
			t.Fatal(err)
		}
	}
	if json.Unmarshal(raw.Product, &name) == nil {
		p, ok := products[name]
		if !ok {
			t.Fatalf("no product %q in testdata/products.json", name)
		}
		in.Product = p
	} else if len(raw.Product) > 0 {
		if err := json.Unmarshal(raw.Product, &in.Product); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// TestDecide runs every case of testdata/decide.json through the shipped
// policy and compares the decision (without its revision) as JSON.
func TestDecide(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/decide.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []decideCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	products := testProducts(t)
	for i := range cases {
		c := &cases[i]
		t.Run(c.Note, func(t *testing.T) {
			d, err := e.Decide(context.Background(), c.resolve(t, products))
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Revision != e.Revision() {
				t.Errorf("revision %q, want %q", d.Revision, e.Revision())
			}
			if d.Reason == "" {
				t.Error("empty reason")
			}
			got := toJSON(t, d).(map[string]any)
			delete(got, "revision")
			if *update {
				c.Want, _ = json.Marshal(got)
				return
			}
			var want any
			if err := json.Unmarshal(c.Want, &want); err != nil {
				t.Fatalf("want: %v (run go test -update)", err)
			}
			if !reflect.DeepEqual(got, want) {
				gb, _ := json.MarshalIndent(got, "", "  ")
				wb, _ := json.MarshalIndent(want, "", "  ")
				t.Errorf("decision\n%s\nwant\n%s", gb, wb)
			}
		})
	}
	if *update {
		if err := os.WriteFile("testdata/decide.json", formatCases(t, cases), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// formatCases writes cases one key per line and one field treatment per
// line, so that a diff shows which treatment changed.
func formatCases(t *testing.T, cases []decideCase) []byte {
	compact := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var b strings.Builder
	b.WriteString("[\n")
	for i, c := range cases {
		var in, want map[string]any
		if err := json.Unmarshal(c.Input, &in); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(c.Want, &want); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "{\"note\": %s,\n \"input\": %s,\n \"want\": {", compact(c.Note), compact(in))
		for j, k := range []string{"allow", "reason", "consent_required", "row"} {
			if j > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "\n  %s: %s", compact(k), compact(want[k]))
		}
		fields, ok := want["fields"].(map[string]any)
		if !ok {
			b.WriteString("}}")
			if i < len(cases)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
			continue
		}
		b.WriteString(",\n  \"fields\": {")
		for j, name := range slices.Sorted(maps.Keys(fields)) {
			sep := ","
			if j == len(fields)-1 {
				sep = ""
			}
			fmt.Fprintf(&b, "\n   %s: %s%s", compact(name), compact(fields[name]), sep)
		}
		b.WriteString("}}}")
		if i < len(cases)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	return []byte(b.String())
}

// TestDecideDenialsCarryNothing checks the shape of every denial: no
// fields, no rows, no consent flag, a reason, and no error (the policy
// decided; it did not fail).
func TestDecideDenialsCarryNothing(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	products := testProducts(t)
	for _, p := range demoPartners {
		for _, prod := range products {
			for _, purpose := range []string{"billing", "fraud-prevention", "network-analytics", "marketing", "regulatory", "other"} {
				d, err := e.Decide(context.Background(), Input{Partner: p, Grant: Grant{Product: prod.ID, Purpose: purpose}, Product: prod})
				if err != nil {
					t.Fatalf("%s %s %s: %v", p.ID, prod.ID, purpose, err)
				}
				if d.Allow {
					if d.Row.Never || (!d.Row.Always && len(d.Row.Any) == 0) {
						t.Errorf("%s %s %s: allowed with no rows: %+v", p.ID, prod.ID, purpose, d.Row)
					}
					continue
				}
				if d.Fields != nil || !d.Row.Never || d.ConsentRequired || d.Reason == "" {
					t.Errorf("%s %s %s: denial carries %+v", p.ID, prod.ID, purpose, d)
				}
			}
		}
	}
}

// TestDecideNoIdentifierInClear checks the general rule over every demo
// partner, product and purpose: a direct identifier is kept in clear only
// for billing and fraud prevention, and enterprises get public fields only.
func TestDecideNoIdentifierInClear(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range demoPartners {
		for _, prod := range testProducts(t) {
			for _, purpose := range []string{"billing", "fraud-prevention", "network-analytics", "marketing", "regulatory"} {
				d, _ := e.Decide(context.Background(), Input{Partner: p, Grant: Grant{Product: prod.ID, Purpose: purpose}, Product: prod})
				for _, f := range prod.Fields {
					tr, mentioned := d.Fields[f.Name]
					if !mentioned || tr["op"] == "drop" {
						continue
					}
					if f.Classification == "direct-identifier" && tr["op"] == "keep" && purpose != "billing" && purpose != "fraud-prevention" {
						t.Errorf("%s %s %s: direct identifier %s in clear", p.ID, prod.ID, purpose, f.Name)
					}
					if p.Type == "enterprise" && f.Classification != "public" {
						t.Errorf("%s %s: %s field %s shared with an enterprise", p.ID, prod.ID, f.Classification, f.Name)
					}
				}
			}
		}
	}
}

// TestEvaluations checks the count: one evaluation for a denial, two (full
// and partial) for an allowed decision.
func TestEvaluations(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	products := testProducts(t)
	if n := e.Evaluations(); n != 0 {
		t.Fatalf("fresh engine: %d evaluations", n)
	}
	allowed := Input{Partner: demoPartners["mvno-b"], Grant: Grant{Product: "cdr", Purpose: "network-analytics"}, Product: products["cdr"]}
	if d, _ := e.Decide(context.Background(), allowed); !d.Allow {
		t.Fatalf("not allowed: %s", d.Reason)
	}
	if n := e.Evaluations(); n != 2 {
		t.Fatalf("after an allowed decision: %d evaluations, want 2", n)
	}
	denied := Input{Partner: demoPartners["regulator"], Grant: Grant{Product: "cdr", Purpose: "regulatory"}, Product: products["cdr"]}
	if d, _ := e.Decide(context.Background(), denied); d.Allow {
		t.Fatal("allowed")
	}
	if n := e.Evaluations(); n != 3 {
		t.Fatalf("after a denial: %d evaluations, want 3", n)
	}
}

// TestDecideCancelled denies when the context is done.
func TestDecideCancelled(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := Input{Partner: demoPartners["mvno-b"], Grant: Grant{Product: "cdr", Purpose: "network-analytics"}, Product: testProducts(t)["cdr"]}
	d, err := e.Decide(ctx, in)
	if d.Allow || !errors.Is(err, ErrFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: allow %v, err %v", d.Allow, err)
	}
}

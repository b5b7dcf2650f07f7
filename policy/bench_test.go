package policy

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/rego"
)

// BenchmarkDecide measures what opening a subscription costs in policy
// work: one full evaluation of the decision and, when allowed, one partial
// evaluation of the row rule, with the shipped policy.
func BenchmarkDecide(b *testing.B) {
	e, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	products := testProducts(b)
	for _, bc := range []struct {
		name             string
		partner, product string
		purpose          string
	}{
		{"mvno-b/cdr/analytics", "mvno-b", "cdr", "network-analytics"},
		{"enterprise-x/network-quality", "enterprise-x", "network-quality", "network-analytics"},
		{"internal-noc/device-telemetry", "internal-noc", "device-telemetry", "network-analytics"},
		{"regulator/denied", "regulator", "cdr", "regulatory"},
	} {
		in := Input{Partner: demoPartners[bc.partner], Grant: Grant{Product: bc.product, Purpose: bc.purpose}, Product: products[bc.product]}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if _, err := e.Decide(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecideParts splits an allowed Decide (mvno-b, cdr, network
// analytics) into its two OPA evaluations.
func BenchmarkDecideParts(b *testing.B) {
	e, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Partner: demoPartners["mvno-b"], Grant: Grant{Product: "cdr", Purpose: "network-analytics"}, Product: testProducts(b)["cdr"]}
	v, err := in.value()
	if err != nil {
		b.Fatal(err)
	}
	s := e.cur.Load()
	ctx := context.Background()
	b.Run("full-decision", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.decision.Eval(ctx, rego.EvalParsedInput(v)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("partial-row", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.row.Partial(ctx, rego.EvalParsedInput(v)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReload measures re-reading, compiling and preparing the shipped
// policy from a directory (what a policy change costs).
func BenchmarkReload(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := load("rego"); err != nil {
			b.Fatal(err)
		}
	}
}

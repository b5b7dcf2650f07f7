package main

// sluice policy test [--dir DIR] [-v]
// sluice policy explain --partner ID --product ID [--purpose P] [--dir DIR]

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/sluicehq/sluice/gateway"

	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/products"
)

const policyUsageText = `usage: sluice policy <command> [flags]

commands:
  test      run the policy's Rego tests (*_test.rego); exits non-zero if
            any fails or none ran
              sluice policy test [--dir DIR] [-v]
  explain   show what a partner sees of a product: allowed or not and why,
            the row filter, each field's treatment, whether consent applies
              sluice policy explain --partner ID --product ID [--purpose P] [--dir DIR]

--dir is a directory of .rego files (default: the built-in policy/rego).
`

// policyCmd implements "sluice policy".
func policyCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsageText)
		return errors.New("policy: missing command (test or explain)")
	}
	switch args[0] {
	case "test":
		return policyTest(args[1:], stdout, stderr)
	case "explain":
		return policyExplain(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsageText)
		return nil
	}
	fmt.Fprint(stderr, policyUsageText)
	return fmt.Errorf("policy: unknown command %q (want test or explain)", args[0])
}

// policySource names where the policy came from, for output.
func policySource(dir string) string {
	if dir == "" {
		return "built-in policy/rego"
	}
	return dir
}

func policyTest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory of .rego files (default: the built-in policy)")
	verbose := fs.Bool("v", false, "list every test, with traces of failures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("policy test: unexpected argument %q", fs.Arg(0))
	}
	e, err := policy.New(policy.Options{Dir: *dir})
	if err != nil {
		return err
	}
	passed, failed, err := e.Test(context.Background(), stdout, *verbose)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s (revision %s): %d passed, %d failed\n", policySource(*dir), e.Revision(), passed, failed)
	switch {
	case failed > 0:
		return fmt.Errorf("policy test: %d of %d tests failed", failed, passed+failed)
	case passed == 0:
		return fmt.Errorf("policy test: no tests found in %s (test rules are named test_*, usually in *_test.rego)", policySource(*dir))
	}
	return nil
}

func policyExplain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	partnerID := fs.String("partner", "", "partner id, as in the partner registry (required)")
	productID := fs.String("product", "", "product id, as in the catalog (required)")
	purpose := fs.String("purpose", "", "purpose to explain (default: each purpose the partner holds a grant for)")
	dir := fs.String("dir", "", "directory of .rego files (default: the built-in policy)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("policy explain: unexpected argument %q", fs.Arg(0))
	}
	if *partnerID == "" || *productID == "" {
		return errors.New("policy explain: --partner and --product are required")
	}
	partners, err := products.LoadDefaultPartners()
	if err != nil {
		return err
	}
	cat, err := products.LoadDefault()
	if err != nil {
		return err
	}
	partner, ok := partners.Get(*partnerID)
	if !ok {
		return fmt.Errorf("policy explain: unknown partner %q (the registry has %s)", *partnerID, strings.Join(partners.IDs(), ", "))
	}
	product, ok := cat.Get(*productID)
	if !ok {
		ids := make([]string, len(cat.Products))
		for i, p := range cat.Products {
			ids[i] = p.ID
		}
		return fmt.Errorf("policy explain: unknown product %q (the catalog has %s)", *productID, strings.Join(ids, ", "))
	}
	var purposes []string
	if *purpose != "" {
		purposes = []string{*purpose}
	} else {
		for _, g := range partner.Grants {
			if g.Product == product.ID {
				purposes = append(purposes, g.Purpose)
			}
		}
		if len(purposes) == 0 {
			return fmt.Errorf("policy explain: partner %q holds no grant for product %q; pass --purpose to see what the policy would decide for one", partner.ID, product.ID)
		}
	}
	e, err := policy.New(policy.Options{Dir: *dir})
	if err != nil {
		return err
	}
	var failures []error
	for i, p := range purposes {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		_, granted := partner.GrantFor(product.ID, p)
		in := gateway.PolicyInput(partner, product, p)
		d, err := e.Decide(context.Background(), in)
		writeExplanation(stdout, in, product, d, granted, policySource(*dir))
		if err != nil {
			failures = append(failures, err)
		}
		if d.Allow {
			schema, err := gateway.ViewSchema(product, d)
			if err != nil {
				fmt.Fprintf(stdout, "schema    the decision cannot be applied: %v\n", err)
			} else {
				fmt.Fprintf(stdout, "schema    %s\n", schema)
			}
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("policy explain: the policy failed: %w", errors.Join(failures...))
	}
	return nil
}

// writeExplanation prints one decision for people.
func writeExplanation(w io.Writer, in policy.Input, prod *products.Product, d policy.Decision, granted bool, source string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "partner\t%s (%s, type %s)\n", in.Partner.ID, in.Partner.Name, in.Partner.Type)
	fmt.Fprintf(tw, "product\t%s (%s)\n", prod.ID, prod.Title)
	note := ""
	if !granted {
		note = " (the partner holds no such grant: this is what the policy would decide if it did)"
	}
	fmt.Fprintf(tw, "purpose\t%s%s\n", in.Grant.Purpose, note)
	fmt.Fprintf(tw, "policy\t%s, revision %s\n", source, d.Revision)
	if d.Allow {
		fmt.Fprintf(tw, "decision\tallowed\n")
	} else {
		fmt.Fprintf(tw, "decision\tdenied\n")
	}
	fmt.Fprintf(tw, "reason\t%s\n", d.Reason)
	if !d.Allow {
		tw.Flush()
		return
	}
	fmt.Fprintf(tw, "rows\t%s\n", d.Row)
	if d.ConsentRequired {
		fmt.Fprintf(tw, "consent\trequired: subscribers who withdrew consent are left out\n")
	} else {
		fmt.Fprintf(tw, "consent\tnot required\n")
	}
	tw.Flush()

	fmt.Fprintln(w, "fields:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	seen := map[string]bool{}
	for _, f := range prod.Fields {
		seen[f.Name] = true
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Name, f.Classification, treatmentText(d.Fields[f.Name]))
	}
	for _, name := range slices.Sorted(maps.Keys(d.Fields)) {
		if !seen[name] {
			fmt.Fprintf(tw, "  %s\t(not in the product)\t%s\n", name, treatmentText(d.Fields[name]))
		}
	}
	tw.Flush()
}

// treatmentText renders a field treatment: "drop (not mentioned)" when the
// policy does not name the field, else the op and its parameters, e.g.
// "keep-prefix n=8".
func treatmentText(t map[string]any) string {
	if t == nil {
		return "drop (not mentioned)"
	}
	parts := []string{fmt.Sprint(t["op"])}
	for _, k := range slices.Sorted(maps.Keys(t)) {
		if k == "op" {
			continue
		}
		v := t[k]
		s, ok := v.(string)
		if !ok || s == "" || strings.ContainsAny(s, " \t\"=") {
			b, err := json.Marshal(v)
			if err != nil {
				b = []byte(fmt.Sprint(v))
			}
			s = string(b)
		}
		parts = append(parts, k+"="+s)
	}
	return strings.Join(parts, " ")
}

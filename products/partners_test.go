package products_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
)

func TestDefaultPartners(t *testing.T) {
	r, err := products.LoadDefaultPartners()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(cat); err != nil {
		t.Fatalf("demo registry does not validate against the shipped catalog: %v", err)
	}
	want := []string{"admin", "enterprise-x", "internal-fraud", "internal-noc", "iot-fleet", "mvno-a", "mvno-b", "regulator"}
	if got := r.IDs(); !slices.Equal(got, want) {
		t.Fatalf("partners %v, want exactly %v (sorted)", got, want)
	}
	g := func(product, purpose string) products.Grant {
		return products.Grant{Product: product, Purpose: purpose}
	}
	for _, tc := range []struct {
		id     string
		typ    products.PartnerType
		attrs  map[string]any
		grants []products.Grant
	}{
		{"mvno-a", products.PartnerMVNO, map[string]any{"mvno_id": "mvno-a"},
			[]products.Grant{g("cdr", "billing"), g("fraud-alerts", "fraud-prevention"), g("network-quality", "network-analytics")}},
		{"mvno-b", products.PartnerMVNO, map[string]any{"mvno_id": "mvno-b"}, []products.Grant{g("cdr", "network-analytics")}},
		{"iot-fleet", products.PartnerIoT, map[string]any{"platform": "iot-fleet"},
			[]products.Grant{g("device-telemetry", "network-analytics"), g("network-quality", "network-analytics")}},
		{"enterprise-x", products.PartnerEnterprise, map[string]any{"cells": []any{
			"262-01-2B0000001", "262-01-2B0000002", "262-01-2B0000003", "262-01-2B0006001", "262-01-2B0006002"}},
			[]products.Grant{g("network-quality", "network-analytics")}},
		{"internal-fraud", products.PartnerInternal, map[string]any{},
			[]products.Grant{g("fraud-alerts", "fraud-prevention"), g("cdr", "fraud-prevention")}},
		{"regulator", products.PartnerRegulator, map[string]any{}, nil},
		{"admin", products.PartnerInternal, map[string]any{}, nil},
	} {
		p, ok := r.Get(tc.id)
		if !ok {
			t.Errorf("%s: missing", tc.id)
			continue
		}
		if p.Type != tc.typ || p.Name == "" || !reflect.DeepEqual(p.Attributes, tc.attrs) || !reflect.DeepEqual(p.Grants, tc.grants) {
			t.Errorf("%s: got type %q name %q attributes %#v grants %v\nwant type %q attributes %#v grants %v",
				tc.id, p.Type, p.Name, p.Attributes, p.Grants, tc.typ, tc.attrs, tc.grants)
		}
		if p.Source != "products/partners/demo.yaml" || p.Line == 0 {
			t.Errorf("%s: source %s:%d", tc.id, p.Source, p.Line)
		}
	}

	// internal-noc holds every product of the catalog for network-analytics:
	// adding a product to the catalog fails here until it is granted.
	noc, _ := r.Get("internal-noc")
	if len(noc.Grants) != len(cat.Products) {
		t.Errorf("internal-noc has %d grants, the catalog %d products", len(noc.Grants), len(cat.Products))
	}
	for _, p := range cat.Products {
		if gr, ok := noc.Grant(p.ID); !ok || gr.Purpose != products.PurposeNetworkAnalytics {
			t.Errorf("internal-noc grant for %s = %v, %v; want network-analytics", p.ID, gr, ok)
		}
	}

	a, _ := r.Get("mvno-a")
	if gr, ok := a.Grant("fraud-alerts"); !ok || gr != g("fraud-alerts", "fraud-prevention") {
		t.Errorf("mvno-a Grant(fraud-alerts) = %v, %v", gr, ok)
	}
	if gr, ok := a.Grant("device-telemetry"); ok {
		t.Errorf("mvno-a Grant(device-telemetry) = %v, want none", gr)
	}
	if _, ok := a.GrantFor("cdr", products.PurposeMarketing); ok {
		t.Error("mvno-a GrantFor(cdr, marketing) found a grant")
	}
	if _, ok := a.GrantFor("cdr", products.PurposeBilling); !ok {
		t.Error("mvno-a GrantFor(cdr, billing) found no grant")
	}
	if _, ok := r.Get("mvno-c"); ok {
		t.Error("Get(mvno-c) found a partner")
	}
}

// TestDemoPartnersMatchGeneratedData checks that the demo registry's row
// attributes name values the generator really produces, whatever its seed,
// so that row filters built on them select rows.
func TestDemoPartnersMatchGeneratedData(t *testing.T) {
	r, err := products.LoadDefaultPartners()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, seed := range []int64{1, 42, 7777} {
		gen, err := generate.New(cat, generate.Options{Seed: seed, Framing: generate.FramingPlain})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]map[string]bool{} // product -> column value -> seen
		read := func(product, column string, n int) {
			p, _ := cat.Get(product)
			seen[product] = map[string]bool{}
			for range n {
				rec, err := gen.Next(product)
				if err != nil {
					t.Fatal(err)
				}
				var m map[string]any
				if err := avro.Unmarshal(p.Current().Schema, rec.Value, &m); err != nil {
					t.Fatalf("%s: %v", product, err)
				}
				seen[product][m[column].(string)] = true
			}
		}
		read("network-quality", "cell_id", 120) // 60 cells, each once per interval
		read("device-telemetry", "platform", 500)
		read("cdr", "mvno_id", 500)
		read("fraud-alerts", "mvno_id", 300)

		for _, p := range r.List {
			switch p.Type {
			case products.PartnerMVNO:
				for _, product := range []string{"cdr", "fraud-alerts"} {
					if !seen[product][p.Attributes["mvno_id"].(string)] {
						t.Errorf("seed %d: %s mvno_id %q never appears in %s", seed, p.ID, p.Attributes["mvno_id"], product)
					}
				}
			case products.PartnerIoT:
				if !seen["device-telemetry"][p.Attributes["platform"].(string)] {
					t.Errorf("seed %d: %s platform %q never appears in device-telemetry", seed, p.ID, p.Attributes["platform"])
				}
			case products.PartnerEnterprise:
				for _, c := range p.Attributes["cells"].([]any) {
					if !seen["network-quality"][c.(string)] {
						t.Errorf("seed %d: %s cell %q never appears in network-quality", seed, p.ID, c)
					}
				}
			}
		}
	}
}

const validRegistry = `partners:
  - id: mvno-a
    name: MVNO A
    type: mvno
    attributes:
      mvno_id: mvno-a
      tier: 2
      ratio: 0.5
      premium: true
      regions: [north, south]
      contract: {signed: 2024-01-01, renewals: 3}
    grants:
      - product: cdr
        purpose: billing
      - product: cdr
        purpose: fraud-prevention
  - id: admin
    name: Admin
    type: internal
    grants:
`

func TestLoadPartners(t *testing.T) {
	r, err := products.LoadPartners(fstest.MapFS{"reg.yaml": {Data: []byte(validRegistry)}}, "reg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.IDs(); !slices.Equal(got, []string{"admin", "mvno-a"}) {
		t.Fatalf("ids %v", got)
	}
	a, _ := r.Get("mvno-a")
	want := map[string]any{
		"mvno_id": "mvno-a", "tier": int64(2), "ratio": 0.5, "premium": true,
		"regions":  []any{"north", "south"},
		"contract": map[string]any{"signed": "2024-01-01", "renewals": int64(3)},
	}
	if !reflect.DeepEqual(a.Attributes, want) {
		t.Errorf("attributes %#v\nwant %#v", a.Attributes, want)
	}
	if a.Source != "reg.yaml" || a.Line != 2 || r.Source != "reg.yaml" {
		t.Errorf("source %s:%d, registry %s", a.Source, a.Line, r.Source)
	}
	// Two purposes for one product: Grant returns the first, GrantFor the asked one.
	if g, _ := a.Grant("cdr"); g.Purpose != "billing" {
		t.Errorf("Grant(cdr) purpose %q, want the first (billing)", g.Purpose)
	}
	if g, ok := a.GrantFor("cdr", "fraud-prevention"); !ok || g.Purpose != "fraud-prevention" {
		t.Errorf("GrantFor(cdr, fraud-prevention) = %v, %v", g, ok)
	}
	adm, _ := r.Get("admin")
	if len(adm.Grants) != 0 {
		t.Errorf("admin grants %v", adm.Grants)
	}

	// A hand-built registry works without LoadPartners.
	hand := &products.Partners{List: []*products.Partner{{ID: "x-1", Grants: []products.Grant{{Product: "nope", Purpose: "billing"}}}}}
	if p, ok := hand.Get("x-1"); !ok || p.ID != "x-1" {
		t.Error("hand-built registry: Get failed")
	}
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if err := hand.Validate(cat); err == nil || !strings.Contains(err.Error(), `unknown product "nope"`) {
		t.Errorf("hand-built Validate: %v", err)
	}
}

func TestLoadPartnersErrors(t *testing.T) {
	for _, tc := range []struct {
		note string
		yaml string
		want []string // each must appear in the joined error
	}{
		{"empty file", "", []string{"reg.yaml: empty file"}},
		{"syntax", "partners:\n  - id: ab\n    name: x: y\n", []string{"reg.yaml:3: invalid YAML: mapping values are not allowed"}},
		{"not a mapping", "- a\n", []string{"reg.yaml:1: want a mapping"}},
		{"unknown top-level key", "partners: []\nextra: 1\n", []string{`reg.yaml:2: field "extra": unknown field (want one of partners)`}},
		{"missing partners", "{}\n", []string{`reg.yaml:1: field "partners": required field missing`}},
		{"empty list", "partners: []\n", []string{`reg.yaml:1: field "partners": empty`}},
		{"two documents", "partners:\n  - {id: ab, name: A, type: internal}\n---\npartners: []\n", []string{"reg.yaml:4: more than one YAML document"}},
		{"unknown partner key", `partners:
  - id: mvno-a
    name: A
    type: internal
    colour: red
`, []string{`reg.yaml:5: field "partners[0].colour": unknown field (want one of id, name, type, attributes, grants)`}},
		{"missing fields", "partners:\n  - grants: []\n", []string{
			`reg.yaml:2: field "partners[0].id": required field missing`,
			`reg.yaml:2: field "partners[0].name": required field missing`,
			`reg.yaml:2: field "partners[0].type": required field missing`}},
		{"bad id", "partners:\n  - {id: Mvno_A, name: A, type: internal}\n", []string{`reg.yaml:2: field "partners[0].id": invalid partner id "Mvno_A"`}},
		{"one-letter id", "partners:\n  - {id: a, name: A, type: internal}\n", []string{`invalid partner id "a"`}},
		{"duplicate id", `partners:
  - id: noc
    name: A
    type: internal
  - id: noc
    name: B
    type: internal
`, []string{`reg.yaml:5: field "partners[1].id": partner id "noc" already defined on line 2`}},
		{"bad type", "partners:\n  - {id: ab, name: A, type: reseller}\n", []string{`field "partners[0].type": unknown partner type "reseller" (want mvno, iot, enterprise, internal or regulator)`}},
		{"bad purpose", `partners:
  - id: ab
    name: A
    type: internal
    grants:
      - product: cdr
        purpose: curiosity
`, []string{`reg.yaml:7: field "partners[0].grants[0].purpose": unknown purpose "curiosity" (want billing, fraud-prevention, network-analytics, marketing or regulatory)`}},
		{"unknown grant key", `partners:
  - id: ab
    name: A
    type: internal
    grants:
      - product: cdr
        purpose: billing
        until: 2030
`, []string{`reg.yaml:8: field "partners[0].grants[0].until": unknown field (want one of product, purpose)`}},
		{"grant missing purpose", "partners:\n  - id: ab\n    name: A\n    type: internal\n    grants:\n      - product: cdr\n",
			[]string{`reg.yaml:6: field "partners[0].grants[0].purpose": required field missing`}},
		{"duplicate grant", `partners:
  - id: ab
    name: A
    type: internal
    grants:
      - {product: cdr, purpose: billing}
      - {product: cdr, purpose: billing}
`, []string{`reg.yaml:7: field "partners[0].grants[1]": grant of cdr for billing already given on line 6`}},
		{"grants not a list", "partners:\n  - {id: ab, name: A, type: internal, grants: cdr}\n", []string{`field "partners[0].grants": want a list`}},
		{"mvno without mvno_id", "partners:\n  - {id: ab, name: A, type: mvno}\n", []string{`reg.yaml:2: field "partners[0].attributes.mvno_id": required for partners of type mvno`}},
		{"iot platform not a string", `partners:
  - id: ab
    name: A
    type: iot
    attributes:
      platform: [a, b]
`, []string{`reg.yaml:5: field "partners[0].attributes.platform": want a string`}},
		{"enterprise cells empty", `partners:
  - id: ab
    name: A
    type: enterprise
    attributes:
      cells: []
`, []string{`reg.yaml:5: field "partners[0].attributes.cells": want a non-empty list of cell ids`}},
		{"bad attribute name", `partners:
  - id: ab
    name: A
    type: internal
    attributes:
      Mvno-Id: x
`, []string{`reg.yaml:6: field "partners[0].attributes.Mvno-Id": invalid attribute name`}},
		{"null attribute", `partners:
  - id: ab
    name: A
    type: internal
    attributes:
      tier:
`, []string{`reg.yaml:6: field "partners[0].attributes.tier": must not be empty`}},
		{"empty name", "partners:\n  - {id: ab, name: '', type: internal}\n", []string{`field "partners[0].name": must not be empty`}},
		{"all problems at once", `partners:
  - id: ab
    name: A
    type: nobody
  - id: cd
    name: C
    type: internal
    grants:
      - {product: cdr, purpose: gossip}
`, []string{`reg.yaml:4: field "partners[0].type"`, `reg.yaml:9: field "partners[1].grants[0].purpose"`}},
	} {
		t.Run(tc.note, func(t *testing.T) {
			_, err := products.LoadPartners(fstest.MapFS{"reg.yaml": {Data: []byte(tc.yaml)}}, "reg.yaml")
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
			var pe *products.Error
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *products.Error", err)
			}
		})
	}
}

func TestLoadPartnersMissingFile(t *testing.T) {
	_, err := products.LoadPartners(fstest.MapFS{}, "nope.yaml")
	if err == nil || !strings.Contains(err.Error(), `read partner registry "nope.yaml"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPartnersValidateAgainstCatalog(t *testing.T) {
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	reg := `partners:
  - id: ab
    name: A
    type: internal
    grants:
      - product: cdr
        purpose: billing
      - product: cdrs
        purpose: billing
  - id: cd
    name: C
    type: internal
    grants:
      - {product: weather, purpose: marketing}
`
	r, err := products.LoadPartners(fstest.MapFS{"reg.yaml": {Data: []byte(reg)}}, "reg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(nil); err != nil {
		t.Errorf("Validate(nil) = %v", err)
	}
	err = r.Validate(cat)
	if err == nil {
		t.Fatal("validated; want unknown products")
	}
	for _, w := range []string{
		`reg.yaml:8: field "partners[0].grants[1].product": partner "ab": unknown product "cdrs" (the catalog has cdr, device-telemetry, fraud-alerts, network-quality)`,
		`reg.yaml:14: field "partners[1].grants[0].product": partner "cd": unknown product "weather"`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
		}
	}
	if strings.Contains(err.Error(), `"cdr" `) {
		t.Errorf("known product cdr reported: %v", err)
	}
}

func FuzzLoadPartners(f *testing.F) {
	f.Add(validRegistry)
	f.Add("partners:\n  - {id: ab, name: A, type: enterprise, attributes: {cells: [x]}}\n")
	f.Add("partners: &a [*a]\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := products.LoadPartners(fstest.MapFS{"reg.yaml": {Data: []byte(s)}}, "reg.yaml")
		if err != nil {
			return
		}
		for i, p := range r.List {
			if i > 0 && r.List[i-1].ID >= p.ID {
				t.Fatalf("not sorted or duplicate: %s, %s", r.List[i-1].ID, p.ID)
			}
			if got, ok := r.Get(p.ID); !ok || got != p {
				t.Fatalf("Get(%q) failed", p.ID)
			}
		}
	})
}

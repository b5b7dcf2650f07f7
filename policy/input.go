package policy

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is what the policy decides from: one partner, one of its grants and
// the product the grant names. Its JSON form is the policy's input document.
type Input struct {
	Partner Partner `json:"partner"`
	Grant   Grant   `json:"grant"`
	Product Product `json:"product"`
}

// Partner is the partner asking for data, as the partner registry has it.
type Partner struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Type is mvno, iot, enterprise, internal or regulator; the shipped
	// policy denies any other.
	Type string `json:"type"`
	// Attributes are free-form values from the partner registry that row
	// rules match records against: mvno_id (string) for MVNOs, platform
	// (string) for IoT platforms, cells ([]string of cell ids) for
	// enterprises. Values must be JSON-like: strings, numbers, booleans,
	// nil, []string, []any, map[string]any.
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Grant is one (product, purpose) pair the partner registry grants.
type Grant struct {
	Product string `json:"product"`
	// Purpose is billing, fraud-prevention, network-analytics, marketing
	// or regulatory; the shipped policy denies any other.
	Purpose string `json:"purpose"`
}

// Product describes the product's current schema to the policy.
type Product struct {
	ID     string  `json:"id"`
	Fields []Field `json:"fields"`
}

// Field is one top-level field of the product's current schema.
type Field struct {
	Name string `json:"name"`
	// Classification is the catalog's: direct-identifier,
	// quasi-identifier, sensitive or public.
	Classification string `json:"classification"`
	// Type is the field's Avro type name: a primitive (string, int, long,
	// float, double, boolean, bytes) or record, enum, array, map, fixed.
	// A nullable union ["null", T] is named by T; logical types by their
	// underlying type (a timestamp-millis is "long", a uuid "string"). The
	// shipped policy pseudonymises by classification only fields of type
	// string, int or long, and drops other fields of that class.
	Type string `json:"type"`
}

// value builds the input document as an OPA value without a JSON round
// trip.
func (in Input) value() (ast.Value, error) {
	attrs := ast.NewObject()
	for k, v := range in.Partner.Attributes {
		av, err := ast.InterfaceToValue(v)
		if err != nil {
			return nil, fmt.Errorf("partner %q attribute %q: %w", in.Partner.ID, k, err)
		}
		attrs.Insert(ast.StringTerm(k), ast.NewTerm(av))
	}
	fields := make([]*ast.Term, len(in.Product.Fields))
	for i, f := range in.Product.Fields {
		fields[i] = ast.ObjectTerm(
			ast.Item(ast.InternedTerm("name"), ast.StringTerm(f.Name)),
			ast.Item(ast.InternedTerm("classification"), ast.StringTerm(f.Classification)),
			ast.Item(ast.InternedTerm("type"), ast.StringTerm(f.Type)),
		)
	}
	return ast.NewObject(
		ast.Item(ast.InternedTerm("partner"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("id"), ast.StringTerm(in.Partner.ID)),
			ast.Item(ast.InternedTerm("name"), ast.StringTerm(in.Partner.Name)),
			ast.Item(ast.InternedTerm("type"), ast.StringTerm(in.Partner.Type)),
			ast.Item(ast.InternedTerm("attributes"), ast.NewTerm(attrs)),
		)),
		ast.Item(ast.InternedTerm("grant"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("product"), ast.StringTerm(in.Grant.Product)),
			ast.Item(ast.InternedTerm("purpose"), ast.StringTerm(in.Grant.Purpose)),
		)),
		ast.Item(ast.InternedTerm("product"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("id"), ast.StringTerm(in.Product.ID)),
			ast.Item(ast.InternedTerm("fields"), ast.ArrayTerm(fields...)),
		)),
	), nil
}

package products

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultPartners holds the shipped demo partner registry,
// partners/demo.yaml (DefaultPartnersFile).
//
//go:embed partners/*.yaml
var DefaultPartners embed.FS

// DefaultPartnersFile is the registry file inside DefaultPartners.
const DefaultPartnersFile = "partners/demo.yaml"

// PartnerType says what kind of organisation a partner is. Policy decides
// per type which rows and fields a partner sees.
type PartnerType string

// The partner types.
const (
	// PartnerMVNO is a brand reselling the host network; sees its own
	// subscribers' rows (attribute mvno_id).
	PartnerMVNO PartnerType = "mvno"
	// PartnerIoT is an IoT platform; sees its own devices (attribute
	// platform).
	PartnerIoT PartnerType = "iot"
	// PartnerEnterprise is an enterprise customer; sees KPIs of the cells it
	// pays for (attribute cells).
	PartnerEnterprise PartnerType = "enterprise"
	// PartnerInternal is a division of the operator itself (NOC, fraud
	// team, data owner).
	PartnerInternal PartnerType = "internal"
	// PartnerRegulator is a regulator or compliance body; reads the audit
	// stream, no raw personal data.
	PartnerRegulator PartnerType = "regulator"
)

// Valid reports whether t is one of the partner types.
func (t PartnerType) Valid() bool {
	switch t {
	case PartnerMVNO, PartnerIoT, PartnerEnterprise, PartnerInternal, PartnerRegulator:
		return true
	}
	return false
}

// Purposes a grant can be made for (GDPR art. 5 purpose limitation): the same
// partner may see more of a product for one purpose than for another.
const (
	PurposeBilling          = "billing"
	PurposeFraudPrevention  = "fraud-prevention"
	PurposeNetworkAnalytics = "network-analytics"
	PurposeMarketing        = "marketing"
	PurposeRegulatory       = "regulatory"
)

// ValidPurpose reports whether purpose is one of the purposes above.
func ValidPurpose(purpose string) bool {
	switch purpose {
	case PurposeBilling, PurposeFraudPrevention, PurposeNetworkAnalytics, PurposeMarketing, PurposeRegulatory:
		return true
	}
	return false
}

const (
	wantPartnerTypes = "mvno, iot, enterprise, internal or regulator"
	wantPurposes     = "billing, fraud-prevention, network-analytics, marketing or regulatory"
	maxAttrDepth     = 8
)

var (
	attrKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

	registryKeys = []string{"partners"}
	partnerKeys  = []string{"id", "name", "type", "attributes", "grants"}
	grantKeys    = []string{"product", "purpose"}

	// typeAttributes are the attributes each partner type must carry: the
	// values policy row filters match rows against. "cells" is a list.
	typeAttributes = map[PartnerType]string{
		PartnerMVNO:       "mvno_id",
		PartnerIoT:        "platform",
		PartnerEnterprise: "cells",
	}
)

// Grant allows a partner to read one product for one purpose.
type Grant struct {
	Product string // a product id of the catalog
	Purpose string // one of the Purpose constants
}

// Partner is one organisation that reads data products through sluice.
// Partners are immutable once loaded: do not modify Attributes or Grants.
type Partner struct {
	ID   string // ^[a-z][a-z0-9-]{1,62}$; the token's partner claim names it
	Name string // display name
	Type PartnerType
	// Attributes are facts about the partner that policy matches rows
	// against: mvno_id for mvno partners, platform for iot, cells (a list of
	// cell ids) for enterprise. Values are string, int64, float64, bool,
	// []any or map[string]any of those; never nil.
	Attributes map[string]any
	// Grants in file order. A partner may hold several grants for one
	// product, for different purposes.
	Grants []Grant
	// Source is the registry file the partner came from, e.g.
	// "products/partners/demo.yaml"; Line the line of its id.
	Source string
	Line   int

	field      string // "partners[3]", for errors
	grantLines []int  // per grant, the line of its product
}

// Grant returns the partner's grant for product: the first in file order.
// When the partner holds the product for several purposes (internal-fraud
// could hold cdr for fraud-prevention and for billing) the first one wins,
// so a caller that knows the purpose a request states must use GrantFor
// instead; Grant answers "may this partner read the product at all, and
// under which default purpose".
func (p *Partner) Grant(product string) (Grant, bool) {
	for _, g := range p.Grants {
		if g.Product == product {
			return g, true
		}
	}
	return Grant{}, false
}

// GrantFor returns the partner's grant for product and purpose.
func (p *Partner) GrantFor(product, purpose string) (Grant, bool) {
	for _, g := range p.Grants {
		if g.Product == product && g.Purpose == purpose {
			return g, true
		}
	}
	return Grant{}, false
}

// Partners is a loaded, validated partner registry. It is immutable and safe
// for concurrent use.
type Partners struct {
	List   []*Partner // sorted by ID
	Source string     // the registry file, e.g. "products/partners/demo.yaml"

	byID map[string]*Partner
}

// Get returns the partner with the given id.
func (r *Partners) Get(id string) (*Partner, bool) {
	if r.byID == nil { // a registry built by hand, not by LoadPartners
		for _, p := range r.List {
			if p.ID == id {
				return p, true
			}
		}
		return nil, false
	}
	p, ok := r.byID[id]
	return p, ok
}

// IDs returns the partner ids in sorted order.
func (r *Partners) IDs() []string {
	ids := make([]string, len(r.List))
	for i, p := range r.List {
		ids[i] = p.ID
	}
	return ids
}

// Validate checks the registry against a catalog: every grant must name a
// product the catalog has. Each problem is an *Error naming the registry
// file and the grant's line; all are returned at once, joined with
// errors.Join. A nil catalog checks nothing.
func (r *Partners) Validate(cat *Catalog) error {
	if cat == nil {
		return nil
	}
	var errs []error
	for _, p := range r.List {
		for i, g := range p.Grants {
			if _, ok := cat.Get(g.Product); ok {
				continue
			}
			line := 0
			if i < len(p.grantLines) {
				line = p.grantLines[i]
			}
			field := fmt.Sprintf("grants[%d].product", i)
			if p.field != "" {
				field = p.field + "." + field
			}
			ids := make([]string, len(cat.Products))
			for j, cp := range cat.Products {
				ids[j] = cp.ID
			}
			errs = append(errs, &Error{File: p.Source, Line: line, Field: field,
				Err: fmt.Errorf("partner %q: unknown product %q (the catalog has %s)", p.ID, g.Product, strings.Join(ids, ", "))})
		}
	}
	return errors.Join(errs...)
}

// LoadPartners reads the partner registry file at file in fsys (Source is
// file). To load one from disk: LoadPartners(os.DirFS(dir), "partners.yaml").
// Loading is strict: unknown keys, missing fields, invalid or duplicate ids,
// unknown types and purposes and missing type attributes are errors; all
// are returned at once, joined with errors.Join, each an *Error naming
// file, line and field. It does not check grants against a catalog: call
// Validate for that.
func LoadPartners(fsys fs.FS, file string) (*Partners, error) {
	return loadPartners(fsys, file, "")
}

// LoadDefaultPartners loads the shipped demo registry (DefaultPartnersFile
// of DefaultPartners). Sources read "products/partners/demo.yaml".
func LoadDefaultPartners() (*Partners, error) {
	return loadPartners(DefaultPartners, DefaultPartnersFile, "products")
}

func loadPartners(fsys fs.FS, file, prefix string) (*Partners, error) {
	source := file
	if prefix != "" {
		source = path.Join(prefix, file)
	}
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("products: read partner registry %q: %w", file, err)
	}
	fp := &fileParser{file: source}
	r := fp.parsePartners(data)
	if len(fp.errs) > 0 {
		return nil, errors.Join(fp.errs...)
	}
	return r, nil
}

// parsePartners decodes and validates a registry file.
func (fp *fileParser) parsePartners(data []byte) *Partners {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	root := fp.document(dec, "a registry with a partners: list", "put every partner under one partners: list")
	if root == nil {
		return nil
	}
	m, ok := fp.mapping(root, "", registryKeys)
	if !ok {
		return nil
	}
	le, ok := m["partners"]
	if !ok {
		fp.errorf(root.Line, "partners", "required field missing")
		return nil
	}
	if le.val.Kind != yaml.SequenceNode {
		fp.errorf(le.val.Line, "partners", "want a list of partners, got %s", kindName(le.val))
		return nil
	}
	if len(le.val.Content) == 0 {
		fp.errorf(le.val.Line, "partners", "empty; want at least one partner")
		return nil
	}
	r := &Partners{Source: fp.file, byID: map[string]*Partner{}}
	for i, item := range le.val.Content {
		p := fp.partner(resolve(item), fmt.Sprintf("partners[%d]", i))
		if p == nil || p.ID == "" {
			continue
		}
		if first, dup := r.byID[p.ID]; dup {
			fp.errorf(p.Line, p.field+".id", "partner id %q already defined on line %d; ids must be unique", p.ID, first.Line)
			continue
		}
		r.byID[p.ID] = p
		r.List = append(r.List, p)
	}
	slices.SortFunc(r.List, func(a, b *Partner) int { return strings.Compare(a.ID, b.ID) })
	return r
}

// partner reads one item of the partners list. It returns nil when the item
// is not a mapping; otherwise the partner as far as it could be read (ID
// empty when the id is unusable).
func (fp *fileParser) partner(n *yaml.Node, field string) *Partner {
	m, ok := fp.mapping(n, field, partnerKeys)
	if !ok {
		return nil
	}
	for _, k := range []string{"id", "name", "type"} {
		if _, ok := m[k]; !ok {
			fp.errorf(n.Line, field+"."+k, "required field missing")
		}
	}
	p := &Partner{Source: fp.file, Line: n.Line, field: field, Attributes: map[string]any{}}
	if e, ok := m["id"]; ok {
		p.Line = e.val.Line
		if v, ok := fp.str(e, field+".id"); ok {
			if !idPattern.MatchString(v) {
				fp.errorf(e.val.Line, field+".id", "invalid partner id %q (want ^[a-z][a-z0-9-]{1,62}$: lowercase letters, digits and dashes, starting with a letter)", v)
			} else {
				p.ID = v
			}
		}
	}
	if e, ok := m["name"]; ok {
		p.Name, _ = fp.str(e, field+".name")
	}
	if e, ok := m["type"]; ok {
		if v, ok := fp.str(e, field+".type"); ok {
			if t := PartnerType(v); t.Valid() {
				p.Type = t
			} else {
				fp.errorf(e.val.Line, field+".type", "unknown partner type %q (want %s)", v, wantPartnerTypes)
			}
		}
	}
	if e, ok := m["attributes"]; ok {
		if am, ok := fp.mapping(e.val, field+".attributes", nil); ok {
			for k, ae := range am {
				af := field + ".attributes." + k
				if !attrKeyPattern.MatchString(k) {
					fp.errorf(ae.key.Line, af, "invalid attribute name %q (want ^[a-z][a-z0-9_]{0,62}$: lowercase letters, digits and underscores)", k)
					continue
				}
				if v, ok := fp.attrValue(ae.val, af, 0); ok {
					p.Attributes[k] = v
				}
			}
		}
	}
	if attr, ok := typeAttributes[p.Type]; ok {
		fp.typeAttribute(p, attr, m)
	}
	if e, ok := m["grants"]; ok {
		fp.grants(e, p)
	}
	return p
}

// typeAttribute checks that p carries the attribute its type requires:
// a non-empty string, or for cells a non-empty list of non-empty strings.
func (fp *fileParser) typeAttribute(p *Partner, attr string, m map[string]entry) {
	field := p.field + ".attributes." + attr
	line := p.Line
	if e, ok := m["attributes"]; ok {
		line = e.key.Line
	}
	v, present := p.Attributes[attr]
	if !present {
		if am, ok := m["attributes"]; ok && am.val.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(am.val.Content); i += 2 {
				if am.val.Content[i].Value == attr {
					return // present but invalid: already reported
				}
			}
		}
		what := "a string"
		if attr == "cells" {
			what = "a list of cell ids"
		}
		fp.errorf(line, field, "required for partners of type %s (%s that policy row filters match on)", p.Type, what)
		return
	}
	if attr != "cells" {
		if _, ok := v.(string); !ok {
			fp.errorf(line, field, "want a string for partners of type %s, got %T", p.Type, v)
		}
		return
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		fp.errorf(line, field, "want a non-empty list of cell ids (e.g. 262-01-2B0000001) for partners of type %s", p.Type)
		return
	}
	for i, c := range list {
		if s, ok := c.(string); !ok || s == "" {
			fp.errorf(line, fmt.Sprintf("%s[%d]", field, i), "want a cell id string such as 262-01-2B0000001, got %v", c)
		}
	}
}

// grants reads a partner's grants list.
func (fp *fileParser) grants(e entry, p *Partner) {
	field := p.field + ".grants"
	if e.val.Kind == yaml.ScalarNode && e.val.ShortTag() == "!!null" {
		return // "grants:" with nothing: no grants
	}
	if e.val.Kind != yaml.SequenceNode {
		fp.errorf(e.val.Line, field, "want a list of {product, purpose}, got %s", kindName(e.val))
		return
	}
	seen := map[Grant]int{}
	for i, item := range e.val.Content {
		item = resolve(item)
		gf := fmt.Sprintf("%s[%d]", field, i)
		gm, ok := fp.mapping(item, gf, grantKeys)
		if !ok {
			continue
		}
		ok = true
		for _, k := range grantKeys {
			if _, present := gm[k]; !present {
				fp.errorf(item.Line, gf+"."+k, "required field missing")
				ok = false
			}
		}
		var g Grant
		line := item.Line
		if pe, present := gm["product"]; present {
			line = pe.val.Line
			if v, good := fp.str(pe, gf+".product"); !good {
				ok = false
			} else if !idPattern.MatchString(v) {
				fp.errorf(pe.val.Line, gf+".product", "invalid product id %q (want ^[a-z][a-z0-9-]{1,62}$)", v)
				ok = false
			} else {
				g.Product = v
			}
		}
		if pe, present := gm["purpose"]; present {
			if v, good := fp.str(pe, gf+".purpose"); !good {
				ok = false
			} else if !ValidPurpose(v) {
				fp.errorf(pe.val.Line, gf+".purpose", "unknown purpose %q (want %s)", v, wantPurposes)
				ok = false
			} else {
				g.Purpose = v
			}
		}
		if !ok {
			continue
		}
		if first, dup := seen[g]; dup {
			fp.errorf(item.Line, gf, "grant of %s for %s already given on line %d", g.Product, g.Purpose, first)
			continue
		}
		seen[g] = item.Line
		p.Grants = append(p.Grants, g)
		p.grantLines = append(p.grantLines, line)
	}
}

// attrValue converts an attribute value: scalars to string, int64, float64
// or bool; lists to []any; mappings to map[string]any.
func (fp *fileParser) attrValue(n *yaml.Node, field string, depth int) (any, bool) {
	n = resolve(n)
	if depth >= maxAttrDepth {
		fp.errorf(n.Line, field, "nested deeper than %d levels", maxAttrDepth)
		return nil, false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var err error
		switch n.ShortTag() {
		case "!!null":
			fp.errorf(n.Line, field, "must not be empty")
			return nil, false
		case "!!bool":
			var b bool
			if err = n.Decode(&b); err == nil {
				return b, true
			}
		case "!!int":
			var i int64
			if err = n.Decode(&i); err == nil {
				return i, true
			}
		case "!!float":
			var f float64
			if err = n.Decode(&f); err == nil {
				return f, true
			}
		default: // strings, and timestamps as written
			return n.Value, true
		}
		fp.errorf(n.Line, field, "invalid value %s: %v", describe(n), err)
		return nil, false
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			v, good := fp.attrValue(item, fmt.Sprintf("%s[%d]", field, i), depth+1)
			ok = ok && good
			list = append(list, v)
		}
		return list, ok
	case yaml.MappingNode:
		am, ok := fp.mapping(n, field, nil)
		if !ok {
			return nil, false
		}
		out := make(map[string]any, len(am))
		for k, e := range am {
			v, good := fp.attrValue(e.val, field+"."+k, depth+1)
			ok = ok && good
			out[k] = v
		}
		return out, ok
	}
	fp.errorf(n.Line, field, "want a value, got %s", kindName(n))
	return nil, false
}

package products

import (
	"embed"
	"fmt"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/schemas"
)

// DefaultCatalog holds the shipped product definitions, catalog/*.yaml.
//
//go:embed catalog/*.yaml
var DefaultCatalog embed.FS

// Classification says how a top-level field of a product's records may
// identify a person or reveal something about one. Policy decides what a
// partner sees of each class for each purpose.
type Classification string

// The four classifications. Every top-level field of a product's current
// schema carries exactly one.
const (
	// ClassDirectIdentifier identifies a person or a device on its own:
	// IMSI, MSISDN, IMEI, ICCID, device id, name, address.
	ClassDirectIdentifier Classification = "direct-identifier"
	// ClassQuasiIdentifier identifies a person when combined with other
	// data: precise location, cell id, exact time of use.
	ClassQuasiIdentifier Classification = "quasi-identifier"
	// ClassSensitive identifies no one but says something private about a
	// person: charges, fraud suspicion, case notes.
	ClassSensitive Classification = "sensitive"
	// ClassPublic carries no personal information: counters, KPIs, enums,
	// the row owner (mvno_id, platform).
	ClassPublic Classification = "public"
)

// Valid reports whether c is one of the four classifications.
func (c Classification) Valid() bool {
	switch c {
	case ClassDirectIdentifier, ClassQuasiIdentifier, ClassSensitive, ClassPublic:
		return true
	}
	return false
}

// Framing values of Product.Framing: how records on the product's topic are
// framed.
const (
	// FramingAuto: a record is Schema Registry framed when it starts with
	// the magic byte 0x00 and a known schema id, plain Avro of the current
	// version otherwise.
	FramingAuto = "auto"
	// FramingPlain: every record is plain Avro of the current version.
	FramingPlain = "plain"
	// FramingRegistry: every record is Schema Registry framed (0x00, 4-byte
	// big-endian schema id, Avro body).
	FramingRegistry = "registry"
)

// Defaults applied when a catalog file leaves the key out.
const (
	DefaultPartitions     = 3           // partitions
	DefaultFraming        = FramingAuto // framing
	DefaultRetentionBytes = 256 << 20   // retention_bytes, per partition
)

// FieldSpec is the catalog's view of one top-level field of a product's
// current schema.
type FieldSpec struct {
	Name           string
	Classification Classification
	// Description is the data owner's note on the classification; may be
	// empty. The field's meaning is in the schema's doc.
	Description string
}

// SchemaVersion is one registered version of a product's value schema.
type SchemaVersion struct {
	Version int // 1, 2, ...; strictly ascending within a product
	ID      int // Schema Registry id, unique across the catalog
	// File is the path of the .avsc file in the schema FS given to Load,
	// e.g. "avro/cdr.v2.avsc".
	File string
	// Schema is the parsed schema: always a record (*avro.RecordSchema).
	Schema avro.Schema
	// Text is the schema file's JSON text as shipped (with docs), which is
	// what gets registered with a Schema Registry; Schema.String() gives the
	// canonical form.
	Text string
}

// Product is one data product of the catalog. Products are immutable once
// loaded.
type Product struct {
	ID          string // ^[a-z][a-z0-9-]{1,62}$, e.g. "cdr"
	Title       string
	Description string
	// Owner is the owning team and its contact as "team <email>";
	// OwnerTeam and OwnerEmail hold the parts.
	Owner      string
	OwnerTeam  string
	OwnerEmail string
	Topic      string // Kafka topic carrying the product's records
	Partitions int32  // default DefaultPartitions
	Framing    string // FramingAuto (default), FramingPlain or FramingRegistry
	Subject    string // Schema Registry subject, e.g. "telco.cdr-value"
	// Versions lists the schema versions in ascending order; the last is
	// the current one. Every older version is readable with the current
	// one (Avro schema resolution), which Load checks.
	Versions []SchemaVersion
	// Fields classifies every top-level field of the current schema, in
	// schema field order.
	Fields       []FieldSpec
	FreshnessSLA time.Duration // max age of the newest record before the product counts as stale
	ReplayWindow time.Duration // how far back partners may replay; the topic's retention.ms
	// RetentionBytes bounds each partition's size (retention.bytes);
	// default DefaultRetentionBytes.
	RetentionBytes int64
	// SubjectField names the field holding the subscriber a record is about
	// (e.g. msisdn), the key of the consent topic; empty for products with
	// no subscriber (network KPIs, device telemetry).
	SubjectField string
	// Source is the catalog file the product came from, e.g.
	// "products/catalog/cdr.yaml".
	Source string

	fieldIndex map[string]int
}

// Current returns the product's current (highest) schema version. Products
// from Load always have one.
func (p *Product) Current() SchemaVersion {
	return p.Versions[len(p.Versions)-1]
}

// Version returns the schema version numbered v.
func (p *Product) Version(v int) (SchemaVersion, bool) {
	for _, sv := range p.Versions {
		if sv.Version == v {
			return sv, true
		}
	}
	return SchemaVersion{}, false
}

// Field returns the classification of the current schema's top-level field
// called name. Fields the catalog does not know are not found: callers must
// treat them as not shareable (fail closed).
func (p *Product) Field(name string) (FieldSpec, bool) {
	if p.fieldIndex == nil { // a Product built by hand, not by Load
		for _, f := range p.Fields {
			if f.Name == name {
				return f, true
			}
		}
		return FieldSpec{}, false
	}
	i, ok := p.fieldIndex[name]
	if !ok {
		return FieldSpec{}, false
	}
	return p.Fields[i], true
}

// Catalog is a loaded, validated set of products. It is immutable and safe
// for concurrent use.
type Catalog struct {
	Products []*Product // sorted by ID

	byID       map[string]*Product
	bySchemaID map[int]schemaRef
}

type schemaRef struct {
	product *Product
	index   int // into product.Versions
}

// Get returns the product with the given id.
func (c *Catalog) Get(id string) (*Product, bool) {
	if c.byID == nil { // a Catalog built by hand, not by Load
		for _, p := range c.Products {
			if p.ID == id {
				return p, true
			}
		}
		return nil, false
	}
	p, ok := c.byID[id]
	return p, ok
}

// SchemaByID returns the product and schema version registered under the
// Schema Registry id, as found in a framed record's header.
func (c *Catalog) SchemaByID(id int) (*Product, SchemaVersion, bool) {
	if c.bySchemaID == nil { // a Catalog built by hand, not by Load
		for _, p := range c.Products {
			for _, v := range p.Versions {
				if v.ID == id {
					return p, v, true
				}
			}
		}
		return nil, SchemaVersion{}, false
	}
	ref, ok := c.bySchemaID[id]
	if !ok {
		return nil, SchemaVersion{}, false
	}
	return ref.product, ref.product.Versions[ref.index], true
}

// LoadDefault loads the shipped catalog: DefaultCatalog with the schemas of
// schemas.Files. Sources read "products/catalog/<id>.yaml".
func LoadDefault() (*Catalog, error) {
	return load(DefaultCatalog, "catalog", schemas.Files, "products")
}

// Error is one problem in one catalog file. Load joins every problem it
// finds (errors.Join); each prints as
//
//	products/catalog/cdr.yaml:14: field "classification.imsi": unknown classification "secret" (want ...)
type Error struct {
	File  string // catalog file, as named in Product.Source
	Line  int    // 1-based line of the offending key or value; 0 if unknown
	Field string // dotted path of the offending key, e.g. "schema.versions[1].file"; empty for the whole file
	Err   error
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return fmt.Sprintf("%s: %v", loc, e.Err)
	}
	return fmt.Sprintf("%s: field %q: %v", loc, e.Field, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

package products

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/mail"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/schemas"
)

var (
	idPattern    = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
	topicPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	yamlLine     = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

const (
	maxPartitions = 1024
	wantClasses   = "direct-identifier, quasi-identifier, sensitive or public"
	wantFramings  = "auto, plain or registry"
)

// Keys of a product file. Anything else is an error.
var (
	productKeys        = []string{"id", "title", "description", "owner", "topic", "partitions", "framing", "schema", "classification", "freshness_sla", "replay_window", "retention_bytes", "subject_field"}
	requiredKeys       = []string{"id", "title", "description", "owner", "topic", "schema", "classification", "freshness_sla", "replay_window"}
	ownerKeys          = []string{"team", "email"}
	schemaKeys         = []string{"subject", "versions"}
	versionKeys        = []string{"version", "id", "file"}
	classificationKeys = []string{"class", "description"}
)

// Load reads every *.yaml and *.yml file directly inside dir of the catalog
// FS as one product each (Product.Source is dir/file), and resolves the
// schema files they name in schemaFS (schemas.Files when nil). To load a
// catalog from disk: Load(os.DirFS(root), "catalog", os.DirFS(schemaRoot)). It validates every file and the
// catalog as a whole (unique ids, topics and schema ids) and returns all
// problems at once, joined with errors.Join; each is an *Error naming file,
// line and field.
func Load(catalog fs.FS, dir string, schemaFS fs.FS) (*Catalog, error) {
	return load(catalog, dir, schemaFS, "")
}

// load is Load with sources named prefix/dir/file.
func load(catalogFS fs.FS, dir string, schemaFS fs.FS, prefix string) (*Catalog, error) {
	if schemaFS == nil {
		schemaFS = schemas.Files
	}
	entries, err := fs.ReadDir(catalogFS, dir)
	if err != nil {
		return nil, fmt.Errorf("products: read catalog folder %q: %w", dir, err)
	}
	var (
		errs   []error
		parsed []*parsedProduct
	)
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || (path.Ext(name) != ".yaml" && path.Ext(name) != ".yml") {
			continue
		}
		file := path.Join(dir, name)
		source := file
		if prefix != "" {
			source = path.Join(prefix, file)
		}
		fp := &fileParser{file: source, schemaFS: schemaFS}
		data, err := fs.ReadFile(catalogFS, file)
		if err != nil {
			fp.errorf(0, "", "%v", err)
		} else if pp := fp.parse(data); pp != nil {
			parsed = append(parsed, pp)
		}
		errs = append(errs, fp.errs...)
	}
	if len(parsed) == 0 && len(errs) == 0 {
		return nil, fmt.Errorf("products: no product files (*.yaml) in catalog folder %q", dir)
	}
	errs = append(errs, crossCheck(parsed)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	c := &Catalog{byID: map[string]*Product{}, bySchemaID: map[int]schemaRef{}}
	for _, pp := range parsed {
		p := pp.p
		c.Products = append(c.Products, p)
		c.byID[p.ID] = p
		for i, v := range p.Versions {
			c.bySchemaID[v.ID] = schemaRef{product: p, index: i}
		}
	}
	slices.SortFunc(c.Products, func(a, b *Product) int { return strings.Compare(a.ID, b.ID) })
	return c, nil
}

// parsedProduct is a product with the lines its catalog-wide unique keys
// came from, for cross-file checks.
type parsedProduct struct {
	p             *Product
	idLine        int
	topicLine     int
	schemaIDLines []int // per version
}

// crossCheck reports ids, topics and schema ids used by more than one
// product (or version).
func crossCheck(parsed []*parsedProduct) []error {
	var errs []error
	type site struct {
		file string
		line int
		what string
	}
	ids := map[string]site{}
	topics := map[string]site{}
	schemaIDs := map[int]site{}
	for _, pp := range parsed {
		p := pp.p
		if p.ID != "" {
			if first, dup := ids[p.ID]; dup {
				errs = append(errs, &Error{File: p.Source, Line: pp.idLine, Field: "id",
					Err: fmt.Errorf("product id %q already defined in %s:%d; ids must be unique", p.ID, first.file, first.line)})
			} else {
				ids[p.ID] = site{p.Source, pp.idLine, ""}
			}
		}
		if p.Topic != "" {
			if first, dup := topics[p.Topic]; dup {
				errs = append(errs, &Error{File: p.Source, Line: pp.topicLine, Field: "topic",
					Err: fmt.Errorf("topic %q already used by %s (%s:%d); each product needs its own topic", p.Topic, first.what, first.file, first.line)})
			} else {
				topics[p.Topic] = site{p.Source, pp.topicLine, fmt.Sprintf("product %q", p.ID)}
			}
		}
		for i, v := range p.Versions {
			if v.ID <= 0 {
				continue
			}
			if first, dup := schemaIDs[v.ID]; dup {
				errs = append(errs, &Error{File: p.Source, Line: pp.schemaIDLines[i], Field: fmt.Sprintf("schema.versions[%d].id", i),
					Err: fmt.Errorf("schema id %d already used by %s (%s:%d); Schema Registry ids must be unique across the catalog", v.ID, first.what, first.file, first.line)})
			} else {
				schemaIDs[v.ID] = site{p.Source, pp.schemaIDLines[i], fmt.Sprintf("product %q version %d", p.ID, v.Version)}
			}
		}
	}
	return errs
}

// fileParser walks the YAML node tree of one catalog file, collecting
// every problem rather than stopping at the first.
type fileParser struct {
	file     string
	schemaFS fs.FS
	errs     []error
}

func (fp *fileParser) errorf(line int, field, format string, args ...any) {
	fp.errs = append(fp.errs, &Error{File: fp.file, Line: line, Field: field, Err: fmt.Errorf(format, args...)})
}

// entry is one key: value pair of a YAML mapping.
type entry struct {
	key, val *yaml.Node
}

// parse decodes and validates one product file. It returns nil when the
// file is not a YAML mapping at all; otherwise the product as far as it
// could be read, for cross-file checks (fp.errs says whether it is valid).
func (fp *fileParser) parse(data []byte) *parsedProduct {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	root := fp.document(dec, "one product definition", "put one product per file")
	if root == nil {
		return nil
	}
	m, ok := fp.mapping(root, "", productKeys)
	if !ok {
		return nil
	}
	for _, k := range requiredKeys {
		if _, ok := m[k]; !ok {
			fp.errorf(root.Line, k, "required field missing")
		}
	}

	p := &Product{
		Source:         fp.file,
		Partitions:     DefaultPartitions,
		Framing:        DefaultFraming,
		RetentionBytes: DefaultRetentionBytes,
	}
	pp := &parsedProduct{p: p}
	if e, ok := m["id"]; ok {
		pp.idLine = e.val.Line
		if v, ok := fp.str(e, "id"); ok {
			if !idPattern.MatchString(v) {
				fp.errorf(e.val.Line, "id", "invalid product id %q (want ^[a-z][a-z0-9-]{1,62}$: lowercase letters, digits and dashes, starting with a letter)", v)
			} else {
				p.ID = v
			}
		}
	}
	if e, ok := m["title"]; ok {
		p.Title, _ = fp.str(e, "title")
	}
	if e, ok := m["description"]; ok {
		p.Description, _ = fp.str(e, "description")
	}
	if e, ok := m["owner"]; ok {
		fp.owner(e, p)
	}
	if e, ok := m["topic"]; ok {
		pp.topicLine = e.val.Line
		if v, ok := fp.str(e, "topic"); ok {
			if !topicPattern.MatchString(v) || v == "." || v == ".." {
				fp.errorf(e.val.Line, "topic", "invalid Kafka topic name %q (want 1 to 249 of a-z A-Z 0-9 . _ -)", v)
			} else {
				p.Topic = v
			}
		}
	}
	if e, ok := m["partitions"]; ok {
		if n, ok := fp.integer(e, "partitions"); ok {
			if n < 1 || n > maxPartitions {
				fp.errorf(e.val.Line, "partitions", "partitions %d out of range (want 1 to %d)", n, maxPartitions)
			} else {
				p.Partitions = int32(n)
			}
		}
	}
	if e, ok := m["framing"]; ok {
		if v, ok := fp.str(e, "framing"); ok {
			switch v {
			case FramingAuto, FramingPlain, FramingRegistry:
				p.Framing = v
			default:
				fp.errorf(e.val.Line, "framing", "unknown framing %q (want %s)", v, wantFramings)
			}
		}
	}
	if e, ok := m["freshness_sla"]; ok {
		p.FreshnessSLA, _ = fp.duration(e, "freshness_sla")
	}
	if e, ok := m["replay_window"]; ok {
		p.ReplayWindow, _ = fp.duration(e, "replay_window")
	}
	if e, ok := m["retention_bytes"]; ok {
		if n, ok := fp.size(e, "retention_bytes"); ok {
			p.RetentionBytes = n
		}
	}
	var subjectLine int
	if e, ok := m["subject_field"]; ok {
		p.SubjectField, _ = fp.str(e, "subject_field")
		subjectLine = e.val.Line
	}
	schemaOK := false
	if e, ok := m["schema"]; ok {
		schemaOK = fp.schema(e, pp)
	}
	if e, ok := m["classification"]; ok && schemaOK {
		fp.classification(e, p)
	}
	if p.SubjectField != "" && schemaOK {
		if f, ok := p.Field(p.SubjectField); !ok {
			fp.errorf(subjectLine, "subject_field", "subject_field %q is not a field of the current schema", p.SubjectField)
		} else if f.Classification != ClassDirectIdentifier {
			fp.errorf(subjectLine, "subject_field", "subject_field %q must be classified direct-identifier, not %s", p.SubjectField, f.Classification)
		}
	}
	return pp
}

// document reads the file's one YAML document and returns its root node,
// or nil after reporting an empty file (want says what it should hold) or
// a syntax error. A second document is reported (hint says what to do)
// but the first is still returned.
func (fp *fileParser) document(dec *yaml.Decoder, want, hint string) *yaml.Node {
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			fp.errorf(0, "", "empty file; want %s", want)
		} else {
			fp.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		fp.errorf(line, "", "more than one YAML document; %s", hint)
	} else if !errors.Is(err, io.EOF) {
		fp.yamlError(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root
}

// yamlError reports a YAML syntax error at the line yaml.v3 names.
func (fp *fileParser) yamlError(err error) {
	msg := err.Error()
	if sub := yamlLine.FindStringSubmatch(msg); sub != nil {
		line, _ := strconv.Atoi(sub[1])
		fp.errorf(line, "", "invalid YAML: %s", sub[2])
		return
	}
	fp.errorf(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func (fp *fileParser) owner(e entry, p *Product) {
	m, ok := fp.mapping(e.val, "owner", ownerKeys)
	if !ok {
		return
	}
	for _, k := range ownerKeys {
		if _, ok := m[k]; !ok {
			fp.errorf(e.key.Line, "owner."+k, "required field missing")
		}
	}
	if t, ok := m["team"]; ok {
		p.OwnerTeam, _ = fp.str(t, "owner.team")
	}
	if em, ok := m["email"]; ok {
		if v, ok := fp.str(em, "owner.email"); ok {
			addr, err := mail.ParseAddress(v)
			if err != nil || addr.Address != v {
				fp.errorf(em.val.Line, "owner.email", "invalid email address %q (want a bare address such as data-team@example.com)", v)
			} else {
				p.OwnerEmail = v
			}
		}
	}
	if p.OwnerTeam != "" && p.OwnerEmail != "" {
		p.Owner = fmt.Sprintf("%s <%s>", p.OwnerTeam, p.OwnerEmail)
	}
}

// schema reads schema.subject and schema.versions, parses every version's
// file and checks that the current version reads all older ones. It
// reports whether the current schema is usable for classification checks.
func (fp *fileParser) schema(e entry, pp *parsedProduct) bool {
	p := pp.p
	m, ok := fp.mapping(e.val, "schema", schemaKeys)
	if !ok {
		return false
	}
	for _, k := range schemaKeys {
		if _, ok := m[k]; !ok {
			fp.errorf(e.key.Line, "schema."+k, "required field missing")
		}
	}
	if s, ok := m["subject"]; ok {
		p.Subject, _ = fp.str(s, "schema.subject")
	}
	ve, ok := m["versions"]
	if !ok {
		return false
	}
	if ve.val.Kind != yaml.SequenceNode {
		fp.errorf(ve.val.Line, "schema.versions", "want a list of {version, id, file}, got %s", kindName(ve.val))
		return false
	}
	if len(ve.val.Content) == 0 {
		fp.errorf(ve.val.Line, "schema.versions", "empty; want at least one schema version")
		return false
	}
	allOK := true
	lines := make([]int, 0, len(ve.val.Content))
	for i, item := range ve.val.Content {
		item = resolve(item)
		field := fmt.Sprintf("schema.versions[%d]", i)
		sv, idLine, ok := fp.version(item, field)
		if ok && len(p.Versions) > 0 && sv.Version <= p.Versions[len(p.Versions)-1].Version {
			fp.errorf(item.Line, field+".version", "version %d must be greater than the previous version %d; list versions in ascending order",
				sv.Version, p.Versions[len(p.Versions)-1].Version)
			ok = false
		}
		if !ok {
			allOK = false
		}
		p.Versions = append(p.Versions, sv)
		pp.schemaIDLines = append(pp.schemaIDLines, idLine)
		lines = append(lines, item.Line)
	}
	if !allOK {
		return false
	}
	cur := p.Current()
	compat := avro.NewSchemaCompatibility()
	for i, v := range p.Versions[:len(p.Versions)-1] {
		if err := compat.Compatible(cur.Schema, v.Schema); err != nil {
			fp.errorf(lines[i], fmt.Sprintf("schema.versions[%d]", i),
				"version %d (%s) is not readable with the current version %d (%s): %v; add defaults to new fields instead of changing or removing old ones",
				v.Version, v.File, cur.Version, cur.File, err)
			allOK = false
		}
	}
	return allOK
}

// version reads one schema.versions item and parses its schema file. It
// returns the line of the id key for cross-file checks.
func (fp *fileParser) version(n *yaml.Node, field string) (SchemaVersion, int, bool) {
	var sv SchemaVersion
	m, ok := fp.mapping(n, field, versionKeys)
	if !ok {
		return sv, 0, false
	}
	ok = true
	for _, k := range versionKeys {
		if _, present := m[k]; !present {
			fp.errorf(n.Line, field+"."+k, "required field missing")
			ok = false
		}
	}
	if e, present := m["version"]; present {
		if v, good := fp.integer(e, field+".version"); !good {
			ok = false
		} else if v < 1 || v > 1<<31-1 {
			fp.errorf(e.val.Line, field+".version", "version %d out of range (want 1 or more)", v)
			ok = false
		} else {
			sv.Version = int(v)
		}
	}
	idLine := n.Line
	if e, present := m["id"]; present {
		idLine = e.val.Line
		if v, good := fp.integer(e, field+".id"); !good {
			ok = false
		} else if v < 1 || v > 1<<31-1 {
			fp.errorf(e.val.Line, field+".id", "schema id %d out of range (want 1 to 2147483647, the Schema Registry id)", v)
			ok = false
		} else {
			sv.ID = int(v)
		}
	}
	if e, present := m["file"]; present {
		file, good := fp.str(e, field+".file")
		if !good {
			return sv, idLine, false
		}
		sv.File = file
		if !fs.ValidPath(file) {
			fp.errorf(e.val.Line, field+".file", "invalid schema path %q (want a slash-separated path inside the schema folder, e.g. avro/cdr.v2.avsc)", file)
			return sv, idLine, false
		}
		data, err := fs.ReadFile(fp.schemaFS, file)
		if err != nil {
			fp.errorf(e.val.Line, field+".file", "cannot read schema %s: %v", file, err)
			return sv, idLine, false
		}
		// A private cache per file: versions of one record share its name,
		// and must not see each other's definitions.
		s, err := avro.ParseBytesWithCache(data, "", &avro.SchemaCache{})
		if err != nil {
			fp.errorf(e.val.Line, field+".file", "schema %s does not parse: %v", file, err)
			return sv, idLine, false
		}
		if s.Type() != avro.Record {
			fp.errorf(e.val.Line, field+".file", "schema %s is of type %s; want a record", file, s.Type())
			return sv, idLine, false
		}
		sv.Schema = s
		sv.Text = strings.TrimSpace(string(data))
	}
	return sv, idLine, ok
}

// classification reads the classification mapping against the current
// schema's top-level fields. A value is either a class or a mapping
// {class, description}.
func (fp *fileParser) classification(e entry, p *Product) {
	m, ok := fp.mapping(e.val, "classification", nil)
	if !ok {
		return
	}
	cur := p.Current()
	rec := cur.Schema.(*avro.RecordSchema)
	inSchema := map[string]bool{}
	for _, f := range rec.Fields() {
		inSchema[f.Name()] = true
	}
	specs := map[string]FieldSpec{}
	for name, fe := range m {
		field := "classification." + name
		if !inSchema[name] {
			fp.errorf(fe.key.Line, field, "no field %q in the current schema (version %d, %s); remove it or fix its name", name, cur.Version, cur.File)
			continue
		}
		spec := FieldSpec{Name: name}
		classEntry, classField := fe, field
		if fe.val.Kind == yaml.MappingNode {
			cm, ok := fp.mapping(fe.val, field, classificationKeys)
			if !ok {
				continue
			}
			ce, ok := cm["class"]
			if !ok {
				fp.errorf(fe.val.Line, field+".class", "required field missing (want %s)", wantClasses)
				continue
			}
			classEntry, classField = ce, field+".class"
			if de, ok := cm["description"]; ok {
				spec.Description, _ = fp.str(de, field+".description")
			}
		}
		v, ok := fp.str(classEntry, classField)
		if !ok {
			continue
		}
		spec.Classification = Classification(v)
		if !spec.Classification.Valid() {
			fp.errorf(classEntry.val.Line, classField, "unknown classification %q (want %s)", v, wantClasses)
			continue
		}
		specs[name] = spec
	}
	p.fieldIndex = make(map[string]int, len(rec.Fields()))
	for _, f := range rec.Fields() {
		spec, ok := specs[f.Name()]
		if !ok {
			if _, present := m[f.Name()]; !present {
				fp.errorf(e.key.Line, "classification."+f.Name(),
					"field %q of the current schema (version %d, %s) is not classified (want %s)", f.Name(), cur.Version, cur.File, wantClasses)
			}
			continue
		}
		p.fieldIndex[f.Name()] = len(p.Fields)
		p.Fields = append(p.Fields, spec)
	}
}

// mapping returns the entries of a mapping node by key, reporting unknown
// keys (when known is not nil), repeated keys and non-scalar keys.
func (fp *fileParser) mapping(n *yaml.Node, field string, known []string) (map[string]entry, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		fp.errorf(n.Line, field, "want a mapping of key: value lines, got %s", kindName(n))
		return nil, false
	}
	m := make(map[string]entry, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			fp.errorf(k.Line, field, "want plain keys, got a %s as key", kindName(k))
			continue
		}
		name := k.Value
		sub := name
		if field != "" {
			sub = field + "." + name
		}
		if known != nil && !slices.Contains(known, name) {
			fp.errorf(k.Line, sub, "unknown field (want one of %s)", strings.Join(known, ", "))
			continue
		}
		if first, dup := m[name]; dup {
			fp.errorf(k.Line, sub, "set twice; first set on line %d", first.key.Line)
			continue
		}
		m[name] = entry{key: k, val: v}
	}
	return m, true
}

// str returns a non-empty string scalar.
func (fp *fileParser) str(e entry, field string) (string, bool) {
	n := e.val
	if n.Kind != yaml.ScalarNode {
		fp.errorf(n.Line, field, "want a string, got %s", kindName(n))
		return "", false
	}
	v := strings.TrimSpace(n.Value)
	if n.ShortTag() == "!!null" || v == "" {
		fp.errorf(n.Line, field, "must not be empty")
		return "", false
	}
	return v, true
}

// integer returns an integer scalar.
func (fp *fileParser) integer(e entry, field string) (int64, bool) {
	n := e.val
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		fp.errorf(n.Line, field, "want an integer, got %s", describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		fp.errorf(n.Line, field, "want an integer, got %s", describe(n))
		return 0, false
	}
	return v, true
}

// duration returns a positive Go duration.
func (fp *fileParser) duration(e entry, field string) (time.Duration, bool) {
	n := e.val
	if n.Kind != yaml.ScalarNode {
		fp.errorf(n.Line, field, "want a duration such as 90s, 2m or 168h, got %s", kindName(n))
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		fp.errorf(n.Line, field, "invalid duration %q (want a Go duration such as 90s, 2m or 168h; there is no d unit)", n.Value)
		return 0, false
	}
	if d <= 0 {
		fp.errorf(n.Line, field, "duration %s must be positive", d)
		return 0, false
	}
	return d, true
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// size returns a positive byte count: an integer, or a number with a unit
// (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 256MiB.
func (fp *fileParser) size(e entry, field string) (int64, bool) {
	n := e.val
	bad := func() (int64, bool) {
		fp.errorf(n.Line, field, "invalid size %s (want a positive number of bytes, or a number with a unit such as 512MiB or 2GB)", describe(n))
		return 0, false
	}
	if n.Kind != yaml.ScalarNode {
		return bad()
	}
	s := strings.TrimSpace(n.Value)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '_' })
	if i < 0 {
		i = len(s)
	}
	num, err := strconv.ParseInt(strings.ReplaceAll(s[:i], "_", ""), 10, 64)
	unit, known := sizeUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if err != nil || !known || num <= 0 || num > (1<<62)/unit {
		return bad()
	}
	return num * unit, true
}

// resolve follows YAML aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return describe(n)
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

func describe(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode {
		return kindName(n)
	}
	if n.ShortTag() == "!!null" {
		return "null"
	}
	return strconv.Quote(n.Value)
}

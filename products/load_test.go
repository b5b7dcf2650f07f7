package products_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/products"
)

const (
	testSchemaV1 = `{"type":"record","name":"T","namespace":"sluice.test","doc":"t","fields":[
 {"name":"a","type":"string","doc":"a"},
 {"name":"b","type":"long","doc":"b"}]}`
	testSchemaV2 = `{"type":"record","name":"T","namespace":"sluice.test","doc":"t","fields":[
 {"name":"a","type":"string","doc":"a"},
 {"name":"b","type":"long","doc":"b"},
 {"name":"c","type":["null","string"],"default":null,"doc":"c"}]}`
	// v3 adds a field without a default: v1 and v2 data cannot be read.
	testSchemaBreaking = `{"type":"record","name":"T","namespace":"sluice.test","doc":"t","fields":[
 {"name":"a","type":"string","doc":"a"},
 {"name":"b","type":"long","doc":"b"},
 {"name":"c","type":["null","string"],"default":null,"doc":"c"},
 {"name":"d","type":"int","doc":"d"}]}`
)

// validProduct is a correct product file; the line numbers in the cases
// below refer to it (line 1 is "id: tp").
const validProduct = `id: tp
title: Test product
description: A product for tests.
owner:
  team: Test Team
  email: test@example.com
topic: test.t
schema:
  subject: test.t-value
  versions:
    - version: 1
      id: 1
      file: avro/t.v1.avsc
    - version: 2
      id: 2
      file: avro/t.v2.avsc
classification:
  a: direct-identifier
  b:
    class: public
    description: A counter.
  c: sensitive
freshness_sla: 2m
replay_window: 168h
`

func schemaFS() fstest.MapFS {
	return fstest.MapFS{
		"avro/t.v1.avsc":       {Data: []byte(testSchemaV1)},
		"avro/t.v2.avsc":       {Data: []byte(testSchemaV2)},
		"avro/t.v3.avsc":       {Data: []byte(testSchemaBreaking)},
		"avro/string.avsc":     {Data: []byte(`"string"`)},
		"avro/broken.avsc":     {Data: []byte(`{"type":"record","name":"T","fields":[{"name":"a","type":"strang"}]}`)},
		"avro/other-name.avsc": {Data: []byte(strings.Replace(testSchemaV2, `"name":"T"`, `"name":"U"`, 1))},
	}
}

// edit returns validProduct with old replaced by new (exactly once).
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if strings.Count(validProduct, old) != 1 {
		t.Fatalf("edit: %q occurs %d times in validProduct", old, strings.Count(validProduct, old))
	}
	return strings.Replace(validProduct, old, new, 1)
}

func catalogFS(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, data := range files {
		m["catalog/"+name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

func TestLoadValid(t *testing.T) {
	c, err := products.Load(catalogFS(map[string]string{"t.yaml": validProduct}), "catalog", schemaFS())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.Get("tp")
	if !ok || len(c.Products) != 1 {
		t.Fatalf("Get(tp) = %v, %v; products %d", p, ok, len(c.Products))
	}
	if p.Source != "catalog/t.yaml" || p.Topic != "test.t" || p.Subject != "test.t-value" {
		t.Errorf("source %q topic %q subject %q", p.Source, p.Topic, p.Subject)
	}
	if p.Owner != "Test Team <test@example.com>" || p.OwnerTeam != "Test Team" || p.OwnerEmail != "test@example.com" {
		t.Errorf("owner %q (%q, %q)", p.Owner, p.OwnerTeam, p.OwnerEmail)
	}
	if p.Partitions != products.DefaultPartitions || p.Framing != products.FramingAuto || p.RetentionBytes != products.DefaultRetentionBytes {
		t.Errorf("defaults: partitions %d framing %q retention %d", p.Partitions, p.Framing, p.RetentionBytes)
	}
	if p.FreshnessSLA != 2*time.Minute || p.ReplayWindow != 168*time.Hour {
		t.Errorf("freshness %v replay %v", p.FreshnessSLA, p.ReplayWindow)
	}
	if cur := p.Current(); cur.Version != 2 || cur.ID != 2 || cur.File != "avro/t.v2.avsc" || cur.Schema.Type() != avro.Record || !strings.HasPrefix(cur.Text, "{") {
		t.Errorf("current %+v", cur)
	}
	want := []products.FieldSpec{
		{Name: "a", Classification: products.ClassDirectIdentifier},
		{Name: "b", Classification: products.ClassPublic, Description: "A counter."},
		{Name: "c", Classification: products.ClassSensitive},
	}
	if len(p.Fields) != len(want) {
		t.Fatalf("fields %+v", p.Fields)
	}
	for i, f := range want {
		if p.Fields[i] != f {
			t.Errorf("field %d = %+v, want %+v", i, p.Fields[i], f)
		}
		if got, ok := p.Field(f.Name); !ok || got != f {
			t.Errorf("Field(%q) = %+v, %v", f.Name, got, ok)
		}
	}
	if _, ok := p.Field("nope"); ok {
		t.Error(`Field("nope") found`)
	}
	if v, ok := p.Version(1); !ok || v.ID != 1 {
		t.Errorf("Version(1) = %+v, %v", v, ok)
	}
	if q, v, ok := c.SchemaByID(1); !ok || q != p || v.Version != 1 {
		t.Errorf("SchemaByID(1) = %v, %+v, %v", q, v, ok)
	}
	if _, _, ok := c.SchemaByID(3); ok {
		t.Error("SchemaByID(3) found")
	}
}

func TestLoadOptionalKeys(t *testing.T) {
	src := edit(t, "replay_window: 168h\n", "replay_window: 168h\npartitions: 12\nframing: registry\nretention_bytes: 1GiB\n")
	c, err := products.Load(catalogFS(map[string]string{"t.yaml": src}), "catalog", schemaFS())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Get("tp")
	if p.Partitions != 12 || p.Framing != products.FramingRegistry || p.RetentionBytes != 1<<30 {
		t.Errorf("partitions %d framing %q retention %d", p.Partitions, p.Framing, p.RetentionBytes)
	}
	src = edit(t, "replay_window: 168h\n", "replay_window: 168h\nretention_bytes: 1048576\n")
	c, err = products.Load(catalogFS(map[string]string{"t.yaml": src}), "catalog", schemaFS())
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c.Get("tp"); p.RetentionBytes != 1<<20 {
		t.Errorf("retention %d", p.RetentionBytes)
	}
}

func TestLoadErrors(t *testing.T) {
	other := strings.NewReplacer("id: tp\n", "id: up\n", "topic: test.t\n", "topic: test.u\n", "id: 1\n", "id: 11\n", "id: 2\n", "id: 12\n").Replace(validProduct)
	tests := []struct {
		note  string
		files map[string]string
		want  []string // each must appear as one error line
	}{
		{
			note:  "unknown classification",
			files: map[string]string{"t.yaml": edit(t, "  c: sensitive", "  c: secret")},
			want:  []string{`catalog/t.yaml:22: field "classification.c": unknown classification "secret" (want direct-identifier, quasi-identifier, sensitive or public)`},
		},
		{
			note:  "unknown classification in long form",
			files: map[string]string{"t.yaml": edit(t, "    class: public", "    class: open")},
			want:  []string{`catalog/t.yaml:20: field "classification.b.class": unknown classification "open"`},
		},
		{
			note:  "unknown key in long classification form",
			files: map[string]string{"t.yaml": edit(t, "    class: public", "    clas: public")},
			want: []string{
				`catalog/t.yaml:20: field "classification.b.clas": unknown field (want one of class, description)`,
				`catalog/t.yaml:20: field "classification.b.class": required field missing`,
			},
		},
		{
			note:  "unknown top-level key",
			files: map[string]string{"t.yaml": edit(t, "topic: test.t\n", "topic: test.t\nowners: x\n")},
			want:  []string{`catalog/t.yaml:8: field "owners": unknown field (want one of id, title, description, owner, topic,`},
		},
		{
			note:  "unknown nested key",
			files: map[string]string{"t.yaml": edit(t, "  email: test@example.com\n", "  email: test@example.com\n  phone: 123\n")},
			want:  []string{`catalog/t.yaml:7: field "owner.phone": unknown field (want one of team, email)`},
		},
		{
			note:  "required keys missing",
			files: map[string]string{"t.yaml": edit(t, "topic: test.t\n", "")},
			want:  []string{`catalog/t.yaml:1: field "topic": required field missing`},
		},
		{
			note:  "nested required key missing",
			files: map[string]string{"t.yaml": edit(t, "  email: test@example.com\n", "")},
			want:  []string{`catalog/t.yaml:4: field "owner.email": required field missing`},
		},
		{
			note:  "bad id",
			files: map[string]string{"t.yaml": edit(t, "id: tp\n", "id: Bad_ID\n")},
			want:  []string{`catalog/t.yaml:1: field "id": invalid product id "Bad_ID" (want ^[a-z][a-z0-9-]{1,62}$`},
		},
		{
			note:  "bad topic",
			files: map[string]string{"t.yaml": edit(t, "topic: test.t\n", "topic: test/t\n")},
			want:  []string{`catalog/t.yaml:7: field "topic": invalid Kafka topic name "test/t"`},
		},
		{
			note:  "bad email",
			files: map[string]string{"t.yaml": edit(t, "  email: test@example.com\n", "  email: Test <test@example.com>\n")},
			want:  []string{`catalog/t.yaml:6: field "owner.email": invalid email address "Test <test@example.com>"`},
		},
		{
			note:  "empty title",
			files: map[string]string{"t.yaml": edit(t, "title: Test product\n", "title:\n")},
			want:  []string{`catalog/t.yaml:2: field "title": must not be empty`},
		},
		{
			note:  "title is a list",
			files: map[string]string{"t.yaml": edit(t, "title: Test product\n", "title: [a, b]\n")},
			want:  []string{`catalog/t.yaml:2: field "title": want a string, got a list`},
		},
		{
			note: "duplicate id across files",
			files: map[string]string{
				"a.yaml": validProduct,
				"b.yaml": strings.Replace(other, "id: up\n", "id: tp\n", 1),
			},
			want: []string{`catalog/b.yaml:1: field "id": product id "tp" already defined in catalog/a.yaml:1`},
		},
		{
			note: "duplicate topic across files",
			files: map[string]string{
				"a.yaml": validProduct,
				"b.yaml": strings.Replace(other, "topic: test.u\n", "topic: test.t\n", 1),
			},
			want: []string{`catalog/b.yaml:7: field "topic": topic "test.t" already used by product "tp" (catalog/a.yaml:7)`},
		},
		{
			note: "duplicate schema id across files",
			files: map[string]string{
				"a.yaml": validProduct,
				"b.yaml": strings.Replace(other, "id: 12\n", "id: 2\n", 1),
			},
			want: []string{`catalog/b.yaml:15: field "schema.versions[1].id": schema id 2 already used by product "tp" version 2 (catalog/a.yaml:15)`},
		},
		{
			note:  "duplicate schema id within a file",
			files: map[string]string{"t.yaml": edit(t, "      id: 2\n", "      id: 1\n")},
			want:  []string{`catalog/t.yaml:15: field "schema.versions[1].id": schema id 1 already used by product "tp" version 1 (catalog/t.yaml:12)`},
		},
		{
			note:  "schema file missing",
			files: map[string]string{"t.yaml": edit(t, "file: avro/t.v2.avsc", "file: avro/t.v9.avsc")},
			want:  []string{`catalog/t.yaml:16: field "schema.versions[1].file": cannot read schema avro/t.v9.avsc:`},
		},
		{
			note:  "schema path escapes",
			files: map[string]string{"t.yaml": edit(t, "file: avro/t.v2.avsc", "file: ../t.v2.avsc")},
			want:  []string{`catalog/t.yaml:16: field "schema.versions[1].file": invalid schema path "../t.v2.avsc"`},
		},
		{
			note:  "schema does not parse",
			files: map[string]string{"t.yaml": edit(t, "file: avro/t.v2.avsc", "file: avro/broken.avsc")},
			want:  []string{`catalog/t.yaml:16: field "schema.versions[1].file": schema avro/broken.avsc does not parse:`},
		},
		{
			note:  "schema is not a record",
			files: map[string]string{"t.yaml": edit(t, "file: avro/t.v2.avsc", "file: avro/string.avsc")},
			want:  []string{`catalog/t.yaml:16: field "schema.versions[1].file": schema avro/string.avsc is of type string; want a record`},
		},
		{
			note:  "versions not ascending",
			files: map[string]string{"t.yaml": edit(t, "    - version: 2\n", "    - version: 1\n")},
			want:  []string{`catalog/t.yaml:14: field "schema.versions[1].version": version 1 must be greater than the previous version 1`},
		},
		{
			note:  "versions empty",
			files: map[string]string{"t.yaml": strings.Replace(validProduct, validProduct[strings.Index(validProduct, "  versions:"):strings.Index(validProduct, "classification:")], "  versions: []\n", 1)},
			want:  []string{`catalog/t.yaml:10: field "schema.versions": empty; want at least one schema version`},
		},
		{
			note:  "incompatible evolution",
			files: map[string]string{"t.yaml": edit(t, "file: avro/t.v2.avsc", "file: avro/t.v3.avsc")},
			want:  []string{`catalog/t.yaml:11: field "schema.versions[0]": version 1 (avro/t.v1.avsc) is not readable with the current version 2 (avro/t.v3.avsc):`},
		},
		{
			note:  "renamed record",
			files: map[string]string{"t.yaml": edit(t, "file: avro/t.v2.avsc", "file: avro/other-name.avsc")},
			want:  []string{`catalog/t.yaml:11: field "schema.versions[0]": version 1 (avro/t.v1.avsc) is not readable with the current version 2 (avro/other-name.avsc):`},
		},
		{
			note:  "classification of an unknown field",
			files: map[string]string{"t.yaml": edit(t, "  c: sensitive\n", "  c: sensitive\n  d: public\n")},
			want:  []string{`catalog/t.yaml:23: field "classification.d": no field "d" in the current schema (version 2, avro/t.v2.avsc)`},
		},
		{
			note:  "field not classified",
			files: map[string]string{"t.yaml": edit(t, "  c: sensitive\n", "")},
			want:  []string{`catalog/t.yaml:17: field "classification.c": field "c" of the current schema (version 2, avro/t.v2.avsc) is not classified (want direct-identifier, quasi-identifier, sensitive or public)`},
		},
		{
			note:  "bad duration",
			files: map[string]string{"t.yaml": edit(t, "replay_window: 168h", "replay_window: 7d")},
			want:  []string{`catalog/t.yaml:24: field "replay_window": invalid duration "7d" (want a Go duration such as 90s, 2m or 168h; there is no d unit)`},
		},
		{
			note:  "negative duration",
			files: map[string]string{"t.yaml": edit(t, "freshness_sla: 2m", "freshness_sla: -2m")},
			want:  []string{`catalog/t.yaml:23: field "freshness_sla": duration -2m0s must be positive`},
		},
		{
			note:  "partitions out of range",
			files: map[string]string{"t.yaml": edit(t, "replay_window: 168h\n", "replay_window: 168h\npartitions: 2000\n")},
			want:  []string{`catalog/t.yaml:25: field "partitions": partitions 2000 out of range (want 1 to 1024)`},
		},
		{
			note:  "partitions not a number",
			files: map[string]string{"t.yaml": edit(t, "replay_window: 168h\n", "replay_window: 168h\npartitions: three\n")},
			want:  []string{`catalog/t.yaml:25: field "partitions": want an integer, got "three"`},
		},
		{
			note:  "unknown framing",
			files: map[string]string{"t.yaml": edit(t, "replay_window: 168h\n", "replay_window: 168h\nframing: confluent\n")},
			want:  []string{`catalog/t.yaml:25: field "framing": unknown framing "confluent" (want auto, plain or registry)`},
		},
		{
			note:  "bad retention size",
			files: map[string]string{"t.yaml": edit(t, "replay_window: 168h\n", "replay_window: 168h\nretention_bytes: 12 parsecs\n")},
			want:  []string{`catalog/t.yaml:25: field "retention_bytes": invalid size "12 parsecs"`},
		},
		{
			note:  "key set twice",
			files: map[string]string{"t.yaml": edit(t, "replay_window: 168h\n", "replay_window: 168h\ntopic: test.x\n")},
			want:  []string{`catalog/t.yaml:25: field "topic": set twice; first set on line 7`},
		},
		{
			note:  "yaml syntax error",
			files: map[string]string{"t.yaml": edit(t, "title: Test product\n", "title: [Test product\n")},
			want:  []string{`catalog/t.yaml:`, `invalid YAML:`},
		},
		{
			note:  "two documents",
			files: map[string]string{"t.yaml": validProduct + "---\nid: up\n"},
			want:  []string{`catalog/t.yaml:26: more than one YAML document; put one product per file`},
		},
		{
			note:  "empty file",
			files: map[string]string{"t.yaml": ""},
			want:  []string{`catalog/t.yaml: empty file; want one product definition`},
		},
		{
			note:  "not a mapping",
			files: map[string]string{"t.yaml": "- id: tp\n"},
			want:  []string{`catalog/t.yaml:1: want a mapping of key: value lines, got a list`},
		},
		{
			note: "every problem reported at once, across files",
			files: map[string]string{
				"a.yaml": edit(t, "  c: sensitive", "  c: secret"),
				"b.yaml": strings.NewReplacer("replay_window: 168h", "replay_window: soon", "  team: Test Team\n", "").Replace(other),
			},
			want: []string{
				`catalog/a.yaml:22: field "classification.c": unknown classification "secret"`,
				`catalog/b.yaml:4: field "owner.team": required field missing`,
				`catalog/b.yaml:23: field "replay_window": invalid duration "soon"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			c, err := products.Load(catalogFS(tt.files), "catalog", schemaFS())
			if err == nil {
				t.Fatalf("Load succeeded with %d products; want errors %q", len(c.Products), tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					if strings.HasPrefix(l, w) || (strings.Contains(l, w) && !strings.HasPrefix(w, "catalog/")) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error line starting with\n  %s\ngot:\n  %s", w, strings.Join(lines, "\n  "))
				}
			}
			var le *products.Error
			if !errors.As(err, &le) || le.File == "" {
				t.Errorf("error is not a *products.Error naming a file: %v", err)
			}
		})
	}
}

func TestLoadNoFiles(t *testing.T) {
	_, err := products.Load(fstest.MapFS{"catalog/README.md": {Data: []byte("x")}}, "catalog", schemaFS())
	if err == nil || !strings.Contains(err.Error(), "no product files") {
		t.Fatalf("err = %v", err)
	}
	_, err = products.Load(fstest.MapFS{}, "missing", schemaFS())
	if err == nil || !strings.Contains(err.Error(), `read catalog folder "missing"`) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzLoad feeds arbitrary product files to Load: it must not panic, and
// whatever it accepts must be a complete product.
func FuzzLoad(f *testing.F) {
	f.Add(validProduct)
	f.Add(strings.Replace(validProduct, "  c: sensitive", "  c: secret", 1))
	f.Add(strings.Replace(validProduct, "classification:", "classification: &x\n  a: *x\nother:", 1))
	f.Add("---\n---\n")
	f.Add("id: [\n")
	f.Fuzz(func(t *testing.T, src string) {
		c, err := products.Load(catalogFS(map[string]string{"t.yaml": src}), "catalog", schemaFS())
		if err != nil {
			return
		}
		for _, p := range c.Products {
			if p.ID == "" || p.Topic == "" || len(p.Versions) == 0 || p.Current().Schema == nil || len(p.Fields) == 0 ||
				p.FreshnessSLA <= 0 || p.ReplayWindow <= 0 || p.Partitions < 1 || p.RetentionBytes <= 0 {
				t.Fatalf("accepted an incomplete product: %+v", p)
			}
		}
	})
}

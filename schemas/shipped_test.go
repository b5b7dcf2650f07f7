package schemas

import (
	"io/fs"
	"regexp"
	"strconv"
	"testing"
)

// TestShippedSchemas: every schema in avro/ parses with ParseFile, is a
// record, and every older version of a product ("<product>.v<N>.avsc")
// can be read as its newest version, as NewCodec will require.
func TestShippedSchemas(t *testing.T) {
	paths, err := fs.Glob(Files, "avro/*.avsc")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no shipped schemas yet")
	}
	name := regexp.MustCompile(`^avro/(.+)\.v(\d+)\.avsc$`)
	type version struct {
		n    int
		path string
	}
	products := map[string][]version{}
	for _, p := range paths {
		m := name.FindStringSubmatch(p)
		if m == nil {
			t.Errorf("%s: name does not follow <product>.v<N>.avsc", p)
			continue
		}
		n, _ := strconv.Atoi(m[2])
		products[m[1]] = append(products[m[1]], version{n, p})
	}
	for product, versions := range products {
		t.Run(product, func(t *testing.T) {
			var sv []SchemaVersion
			for _, v := range versions {
				s, err := ParseFile(Files, v.path)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := NewLayout(s); err != nil {
					t.Fatalf("%s: %v", v.path, err)
				}
				sv = append(sv, SchemaVersion{Version: v.n, Schema: s})
			}
			if _, err := NewCodec(product, FramingAuto, sv, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

package schemas

import (
	"errors"
	"strings"
	"testing"
)

// TestIncompatible: pairs the Avro resolution rules reject must fail in
// NewDecoder with an error that names the offending field.
func TestIncompatible(t *testing.T) {
	tests := []struct {
		note   string
		writer string
		reader string
		field  string // must appear in the error, quoted
	}{
		{"string read as int", rec("P", fld("a", `"string"`)), rec("P", fld("a", `"int"`)), `"a"`},
		{"long demoted to int", rec("P", fld("n", `"long"`)), rec("P", fld("n", `"int"`)), `"n"`},
		{"double demoted to float", rec("P", fld("x", `"double"`)), rec("P", fld("x", `"float"`)), `"x"`},
		{"boolean read as string", rec("P", fld("ok", `"boolean"`)), rec("P", fld("ok", `"string"`)), `"ok"`},
		{"reader field added without default", rec("P", fld("a", `"int"`)), rec("P", fld("a", `"int"`), fld("b", `"string"`)), `"b"`},
		{"fixed size differs", rec("P", fld("f", `{"type":"fixed","name":"F","size":4}`)), rec("P", fld("f", `{"type":"fixed","name":"F","size":8}`)), `"f"`},
		{"enum read as string", rec("P", fld("e", enumABC)), rec("P", fld("e", `"string"`)), `"e"`},
		{"nested field type mismatch", rec("O", fld("loc", `{"type":"record","name":"L","fields":[{"name":"cell","type":"int"}]}`)),
			rec("O", fld("loc", `{"type":"record","name":"L","fields":[{"name":"cell","type":"string"}]}`)), `"loc.cell"`},
		{"nested reader field without default", rec("O", fld("loc", `{"type":"record","name":"L","fields":[{"name":"a","type":"int"}]}`)),
			rec("O", fld("loc", `{"type":"record","name":"L","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}`)), `"loc.b"`},
		{"array item mismatch", rec("P", fld("tags", `{"type":"array","items":"string"}`)), rec("P", fld("tags", `{"type":"array","items":"long"}`)), `"tags[]"`},
		{"map value mismatch", rec("P", fld("m", `{"type":"map","values":"bytes"}`)), rec("P", fld("m", `{"type":"map","values":"int"}`)), `"m{}"`},
		{"array read as map", rec("P", fld("c", `{"type":"array","items":"int"}`)), rec("P", fld("c", `{"type":"map","values":"int"}`)), `"c"`},
		{"no reader union branch matches", rec("P", fld("u", `"boolean"`)), rec("P", fld("u", `["null","string"]`)), `"u"`},
		{"no writer union branch matches", rec("P", fld("u", `["null","boolean"]`)), rec("P", fld("u", `"string"`)), `"u"`},
		{"no writer union branch matches a general union", rec("P", fld("u", `["boolean","double"]`)), rec("P", fld("u", `["int","string"]`)), `"u"`},
		{"writer null read as non-null", rec("P", fld("n", `"null"`)), rec("P", fld("n", `"int"`)), `"n"`},
		{"decimal scale differs", rec("P", fld("d", `{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}`)),
			rec("P", fld("d", `{"type":"bytes","logicalType":"decimal","precision":9,"scale":3}`)), `"d"`},
		{"writer not a record", `"string"`, rec("P", fld("a", `"int"`)), "writer schema must be a record"},
	}
	for _, tc := range tests {
		t.Run(tc.note, func(t *testing.T) {
			l := mustLayout(t, mustParse(t, tc.reader))
			_, err := NewDecoder(mustParse(t, tc.writer), l)
			if err == nil {
				t.Fatal("NewDecoder accepted an incompatible pair")
			}
			if !errors.Is(err, ErrIncompatible) {
				t.Errorf("error does not wrap ErrIncompatible: %v", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error does not name %s: %v", tc.field, err)
			}
		})
	}
}

// TestCompatibleUnionPartial: a writer union with some branches the reader
// cannot take compiles; records using those branches fail one by one.
func TestCompatibleUnionPartial(t *testing.T) {
	w := mustParse(t, rec("P", fld("u", `["string","boolean"]`)))
	l := mustLayout(t, mustParse(t, rec("P", fld("u", `["null","string"]`))))
	d := mustDecoder(t, w, l)
	rc := l.NewRecord()
	if err := d.Decode(mustMarshal(t, w, map[string]any{"u": map[string]any{"string": "ok"}}), rc); err != nil {
		t.Fatalf("string branch: %v", err)
	}
	err := d.Decode(mustMarshal(t, w, map[string]any{"u": map[string]any{"boolean": true}}), rc)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), `"u"`) {
		t.Fatalf("boolean branch: err = %v, want ErrIncompatible naming \"u\"", err)
	}
}

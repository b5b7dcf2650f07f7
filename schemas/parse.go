package schemas

import (
	"fmt"
	"io/fs"

	"github.com/hamba/avro/v2"
)

// ParseFile reads and parses the Avro schema at path in fsys. Named types
// are resolved within the file only (a private cache, not avro's global
// one), so two files may define different versions of the same record.
func ParseFile(fsys fs.FS, path string) (avro.Schema, error) {
	b, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("schemas: read %s: %w", path, err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("schemas: parse %s: %w", path, err)
	}
	return s, nil
}

// Parse parses an Avro schema with a private named-type cache.
func Parse(text []byte) (avro.Schema, error) {
	return avro.ParseBytesWithCache(text, "", &avro.SchemaCache{})
}

// Fingerprint is the SHA-256 of the schema's Parsing Canonical Form (the
// Avro specification's fingerprint), as computed by hamba/avro.
func Fingerprint(s avro.Schema) [32]byte {
	return s.Fingerprint()
}

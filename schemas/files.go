package schemas

import "embed"

// Files holds the shipped Avro schemas (.avsc), one file per schema
// version, at paths like "avro/cdr.v2.avsc". The product catalog
// (package products) names these paths in its schema.versions[].file keys.
//
//go:embed avro/*.avsc
var Files embed.FS

// Package products owns the data product catalog: which telco data products
// exist, who owns them, which Kafka topic carries each, which Avro schema
// versions its records are written with (and their Schema Registry ids),
// how each top-level field is classified (direct identifier,
// quasi-identifier, sensitive, public), and the product's freshness SLA,
// replay window and retention.
//
// The catalog is a folder of YAML files, one product per file, edited by the
// data owners. The shipped catalog is embedded (DefaultCatalog, loaded by
// LoadDefault) and refers to the Avro schemas embedded in package schemas;
// Load reads any other folder. Loading is strict: unknown keys, missing
// fields, unparseable or incompatible schema versions and unclassified
// fields are errors, each naming file, line and field, all reported at once.
// A loaded Catalog is immutable and safe for concurrent use.
//
// Package products does not decode, transcode or mask records (package
// schemas and package masking do), does not decide who may read a product
// (package policy does), and knows nothing of Kafka, HTTP or Schema Registry
// wire framing. The synthetic data generator lives in products/generate.
package products

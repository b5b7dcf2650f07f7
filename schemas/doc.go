// Package schemas reads the Avro records of sluice's data products and
// transcodes them to JSON without materialising them.
//
// # What it owns
//
//   - Schema parsing helpers (ParseFile, Parse, Fingerprint). The product
//     .avsc files live in schemas/avro; testdata holds test-only schemas.
//   - Layout: the reader (current) schema of a product, flattened into its
//     top-level fields with the Kind each one reports.
//   - Decoder: compiled once per (writer schema, reader layout), it reads an
//     Avro body into a reusable Record, one Value per reader field, with no
//     allocation for flat records. Complex fields (records, arrays, maps,
//     general unions) are transcoded straight from Avro bytes to JSON in the
//     Record's scratch buffer and reported as KindJSON.
//   - Codec: one per product. It tells plain from Schema Registry framed
//     values (magic byte 0, 4-byte big-endian id), resolves ids through the
//     product's catalog versions and then an external Registry (cached; a
//     failure is remembered for 30 s), and decodes every version into the
//     current layout.
//   - JSON helpers (AppendJSONString, AppendJSONValue, AppendJSONKey) that
//     views use to write the fields they keep.
//
// # What it does not own
//
// Row predicates, field masking, policy and the output shape of a view
// belong to the view (gateway), masking and policy packages; this package
// reports values, it never decides what leaves. It does not read Kafka, does
// not register schemas, and does not check compatibility between catalog
// versions beyond what decoding needs (NewCodec fails if an old version
// cannot be read as the current one).
//
// # Schema resolution
//
// Decoders follow the Avro specification's resolution rules: writer-only
// fields are skipped; reader-only fields take their default (NewDecoder
// fails, naming the field, if there is none); int -> long -> float ->
// double and string <-> bytes promote; enums resolve by symbol name (a
// writer symbol missing from the reader takes the reader enum's default,
// or fails that record with ErrIncompatible); unions resolve per writer
// branch (a branch with no reader match fails only the records that use
// it); fields match by name, then by the reader's aliases. Named types
// resolve regardless of name outside unions; inside a reader union a
// same-named branch is preferred. Deliberate choices:
//
//   - timestamp-millis and timestamp-micros convert into each other (the
//     spec would copy the raw long); other logical types resolve on their
//     underlying type.
//   - decimal (bytes or fixed) is reported as KindString holding the decimal
//     text ("-123.45"), exact at any precision up to 128 bytes; a wider
//     value fails the record. Writer and reader decimals must share a scale.
//   - uuid is a string; time-millis, time-micros, local-timestamp-* are
//     numbers; duration is fixed (base64).
//   - a union value is written as its bare JSON value (no {"type": v}
//     wrapper). A nullable union of one scalar type reports that scalar's
//     Kind with Nullable set; every other union reports KindJSON (KindNull
//     when the value is null).
//   - nested record objects carry the reader's field names in the reader's
//     order, defaults included.
//   - long defaults beyond 2^53 lose precision (hamba/avro parses schema
//     JSON numbers as float64).
//
// # Safety on corrupt input
//
// Decode never panics. Lengths and block counts are checked against the
// bytes left; items that decode from zero bytes (nulls, empty records) are
// limited to 65536 per record; nesting is limited to 64 levels; trailing
// bytes are an error. Output is therefore bounded by a small multiple of
// the input size.
//
// # Files
//
//	kind.go     Kind, Value
//	layout.go   Layout, Field, Record, schema classification
//	compile.go  NewDecoder: resolution into per-field ops and JSON nodes
//	decode.go   Decoder.Decode and the Avro binary reader
//	encode.go   FieldEncoder: Values back to Avro binary (views in Avro), wire format header
//	defaults.go field defaults as Values and JSON
//	decimal.go  decimal text without math/big
//	json.go     JSON helpers, RFC 3339 formatting
//	codec.go    Codec, Framing, the registry id cache
//	registry.go NewRegistryClient (franz-go pkg/sr)
//	parse.go    ParseFile, Parse, Fingerprint
//	errors.go   sentinels and DecodeError
//	files.go    Files: the embedded avro/*.avsc (kept with the schemas)
package schemas

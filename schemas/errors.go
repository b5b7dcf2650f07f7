package schemas

import (
	"errors"
	"strconv"
)

// Sentinel errors. Errors returned by this package wrap one of them so
// callers can count failures by class with errors.Is.
var (
	// ErrMalformed: the record bytes are not valid Avro for the writer
	// schema (truncated, bad length, bad union index, trailing bytes, ...),
	// or a framed record lacks its header.
	ErrMalformed = errors.New("schemas: malformed record")

	// ErrUnknownSchemaID: a Schema Registry framed record names a schema id
	// that is neither in the product's catalog versions nor resolvable
	// through the external registry.
	ErrUnknownSchemaID = errors.New("schemas: unknown schema id")

	// ErrIncompatible: the writer schema cannot be read with the reader
	// schema, either at compile time (NewDecoder) or for one record (a
	// writer enum symbol or union branch the reader has no match for).
	ErrIncompatible = errors.New("schemas: incompatible schemas")
)

// Static reasons used on the decode path (no allocation to create them).
var (
	errTruncated   = errors.New("truncated input")
	errVarint      = errors.New("varint overflows 64 bits")
	errIntRange    = errors.New("int value out of 32-bit range")
	errLength      = errors.New("negative or oversized length")
	errBool        = errors.New("boolean byte is neither 0 nor 1")
	errUnionIndex  = errors.New("union branch index out of range")
	errEnumIndex   = errors.New("enum index out of range")
	errBlockCount  = errors.New("array or map block count exceeds the input")
	errDepth       = errors.New("nesting deeper than 64 levels")
	errTrailing    = errors.New("trailing bytes after the record")
	errTimeRange   = errors.New("timestamp conversion overflows")
	errDecimalSize = errors.New("decimal wider than 128 bytes")
	errEnumSymbol  = errors.New("writer enum symbol not in the reader enum and the reader enum has no default")
	errUnionBranch = errors.New("writer union branch has no match in the reader schema")
)

// DecodeError reports why one record could not be decoded. It unwraps to
// ErrMalformed, or to ErrIncompatible for a per-record resolution failure
// (enum symbol or union branch without a reader match).
type DecodeError struct {
	Field  string // top-level field being read (writer name when the reader lacks it); "" for trailing bytes
	Offset int    // byte offset in the Avro body where reading failed
	Reason error  // static reason, e.g. "truncated input"
}

func (e *DecodeError) Error() string {
	class := "malformed record"
	if e.incompatible() {
		class = "incompatible record"
	}
	where := "at byte " + strconv.Itoa(e.Offset)
	if e.Field != "" {
		where = "field " + strconv.Quote(e.Field) + " " + where
	}
	return "schemas: " + class + ": " + where + ": " + e.Reason.Error()
}

func (e *DecodeError) incompatible() bool {
	return e.Reason == errEnumSymbol || e.Reason == errUnionBranch
}

// Unwrap returns the sentinel class and the static reason.
func (e *DecodeError) Unwrap() []error {
	if e.incompatible() {
		return []error{ErrIncompatible, e.Reason}
	}
	return []error{ErrMalformed, e.Reason}
}

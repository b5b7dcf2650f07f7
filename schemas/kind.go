package schemas

import "strconv"

// Kind is the type of one decoded value, as the reader (current) schema sees it.
type Kind uint8

// Kinds. After promotion (int -> long -> float -> double, string <-> bytes)
// the reader's kind is the one reported.
const (
	KindNull            Kind = iota // the field is null
	KindBool                        // Value.Int 0 or 1
	KindInt                         // Value.Int; also time-millis (ms after midnight)
	KindLong                        // Value.Int; also time-micros and local-timestamp-*
	KindFloat                       // Value.Float, holding a float32 value
	KindDouble                      // Value.Float
	KindString                      // Value.Bytes (UTF-8); also uuid and decimal (as decimal text)
	KindBytes                       // Value.Bytes
	KindFixed                       // Value.Bytes; also duration
	KindEnum                        // Value.Int = reader symbol index, Value.Bytes = symbol name
	KindTimestampMillis             // Value.Int = ms since the Unix epoch
	KindTimestampMicros             // Value.Int = µs since the Unix epoch
	KindDate                        // Value.Int = days since the Unix epoch
	KindJSON                        // record, array, map or general union: Value.Bytes is its JSON encoding
)

var kindNames = [...]string{
	KindNull:            "null",
	KindBool:            "bool",
	KindInt:             "int",
	KindLong:            "long",
	KindFloat:           "float",
	KindDouble:          "double",
	KindString:          "string",
	KindBytes:           "bytes",
	KindFixed:           "fixed",
	KindEnum:            "enum",
	KindTimestampMillis: "timestamp-millis",
	KindTimestampMicros: "timestamp-micros",
	KindDate:            "date",
	KindJSON:            "json",
}

// String returns the kind's name, e.g. "timestamp-millis".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one decoded top-level field.
//
// Bytes aliases the input buffer, the Record's scratch buffer or a constant
// owned by the Decoder; it is valid until the next Decode into the same
// Record and must not be modified.
type Value struct {
	Kind  Kind
	Int   int64
	Float float64
	Bytes []byte
}

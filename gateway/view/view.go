// Package view turns decoded records into the bytes one audience receives.
//
// A View is compiled once per audience (today: everyone sees the product's
// full record; with governance: per partner, product, purpose and policy
// revision) and applied to every record: a row predicate, field transforms
// and a JSON encoder, appending into a caller buffer with no allocation.
// Views are immutable and safe for concurrent use; the hub encodes each
// record once per view and fans the bytes out to every subscriber of it.
package view

import (
	"strconv"

	"github.com/sluicehq/sluice/schemas"
)

// Meta is where a record came from. It is part of every encoded record.
type Meta struct {
	Partition int32
	Offset    int64
	Timestamp int64 // Kafka record timestamp, ms since the epoch
}

// View encodes records for one audience.
type View interface {
	// Key identifies the view; equal keys mean identical output, so the hub
	// shares one encoded stream between all subscribers with the same key.
	Key() string
	// Append appends rec's JSON object to dst. ok is false when the row is
	// not for this audience, and dst is then returned unchanged.
	Append(dst []byte, rec *schemas.Record, m Meta) (out []byte, ok bool)
}

// ConsentView is a View whose records can be withheld after they were
// encoded: the hub stores Subject with each event and asks Withheld when
// it delivers it, so an opt-out also stops records already buffered.
type ConsentView interface {
	View
	Subject(rec *schemas.Record) []byte
	Withheld(subject []byte) bool
}

// Identity is the view of a product's full current schema: every field, in
// schema order, followed by the record's Kafka position.
type Identity struct {
	key  string
	keys [][]byte // `{"name":` for the first field, `,"name":` for the rest
}

// NewIdentity compiles the full view of a product's layout.
func NewIdentity(product string, l *schemas.Layout) *Identity {
	v := &Identity{key: product + "/identity"}
	for i, f := range l.Fields {
		var k []byte
		if i == 0 {
			k = append(k, '{')
		} else {
			k = append(k, ',')
		}
		v.keys = append(v.keys, schemas.AppendJSONKey(k, f.Name))
	}
	return v
}

// Key implements View.
func (v *Identity) Key() string { return v.key }

// Append implements View.
func (v *Identity) Append(dst []byte, rec *schemas.Record, m Meta) ([]byte, bool) {
	if len(v.keys) == 0 {
		dst = append(dst, '{')
	}
	for i := range v.keys {
		dst = append(dst, v.keys[i]...)
		dst = schemas.AppendJSONValue(dst, &rec.Values[i])
	}
	if len(v.keys) != 0 {
		dst = append(dst, ',')
	}
	return AppendMeta(dst, m), true
}

// AppendMeta appends `"_partition":P,"_offset":O,"_timestamp":"T"}`, closing
// the record object. Every view ends its records with it.
func AppendMeta(dst []byte, m Meta) []byte {
	dst = append(dst, `"_partition":`...)
	dst = strconv.AppendInt(dst, int64(m.Partition), 10)
	dst = append(dst, `,"_offset":`...)
	dst = strconv.AppendInt(dst, m.Offset, 10)
	dst = append(dst, `,"_timestamp":`...)
	ts := schemas.Value{Kind: schemas.KindTimestampMillis, Int: m.Timestamp}
	dst = schemas.AppendJSONValue(dst, &ts) // quoted RFC 3339, ms, UTC
	return append(dst, '}')
}

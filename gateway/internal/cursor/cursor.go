// Package cursor encodes and decodes resumable stream positions.
//
// A cursor names, for every partition of a product's topic, the next offset a
// client has not yet received. It is all a replica needs to resume a client
// with no gap and no duplicate, so clients need no sticky sessions. Cursors
// are opaque to clients but not secret: they carry positions, never data, and
// authorization is decided separately for every request.
//
// Wire form: "c1" followed by unpadded base64url of
//
//	product tag (4 bytes, big-endian CRC-32C of the product id)
//	uvarint partition count n (1..MaxPartitions)
//	n uvarints: next offset of partition 0..n-1
//
// The tag makes a cursor of one product useless for another.
package cursor

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// MaxPartitions bounds the partitions a cursor may name.
const MaxPartitions = 4096

const prefix = "c1"

// ErrMalformed is returned (wrapped) for any cursor that does not parse.
var ErrMalformed = errors.New("cursor: malformed")

// ErrOtherProduct is returned (wrapped) for a well-formed cursor minted for
// another product.
var ErrOtherProduct = errors.New("cursor: cursor belongs to another product")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Tag is the 4-byte product tag embedded in every cursor.
func Tag(product string) uint32 { return crc32.Checksum([]byte(product), castagnoli) }

// Append appends the cursor for positions (next offset per partition) of the
// product with the given tag to dst.
func Append(dst []byte, tag uint32, positions []int64) []byte {
	var raw [4 + binary.MaxVarintLen64*(1+16)]byte
	var buf []byte
	if len(positions) <= 16 {
		buf = raw[:0]
	} else {
		buf = make([]byte, 0, 4+binary.MaxVarintLen64*(1+len(positions)))
	}
	buf = binary.BigEndian.AppendUint32(buf, tag)
	buf = binary.AppendUvarint(buf, uint64(len(positions)))
	for _, p := range positions {
		if p < 0 {
			p = 0
		}
		buf = binary.AppendUvarint(buf, uint64(p))
	}
	dst = append(dst, prefix...)
	return base64.RawURLEncoding.AppendEncode(dst, buf)
}

// Encode returns the cursor as a string.
func Encode(tag uint32, positions []int64) string {
	return string(Append(nil, tag, positions))
}

// Decode parses a cursor and checks it belongs to the product with tag.
func Decode(s string, tag uint32) ([]int64, error) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return nil, fmt.Errorf("%w: want a value starting with %q as returned in next_cursor or an SSE id", ErrMalformed, prefix)
	}
	if len(s) > 2+base64.RawURLEncoding.EncodedLen(4+binary.MaxVarintLen64*(1+MaxPartitions)) {
		return nil, fmt.Errorf("%w: too long", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(prefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrMalformed)
	}
	if len(raw) < 5 {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	got := binary.BigEndian.Uint32(raw)
	raw = raw[4:]
	n, k := binary.Uvarint(raw)
	if k <= 0 || n == 0 || n > MaxPartitions {
		return nil, fmt.Errorf("%w: bad partition count", ErrMalformed)
	}
	raw = raw[k:]
	pos := make([]int64, n)
	for i := range pos {
		v, k := binary.Uvarint(raw)
		if k <= 0 || v > 1<<62 {
			return nil, fmt.Errorf("%w: bad offset for partition %d", ErrMalformed, i)
		}
		pos[i] = int64(v)
		raw = raw[k:]
	}
	if len(raw) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrMalformed)
	}
	if got != tag {
		return nil, ErrOtherProduct
	}
	return pos, nil
}

package kafkaproxy

import (
	"encoding/binary"
	"hash/crc32"
	"math"

	"github.com/twmb/franz-go/pkg/kbin"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record batch v2 layout (KIP-98), offsets into a batch:
//
//	0  baseOffset int64        36 maxTimestamp int64
//	8  batchLength int32       44 producerId int64
//	12 partitionLeaderEpoch    52 producerEpoch int16
//	16 magic int8 (2)          54 baseSequence int32
//	17 crc uint32 (CRC-32C of 21..end)
//	21 attributes int16        58 recordCount int32
//	23 lastOffsetDelta int32   61 records...
//	27 firstTimestamp int64
const (
	batchHeaderLen   = 61
	batchCRCStart    = 21
	maxOffsetDelta   = math.MaxInt32
	noTimestamp      = -1
	batchLengthAfter = 12 // batchLength counts the bytes after its own field
)

// appendBatches appends record batches covering the offsets [from, next)
// with recs (in offset order, each in that range) to dst: normally one
// batch whose base offset is from and whose last offset delta reaches
// next-1, so that the offsets of rows the view filtered out, including at
// the start and the end of the range, are covered like the gaps of a
// compacted topic and the client's next fetch starts at next. A range
// with no records is one empty batch (KAFKA-5443: clients advance past
// it). Ranges wider than an int32 delta are split. Uncompressed; no
// allocation beyond growing dst.
func appendBatches(dst []byte, from, next int64, recs []Record) []byte {
	for from < next {
		last := next - 1
		if last-from > maxOffsetDelta {
			last = from + maxOffsetDelta
		}
		n := 0
		for n < len(recs) && recs[n].Offset <= last {
			n++
		}
		dst = appendBatch(dst, from, last, recs[:n])
		recs = recs[n:]
		from = last + 1
	}
	return dst
}

// appendBatch appends one batch with base offset base and last offset
// last holding recs (all within [base, last]).
func appendBatch(dst []byte, base, last int64, recs []Record) []byte {
	start := len(dst)
	firstTS, maxTS := int64(noTimestamp), int64(noTimestamp)
	if len(recs) > 0 {
		firstTS, maxTS = recs[0].Timestamp, recs[0].Timestamp
		for i := range recs {
			maxTS = max(maxTS, recs[i].Timestamp)
		}
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(base))
	dst = append(dst, 0, 0, 0, 0)                        // batchLength, below
	dst = binary.BigEndian.AppendUint32(dst, 0xffffffff) // partitionLeaderEpoch -1
	dst = append(dst, 2)                                 // magic
	dst = append(dst, 0, 0, 0, 0)                        // crc, below
	dst = append(dst, 0, 0)                              // attributes: no compression, create time
	dst = binary.BigEndian.AppendUint32(dst, uint32(int32(last-base)))
	dst = binary.BigEndian.AppendUint64(dst, uint64(firstTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(maxTS))
	dst = binary.BigEndian.AppendUint64(dst, math.MaxUint64) // producerId -1
	dst = append(dst, 0xff, 0xff)                            // producerEpoch -1
	dst = binary.BigEndian.AppendUint32(dst, 0xffffffff)     // baseSequence -1
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(recs)))
	for i := range recs {
		dst = appendRecord(dst, &recs[i], base, firstTS)
	}
	binary.BigEndian.PutUint32(dst[start+8:], uint32(len(dst)-start-batchLengthAfter))
	binary.BigEndian.PutUint32(dst[start+17:], crc32.Checksum(dst[start+batchCRCStart:], castagnoli))
	return dst
}

func appendRecord(dst []byte, r *Record, base, firstTS int64) []byte {
	tsDelta := r.Timestamp - firstTS
	offDelta := int32(r.Offset - base)
	n := 1 + kbin.VarlongLen(tsDelta) + kbin.VarintLen(offDelta) + 1 // attributes, deltas, header count
	n += bytesLen(r.Key) + bytesLen(r.Value)
	dst = kbin.AppendVarint(dst, int32(n))
	dst = append(dst, 0) // attributes
	dst = kbin.AppendVarlong(dst, tsDelta)
	dst = kbin.AppendVarint(dst, offDelta)
	dst = appendVarintBytes(dst, r.Key)
	dst = appendVarintBytes(dst, r.Value)
	return append(dst, 0) // no headers
}

func bytesLen(b []byte) int {
	if b == nil {
		return kbin.VarintLen(-1)
	}
	return kbin.VarintLen(int32(len(b))) + len(b)
}

func appendVarintBytes(dst, b []byte) []byte {
	if b == nil {
		return kbin.AppendVarint(dst, -1)
	}
	return append(kbin.AppendVarint(dst, int32(len(b))), b...)
}

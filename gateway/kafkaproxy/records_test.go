package kafkaproxy

import (
	"context"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func makeRecords(n int, from int64, gapEvery int64) []Record {
	recs := make([]Record, 0, n)
	ts := time.Now().UnixMilli()
	for off := from; len(recs) < n; off++ {
		if gapEvery > 0 && off%gapEvery == 0 {
			continue
		}
		recs = append(recs, Record{
			Offset: off, Timestamp: ts + off%5 - 2, // not monotonic: negative deltas
			Key:   fmt.Appendf(nil, "msisdn-%d", off),
			Value: fmt.Appendf(nil, `{"record_id":"r-%d","mvno_id":"mvno-42","service":"DATA","bytes_up":%d,"bytes_down":%d,"serving_cell":"262-01-1234-%d","roaming":false,"charge":0.0%d}`, off, off*7, off*13, off%97, off%10),
		})
	}
	return recs
}

// TestBatchesDecode: franz-go's own fetch processing reads what
// appendBatches writes: every record at its offset with its key, value and
// timestamp, CRCs valid, and the next offset past trailing filtered rows.
func TestBatchesDecode(t *testing.T) {
	for _, tc := range []struct {
		note       string
		from, next int64
		recs       []Record
	}{
		{"gaps inside", 10, 0, makeRecords(50, 10, 4)},
		{"filtered head and tail", 5, 0, makeRecords(20, 9, 0)},
		{"nothing but filtered rows", 100, 140, nil},
		{"one record", 7, 8, []Record{{Offset: 7, Timestamp: 1, Value: []byte("v")}}},
		{"null key and empty value", 0, 3, []Record{{Offset: 1, Timestamp: 1, Value: []byte{}}}},
	} {
		next := tc.next
		if next == 0 {
			next = tc.recs[len(tc.recs)-1].Offset + 3
		}
		raw := appendBatches(nil, tc.from, next, tc.recs)
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			t.Fatalf("%s: %v", tc.note, err)
		}
		if got := crc32.Checksum(raw[batchCRCStart:], castagnoli); uint32(b.CRC) != got {
			t.Errorf("%s: crc %x, want %x", tc.note, b.CRC, got)
		}
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.HighWatermark, rp.LastStableOffset, rp.RecordBatches = next, next, raw
		fp, gotNext := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: tc.from, Topic: "t"}, &rp, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			t.Fatalf("%s: %v", tc.note, fp.Err)
		}
		if gotNext != next {
			t.Errorf("%s: next offset %d, want %d", tc.note, gotNext, next)
		}
		if len(fp.Records) != len(tc.recs) {
			t.Fatalf("%s: %d records, want %d", tc.note, len(fp.Records), len(tc.recs))
		}
		for i, r := range fp.Records {
			w := tc.recs[i]
			if r.Offset != w.Offset || string(r.Key) != string(w.Key) || string(r.Value) != string(w.Value) || r.Timestamp.UnixMilli() != w.Timestamp || (w.Key == nil) != (r.Key == nil) {
				t.Errorf("%s: record %d = %d %q %q %d, want %d %q %q %d", tc.note, i, r.Offset, r.Key, r.Value, r.Timestamp.UnixMilli(), w.Offset, w.Key, w.Value, w.Timestamp)
			}
		}
	}
}

// TestBatchesSplitWideRanges: a range wider than an int32 offset delta is
// split into batches that each stay in range.
func TestBatchesSplitWideRanges(t *testing.T) {
	recs := []Record{{Offset: 1, Value: []byte("a")}, {Offset: 1 << 32, Value: []byte("b")}}
	raw := appendBatches(nil, 0, 1<<33, recs)
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.HighWatermark, rp.RecordBatches = 1<<33, raw
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: 0, Topic: "t"}, &rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil || next != 1<<33 || len(fp.Records) != 2 || fp.Records[1].Offset != 1<<32 {
		t.Fatalf("err %v next %d records %d", fp.Err, next, len(fp.Records))
	}
}

// TestFetchEncodeAllocs pins the encoder at zero allocations once its
// buffer has grown.
func TestFetchEncodeAllocs(t *testing.T) {
	recs := makeRecords(500, 1000, 3)
	buf := appendBatches(nil, 1000, recs[len(recs)-1].Offset+1, recs)
	if n := testing.AllocsPerRun(20, func() {
		buf = appendBatches(buf[:0], 1000, recs[len(recs)-1].Offset+1, recs)
	}); n != 0 {
		t.Errorf("appendBatches allocates %.1f times per 500-record batch, want 0", n)
	}
}

// BenchmarkFetchEncode encodes a 500-record batch (gaps every third
// offset, ~200-byte JSON values) into a reused buffer.
func BenchmarkFetchEncode(b *testing.B) {
	recs := makeRecords(500, 1000, 3)
	next := recs[len(recs)-1].Offset + 1
	buf := appendBatches(nil, 1000, next, recs)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendBatches(buf[:0], 1000, next, recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	b.ReportMetric(float64(testing.AllocsPerRun(10, func() { buf = appendBatches(buf[:0], 1000, next, recs) }))/float64(len(recs)), "allocs/record")
}

// benchSession serves the same 500 records for any fetch.
type benchSession struct {
	testSession
	recs []Record
}

func (s *benchSession) Topics(context.Context) ([]Topic, error) {
	return []Topic{{Name: "cdr", Partitions: 1}}, nil
}

func (s *benchSession) Fetch(_ context.Context, _ string, _ int32, offset int64, _ int32, _ time.Duration) (FetchResult, error) {
	return FetchResult{Records: s.recs, Next: s.recs[len(s.recs)-1].Offset + 1, HighWatermark: 1 << 20}, nil
}

func (s *benchSession) Throttle(int, int) time.Duration { return 0 }

// BenchmarkFetchRequest is the whole Fetch handler for one partition of
// 500 records: backend call, batch encoding, response building and
// serialisation (without the socket write).
func BenchmarkFetchRequest(b *testing.B) {
	recs := makeRecords(500, 1000, 3)
	s, err := New(Config{Backend: newTestBackend(), Offsets: &MemoryOffsets{}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &conn{s: s, sess: &benchSession{recs: recs}, ctx: context.Background(), log: s.log}
	req := fetchRequest("cdr", 0, 1000, 0)
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.handleFetch(req)
		if err != nil {
			b.Fatal(err)
		}
		out = resp.AppendTo(out[:0])
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}

// TestResponseSizeHint: a Fetch response's write buffer is sized once:
// the hint bounds the encoded response for every served version, with
// long topic names, many partitions and aborted transactions.
func TestResponseSizeHint(t *testing.T) {
	for v := int16(4); v <= 12; v++ {
		for _, shape := range []struct{ topics, parts, batch, aborted int }{{1, 1, 0, 0}, {3, 12, 5000, 0}, {2, 40, 17, 3}, {1, 6, 1 << 20, 0}} {
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = v
			for i := range shape.topics {
				rt := kmsg.NewFetchResponseTopic()
				rt.Topic = fmt.Sprintf("%0200d", i) // a long name
				for p := range shape.parts {
					rp := kmsg.NewFetchResponseTopicPartition()
					rp.Partition = int32(p)
					rp.RecordBatches = make([]byte, shape.batch)
					for range shape.aborted {
						rp.AbortedTransactions = append(rp.AbortedTransactions, kmsg.NewFetchResponseTopicPartitionAbortedTransaction())
					}
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			hint := responseSizeHint(resp)
			// The frame: size, correlation id, header tags, then the body.
			if n := 4 + 4 + 1 + len(resp.AppendTo(nil)); n > hint {
				t.Errorf("v%d %+v: encoded %d bytes, hint %d", v, shape, n, hint)
			}
		}
	}
	if responseSizeHint(kmsg.NewPtrMetadataResponse()) != 0 {
		t.Error("a hint for a Metadata response")
	}
}

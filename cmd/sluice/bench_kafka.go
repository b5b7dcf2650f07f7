package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/schemas"
)

// newCodec builds the product's codec as the gateway does.
func newCodec(p *products.Product) (*schemas.Codec, error) {
	var vs []schemas.SchemaVersion
	for _, v := range p.Versions {
		vs = append(vs, schemas.SchemaVersion{Version: v.Version, ID: v.ID, Schema: v.Schema})
	}
	return schemas.NewCodec(p.ID, schemas.Framing(p.Framing), vs, nil)
}

// topicRange is the readable range of a topic: [start, end) per partition.
type topicRange struct {
	start, end []int64
}

func (r topicRange) total() int64 {
	var n int64
	for i := range r.end {
		n += r.end[i] - r.start[i]
	}
	return n
}

func listRange(ctx context.Context, cl *kgo.Client, topic string) (topicRange, error) {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return topicRange{}, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return topicRange{}, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	n := len(ends[topic])
	if n == 0 {
		return topicRange{}, fmt.Errorf("topic %s not found", topic)
	}
	r := topicRange{start: make([]int64, n), end: make([]int64, n)}
	for p := range n {
		s, ok1 := starts[topic][int32(p)]
		e, ok2 := ends[topic][int32(p)]
		if !ok1 || !ok2 {
			return topicRange{}, fmt.Errorf("topic %s: partition %d missing from offsets", topic, p)
		}
		r.start[p], r.end[p] = s.Offset, e.Offset
	}
	return r, nil
}

// preloadResult describes the preload phase.
type preloadResult struct {
	Produced     int64   `json:"produced"`
	Seconds      float64 `json:"seconds"`
	RecordsPerS  float64 `json:"records_per_s"`
	AvgValueSize float64 `json:"avg_value_bytes"`
}

// preload produces n generated records of product as fast as a batching
// async producer can, with the Kafka timestamp set to the produce time.
func preload(ctx context.Context, brokers []string, gen *generate.Generator, p *products.Product, topic string, n int) (preloadResult, error) {
	var res preloadResult
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(50_000),
		kgo.DefaultProduceTopic(topic),
	)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	var firstErr error
	var errOnce sync.Once
	var bytes int64
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		r, err := gen.Next(p.ID)
		if err != nil {
			return res, err
		}
		bytes += int64(len(r.Value))
		cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: time.Now()}, func(_ *kgo.Record, err error) {
			if err != nil {
				errOnce.Do(func() { firstErr = err })
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return res, err
	}
	if firstErr != nil {
		return res, fmt.Errorf("preload produce: %w", firstErr)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	res.Seconds = time.Since(start).Seconds()
	res.Produced = int64(n)
	res.RecordsPerS = float64(n) / res.Seconds
	res.AvgValueSize = float64(bytes) / float64(max(n, 1))
	return res, nil
}

// baselineResult is the plain franz-go consumer's throughput.
type baselineResult struct {
	Records      int64   `json:"records"`
	DecodeErrors int64   `json:"decode_errors"`
	Seconds      float64 `json:"seconds"`
	RecordsPerS  float64 `json:"records_per_s"`
	JSONBytes    int64   `json:"json_bytes"`
	AvgJSONSize  float64 `json:"avg_json_bytes"`
	// CPUSeconds is the CPU time the run took: this process, plus the
	// --target's gateway process (from its /metrics) when there is one.
	CPUSeconds     float64 `json:"cpu_seconds"`
	RecordsPerCPUS float64 `json:"records_per_cpu_second"`
}

// recordHashes holds a hash of the baseline's encoding of every record, by
// partition and offset, so --verify can compare what SSE delivers.
type recordHashes struct {
	start []int64
	h     [][]uint64
}

func newRecordHashes(r topicRange) *recordHashes {
	rh := &recordHashes{start: r.start, h: make([][]uint64, len(r.end))}
	for p := range r.end {
		rh.h[p] = make([]uint64, r.end[p]-r.start[p])
	}
	return rh
}

func (rh *recordHashes) slot(part int32, off int64) *uint64 {
	if int(part) >= len(rh.h) {
		return nil
	}
	i := off - rh.start[part]
	if i < 0 || i >= int64(len(rh.h[part])) {
		return nil
	}
	return &rh.h[part][i]
}

func hash64(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64() | 1 // 0 means "not seen"
}

// baseline consumes the topic range with a plain franz-go consumer (no
// group, from the start) and does sluice's per-record work: codec decode
// and identity JSON encoding into a reused buffer.
func baseline(ctx context.Context, brokers []string, topic string, rng topicRange, codec *schemas.Codec, hashes *recordHashes, timeout time.Duration) (baselineResult, error) {
	var res baselineResult
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	enc := view.NewIdentity("bench", codec.Layout()) // the gateway's own identity encoding
	rec := codec.Layout().NewRecord()
	buf := make([]byte, 0, 4096)
	want := rng.total()
	start := time.Now()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	var seen int64
	for seen < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return res, fmt.Errorf("baseline: read %d of %d records: %w", seen, want, ctx.Err())
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			return res, fmt.Errorf("baseline: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if err := codec.Decode(ctx, r.Value, rec); err != nil {
				res.DecodeErrors++
				return
			}
			buf = appendIdentity(enc, buf[:0], rec, r.Partition, r.Offset, r.Timestamp.UnixMilli())
			res.Records++
			res.JSONBytes += int64(len(buf))
			if hashes != nil {
				if s := hashes.slot(r.Partition, r.Offset); s != nil {
					*s = hash64(buf)
				}
			}
		})
	}
	res.Seconds = time.Since(start).Seconds()
	res.RecordsPerS = float64(res.Records) / res.Seconds
	res.AvgJSONSize = float64(res.JSONBytes) / float64(max(res.Records, 1))
	return res, nil
}

// liveProducer writes pool records at a fixed rate with the Kafka timestamp
// set to the moment each is handed to the client.
type liveProducer struct {
	cl    *kgo.Client
	pool  []generate.Record
	acked atomic.Int64
	errs  atomic.Int64
	first atomic.Value // first error
}

func newLiveProducer(brokers []string, topic string, pool []generate.Record) (*liveProducer, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ProducerLinger(0),
		kgo.DefaultProduceTopic(topic),
	)
	if err != nil {
		return nil, err
	}
	return &liveProducer{cl: cl, pool: pool}, nil
}

func (lp *liveProducer) Close() { lp.cl.Close() }

// run produces at rate records/s for d and returns how many it handed to
// the client; it then waits for their acknowledgements.
func (lp *liveProducer) run(ctx context.Context, rate float64, d, flushTimeout time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	var sent int64
	total := int64(rate * d.Seconds())
	for sent < total && ctx.Err() == nil {
		due := min(int64(time.Since(start).Seconds()*rate)+1, total)
		for ; sent < due; sent++ {
			r := lp.pool[sent%int64(len(lp.pool))]
			lp.cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: time.Now()}, func(_ *kgo.Record, err error) {
				if err != nil {
					if lp.errs.Add(1) == 1 {
						lp.first.Store(err)
					}
					return
				}
				lp.acked.Add(1)
			})
		}
		if sent < total {
			next := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
			if w := time.Until(next); w > 0 {
				time.Sleep(w)
			}
		}
	}
	elapsed := time.Since(start)
	fctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	err := lp.cl.Flush(fctx)
	if err != nil {
		err = fmt.Errorf("acknowledgements not all received within %s: %w", flushTimeout, err)
	}
	if e, ok := lp.first.Load().(error); ok && err == nil {
		err = e
	}
	return sent, elapsed, err
}

// appendIdentity encodes rec as sluice's identity view does.
func appendIdentity(v *view.Identity, dst []byte, rec *schemas.Record, part int32, off, tsMillis int64) []byte {
	dst, _ = v.Append(dst, rec, view.Meta{Partition: part, Offset: off, Timestamp: tsMillis})
	return dst
}

package kafkaproxy

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch: v4-v12.
//
// Serves the partner's view of each requested partition from its fetch
// offset (Session.Fetch), encoded as uncompressed v2 record batches (see
// appendBatches): the rows the view filters out are gaps in the offsets,
// covered by the batch's last offset delta like a compacted topic, so a
// client's next fetch starts past them.
//
// Long polling: every partition is first read without waiting; when that
// yields fewer than MinBytes and MaxWaitMillis (capped by
// Config.MaxFetchWait) is positive, the request waits on up to
// maxWaiters partitions that had nothing at once and is answered as soon
// as any of them has data, or at the deadline. MaxBytes (capped by
// Config.MaxFetchBytes) and PartitionMaxBytes bound the response; the
// first partition with data always returns at least one record, as Kafka
// does. Partitions read after the budget is spent report their marks
// only.
//
// The quota: Session.Throttle's answer for what was delivered is
// throttle_time_ms, and the connection reads no further request for that
// long. Fetch sessions (v7+, KIP-227) are not kept: SessionID is always 0,
// so clients send full requests. Isolation level is ignored (the view has
// no transactions); the last stable offset is the high watermark. Topic IDs
// (v13+) are not served: Metadata reports none.

func init() { register(1, 4, 12, true, (*conn).handleFetch) }

// maxWaiters bounds the goroutines one long-polling Fetch request starts.
const maxWaiters = 64

type fetchSlot struct {
	topic  string
	part   int32
	offset int64
	max    int32

	code  int16
	res   FetchResult
	read  bool   // res holds records encoded into the response
	batch []byte // encoded record batches (into conn.fetchBuf while building)
	start int    // offset of batch in conn.fetchBuf
}

func (c *conn) handleFetch(req *kmsg.FetchRequest) (kmsg.Response, error) {
	cfg := &c.s.cfg
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	maxWait := min(time.Duration(max(req.MaxWaitMillis, 0))*time.Millisecond, cfg.MaxFetchWait)
	budget := req.MaxBytes
	if budget <= 0 || budget > cfg.MaxFetchBytes {
		budget = cfg.MaxFetchBytes
	}
	deadline := time.Now().Add(maxWait)

	topics, terr := c.sess.Topics(c.ctx)
	if terr != nil {
		c.log.Warn("kafkaproxy: listing topics failed", "err", terr)
	}
	var slots []fetchSlot
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			s := fetchSlot{topic: rt.Topic, part: rp.Partition, offset: rp.FetchOffset, max: rp.PartitionMaxBytes}
			if terr != nil {
				s.code = c.code(terr, "fetch", rt.Topic, rp.Partition)
			} else {
				s.code = partitionCode(topics, rt.Topic, rp.Partition)
			}
			s.res.HighWatermark, s.res.LogStart = -1, -1
			slots = append(slots, s)
		}
	}

	// Pass 1: read every partition without waiting.
	buf := c.fetchBuf[:0]
	var records int
	for i := range slots {
		s := &slots[i]
		if s.code != 0 {
			continue
		}
		limit := min(s.max, budget-int32(len(buf)))
		if limit <= 0 && len(buf) > 0 {
			c.marks(s)
			continue
		}
		res, err := c.sess.Fetch(c.ctx, s.topic, s.part, s.offset, max(limit, 1), 0)
		buf, records = c.encodeSlot(s, res, err, buf, records)
	}

	// Pass 2: wait for data on partitions that had none.
	if int32(len(buf)) < max(req.MinBytes, 1) && maxWait > 0 && c.ctx.Err() == nil {
		buf, records = c.waitFetch(slots, deadline, budget, buf, records)
		if len(buf) == 0 && slices.ContainsFunc(slots, func(s fetchSlot) bool { return s.code == 0 }) {
			// Nothing came, but the wait ended early (a backend that does
			// not long-poll): hold the answer until the deadline so
			// clients do not spin. Errors alone are answered at once.
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-t.C:
			case <-c.ctx.Done():
			}
			t.Stop()
		}
	}

	for i := range slots {
		slots[i].batch = buf[slots[i].start : slots[i].start+len(slots[i].batch) : slots[i].start+len(slots[i].batch)]
	}
	c.fetchBuf = buf
	if cap(c.fetchBuf) > 8<<20 {
		c.fetchBuf = nil // do not keep a large response's buffer
	}

	// Build the response in request order.
	resp.Topics = make([]kmsg.FetchResponseTopic, 0, len(req.Topics))
	i := 0
	for _, rt := range req.Topics {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = rt.Topic
		t.Partitions = make([]kmsg.FetchResponseTopicPartition, 0, len(rt.Partitions))
		for range rt.Partitions {
			s := &slots[i]
			i++
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = s.part
			p.ErrorCode = s.code
			p.HighWatermark = s.res.HighWatermark
			p.LastStableOffset = s.res.HighWatermark
			p.LogStartOffset = s.res.LogStart
			p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
			p.PreferredReadReplica = -1
			p.RecordBatches = s.batch
			if p.RecordBatches == nil {
				p.RecordBatches = []byte{} // null record sets are rejected by librdkafka
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	if d := c.sess.Throttle(records, len(buf)); d > 0 {
		resp.ThrottleMillis = int32(min(d.Milliseconds(), 1<<31-1))
		c.throttle = d
	}
	return resp, nil
}

// marks fills a slot that gets no records with its partition's marks.
func (c *conn) marks(s *fetchSlot) {
	lo, hi, err := c.sess.Offsets(c.ctx, s.topic, s.part)
	if err != nil {
		s.code = c.code(err, "fetch", s.topic, s.part)
		return
	}
	s.res.LogStart, s.res.HighWatermark = lo, hi
}

// encodeSlot records the result of reading s and appends its batches to
// buf (only when res has something to deliver: records, or filtered rows
// to skip).
func (c *conn) encodeSlot(s *fetchSlot, res FetchResult, err error, buf []byte, records int) ([]byte, int) {
	if err != nil {
		s.code = c.code(err, "fetch", s.topic, s.part)
		return buf, records
	}
	recs := res.Records
	for len(recs) > 0 && recs[0].Offset < s.offset {
		recs = recs[1:] // defensive: never hand out what was not asked for
	}
	if n := len(recs); n > 0 && res.Next <= recs[n-1].Offset {
		res.Next = recs[n-1].Offset + 1
	}
	res.HighWatermark = max(res.HighWatermark, res.Next)
	s.res = res
	s.res.Records = nil
	if res.Next <= s.offset {
		return buf, records
	}
	s.read = true
	s.start = len(buf)
	buf = appendBatches(buf, s.offset, res.Next, recs)
	s.batch = buf[s.start:len(buf):len(buf)]
	return buf, records + len(recs)
}

// waitFetch long-polls the partitions of slots that returned nothing,
// until one has data, the deadline passes or the connection ends.
func (c *conn) waitFetch(slots []fetchSlot, deadline time.Time, budget int32, buf []byte, records int) ([]byte, int) {
	wait := time.Until(deadline)
	if wait <= 0 {
		return buf, records
	}
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	type result struct {
		i   int
		res FetchResult
		err error
	}
	var idx []int
	for i := range slots {
		if slots[i].code == 0 && !slots[i].read && len(idx) < maxWaiters {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return buf, records
	}
	results := make([]result, 0, len(idx))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, i := range idx {
		s := &slots[i]
		limit := max(min(s.max, budget-int32(len(buf))), 1)
		wg.Go(func() {
			res, err := c.sess.Fetch(ctx, s.topic, s.part, s.offset, limit, wait)
			if ctx.Err() != nil && len(res.Records) == 0 && res.Next <= s.offset {
				return // cancelled or timed out with nothing: keep pass 1's answer
			}
			mu.Lock()
			results = append(results, result{i, res, err})
			mu.Unlock()
			if err == nil && res.Next > s.offset {
				cancel() // data: answer now
			}
		})
	}
	wg.Wait()
	for _, r := range results {
		s := &slots[r.i]
		if r.err == nil && len(buf) > 0 && int32(len(buf)) >= budget {
			break
		}
		buf, records = c.encodeSlot(s, r.res, r.err, buf, records)
	}
	return buf, records
}

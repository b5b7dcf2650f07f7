package hub

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/view"
)

// PartitionReader reads one view of a product one partition at a time, at
// offsets the caller chooses on every call: the access pattern of a Kafka
// consumer (the Kafka wire front door's Fetch), where the client, not the
// gateway, keeps the positions.
//
// It holds the view's shared ring for its whole life (like Subscribe), so
// a consumer that keeps up is served from the ring, encoded once for every
// subscriber of the view; reads before the ring's window go to Kafka
// through the shared non-blocking fetcher (Sub.readDirect). Read may be
// called concurrently, for the same or different partitions. Close it
// when done.
type PartitionReader struct {
	p    *Product
	v    view.View
	ring *viewRing
	subs sync.Pool // *Sub scratch for direct reads: decode record, arena

	mu     sync.Mutex
	closed bool
	raw    map[int32]rawTail // per partition: fetched from Kafka, not yet encoded
}

// PartitionRead is the result of one PartitionReader.Read.
type PartitionRead struct {
	// Events are the partition's records from the requested offset on, in
	// offset order, as the view encoded them. Data is nil for rows the
	// view left out (filtered, undecodable, or withheld by consent since
	// they were encoded): they only advance the position. The Data bytes
	// are shared and must not be modified.
	Events []Event
	// Next is the offset to read next: past every returned event, and past
	// control records and transaction markers that carry no event.
	Next int64
	// High is the end of the partition as far as the hub knows (the
	// product reader's position, or Next if that is further): use it as
	// the high watermark; it lags the upstream log by at most one fetch.
	High int64
}

// PartitionReader opens a reader of view v; it waits for the product's
// reader to know its start positions.
func (p *Product) PartitionReader(ctx context.Context, v view.View) (*PartitionReader, error) {
	r, err := p.acquire(ctx, v)
	if err != nil {
		return nil, err
	}
	return &PartitionReader{p: p, v: v, ring: r}, nil
}

// Close releases the view's ring. Reads after Close return ErrClosed.
func (r *PartitionReader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.raw = nil
		r.p.release(r.ring)
	}
}

// Read returns up to limit events of partition from offset on. When the
// offset is at the end of what the hub has read, it waits up to wait
// (0: do not wait) for new records, and returns no events and Next ==
// offset if none came. An offset older than the topic's retention or past
// the end of the log is a *PositionError; a partition the topic does not
// have returns no events and Next == offset.
func (r *PartitionReader) Read(ctx context.Context, partition int32, offset int64, limit int, wait time.Duration) (PartitionRead, error) {
	if limit <= 0 {
		limit = 1
	}
	var w waiter
	defer w.stop()
	for {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return PartitionRead{}, ErrClosed
		}
		notify := r.ring.wait()
		res, caughtUp, direct := r.fromRing(partition, offset, limit)
		if direct {
			return r.readDirect(ctx, partition, offset, limit)
		}
		if !caughtUp || wait <= 0 {
			return res, nil
		}
		switch err := w.wait(ctx, r.ring, notify, wait); {
		case errors.Is(err, errDeadline):
			return res, nil
		case errors.Is(err, ErrClosed):
			return PartitionRead{}, err
		case err != nil:
			return res, err
		}
	}
}

// Direct reports whether a Read of partition at offset goes to Kafka (the
// offset is outside the ring's window): the read then takes an upstream
// fetch and encodes what it returns, which a caller may rather run in the
// background.
func (r *PartitionReader) Direct(partition int32, offset int64) bool {
	r.ring.mu.RLock()
	defer r.ring.mu.RUnlock()
	if partition < 0 || int(partition) >= len(r.ring.parts) {
		return true
	}
	pr := &r.ring.parts[partition]
	return offset < pr.lo || offset > pr.hi
}

// High is the end of partition as far as the hub knows (PartitionRead.High
// of a read that returns nothing).
func (r *PartitionReader) High(partition int32) int64 { return r.p.position(partition) }

// fromRing serves a read from the ring when offset is inside its window.
// caughtUp: offset is at the ring's end (nothing to return yet); direct:
// the offset is outside the window, or the ring lacks the partition.
func (r *PartitionReader) fromRing(partition int32, offset int64, limit int) (res PartitionRead, caughtUp, direct bool) {
	res.Next = offset
	// The reader's position first: publish takes the product's lock and
	// then the ring's, so taking them the other way round would deadlock.
	at := r.p.position(partition)
	r.ring.mu.RLock()
	defer r.ring.mu.RUnlock()
	if partition < 0 || int(partition) >= len(r.ring.parts) {
		return res, false, true
	}
	pr := &r.ring.parts[partition]
	res.High = max(at, pr.hi)
	switch {
	case offset < pr.lo, offset > pr.hi:
		return res, false, true
	case offset == pr.hi:
		return res, true, false
	}
	res.Events = pr.from(nil, offset, limit)
	if len(res.Events) < limit {
		res.Next = pr.hi // every event up to the ring's end, and markers after it
	} else {
		res.Next = res.Events[len(res.Events)-1].Offset + 1
	}
	Withhold(r.v, res.Events)
	return res, false, false
}

// readDirect reads the partition from Kafka at offset (history, or a
// partition the ring does not cover yet). It encodes at most limit events:
// the rest of the upstream fetch is kept, not encoded, for a read that
// continues where this one ends (a Kafka consumer's next Fetch), so a
// small read costs what it returns, not a whole upstream fetch.
func (r *PartitionReader) readDirect(ctx context.Context, partition int32, offset int64, limit int) (PartitionRead, error) {
	n := max(int64(partition)+1, int64(r.p.partitions()))
	s, _ := r.subs.Get().(*Sub)
	if s == nil {
		s = r.p.newSub(r.v, r.ring, make([]int64, n))
	}
	defer r.subs.Put(s)
	for int64(len(s.pos)) < n {
		s.pos = append(s.pos, 0)
		s.pending = append(s.pending, nil)
		s.head = append(s.head, 0)
	}
	recs, next, ok := r.takeRaw(partition, offset)
	if !ok {
		s.pos[partition] = offset
		fps, err := s.fetchDirect(ctx, []int32{partition})
		if err != nil {
			return PartitionRead{}, err
		}
		next = offset // the log moved meanwhile: nothing now
		for _, fp := range fps {
			if fp.Partition == partition {
				recs, next = fp.Records, max(fp.Next, offset)
			}
		}
	}
	res := PartitionRead{Next: next}
	var ar arena
	for i, kr := range recs {
		if len(res.Events) == limit {
			res.Next = kr.Offset
			r.keepRaw(partition, recs[i:], next)
			break
		}
		res.Events = append(res.Events, s.encode(ctx, &ar, kr))
		if i%yieldEvery == yieldEvery-1 {
			runtime.Gosched()
		}
	}
	res.High = max(r.p.position(partition), res.Next)
	Withhold(r.v, res.Events)
	return res, nil
}

// yieldEvery is how many events a direct read encodes between yields of
// its core: a few hundred microseconds of work, so that a goroutine
// waiting for the core (a Fetch answering, a stream writing) gets it that
// soon even when every core is encoding (Go preempts only after 10 ms).
const yieldEvery = 64

// rawTail is the rest of an upstream fetch a direct read did not encode.
type rawTail struct {
	recs []*kgo.Record // from the first record not encoded
	next int64         // the fetch's next offset
	at   time.Time
}

// rawTailTTL bounds how long a raw tail waits for the read that continues
// it.
const rawTailTTL = time.Second

func (r *PartitionReader) keepRaw(partition int32, recs []*kgo.Record, next int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.raw == nil {
		r.raw = map[int32]rawTail{}
	}
	r.raw[partition] = rawTail{recs: recs, next: next, at: time.Now()}
}

// takeRaw returns the kept tail of partition when it starts at offset.
func (r *PartitionReader) takeRaw(partition int32, offset int64) ([]*kgo.Record, int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.raw[partition]
	if !ok {
		return nil, 0, false
	}
	delete(r.raw, partition)
	if len(t.recs) == 0 || t.recs[0].Offset != offset || time.Since(t.at) > rawTailTTL {
		return nil, 0, false
	}
	return t.recs, t.next, true
}

// Withhold drops the data of events whose subject opted out after they
// were encoded by v (as Sub.merge does): for events kept a while before
// they are sent. Views without consent leave them as they are.
func Withhold(v view.View, evs []Event) {
	cv, ok := v.(view.ConsentView)
	if !ok {
		return
	}
	for i := range evs {
		if evs[i].Data != nil && cv.Withheld(evs[i].Subject) {
			evs[i].Data = nil
		}
	}
}

// position is the product reader's next offset of partition (0 if unknown).
func (p *Product) position(partition int32) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(partition) < len(p.pos) {
		return p.pos[partition]
	}
	return 0
}

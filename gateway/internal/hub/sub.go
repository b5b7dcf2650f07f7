package hub

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/internal/upstream"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/schemas"
)

// Start names where a subscriber begins.
type Start struct {
	Kind      StartKind
	Time      time.Time // for StartTime
	Positions []int64   // for StartCursor: next offset per partition
}

// StartKind selects a Start.
type StartKind int

const (
	StartLatest StartKind = iota
	StartEarliest
	StartTime
	StartCursor
)

// Resolve turns a Start into positions, one per current partition. A cursor
// naming fewer partitions than the topic has starts the new ones at their log
// start; one naming more is an error.
func (p *Product) Resolve(ctx context.Context, s Start) ([]int64, error) {
	c := p.h.cluster
	switch s.Kind {
	case StartEarliest:
		return c.Offsets(ctx, p.src.Topic, upstream.Start)
	case StartLatest:
		return c.Offsets(ctx, p.src.Topic, upstream.End)
	case StartTime:
		return c.OffsetsAfter(ctx, p.src.Topic, s.Time.UnixMilli())
	}
	start, err := c.Offsets(ctx, p.src.Topic, upstream.Start)
	if err != nil {
		return nil, err
	}
	if len(s.Positions) > len(start) {
		return nil, &PositionError{Partition: int32(len(start)), Offset: -1}
	}
	pos := append([]int64(nil), s.Positions...)
	for len(pos) < len(start) {
		pos = append(pos, start[len(pos)])
	}
	for i := range pos {
		if pos[i] < start[i] {
			return nil, &PositionError{Gone: true, Earliest: start, Partition: int32(i), Offset: pos[i]}
		}
	}
	return pos, nil
}

// Sub reads one view of a product from its own positions. A Sub is used by
// one goroutine at a time.
type Sub struct {
	p       *Product
	v       view.View
	ring    *viewRing // nil for one-shot reads without a shared ring
	owned   bool      // the ring was acquired by this Sub and must be released
	pos     []int64
	pending [][]Event // events read, per partition; those from head on are not yet returned
	head    []int
	rec     *schemas.Record
	scratch []Event
	consent view.ConsentView // non-nil when the view checks consent
}

// Subscribe opens a streaming subscriber of view v at positions pos. The
// view's ring is shared with every other subscriber of the same view key.
// Close it when done.
func (p *Product) Subscribe(ctx context.Context, v view.View, pos []int64) (*Sub, error) {
	r, err := p.acquire(ctx, v)
	if err != nil {
		return nil, err
	}
	s := p.newSub(v, r, pos)
	s.owned = true
	return s, nil
}

// Reader returns a one-shot reader (REST pages): it uses the view's ring when
// one is maintained and reads Kafka directly otherwise.
func (p *Product) Reader(v view.View, pos []int64) *Sub {
	return p.newSub(v, p.peek(v.Key()), pos)
}

func (p *Product) newSub(v view.View, r *viewRing, pos []int64) *Sub {
	s := &Sub{p: p, v: v, ring: r, pos: append([]int64(nil), pos...), pending: make([][]Event, len(pos)), head: make([]int, len(pos)), rec: p.src.Codec.Layout().NewRecord()}
	s.consent, _ = v.(view.ConsentView)
	return s
}

// Close releases the subscriber's view ring.
func (s *Sub) Close() {
	if s.owned {
		s.p.release(s.ring)
		s.owned = false
	}
}

// Positions returns the next offset per partition after everything Next has
// returned so far. The caller must not modify it.
func (s *Sub) Positions() []int64 { return s.pos }

// ErrClosed is returned by Next when the product's reader stopped.
var ErrClosed = errors.New("hub: product reader stopped")

// Next returns up to max events that carry data, in timestamp order across
// partitions, together with any data-less events (filtered or undecodable
// records) that precede them, and advances the positions past all of them.
// It waits up to wait for something to arrive (0: do not wait) and returns
// an empty slice when nothing did. The returned slice is reused by the next
// call.
func (s *Sub) Next(ctx context.Context, max int, wait time.Duration) ([]Event, error) {
	var w waiter
	defer w.stop()
	for {
		var notify <-chan struct{}
		if s.ring != nil {
			notify = s.ring.wait()
		}
		if err := s.fill(ctx, max); err != nil {
			return nil, err
		}
		out := s.merge(max)
		if len(out) > 0 || wait <= 0 || s.ring == nil {
			return out, nil
		}
		switch err := w.wait(ctx, s.ring, notify, wait); {
		case errors.Is(err, errDeadline):
			return out, nil
		case err != nil:
			return nil, err
		}
	}
}

// fill makes sure every partition with something to read has pending events:
// from the ring where the position is inside its window, else from Kafka.
func (s *Sub) fill(ctx context.Context, max int) error {
	var direct []int32
	if s.ring != nil {
		s.ring.mu.RLock()
		for len(s.pos) < len(s.ring.parts) {
			s.pos = append(s.pos, s.ring.parts[len(s.pos)].lo)
			s.pending = append(s.pending, nil)
			s.head = append(s.head, 0)
		}
	}
	for p := range s.pos {
		if s.head[p] < len(s.pending[p]) {
			continue
		}
		if s.ring == nil || p >= len(s.ring.parts) {
			direct = append(direct, int32(p))
			continue
		}
		pr := &s.ring.parts[p]
		switch {
		case s.pos[p] < pr.lo:
			direct = append(direct, int32(p))
		case s.pos[p] < pr.hi:
			s.pending[p], s.head[p] = pr.from(s.pending[p][:0], s.pos[p], max), 0
			if len(s.pending[p]) == 0 {
				s.pos[p] = pr.hi // nothing but control records up to hi
			}
		}
	}
	if s.ring != nil {
		s.ring.mu.RUnlock()
	}
	if len(direct) == 0 {
		return nil
	}
	return s.readDirect(ctx, direct)
}

func (s *Sub) readDirect(ctx context.Context, parts []int32) error {
	res, err := s.fetchDirect(ctx, parts)
	if err != nil {
		return err
	}
	var ar arena
	for _, fp := range res {
		part := fp.Partition
		evs := s.pending[part][:0]
		for _, kr := range fp.Records {
			evs = append(evs, s.encode(ctx, &ar, kr))
		}
		s.pending[part], s.head[part] = evs, 0
		if len(evs) == 0 && fp.Next > s.pos[part] {
			s.pos[part] = fp.Next
		}
	}
	return nil
}

// fetchDirect reads parts from Kafka at s.pos. A position out of the log's
// range is a *PositionError; a partition whose log moved meanwhile is left
// out of the result (read again next time).
func (s *Sub) fetchDirect(ctx context.Context, parts []int32) ([]upstream.Partition, error) {
	reason := "history"
	if s.ring != nil {
		reason = "catch_up"
	}
	s.p.h.m.DirectReads.WithLabelValues(s.p.src.Product, reason).Inc()
	res, err := s.p.h.direct.Fetch(ctx, s.p.src.Topic, s.pos, parts, 0, s.p.h.cfg.FetchBytes)
	if err != nil {
		return nil, err
	}
	out := res[:0]
	for _, fp := range res {
		part := fp.Partition
		if fp.Err != nil {
			var oor *upstream.OutOfRangeError
			if errors.As(fp.Err, &oor) {
				// Brokers differ in what they report with the error (real
				// Kafka: -1 for both marks), so ask for both ends.
				start, err := s.p.h.cluster.Offsets(ctx, s.p.src.Topic, upstream.Start)
				if err != nil {
					return nil, err
				}
				end, err := s.p.h.cluster.Offsets(ctx, s.p.src.Topic, upstream.End)
				if err != nil {
					return nil, err
				}
				switch {
				case int(part) < len(start) && oor.Offset < start[part]:
					return nil, &PositionError{Gone: true, Earliest: start, Partition: part, Offset: oor.Offset}
				case int(part) < len(end) && oor.Offset > end[part]:
					return nil, &PositionError{Partition: part, Offset: oor.Offset}
				}
				continue // the log moved meanwhile: read again next time
			}
			return nil, fp.Err
		}
		out = append(out, fp)
	}
	return out, nil
}

// encode decodes one upstream record and encodes it by the view into ar;
// a record that does not decode is counted, logged and left out (nil
// Data).
func (s *Sub) encode(ctx context.Context, ar *arena, kr *kgo.Record) Event {
	meta := view.Meta{Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp.UnixMilli()}
	e := Event{Partition: meta.Partition, Offset: meta.Offset, Timestamp: meta.Timestamp}
	if err := s.p.src.Codec.Decode(ctx, kr.Value, s.rec); err != nil {
		s.p.decodeError(kr.Partition, kr.Offset, err)
	} else {
		e.Data, e.Subject = ar.encode(s.v, s.consent, s.rec, meta, len(kr.Value))
	}
	return e
}

// merge takes pending events in timestamp order until max carry data.
func (s *Sub) merge(max int) []Event {
	out := s.scratch[:0]
	data := 0
	for data < max {
		best := -1
		for p := range s.pending {
			if s.head[p] >= len(s.pending[p]) {
				continue
			}
			if best < 0 || s.pending[p][s.head[p]].Timestamp < s.pending[best][s.head[best]].Timestamp {
				best = p
			}
		}
		if best < 0 {
			break
		}
		e := s.pending[best][s.head[best]]
		s.head[best]++
		s.pos[best] = e.Offset + 1
		if e.Data != nil && s.consent != nil && s.consent.Withheld(e.Subject) {
			e.Data = nil // opted out since it was encoded
		}
		if e.Data != nil {
			data++
		}
		out = append(out, e)
	}
	s.scratch = out
	return out
}

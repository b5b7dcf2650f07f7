package hub

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/schemas"
)

// Event is one record as a view encoded it. Data is nil when the record is
// not for the view (filtered out, or it did not decode): such events still
// advance a subscriber's position. Data is shared and must not be modified.
type Event struct {
	Partition int32
	Offset    int64
	Timestamp int64
	Data      []byte
	Subject   []byte // consent subject (views that check consent); never sent
}

// partRing holds the most recent events of one partition for one view.
// It covers offsets [lo, hi): every record the reader saw in that range has
// an event here, so a position p with lo <= p can be served from the ring.
type partRing struct {
	ents []Event // circular, len == capacity once full
	head int     // index of the oldest event
	n    int
	lo   int64
	hi   int64
}

func (r *partRing) push(e Event, capacity int) {
	if len(r.ents) < capacity {
		r.ents = append(r.ents, e)
		r.n++
		r.hi = e.Offset + 1
		return
	}
	if r.n == capacity {
		old := r.ents[r.head]
		r.ents[r.head] = e
		r.head = (r.head + 1) % capacity
		r.lo = old.Offset + 1
	} else {
		r.ents[(r.head+r.n)%capacity] = e
		r.n++
	}
	r.hi = e.Offset + 1
}

// reset drops every event and restarts coverage at off (after a gap).
func (r *partRing) reset(off int64) {
	clear(r.ents)
	r.ents = r.ents[:0]
	r.head, r.n = 0, 0
	r.lo, r.hi = off, off
}

func (r *partRing) at(i int) *Event { return &r.ents[(r.head+i)%len(r.ents)] }

// from appends to dst up to max events with Offset >= pos.
func (r *partRing) from(dst []Event, pos int64, max int) []Event {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).Offset >= pos })
	for ; i < r.n && max > 0; i, max = i+1, max-1 {
		dst = append(dst, *r.at(i))
	}
	return dst
}

// viewRing is the shared, encoded recent history of one view of a product.
// The product's reader is its only writer.
type viewRing struct {
	view     view.View
	capacity int

	mu     sync.RWMutex
	parts  []partRing
	notify chan struct{} // closed and replaced on every publish
	closed bool

	refs int // guarded by product.mu
}

func newViewRing(v view.View, positions []int64, capacity int) *viewRing {
	r := &viewRing{view: v, capacity: capacity, notify: make(chan struct{})}
	r.parts = make([]partRing, len(positions))
	for p, off := range positions {
		r.parts[p].lo, r.parts[p].hi = off, off
	}
	return r
}

// waiter waits for a ring's publishes within one deadline, which starts
// at its first wait (the long poll of one read, however many times the
// read wakes to find nothing for it).
type waiter struct{ t *time.Timer }

// errDeadline: the waiter's deadline passed.
var errDeadline = errors.New("hub: wait deadline")

// wait blocks until notify (from r.wait, taken before the caller looked
// for data) is closed, and returns nil then; errDeadline when d has passed
// since the first wait, ctx.Err() when ctx ends, ErrClosed when the ring
// closed.
func (w *waiter) wait(ctx context.Context, r *viewRing, notify <-chan struct{}, d time.Duration) error {
	if w.t == nil {
		w.t = time.NewTimer(d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.t.C:
		return errDeadline
	case <-notify:
		r.mu.RLock()
		closed := r.closed
		r.mu.RUnlock()
		if closed {
			return ErrClosed
		}
		return nil
	}
}

// stop releases the waiter's timer.
func (w *waiter) stop() {
	if w.t != nil {
		w.t.Stop()
	}
}

// wait returns a channel closed at the next publish.
func (r *viewRing) wait() <-chan struct{} {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.notify
}

func (r *viewRing) wake() {
	close(r.notify)
	r.notify = make(chan struct{})
}

// arena is append space for encoded events, handed out in chunks. Events
// keep references into a chunk, so a full chunk is replaced by a new one,
// never grown (growing would copy everything and keep the old copy alive
// as long as any event points into it).
type arena struct{ buf []byte }

const arenaChunk = 256 << 10

// encode appends rec as v encodes it and, for consent views, its subject.
// sizeHint is the Avro size of the record; JSON is larger.
func (a *arena) encode(v view.View, cv view.ConsentView, rec *schemas.Record, m view.Meta, sizeHint int) (data, subject []byte) {
	need := 3*sizeHint + 512
	if cap(a.buf)-len(a.buf) < need {
		a.buf = make([]byte, 0, max(arenaChunk, need))
	}
	start := len(a.buf)
	var keep bool
	if a.buf, keep = v.Append(a.buf, rec, m); !keep {
		return nil, nil
	}
	data = a.buf[start:len(a.buf):len(a.buf)]
	if cv != nil {
		if subj := cv.Subject(rec); subj != nil {
			at := len(a.buf)
			a.buf = append(a.buf, subj...)
			subject = a.buf[at:len(a.buf):len(a.buf)]
		}
	}
	return data, subject
}

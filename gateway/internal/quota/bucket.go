package quota

import (
	"context"
	"math"
	"sync"
	"time"
)

// Bucket is a token bucket over two dimensions, records and bytes, sharing
// one depth (Limits.Burst, as time at the rate). A request is admitted only
// when both dimensions can pay for it. Safe for concurrent use.
//
// Each dimension is kept as the instant at which it will be full again (the
// "theoretical arrival time" of GCRA) in integer nanoseconds on the clock,
// so admission and Retry-After are exact and Take does not allocate:
//
//	backlog = max(0, full - now)            // time the bucket still needs to refill
//	tokens  = (depth - backlog) * rate      // negative while in debt
//	admit n when backlog + cost(min(n, capacity)) <= depth
//	then     full = max(full, now) + cost(n)
//
// A request larger than the bucket's capacity is admitted when the bucket is
// full and drives it into debt, which later requests wait off; so such a
// request is served (every capacity/rate seconds) instead of never.
type Bucket struct {
	clock Clock
	base  time.Time // clock offsets are measured from here

	mu       sync.Mutex
	plan     Limits // as given, for Limits and the RateLimit-Policy field
	depth    int64  // ns, plan.burst()
	records  dim
	bytes    dim
	consumed [2]int64 // records, bytes granted (Take, Wait, Charge), for a coordinator
}

// dim is one dimension of the bucket.
type dim struct {
	rate  float64 // tokens per second; 0: unlimited
	nsPer float64 // ns per token, 1e9/rate
	full  int64   // clock offset (ns) at which the bucket is full; <= now: full
}

// maxCost bounds one cost in ns (about 146 years) so sums cannot overflow.
const maxCost = int64(1) << 62

// NewBucket returns a full bucket for l. l should have passed Validate:
// NewBucket applies the defaults and treats a rate that is not a positive
// finite number as unlimited. A nil clock is SystemClock.
func NewBucket(l Limits, clock Clock) *Bucket {
	if clock == nil {
		clock = SystemClock
	}
	b := &Bucket{clock: clock, base: clock.Now()}
	b.plan = l
	b.depth = int64(l.burst())
	b.records.set(l.RecordsPerSec)
	b.bytes.set(l.BytesPerSec)
	return b
}

func (d *dim) set(rate float64) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		*d = dim{}
		return
	}
	d.rate = rate
	d.nsPer = min(1e9/rate, float64(maxCost)) // a token per 146 years at the slowest
}

// cost is the refill time of n tokens in ns, rounded up so rounding never
// admits more than the rate.
func (d *dim) cost(n int) int64 {
	if d.rate == 0 || n <= 0 {
		return 0
	}
	c := math.Ceil(float64(n) * d.nsPer)
	if c >= float64(maxCost) {
		return maxCost
	}
	return int64(c)
}

// wait is how long from now until a request costing c fits (<= 0: it fits).
func (d *dim) wait(now, depth, c int64) int64 {
	if d.rate == 0 {
		return math.MinInt64
	}
	backlog := max(d.full-now, 0)
	return backlog + min(c, depth) - depth
}

func (d *dim) take(now, c int64) {
	if d.rate == 0 {
		return
	}
	d.full = max(d.full, now) + c
}

// tokens is the fill at now; negative in debt, +Inf when unlimited.
func (d *dim) tokens(now, depth int64) float64 {
	if d.rate == 0 {
		return math.Inf(1)
	}
	backlog := max(d.full-now, 0)
	return float64(depth-backlog) / d.nsPer
}

// reconfigure switches the dimension to rate and depth keeping the number of
// tokens it holds now (clamped to the new capacity; debt is kept).
func (d *dim) reconfigure(now, oldDepth, depth int64, rate float64) {
	var next dim
	next.set(rate)
	if next.rate == d.rate && depth == oldDepth {
		return
	}
	tokens := d.tokens(now, oldDepth)
	next.full = d.full
	*d = next
	if d.rate == 0 {
		return
	}
	capacity := float64(depth) / d.nsPer
	missing := capacity - min(tokens, capacity) // >= 0
	d.full = now + int64(min(math.Ceil(missing*d.nsPer), float64(maxCost)))
}

// now is read before the lock is taken, to keep the critical section short.
// A now that is stale by the time the lock is held only understates the
// refill, so it can refuse a request a moment early but never over-admit.
func (b *Bucket) now() int64 { return int64(b.clock.Now().Sub(b.base)) }

// Take admits a request for records and bytes all or nothing (REST). When it
// does not fit, nothing is taken and retryAfter is how long until it would
// fit, exactly (to the nanosecond) if nothing else takes tokens meanwhile.
// Negative counts are taken as 0. Take does not allocate.
func (b *Bucket) Take(records, bytes int) (ok bool, retryAfter time.Duration) {
	records, bytes = max(records, 0), max(bytes, 0)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	cr, cb := b.records.cost(records), b.bytes.cost(bytes)
	w := max(b.records.wait(now, b.depth, cr), b.bytes.wait(now, b.depth, cb))
	if w > 0 {
		return false, time.Duration(w)
	}
	b.records.take(now, cr)
	b.bytes.take(now, cb)
	b.count(records, bytes)
	return true, 0
}

// Wait paces a delivery of records and bytes (SSE): it takes the tokens at
// once, possibly into debt, and sleeps until they would have been there, so
// nothing is ever dropped and a batch larger than the burst is delivered and
// then waited off by the following calls. Because the schedule is kept in
// the bucket, a caller that wakes late does not lose rate: the next call
// returns at once.
//
// When ctx ends first, the tokens are given back and Wait returns ctx.Err()
// promptly. Negative counts are taken as 0. Wait does not allocate when it
// does not sleep.
func (b *Bucket) Wait(ctx context.Context, records, bytes int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	records, bytes = max(records, 0), max(bytes, 0)
	now := b.now()
	b.mu.Lock()
	cr, cb := b.records.cost(records), b.bytes.cost(bytes)
	w := max(b.records.wait(now, b.depth, cr), b.bytes.wait(now, b.depth, cb))
	b.records.take(now, cr)
	b.bytes.take(now, cb)
	b.count(records, bytes)
	b.mu.Unlock()
	if w <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(w))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		b.Charge(-records, -bytes)
		return ctx.Err()
	}
}

// Charge takes tokens unconditionally, possibly into debt, which later Take
// and Wait calls wait off. It is for costs known only after the work, such
// as the bytes of a REST page once encoded. Negative counts give tokens
// back (never beyond a full bucket), e.g. for records reserved by Take but
// not delivered.
func (b *Bucket) Charge(records, bytes int) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	charge(&b.records, now, records)
	charge(&b.bytes, now, bytes)
	b.count(records, bytes)
}

func charge(d *dim, now int64, n int) {
	if n >= 0 {
		d.take(now, d.cost(n))
		return
	}
	if d.rate != 0 {
		d.full -= d.cost(-n) // at or before now means full
	}
}

func (b *Bucket) count(records, bytes int) {
	b.consumed[0] += int64(records)
	b.consumed[1] += int64(bytes)
}

// SetRate changes the rates the bucket refills at, keeping Burst as time
// (so the capacity scales with the rate) and keeping the tokens it holds now
// (clamped to the new capacity; debt is kept). A rate that is not a positive
// finite number means unlimited.
//
// It is the hook for a global coordinator that gives each replica its share
// of a partner's plan rate. The RateLimit-Policy field keeps advertising the
// plan (Limits); the RateLimit field reports this bucket's state.
func (b *Bucket) SetRate(recordsPerSec, bytesPerSec float64) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.records.reconfigure(now, b.depth, b.depth, recordsPerSec)
	b.bytes.reconfigure(now, b.depth, b.depth, bytesPerSec)
}

// setLimits replaces the plan, rates and depth, keeping the tokens held now.
func (b *Bucket) setLimits(l Limits) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	depth := int64(l.burst())
	b.records.reconfigure(now, b.depth, depth, l.RecordsPerSec)
	b.bytes.reconfigure(now, b.depth, depth, l.BytesPerSec)
	b.depth = depth
	b.plan = l
}

// Limits returns the plan the bucket was created or last updated with (not
// rates changed by SetRate; see Rates).
func (b *Bucket) Limits() Limits {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.plan
}

// Rates returns the rates the bucket currently refills at; 0 is unlimited.
func (b *Bucket) Rates() (recordsPerSec, bytesPerSec float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.records.rate, b.bytes.rate
}

// Tokens returns the current fill of each dimension: negative in debt,
// +Inf when the dimension is unlimited.
func (b *Bucket) Tokens() (records, bytes float64) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.records.tokens(now, b.depth), b.bytes.tokens(now, b.depth)
}

// Consumed returns the records and bytes granted since the bucket was
// created, net of tokens given back: the local demand a global coordinator
// would weigh when it splits a plan's rate between replicas.
func (b *Bucket) Consumed() (records, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.consumed[0], b.consumed[1]
}

package quota

import "sync"

// Registry holds one Bucket per (partner, product). Safe for concurrent use.
type Registry struct {
	clock Clock

	mu      sync.RWMutex
	buckets map[regKey]*regEntry
}

type regKey struct{ partner, product string }

type regEntry struct {
	limits Limits // guarded by Registry.mu
	b      *Bucket
}

// NewRegistry returns an empty registry whose buckets read clock (nil:
// SystemClock).
func NewRegistry(clock Clock) *Registry {
	if clock == nil {
		clock = SystemClock
	}
	return &Registry{clock: clock, buckets: make(map[regKey]*regEntry)}
}

// Bucket returns the bucket of partner on product, creating it full from l
// on first use. When l differs from the limits the bucket has, the bucket
// is updated in place to l, keeping the tokens it holds (clamped to the new
// depth; debt is kept): holders such as open streams pace at the new rate at
// once, and a plan change neither refills nor empties the bucket. A rate set
// by SetRate is replaced by the new plan's rate. The lookup does not
// allocate.
func (r *Registry) Bucket(partner, product string, l Limits) *Bucket {
	k := regKey{partner, product}
	r.mu.RLock()
	e := r.buckets[k]
	if e != nil && e.limits == l {
		r.mu.RUnlock()
		return e.b
	}
	r.mu.RUnlock()

	r.mu.Lock()
	defer r.mu.Unlock()
	e = r.buckets[k]
	switch {
	case e == nil:
		e = &regEntry{limits: l, b: NewBucket(l, r.clock)}
		r.buckets[k] = e
	case e.limits != l:
		e.b.setLimits(l)
		e.limits = l
	}
	return e.b
}

// Forget drops the bucket of partner on product (on revocation). Holders of
// the bucket may keep using it; the next Bucket call starts a full one.
func (r *Registry) Forget(partner, product string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.buckets, regKey{partner, product})
}

// Range calls f for each bucket until f returns false, e.g. for a
// coordinator that sets each bucket's share with SetRate. f must not call
// Bucket or Forget.
func (r *Registry) Range(f func(partner, product string, b *Bucket) bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for k, e := range r.buckets {
		if !f(k.partner, k.product, e.b) {
			return
		}
	}
}

// Len returns the number of buckets.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.buckets)
}

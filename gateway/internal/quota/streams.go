package quota

import "sync"

// Streams counts open streams per key (the caller's choice, typically a
// partner and product) and refuses one over the limit. The zero value is
// ready to use; safe for concurrent use.
type Streams struct {
	mu   sync.Mutex
	open map[string]int // only keys with open streams
}

// Acquire takes a stream slot for key if fewer than limit are open
// (limit <= 0: unlimited, still counted). On success release gives the slot
// back; calling it more than once has no further effect. On failure release
// is nil and ok false. A lowered limit refuses new streams but does not end
// open ones.
func (s *Streams) Acquire(key string, limit int) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.open[key]
	if limit > 0 && n >= limit {
		return nil, false
	}
	if s.open == nil {
		s.open = make(map[string]int)
	}
	s.open[key] = n + 1
	var once sync.Once
	return func() { once.Do(func() { s.release(key) }) }, true
}

func (s *Streams) release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.open[key]; n > 1 {
		s.open[key] = n - 1
	} else {
		delete(s.open, key)
	}
}

// Open returns the number of open streams for key.
func (s *Streams) Open(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[key]
}

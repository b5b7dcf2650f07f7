package quota

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestStreamsLimit(t *testing.T) {
	var s Streams
	r1, ok1 := s.Acquire("mvno-a/cdr", 2)
	r2, ok2 := s.Acquire("mvno-a/cdr", 2)
	r3, ok3 := s.Acquire("mvno-a/cdr", 2)
	if !ok1 || !ok2 || ok3 || r3 != nil {
		t.Fatalf("acquire ok = %v %v %v (release3 nil: %v); want true true false (nil)", ok1, ok2, ok3, r3 == nil)
	}
	if _, ok := s.Acquire("mvno-b/cdr", 2); !ok {
		t.Fatal("another key is refused")
	}
	r1()
	r1() // idempotent: the slot of r2 is not given away
	if n := s.Open("mvno-a/cdr"); n != 1 {
		t.Fatalf("open after double release = %d; want 1", n)
	}
	r4, ok := s.Acquire("mvno-a/cdr", 2)
	if !ok {
		t.Fatal("freed slot refused")
	}
	if _, ok := s.Acquire("mvno-a/cdr", 2); ok {
		t.Fatal("third stream admitted after a double release")
	}
	if _, ok := s.Acquire("mvno-a/cdr", 1); ok {
		t.Fatal("lowered limit admits")
	}
	if _, ok := s.Acquire("mvno-a/cdr", 0); !ok {
		t.Fatal("limit 0 (unlimited) refuses")
	}
	r2()
	r4()
	if n := s.Open("mvno-a/cdr"); n != 1 { // the unlimited one is still open
		t.Fatalf("open = %d; want 1", n)
	}
}

func TestStreamsConcurrent(t *testing.T) {
	const limit = 3
	var s Streams
	var inFlight, peak, admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 300 {
				release, ok := s.Acquire("k", limit)
				if !ok {
					refused.Add(1)
					runtime.Gosched()
					continue
				}
				admitted.Add(1)
				n := inFlight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				runtime.Gosched()
				inFlight.Add(-1)
				release()
				release() // a second call must not free another slot
			}
		})
	}
	wg.Wait()
	t.Logf("admitted %d, refused %d, peak %d", admitted.Load(), refused.Load(), peak.Load())
	if p := peak.Load(); p > limit {
		t.Fatalf("%d streams open at once; limit %d", p, limit)
	}
	if admitted.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("admitted %d, refused %d: the test did not contend", admitted.Load(), refused.Load())
	}
	if n := s.Open("k"); n != 0 {
		t.Fatalf("open after all released = %d", n)
	}
	if len(s.open) != 0 {
		t.Fatalf("%d keys left in the map", len(s.open))
	}
}

package quota

import (
	"sync"
	"testing"
	"time"
)

func TestRegistry(t *testing.T) {
	clock := newFakeClock()
	r := NewRegistry(clock)
	plan := Limits{RecordsPerSec: 1000, ConcurrentStreams: 2}
	b := r.Bucket("mvno-a", "cdr", plan)
	if r.Bucket("mvno-a", "cdr", plan) != b {
		t.Fatal("same key and limits gave another bucket")
	}
	if r.Bucket("mvno-a", "xdr", plan) == b || r.Bucket("mvno-b", "cdr", plan) == b {
		t.Fatal("another key shares the bucket")
	}
	if ok, _ := b.Take(400, 0); !ok {
		t.Fatal("take refused")
	}
	b.SetRate(500, 0) // a coordinator's share survives lookups with unchanged limits
	r.Bucket("mvno-a", "cdr", plan)
	if rr, _ := b.Rates(); rr != 500 {
		t.Fatalf("rate after lookup = %v; want 500", rr)
	}
	b.SetRate(1000, 0)

	steps := []struct {
		note   string
		limits Limits
		want   float64 // record tokens after the change
	}{
		{"downgrade: 500 tokens (after the share) clamped to the new depth", Limits{RecordsPerSec: 100}, 100},
		{"upgrade: not refilled", Limits{RecordsPerSec: 5000, Burst: 2 * time.Second}, 100},
		{"only the stream limit changes: tokens untouched", Limits{RecordsPerSec: 5000, Burst: 2 * time.Second, ConcurrentStreams: 9}, 100},
	}
	for _, s := range steps {
		if got := r.Bucket("mvno-a", "cdr", s.limits); got != b {
			t.Fatalf("%s: bucket replaced by another; holders would keep the old limits", s.note)
		}
		if tok, _ := b.Tokens(); tok != s.want {
			t.Fatalf("%s: tokens = %v; want %v", s.note, tok, s.want)
		}
		if b.Limits() != s.limits {
			t.Fatalf("%s: Limits = %+v", s.note, b.Limits())
		}
	}
	b.Charge(600, 0) // 500 in debt
	r.Bucket("mvno-a", "cdr", Limits{RecordsPerSec: 50})
	if tok, _ := b.Tokens(); tok != -500 {
		t.Fatalf("debt after a plan change = %v; want -500", tok)
	}
	if ok, ra := b.Take(1, 0); ok || ra != 10020*time.Millisecond {
		t.Fatalf("Take after change = %v, %v; want false, 10.02s at 50/s", ok, ra)
	}

	n := 0
	r.Range(func(partner, product string, _ *Bucket) bool { n++; return true })
	if n != 3 || r.Len() != 3 {
		t.Fatalf("Range saw %d, Len %d; want 3", n, r.Len())
	}
	r.Forget("mvno-a", "cdr")
	fresh := r.Bucket("mvno-a", "cdr", Limits{RecordsPerSec: 50})
	if fresh == b {
		t.Fatal("Forget kept the bucket")
	}
	if tok, _ := fresh.Tokens(); tok != 50 {
		t.Fatalf("new bucket after Forget has %v tokens; want full (50)", tok)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry(nil)
	var wg sync.WaitGroup
	got := make([]*Bucket, 16)
	for i := range got {
		wg.Go(func() {
			l := Limits{RecordsPerSec: float64(100 * (1 + i%2))} // two plans racing
			for range 200 {
				got[i] = r.Bucket("p", "q", l)
				got[i].Take(1, 0)
			}
		})
	}
	wg.Wait()
	for _, b := range got {
		if b != got[0] {
			t.Fatal("concurrent first use created two buckets")
		}
	}
}

package quota

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeClock is a Clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// 100 records/s (10 ms a record) and 10000 bytes/s (100 µs a byte): costs
// are whole nanoseconds, so every expectation below is exact.
var exactLimits = Limits{RecordsPerSec: 100, BytesPerSec: 10000, Burst: time.Second}

func TestTakeExact(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(exactLimits, clock)
	steps := []struct {
		note           string
		advance        time.Duration
		records, bytes int
		ok             bool
		retryAfter     time.Duration
	}{
		{note: "a full bucket admits part of its depth", records: 60, bytes: 1000, ok: true},
		{note: "and exactly the rest", records: 40, ok: true},
		{note: "records-limited: one more record is 10ms away", records: 1, retryAfter: 10 * time.Millisecond},
		{note: "half refilled", advance: 5 * time.Millisecond, records: 1, retryAfter: 5 * time.Millisecond},
		{note: "refilled exactly when retryAfter said", advance: 5 * time.Millisecond, records: 1, ok: true},
		{note: "a zero request fits an empty (not indebted) bucket", ok: true},
		{note: "after 490ms 49 records are there, 50 are 10ms away", advance: 490 * time.Millisecond, records: 50, retryAfter: 10 * time.Millisecond},
		{note: "49 fit", records: 49, ok: true},
		{note: "bytes are a separate bucket: all 10000 bytes, no record", bytes: 10000, ok: true},
		{note: "both full again after a second", advance: time.Second, records: 1, bytes: 12000, ok: true},
		{note: "bytes-limited: the 12000-byte batch (over the 10000 depth) went into 2000 bytes of debt; 1 byte is 200.1ms away though records are plentiful",
			records: 1, bytes: 1, retryAfter: 200*time.Millisecond + 100*time.Microsecond},
		{note: "debt waited off", advance: 200*time.Millisecond + 100*time.Microsecond, records: 1, bytes: 1, ok: true},
		{note: "both short: retryAfter is the later of the two (records 10ms, bytes 500ms)", records: 100, bytes: 5000, retryAfter: 500 * time.Millisecond},
		{note: "after 10s idle: the full depth of both", advance: 10 * time.Second, records: 100, bytes: 10000, ok: true},
		{note: "refill stopped at the depth: nothing more", records: 1, retryAfter: 10 * time.Millisecond},
		{note: "negative counts are zero", records: -5, bytes: -5, ok: true},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		ok, ra := b.Take(s.records, s.bytes)
		if ok != s.ok || ra != s.retryAfter {
			t.Fatalf("step %d (%s): Take(%d, %d) = %v, %v; want %v, %v", i, s.note, s.records, s.bytes, ok, ra, s.ok, s.retryAfter)
		}
	}
}

func TestTakeDeniedTakesNothing(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(exactLimits, clock)
	if ok, _ := b.Take(90, 9000); !ok {
		t.Fatal("first take refused")
	}
	r0, b0 := b.Tokens()
	for range 100 {
		if ok, _ := b.Take(20, 1); ok { // records short
			t.Fatal("take of 20 with 10 left admitted")
		}
		if ok, _ := b.Take(1, 2000); ok { // bytes short
			t.Fatal("take of 2000 bytes with 1000 left admitted")
		}
	}
	if r, by := b.Tokens(); r != r0 || by != b0 {
		t.Fatalf("tokens after refusals = %v, %v; want %v, %v", r, by, r0, b0)
	}
	if r, by := b.Consumed(); r != 90 || by != 9000 {
		t.Fatalf("Consumed = %d, %d; want 90, 9000", r, by)
	}
}

func TestOversizedTakeWhenFull(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(Limits{RecordsPerSec: 100}, clock) // depth 100 records
	if ok, _ := b.Take(1, 0); !ok {
		t.Fatal("take refused")
	}
	// 250 > depth: fits only in a full bucket, which is 10ms away.
	if ok, ra := b.Take(250, 0); ok || ra != 10*time.Millisecond {
		t.Fatalf("Take(250) = %v, %v; want false, 10ms", ok, ra)
	}
	clock.Advance(10 * time.Millisecond)
	if ok, _ := b.Take(250, 0); !ok {
		t.Fatal("Take(250) on a full bucket refused")
	}
	// 150 records of debt: the next record is 1.5s + 10ms away.
	if ok, ra := b.Take(1, 0); ok || ra != 1510*time.Millisecond {
		t.Fatalf("Take(1) in debt = %v, %v; want false, 1.51s", ok, ra)
	}
	if r, _ := b.Tokens(); r != -150 {
		t.Fatalf("tokens = %v; want -150", r)
	}
}

func TestChargeAndRefund(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(exactLimits, clock)
	b.Charge(30, 500)
	if r, by := b.Tokens(); r != 70 || by != 9500 {
		t.Fatalf("after Charge(30, 500) tokens = %v, %v; want 70, 9500", r, by)
	}
	b.Charge(-10, -100)
	if r, by := b.Tokens(); r != 80 || by != 9600 {
		t.Fatalf("after refund tokens = %v, %v; want 80, 9600", r, by)
	}
	b.Charge(-1000, -1_000_000) // never beyond full
	if r, by := b.Tokens(); r != 100 || by != 10000 {
		t.Fatalf("after over-refund tokens = %v, %v; want 100, 10000", r, by)
	}
	b.Charge(300, 0) // into debt; a zero-record request now waits the debt off
	if ok, ra := b.Take(0, 1); ok || ra != 2*time.Second {
		t.Fatalf("Take(0, 1) with 200 records of debt = %v, %v; want false, 2s", ok, ra)
	}
}

func TestSetRate(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(Limits{RecordsPerSec: 1000, BytesPerSec: 1e6}, clock)
	if ok, _ := b.Take(1000, 0); !ok {
		t.Fatal("take refused")
	}
	b.SetRate(2000, 1e6) // share doubled: capacity 2000, still empty
	if r, _ := b.Tokens(); r != 0 {
		t.Fatalf("tokens after SetRate = %v; want 0 (kept)", r)
	}
	clock.Advance(500 * time.Millisecond)
	if ok, _ := b.Take(1000, 0); !ok {
		t.Fatal("1000 records after 500ms at 2000/s refused")
	}
	if ok, ra := b.Take(1, 0); ok || ra != 500*time.Microsecond {
		t.Fatalf("Take(1) = %v, %v; want false, 500µs", ok, ra)
	}
	clock.Advance(time.Second)
	b.SetRate(500, 1e6) // full 2000 tokens, clamped to the new capacity 500
	if r, _ := b.Tokens(); r != 500 {
		t.Fatalf("tokens after lowering = %v; want 500", r)
	}
	b.SetRate(0, 1e6) // unlimited records
	if ok, _ := b.Take(1_000_000, 0); !ok {
		t.Fatal("unlimited records refused")
	}
	b.SetRate(1000, 1e6) // from unlimited: full
	if r, _ := b.Tokens(); r != 1000 {
		t.Fatalf("tokens back from unlimited = %v; want 1000", r)
	}
	if r, by := b.Rates(); r != 1000 || by != 1e6 {
		t.Fatalf("Rates = %v, %v", r, by)
	}
	if l := b.Limits(); l.RecordsPerSec != 1000 || l.BytesPerSec != 1e6 {
		t.Fatalf("Limits changed by SetRate: %+v", l)
	}
	// Debt survives a rate change as tokens owed.
	b.Charge(3000, 0) // -2000
	b.SetRate(2000, 1e6)
	if r, _ := b.Tokens(); r != -2000 {
		t.Fatalf("debt after SetRate = %v; want -2000", r)
	}
}

func TestUnlimited(t *testing.T) {
	b := NewBucket(Limits{}, newFakeClock())
	for range 10 {
		if ok, _ := b.Take(math.MaxInt32, math.MaxInt32); !ok {
			t.Fatal("unlimited bucket refused")
		}
	}
	if err := b.Wait(context.Background(), math.MaxInt32, math.MaxInt32); err != nil {
		t.Fatal(err)
	}
	// NaN and negative rates (limits that skipped Validate) are unlimited, not poison.
	b = NewBucket(Limits{RecordsPerSec: math.NaN(), BytesPerSec: -1}, newFakeClock())
	if ok, _ := b.Take(1e9, 1e9); !ok {
		t.Fatal("NaN/negative rate refused")
	}
}

func TestWaitPaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := NewBucket(Limits{RecordsPerSec: 100, Burst: time.Second}, nil)
		start := time.Now()
		at := func() time.Duration { return time.Since(start) }
		steps := []struct {
			note    string
			records int
			want    time.Duration // elapsed when Wait returns
		}{
			{"the burst is free", 100, 0},
			{"50 more: 500ms", 50, 500 * time.Millisecond},
			{"250, over the depth: waits for a full bucket (1s), then goes 150 into debt", 250, 1500 * time.Millisecond},
			{"the debt is waited off before the next record: +1.51s", 1, 3010 * time.Millisecond},
			{"paced at 10ms a record", 1, 3020 * time.Millisecond},
		}
		for _, s := range steps {
			if err := b.Wait(ctx, s.records, 0); err != nil {
				t.Fatal(err)
			}
			if got := at(); got != s.want {
				t.Fatalf("%s: Wait(%d) returned at %v; want %v", s.note, s.records, got, s.want)
			}
		}
		// Late wake-ups do not lose rate: sleeping past the schedule leaves the tokens there.
		time.Sleep(200 * time.Millisecond) // now 3.22s; 20 records accrued
		if err := b.Wait(ctx, 20, 0); err != nil {
			t.Fatal(err)
		}
		if got := at(); got != 3220*time.Millisecond {
			t.Fatalf("Wait(20) after sleeping = %v; want 3.22s (no wait)", got)
		}
		if r, _ := b.Consumed(); r != 422 {
			t.Fatalf("Consumed = %d; want 422", r)
		}
	})
}

func TestWaitCancelGivesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBucket(Limits{RecordsPerSec: 100, BytesPerSec: 1000}, nil)
		if err := b.Wait(context.Background(), 100, 1000); err != nil { // drain both
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		errc := make(chan error, 1)
		go func() { errc <- b.Wait(ctx, 100, 1000) }() // would sleep 1s
		time.Sleep(300 * time.Millisecond)
		cancel()
		err := <-errc
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v; want context.Canceled", err)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Fatalf("Wait returned after %v; want 300ms", d)
		}
		if r, by := b.Tokens(); r != 30 || by != 300 {
			t.Fatalf("tokens after cancel = %v, %v; want 30, 300 (reservation given back)", r, by)
		}
		if r, by := b.Consumed(); r != 100 || by != 1000 {
			t.Fatalf("Consumed = %d, %d; want 100, 1000", r, by)
		}
		// An already cancelled context takes nothing.
		if err := b.Wait(ctx, 1, 1); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait on cancelled ctx = %v", err)
		}
		if r, _ := b.Tokens(); r != 30 {
			t.Fatalf("tokens = %v; want 30", r)
		}
	})
}

// With the real clock: a Wait that would sleep 10s ends promptly on cancel.
func TestWaitCancelPromptRealClock(t *testing.T) {
	t.Parallel()
	b := NewBucket(Limits{RecordsPerSec: 1}, nil)
	if ok, _ := b.Take(1, 0); !ok {
		t.Fatal("take refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Wait(ctx, 10, 0) }()
	time.Sleep(20 * time.Millisecond) // let it block; the bound below does not depend on this
	start := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v; want context.Canceled", err)
		}
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Fatalf("Wait took %v to notice the cancel", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after cancel")
	}
}

// Eight goroutines taking from one bucket never get more than the depth
// plus the rate times the time elapsed since the bucket was made, checked
// after every grant (real clock, run with -race).
func TestConcurrentTakeBound(t *testing.T) {
	t.Parallel()
	const (
		recRate  = 5000.0
		byteRate = 400_000.0
		run      = 800 * time.Millisecond
	)
	start := time.Now() // before NewBucket: the bound at any later instant is looser than at the grant
	b := NewBucket(Limits{RecordsPerSec: recRate, BytesPerSec: byteRate, Burst: time.Second}, nil)
	var recs, byts atomic.Int64
	var violation atomic.Bool
	bound := func(rate float64) float64 {
		return rate*1 + rate*time.Since(start).Seconds() // depth (1s) + refill
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			n := 1 + g%7
			size := 40 + 30*g // goroutines with big records make bytes bind
			for time.Since(start) < run {
				if ok, _ := b.Take(n, n*size); !ok {
					continue
				}
				r, by := recs.Add(int64(n)), byts.Add(int64(n*size))
				if float64(r) > bound(recRate) || float64(by) > bound(byteRate) {
					violation.Store(true)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if violation.Load() {
		t.Fatalf("admitted more than depth + rate*t during the run")
	}
	r, by := recs.Load(), byts.Load()
	t.Logf("8 goroutines, %.3fs: %d records (bound %.0f), %d bytes (bound %.0f)", elapsed, r, recRate*(1+elapsed), by, byteRate*(1+elapsed))
	if float64(r) > recRate*(1+elapsed) || float64(by) > byteRate*(1+elapsed) {
		t.Fatalf("admitted %d records, %d bytes over %.3fs; bound %.0f, %.0f", r, by, elapsed, recRate*(1+elapsed), byteRate*(1+elapsed))
	}
	// Not starved either: the binding dimension got most of what it could.
	if float64(by) < 0.5*byteRate*elapsed && float64(r) < 0.5*recRate*elapsed {
		t.Fatalf("admitted only %d records, %d bytes over %.3fs", r, by, elapsed)
	}
}

// The same bound with a fake clock advanced while eight goroutines take:
// exact, independent of scheduling. The bucket first sits idle for 5s, so
// the bound also checks that refill stops at the depth.
func TestConcurrentTakeBoundFakeClock(t *testing.T) {
	clock := newFakeClock()
	b := NewBucket(Limits{RecordsPerSec: 1000, Burst: time.Second}, clock)
	clock.Advance(5 * time.Second)
	start := clock.Now()
	var recs atomic.Int64
	var over atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if ok, _ := b.Take(1+g, 0); ok {
					got := recs.Add(int64(1 + g))
					limit := 1000 + 1000*clock.Now().Sub(start).Seconds()
					if float64(got) > limit+1e-6 {
						over.Store(got)
					}
				}
			}
		})
	}
	for deadline := time.Now().Add(5 * time.Second); recs.Load() < 1000; {
		if time.Now().After(deadline) {
			t.Fatalf("takers got %d records of the 1000 burst in 5s", recs.Load())
		}
		runtime.Gosched()
	}
	for range 500 {
		clock.Advance(time.Millisecond)
		for range 10 {
			runtime.Gosched() // let the takers in; the bound does not depend on it
		}
	}
	close(stop)
	wg.Wait()
	if o := over.Load(); o != 0 {
		t.Fatalf("admitted %d records, over depth + rate*t", o)
	}
	got := recs.Load()
	t.Logf("admitted %d records in 500ms of fake time after 5s idle; bound 1500", got)
	if got > 1500 {
		t.Fatalf("admitted %d records in 500ms of fake time; at most 1500", got)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		l    Limits
		want string // substring; "" valid
	}{
		{Limits{}, ""},
		{Limits{RecordsPerSec: 50, BytesPerSec: 1e6, Burst: 2 * time.Second, ConcurrentStreams: 2, MonthlyRecords: 1e9}, ""},
		{Limits{RecordsPerSec: -1}, "quota: records per second -1 must be a finite number >= 0"},
		{Limits{BytesPerSec: math.Inf(1)}, "quota: bytes per second +Inf must be"},
		{Limits{RecordsPerSec: math.NaN()}, "records per second NaN"},
		{Limits{Burst: 500 * time.Millisecond}, "quota: burst 500ms must be 0 (default 1s) or at least 1s"},
		{Limits{ConcurrentStreams: -1}, "quota: concurrent streams -1 must be >= 0"},
		{Limits{MonthlyRecords: -1}, "quota: monthly records -1 must be >= 0"},
	} {
		err := c.l.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", c.l, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v; want it to contain %q", c.l, err, c.want)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	b := NewBucket(Limits{RecordsPerSec: 1e12, BytesPerSec: 1e15}, nil)
	if n := testing.AllocsPerRun(1000, func() { b.Take(10, 1000) }); n != 0 {
		t.Errorf("Take allocates %v per call", n)
	}
	denied := NewBucket(Limits{RecordsPerSec: 1}, nil)
	denied.Take(1, 0)
	if n := testing.AllocsPerRun(1000, func() { denied.Take(10, 0) }); n != 0 {
		t.Errorf("denied Take allocates %v per call", n)
	}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _ = b.Wait(ctx, 10, 1000) }); n != 0 {
		t.Errorf("Wait without sleeping allocates %v per call", n)
	}
	r := NewRegistry(nil)
	l := Limits{RecordsPerSec: 100}
	r.Bucket("mvno-a", "cdr", l)
	if n := testing.AllocsPerRun(1000, func() { r.Bucket("mvno-a", "cdr", l) }); n != 0 {
		t.Errorf("Registry.Bucket lookup allocates %v per call", n)
	}
}

package quota

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	for _, c := range []struct {
		note          string
		limits        Limits
		do            func(b *Bucket, clock *fakeClock)
		policy, state string // "" means absent
	}{
		{
			note:   "fresh bucket is full: r = q, nothing to reset",
			limits: Limits{RecordsPerSec: 2000},
			policy: `"records";q=2000;w=1`,
			state:  `"records";r=2000;t=0`,
		},
		{
			note:   "a quarter taken: full again in 250ms, rounded up",
			limits: Limits{RecordsPerSec: 2000},
			do:     func(b *Bucket, _ *fakeClock) { b.Take(500, 0) },
			policy: `"records";q=2000;w=1`,
			state:  `"records";r=1500;t=1`,
		},
		{
			note:   "emptied, then 300ms of refill",
			limits: Limits{RecordsPerSec: 2000},
			do:     func(b *Bucket, c *fakeClock) { b.Take(2000, 0); c.Advance(300 * time.Millisecond) },
			policy: `"records";q=2000;w=1`,
			state:  `"records";r=600;t=1`,
		},
		{
			note:   "whole seconds to full are not rounded up",
			limits: Limits{RecordsPerSec: 1000, Burst: 3 * time.Second},
			do:     func(b *Bucket, _ *fakeClock) { b.Take(2000, 0) },
			policy: `"records";q=3000;w=3`,
			state:  `"records";r=1000;t=2`,
		},
		{
			note:   "both dimensions, 2s burst",
			limits: Limits{RecordsPerSec: 2000, BytesPerSec: 1e6, Burst: 2 * time.Second},
			do:     func(b *Bucket, _ *fakeClock) { b.Take(1000, 1_500_000) },
			policy: `"records";q=4000;w=2, "bytes";q=2000000;qu="content-bytes";w=2`,
			state:  `"records";r=3000;t=1, "bytes";r=500000;t=2`,
		},
		{
			note:   "bytes only",
			limits: Limits{BytesPerSec: 1e6},
			do:     func(b *Bucket, _ *fakeClock) { b.Take(7, 250_000) },
			policy: `"bytes";q=1000000;qu="content-bytes";w=1`,
			state:  `"bytes";r=750000;t=1`,
		},
		{
			note:   "in debt: r is 0, t is until full",
			limits: Limits{RecordsPerSec: 2000},
			do:     func(b *Bucket, _ *fakeClock) { b.Charge(6000, 0) },
			policy: `"records";q=2000;w=1`,
			state:  `"records";r=0;t=3`,
		},
		{
			note:   "fractional: q and r round down, w and t round up",
			limits: Limits{RecordsPerSec: 2.5, Burst: 1500 * time.Millisecond},
			do:     func(b *Bucket, _ *fakeClock) { b.Take(1, 0) },
			policy: `"records";q=3;w=2`,
			state:  `"records";r=2;t=1`,
		},
		{
			note:   "a coordinator's share: the policy is the plan, the state is the share",
			limits: Limits{RecordsPerSec: 3000},
			do:     func(b *Bucket, _ *fakeClock) { b.SetRate(1000, 0) },
			policy: `"records";q=3000;w=1`,
			state:  `"records";r=1000;t=0`,
		},
		{
			note:   "integers are capped at 15 digits",
			limits: Limits{BytesPerSec: 1e16},
			policy: `"bytes";q=999999999999999;qu="content-bytes";w=1`,
			state:  `"bytes";r=999999999999999;t=0`,
		},
		{
			note:   "unlimited: no fields",
			limits: Limits{ConcurrentStreams: 3, MonthlyRecords: 10},
		},
	} {
		t.Run(c.note, func(t *testing.T) {
			clock := newFakeClock()
			b := NewBucket(c.limits, clock)
			if c.do != nil {
				c.do(b, clock)
			}
			h := http.Header{}
			h.Set("RateLimit", "stale")
			h.Set("RateLimit-Policy", "stale")
			b.Headers(h)
			checkHeaders(t, h, c.policy, c.state, -1)
		})
	}
}

func TestThrottledHeaders(t *testing.T) {
	for _, c := range []struct {
		note          string
		limits        Limits
		do            func(b *Bucket) (bool, time.Duration)
		retryAfter    string
		policy, state string
	}{
		{
			note:   "50ms away: Retry-After rounds up to 1, t capped to it",
			limits: Limits{RecordsPerSec: 2000},
			do: func(b *Bucket) (bool, time.Duration) {
				b.Take(2000, 0)
				return b.Take(100, 0)
			},
			retryAfter: "1",
			policy:     `"records";q=2000;w=1`,
			state:      `"records";r=0;t=1`,
		},
		{
			note:   "in debt: full in 4s, request fits in 2.5005s; t must not end after Retry-After",
			limits: Limits{RecordsPerSec: 2000},
			do: func(b *Bucket) (bool, time.Duration) {
				b.Charge(7000, 0)
				return b.Take(1, 0)
			},
			retryAfter: "3",
			policy:     `"records";q=2000;w=1`,
			state:      `"records";r=0;t=3`,
		},
		{
			note:   "bytes-limited: records untouched and full",
			limits: Limits{RecordsPerSec: 2000, BytesPerSec: 1000},
			do: func(b *Bucket) (bool, time.Duration) {
				b.Charge(0, 3000)
				return b.Take(1, 100)
			},
			retryAfter: "3",
			policy:     `"records";q=2000;w=1, "bytes";q=1000;qu="content-bytes";w=1`,
			state:      `"records";r=2000;t=0, "bytes";r=0;t=3`,
		},
	} {
		t.Run(c.note, func(t *testing.T) {
			b := NewBucket(c.limits, newFakeClock())
			ok, ra := c.do(b)
			if ok {
				t.Fatal("request admitted; the case needs a refusal")
			}
			h := http.Header{}
			b.ThrottledHeaders(h, ra)
			if got := h.Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After = %q; want %q (retryAfter %v)", got, c.retryAfter, ra)
			}
			maxT, _ := strconv.ParseInt(c.retryAfter, 10, 64)
			checkHeaders(t, h, c.policy, c.state, maxT)
		})
	}
}

// checkHeaders compares the fields with the expectation and checks they
// are what the draft requires: valid Structured Field Lists, every RateLimit
// item naming an advertised policy, r never above q, and (on a throttled
// response) no window ending after Retry-After.
func checkHeaders(t *testing.T, h http.Header, policy, state string, maxT int64) {
	t.Helper()
	if got := h.Get("RateLimit-Policy"); got != policy {
		t.Errorf("RateLimit-Policy = %q; want %q", got, policy)
	}
	if got := h.Get("RateLimit"); got != state {
		t.Errorf("RateLimit = %q; want %q", got, state)
	}
	if policy == "" {
		return
	}
	if err := checkFields(h, maxT); err != nil {
		t.Error(err)
	}
}

func checkFields(h http.Header, maxT int64) error {
	pols, err := checkPolicyField(h.Get("RateLimit-Policy"))
	if err != nil {
		return err
	}
	states, err := checkRateLimitField(h.Get("RateLimit"))
	if err != nil {
		return err
	}
	if len(states) != len(pols) {
		return fmt.Errorf("%d policies but %d service limits", len(pols), len(states))
	}
	for name, s := range states {
		p, ok := pols[name]
		if !ok {
			return fmt.Errorf("RateLimit names %q, not in RateLimit-Policy", name)
		}
		q, _ := p.param("q")
		r, _ := s.param("r")
		if r.i > q.i {
			return fmt.Errorf("policy %q: r=%d above q=%d", name, r.i, q.i)
		}
		if tt, ok := s.param("t"); ok && maxT >= 0 && tt.i > maxT {
			return fmt.Errorf("policy %q: t=%d ends after Retry-After %d", name, tt.i, maxT)
		}
	}
	return nil
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 1}, {-time.Second, 1}, {time.Nanosecond, 1}, {time.Second, 1},
		{time.Second + time.Nanosecond, 2}, {2500 * time.Millisecond, 3}, {time.Hour, 3600},
	} {
		if got := RetryAfterSeconds(c.d); got != c.want {
			t.Errorf("RetryAfterSeconds(%v) = %d; want %d", c.d, got, c.want)
		}
	}
}

// Whatever the limits and the state, the fields stay valid.
func FuzzHeaders(f *testing.F) {
	f.Add(2000.0, 1e6, int64(1000), int64(500), int64(100_000), int64(250), 0.0)
	f.Add(2.5, 0.0, int64(1500), int64(7), int64(0), int64(0), 1.0)
	f.Add(0.0, 1e16, int64(0), int64(0), int64(1<<40), int64(3000), 0.0)
	f.Add(1e-12, 3.0, int64(3600_000), int64(-5), int64(9), int64(1), 7.0)
	f.Add(1e300, 1e300, int64(1000), int64(math.MaxInt32), int64(-math.MaxInt32), int64(0), 1e300)
	f.Fuzz(func(t *testing.T, recRate, byteRate float64, burstMs, charge, chargeBytes, advanceMs int64, share float64) {
		l := Limits{RecordsPerSec: recRate, BytesPerSec: byteRate, Burst: time.Duration(burstMs) * time.Millisecond}
		if burstMs < 0 || burstMs > 1e9 || l.Validate() != nil {
			t.Skip()
		}
		clock := newFakeClock()
		b := NewBucket(l, clock)
		b.Charge(int(charge), int(chargeBytes))
		clock.Advance(time.Duration(advanceMs%1e12) * time.Millisecond)
		if share > 0 {
			b.SetRate(recRate*min(share, 1), byteRate*min(share, 1))
		}
		h := http.Header{}
		b.Headers(h)
		if h.Get("RateLimit-Policy") != "" {
			if err := checkFields(h, -1); err != nil {
				t.Fatal(err)
			}
		}
		ok, ra := b.Take(int(charge%1e6), int(chargeBytes%1e9))
		if ok {
			return
		}
		h = http.Header{}
		b.ThrottledHeaders(h, ra)
		maxT, err := strconv.ParseInt(h.Get("Retry-After"), 10, 64)
		if err != nil || maxT < 1 {
			t.Fatalf("Retry-After %q", h.Get("Retry-After"))
		}
		if h.Get("RateLimit-Policy") != "" {
			if err := checkFields(h, maxT); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func ExampleBucket_ThrottledHeaders() {
	clock := newFakeClock()
	b := NewBucket(Limits{RecordsPerSec: 2000, BytesPerSec: 1 << 20}, clock)
	b.Take(1500, 64<<10)
	h := http.Header{}
	b.Headers(h)
	fmt.Println("RateLimit-Policy:", h.Get("RateLimit-Policy"))
	fmt.Println("RateLimit:", h.Get("RateLimit"))

	if ok, retryAfter := b.Take(1000, 0); !ok {
		h := http.Header{}
		b.ThrottledHeaders(h, retryAfter) // then 429 problem+json
		fmt.Println("Retry-After:", h.Get("Retry-After"), "for", retryAfter)
		fmt.Println("RateLimit:", h.Get("RateLimit"))
	}
	// Output:
	// RateLimit-Policy: "records";q=2000;w=1, "bytes";q=1048576;qu="content-bytes";w=1
	// RateLimit: "records";r=500;t=1, "bytes";r=983040;t=1
	// Retry-After: 1 for 250ms
	// RateLimit: "records";r=500;t=1, "bytes";r=983040;t=1
}

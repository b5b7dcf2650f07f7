package quota

import (
	"fmt"
	"math"
	"time"
)

// DefaultBurst is the bucket depth used when Limits.Burst is zero: one
// second of traffic at the plan's rate.
const DefaultBurst = time.Second

// Limits is what a plan allows one partner on one product. The zero value of
// every field means "not limited"; a plan is expected to set them all.
type Limits struct {
	// RecordsPerSec is the sustained record rate. 0: unlimited.
	RecordsPerSec float64
	// BytesPerSec is the sustained rate of delivered bytes (the encoded
	// records). 0: unlimited.
	BytesPerSec float64
	// Burst is the depth of both buckets, as time at the rate: a partner
	// that was idle may take RecordsPerSec*Burst records at once.
	// 0: DefaultBurst (1s). Must be at least 1s, because the RateLimit-Policy
	// window it is advertised as is a whole number of seconds.
	Burst time.Duration
	// ConcurrentStreams is the number of SSE streams the partner may hold
	// open on the product at once. 0: unlimited.
	ConcurrentStreams int
	// MonthlyRecords is the number of records the partner may receive per
	// calendar month (UTC). 0: unlimited.
	MonthlyRecords int64
}

// Validate reports the first field that is out of range, naming the field,
// the value and the bound. Callers add who the limits belong to:
//
//	fmt.Errorf("plan %q: %w", plan, err)
func (l Limits) Validate() error {
	if err := validRate("records per second", l.RecordsPerSec); err != nil {
		return err
	}
	if err := validRate("bytes per second", l.BytesPerSec); err != nil {
		return err
	}
	if l.Burst != 0 && l.Burst < time.Second {
		return fmt.Errorf("quota: burst %v must be 0 (default %v) or at least 1s: the RateLimit-Policy window is whole seconds", l.Burst, DefaultBurst)
	}
	if l.ConcurrentStreams < 0 {
		return fmt.Errorf("quota: concurrent streams %d must be >= 0 (0 means unlimited)", l.ConcurrentStreams)
	}
	if l.MonthlyRecords < 0 {
		return fmt.Errorf("quota: monthly records %d must be >= 0 (0 means unlimited)", l.MonthlyRecords)
	}
	return nil
}

func validRate(name string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fmt.Errorf("quota: %s %v must be a finite number >= 0 (0 means unlimited)", name, v)
	}
	return nil
}

// burst returns l.Burst with the default applied.
func (l Limits) burst() time.Duration {
	if l.Burst <= 0 {
		return DefaultBurst
	}
	return l.Burst
}

// Clock tells the time. Buckets read it on every call; tests inject a fake.
// Only Now is abstracted: Wait sleeps on the runtime's timers, so tests of
// Wait run inside testing/synctest, whose bubble fakes both.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the real clock (time.Now, monotonic). A nil Clock means
// SystemClock.
var SystemClock Clock = systemClock{}

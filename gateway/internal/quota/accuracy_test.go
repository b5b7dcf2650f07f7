package quota

import (
	"context"
	"math"
	"runtime"
	"testing"
	"time"
)

// The acceptance, in miniature and with the real clock: a client
// pulling as fast as it can gets the plan's rate within ±5%. The bucket
// starts full, so the rate is measured from the first refusal (the burst
// is spent) to the last grant.
const (
	accuracyRate   = 2000.0 // records/s
	accuracyRun    = 3 * time.Second
	accuracyBatch  = 50   // records per request
	accuracyRecord = 100  // bytes per record; the byte rate below is not binding
	accuracyBytes  = 1e6  // bytes/s
	accuracyTol    = 0.05 // ±5%
)

func accuracyBucket() *Bucket {
	return NewBucket(Limits{RecordsPerSec: accuracyRate, BytesPerSec: accuracyBytes, Burst: time.Second}, nil)
}

// drain takes batches until the first refusal and returns its time.
func drain(t *testing.T, b *Bucket) time.Time {
	t.Helper()
	for range 1000 {
		if ok, _ := b.Take(accuracyBatch, accuracyBatch*accuracyRecord); !ok {
			return time.Now()
		}
	}
	t.Fatal("bucket never refused")
	return time.Time{}
}

func checkRate(t *testing.T, how string, records int64, start, last time.Time) {
	t.Helper()
	d := last.Sub(start).Seconds()
	rate := float64(records) / d
	t.Logf("%s: %d records in %.3fs = %.1f/s (plan %.0f/s, %+.2f%%)", how, records, d, rate, accuracyRate, 100*(rate/accuracyRate-1))
	if math.Abs(rate/accuracyRate-1) > accuracyTol {
		t.Fatalf("%s: achieved %.1f records/s; want %.0f ±%.0f%%", how, rate, accuracyRate, 100*accuracyTol)
	}
}

// A REST client that retries at once on 429: Take in a tight loop.
func TestAccuracyTake(t *testing.T) {
	t.Parallel()
	b := accuracyBucket()
	start := drain(t, b)
	done := make(chan struct{})
	var records int64
	var last time.Time
	go func() {
		defer close(done)
		for time.Since(start) < accuracyRun {
			if ok, _ := b.Take(accuracyBatch, accuracyBatch*accuracyRecord); ok {
				records += accuracyBatch
				last = time.Now()
			} else {
				runtime.Gosched()
			}
		}
	}()
	<-done
	checkRate(t, "Take, greedy", records, start, last)
}

// An SSE stream delivering as fast as Wait lets it.
func TestAccuracyWait(t *testing.T) {
	t.Parallel()
	b := accuracyBucket()
	start := drain(t, b)
	done := make(chan error, 1)
	var records int64
	var last time.Time
	go func() {
		ctx := context.Background()
		for time.Since(start) < accuracyRun {
			if err := b.Wait(ctx, accuracyBatch, accuracyBatch*accuracyRecord); err != nil {
				done <- err
				return
			}
			records += accuracyBatch
			last = time.Now()
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkRate(t, "Wait, paced", records, start, last)
}

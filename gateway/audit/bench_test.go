package audit_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/sluicehq/sluice/gateway/audit"
)

// BenchmarkAuditAppend measures acknowledged Appends per second with 8
// concurrent appenders through franz-go to the in-process broker (both on
// the same cores): each Append waits for its ack, so throughput comes from
// batching.
func BenchmarkAuditAppend(b *testing.B) {
	c := newBroker(b)
	l := openLog(b, c, "bench", func(cfg *audit.Config) { cfg.AckTimeout = 10 * time.Second })
	ev := sampleEvent(0)
	b.ReportAllocs()
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // 8 appenders on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(context.Background(), ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	st := l.Stats()
	if st.Batches > 0 {
		b.ReportMetric(float64(st.Appended)/float64(st.Batches), "events/batch")
	}
}

// BenchmarkAuditChain is the cost of ordering, encoding and hashing one
// event (the writer's per-event work), with a signed checkpoint every 1000.
func BenchmarkAuditChain(b *testing.B) {
	c, err := audit.NewChain("bench.x", "bench", testKey(1), nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Start(audit.ChainStart{}); err != nil {
		b.Fatal(err)
	}
	ev := sampleEvent(0)
	b.ReportAllocs()
	for b.Loop() {
		e := ev
		if _, err := c.Append(&e); err != nil {
			b.Fatal(err)
		}
		if c.CheckpointDue(1000, time.Hour) {
			if _, err := c.Checkpoint(false); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkAuditVerify is the cost of verifying one stored event.
func BenchmarkAuditVerify(b *testing.B) {
	lines, keys := fixture(b)
	b.ReportAllocs()
	for b.Loop() {
		v := audit.NewVerifier(audit.VerifyOptions{Keys: keys})
		for i, l := range lines {
			v.Add(audit.Position{Line: i + 1}, l)
		}
		if r := v.Report(); !r.OK() {
			b.Fatal(r.Problems)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/event")
}

package quota

import (
	"context"
	"testing"
)

// BenchmarkTake is the REST admission path: admitted (a rate no benchmark
// reaches) and refused.
func BenchmarkTake(b *testing.B) {
	b.Run("admitted", func(b *testing.B) {
		bk := NewBucket(Limits{RecordsPerSec: 1e15, BytesPerSec: 1e15}, nil)
		b.ReportAllocs()
		for b.Loop() {
			bk.Take(100, 25_000)
		}
	})
	b.Run("refused", func(b *testing.B) {
		bk := NewBucket(Limits{RecordsPerSec: 1, BytesPerSec: 1}, nil)
		bk.Take(1, 1)
		b.ReportAllocs()
		for b.Loop() {
			bk.Take(100, 25_000)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		bk := NewBucket(Limits{RecordsPerSec: 1e15, BytesPerSec: 1e15}, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				bk.Take(100, 25_000)
			}
		})
	})
}

// BenchmarkWait is the SSE path when the stream is within its rate.
func BenchmarkWait(b *testing.B) {
	bk := NewBucket(Limits{RecordsPerSec: 1e15, BytesPerSec: 1e15}, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = bk.Wait(ctx, 1, 250)
	}
}

func BenchmarkRegistryBucket(b *testing.B) {
	r := NewRegistry(nil)
	l := Limits{RecordsPerSec: 2000, BytesPerSec: 1 << 20}
	r.Bucket("mvno-a", "cdr", l)
	b.ReportAllocs()
	for b.Loop() {
		r.Bucket("mvno-a", "cdr", l)
	}
}

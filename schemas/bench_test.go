package schemas

import (
	"runtime"
	"testing"
)

func TestCDRTranscode(t *testing.T) {
	s := cdrSchema(t)
	l := mustLayout(t, s)
	d := mustDecoder(t, s, l)
	src := mustMarshal(t, s, sampleCDR())
	rec := l.NewRecord()
	if err := d.Decode(src, rec); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, appendObject(nil, keys(l), rec), sampleCDRJSON)
}

// TestCDRTranscodeAllocs pins the hot path at zero allocations: Decode plus
// JSON encoding of all 15 fields into a reused buffer.
func TestCDRTranscodeAllocs(t *testing.T) {
	s := cdrSchema(t)
	l := mustLayout(t, s)
	d := mustDecoder(t, s, l)
	src := mustMarshal(t, s, sampleCDR())
	rec := l.NewRecord()
	ks := keys(l)
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.Decode(src, rec); err != nil {
			t.Fatal(err)
		}
		buf = appendObject(buf[:0], ks, rec)
	})
	if allocs != 0 {
		t.Fatalf("Decode + AppendJSONValue allocated %.1f times per record, want 0", allocs)
	}
}

// BenchmarkTranscodeCDR measures Decode + JSON encoding of every field of
// a 15-field CDR (the per-record work of a view that passes all fields).
func BenchmarkTranscodeCDR(b *testing.B) {
	s := cdrSchema(b)
	l := mustLayout(b, s)
	d := mustDecoder(b, s, l)
	src := mustMarshal(b, s, sampleCDR())
	rec := l.NewRecord()
	ks := keys(l)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	// Pin the goroutine to one thread so its CPU time can be read: on a
	// shared machine wall time includes waiting for a core, CPU time does not.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := 0
	cpu0 := threadCPU()
	for b.Loop() {
		if err := d.Decode(src, rec); err != nil {
			b.Fatal(err)
		}
		buf = appendObject(buf[:0], ks, rec)
		n++
	}
	cpu := threadCPU() - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/record")
	}
}

func BenchmarkDecodeCDR(b *testing.B) {
	s := cdrSchema(b)
	l := mustLayout(b, s)
	d := mustDecoder(b, s, l)
	src := mustMarshal(b, s, sampleCDR())
	rec := l.NewRecord()
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(src, rec); err != nil {
			b.Fatal(err)
		}
	}
}

package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/internal/metrics"
	"github.com/sluicehq/sluice/gateway/internal/upstream"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/schemas"
)

const testSchema = `{"type":"record","name":"Row","fields":[{"name":"id","type":"long"},{"name":"note","type":"string"}]}`

// oddView keeps rows with an odd id, as JSON {"id":N}.
type oddView struct{}

func (oddView) Key() string { return "rows/odd" }

func (oddView) Append(dst []byte, rec *schemas.Record, m view.Meta) ([]byte, bool) {
	if m.Offset%2 == 0 {
		return dst, false
	}
	return fmt.Appendf(dst, `{"offset":%d}`, m.Offset), true
}

type hubEnv struct {
	p       *Product
	produce func(partition int32, n int)
}

func newHubEnv(t *testing.T, ringSize int) *hubEnv {
	t.Helper()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "rows"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	cluster, err := upstream.Dial(kgo.SeedBrokers(kc.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	schema := avro.MustParse(testSchema)
	codec, err := schemas.NewCodec("rows", schemas.FramingPlain, []schemas.SchemaVersion{{Version: 1, Schema: schema}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(kc.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	id := int64(0)
	produce := func(partition int32, n int) {
		t.Helper()
		for range n {
			id++
			b, err := avro.Marshal(schema, map[string]any{"id": id, "note": "n"})
			if err != nil {
				t.Fatal(err)
			}
			if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: "rows", Partition: partition, Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 10) // history, before the hub starts
	produce(1, 3)

	h := New(Config{RingSize: ringSize, MaxWait: 50 * time.Millisecond}, cluster, metrics.New(),
		slog.New(slog.NewTextHandler(io.Discard, nil)), []Source{{Product: "rows", Topic: "rows", Codec: codec}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	p := h.Product("rows")
	deadline := time.Now().Add(10 * time.Second)
	for p.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("hub not ready: %v", p.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &hubEnv{p: p, produce: produce}
}

// readAll reads a partition from offset until Next reaches end.
func readAll(t *testing.T, r *PartitionReader, partition int32, offset, end int64, limit int) []Event {
	t.Helper()
	var out []Event
	for offset < end {
		res, err := r.Read(context.Background(), partition, offset, limit, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.Next <= offset {
			t.Fatalf("no progress at offset %d of partition %d", offset, partition)
		}
		if res.High < res.Next {
			t.Errorf("High %d < Next %d", res.High, res.Next)
		}
		out = append(out, res.Events...)
		offset = res.Next
	}
	return out
}

func checkEvents(t *testing.T, evs []Event, from, to int64) {
	t.Helper()
	if len(evs) != int(to-from) {
		t.Fatalf("%d events for offsets [%d,%d)", len(evs), from, to)
	}
	for i, e := range evs {
		if e.Offset != from+int64(i) {
			t.Fatalf("event %d has offset %d, want %d", i, e.Offset, from+int64(i))
		}
		want := fmt.Sprintf(`{"offset":%d}`, e.Offset)
		if e.Offset%2 == 0 && e.Data != nil {
			t.Errorf("offset %d: filtered row has data %q", e.Offset, e.Data)
		}
		if e.Offset%2 == 1 && string(e.Data) != want {
			t.Errorf("offset %d: data %q, want %q", e.Offset, e.Data, want)
		}
		if e.Timestamp <= 0 {
			t.Errorf("offset %d: no timestamp", e.Offset)
		}
	}
}

// TestPartitionReaderHistoryAndLive: history before the ring reads
// directly from Kafka, live records come from the ring (and a waiting
// read wakes when they arrive), and offsets the ring has dropped read
// directly again. Filtered rows are events without data.
func TestPartitionReaderHistoryAndLive(t *testing.T) {
	e := newHubEnv(t, 4)
	r, err := e.p.PartitionReader(context.Background(), oddView{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	checkEvents(t, readAll(t, r, 0, 0, 10, 3), 0, 10) // history: direct, in pages of 3
	checkEvents(t, readAll(t, r, 1, 0, 3, 100), 0, 3)

	// Caught up: a waiting read returns nothing at the deadline...
	start := time.Now()
	res, err := r.Read(context.Background(), 0, 10, 10, 200*time.Millisecond)
	if err != nil || len(res.Events) != 0 || res.Next != 10 {
		t.Fatalf("caught-up read: %+v, %v", res, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("caught-up read returned after %s, want it to wait", d)
	}
	// ...and wakes for records produced meanwhile (served from the ring).
	go func() { time.Sleep(100 * time.Millisecond); e.produce(0, 3) }()
	res, err = r.Read(context.Background(), 0, 10, 10, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	evs := res.Events
	if res.Next < 13 {
		evs = append(evs, readAll(t, r, 0, res.Next, 13, 10)...)
	}
	checkEvents(t, evs, 10, 13)

	// The ring keeps 4 events: after 10 more, offset 13 is older than its
	// window and is read directly; the result is the same.
	e.produce(0, 10)
	deadline := time.Now().Add(5 * time.Second)
	for e.p.position(0) < 23 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	checkEvents(t, readAll(t, r, 0, 13, 23, 5), 13, 23)
	checkEvents(t, readAll(t, r, 0, 0, 23, 7), 0, 23)

	// Past the end: a position error.
	if _, err := r.Read(context.Background(), 0, 500, 10, 0); !errors.As(err, new(*PositionError)) {
		t.Errorf("read past the end: %v, want a PositionError", err)
	}
	r.Close()
	if _, err := r.Read(context.Background(), 0, 0, 10, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("read after Close: %v, want ErrClosed", err)
	}
}

// TestPartitionReaderConcurrent: reads of different partitions may run
// at once (the Kafka front door long-polls every partition of a fetch).
func TestPartitionReaderConcurrent(t *testing.T) {
	e := newHubEnv(t, 64)
	r, err := e.p.PartitionReader(context.Background(), oddView{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	errs := make(chan error, 2)
	for _, p := range []int32{0, 1} {
		go func() {
			res, err := r.Read(context.Background(), p, map[int32]int64{0: 10, 1: 3}[p], 10, 5*time.Second)
			if err == nil && len(res.Events) == 0 {
				err = fmt.Errorf("partition %d: nothing arrived", p)
			}
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	e.produce(0, 2)
	e.produce(1, 2)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// countingView is oddView counting its encodes.
type countingView struct {
	oddView
	n atomic.Int64
}

func (v *countingView) Append(dst []byte, rec *schemas.Record, m view.Meta) ([]byte, bool) {
	v.n.Add(1)
	return v.oddView.Append(dst, rec, m)
}

// TestPartitionReaderRawTail: a direct read encodes only the events it
// returns; the rest of the upstream fetch waits, not encoded, for the read
// that continues there, which then costs no upstream fetch. A read
// elsewhere fetches again.
func TestPartitionReaderRawTail(t *testing.T) {
	e := newHubEnv(t, 4)
	v := &countingView{}
	r, err := e.p.PartitionReader(context.Background(), v)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fetches := func() float64 {
		var m dto.Metric
		if err := e.p.h.m.DirectReads.WithLabelValues("rows", "catch_up").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	before := fetches()
	res, err := r.Read(context.Background(), 0, 0, 3, 0)
	if err != nil || len(res.Events) != 3 || res.Next != 3 {
		t.Fatalf("first read: %d events, next %d, %v", len(res.Events), res.Next, err)
	}
	if got := v.n.Load(); got != 3 {
		t.Fatalf("%d records encoded for 3 events returned", got)
	}
	checkEvents(t, append(res.Events, readAll(t, r, 0, 3, 10, 3)...), 0, 10)
	if got := v.n.Load(); got != 10 {
		t.Errorf("%d records encoded for 10 read", got)
	}
	if got := fetches() - before; got != 1 {
		t.Errorf("%v upstream fetches for 10 records in one fetch's reach, want 1", got)
	}
	// Not where the tail starts: an upstream fetch again, same result.
	res, err = r.Read(context.Background(), 0, 0, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, res.Events, 0, 2)
	if _, err := r.Read(context.Background(), 0, 5, 2, 0); err != nil {
		t.Fatal(err)
	}
	if got := fetches() - before; got != 3 {
		t.Errorf("%v upstream fetches after two reads elsewhere, want 3", got)
	}
}

package sseclient

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := ": hello\nretry: 2000\n\nid: 1\nevent: record\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\r\nid: 2\r\ndata:z\r\n\r\n: hb\n\nid: 3\nevent: cursor\n\ndata: tail"
	r := NewReader(strings.NewReader(in))
	want := []Event{
		{ID: "1", Type: "record", Data: []byte(`{"a":1}`), Retry: 2000},
		{ID: "1", Type: "message", Data: []byte("x\ny"), Retry: 2000},
		{ID: "2", Type: "message", Data: []byte("z"), Retry: 2000},
	}
	for i, w := range want {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if e.ID != w.ID || e.Type != w.Type || string(e.Data) != string(w.Data) || e.Retry != w.Retry {
			t.Fatalf("event %d = %+v, want %+v", i, e, w)
		}
	}
	// "id: 3" with no data is not dispatched, but it sets the last event id.
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		t.Fatalf("tail: %v", err)
	}
	if r.LastEventID() != "3" {
		t.Fatalf("LastEventID = %q, want 3", r.LastEventID())
	}
	if r.Comments != 2 {
		t.Fatalf("comments = %d, want 2", r.Comments)
	}
}

func FuzzReader(f *testing.F) {
	f.Add("id: 1\ndata: x\n\n")
	f.Add(":c\r\ndata\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		r := NewReader(strings.NewReader(s))
		for range 10000 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

// BenchmarkReader: sluice-shaped events (a cursor id, event: record, a
// 400-byte JSON data line).
func BenchmarkReader(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "id: c1AAAAAAAAAAAA%06d\nevent: record\ndata: {\"n\":%d,\"pad\":\"%s\"}\n\n", i, i, strings.Repeat("x", 380))
	}
	stream := sb.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / 1000))
	var r *Reader
	n := 0
	for b.Loop() {
		if n%1000 == 0 {
			r = NewReader(strings.NewReader(stream))
		}
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

func TestReaderAllocs(t *testing.T) {
	var sb strings.Builder
	for i := range 200 {
		fmt.Fprintf(&sb, "id: c1AAAA%06d\nevent: record\ndata: {\"n\":%d}\n\n", i, i)
	}
	r := NewReader(strings.NewReader(sb.String()))
	r.Next() // warm the line buffer
	// An event costs its id string and its data slice; nothing per line.
	if n := testing.AllocsPerRun(100, func() { r.Next() }); n > 3 {
		t.Fatalf("%v allocations per event, want at most 3", n)
	}
}

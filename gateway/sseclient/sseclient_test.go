package sseclient

import (
	"errors"
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

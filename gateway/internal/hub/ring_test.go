package hub

import (
	"slices"
	"testing"
)

func offsets(evs []Event) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.Offset)
	}
	return out
}

func TestPartRingWindow(t *testing.T) {
	var r partRing
	r.lo, r.hi = 10, 10
	// Offsets with a gap (a transaction marker at 13).
	for _, o := range []int64{10, 11, 12, 14, 15, 16, 17} {
		r.push(Event{Offset: o}, 4)
	}
	if r.lo != 13 || r.hi != 18 {
		t.Fatalf("window [%d,%d), want [13,18): the 4 newest events 14..17 cover from 13", r.lo, r.hi)
	}
	for _, tc := range []struct {
		note string
		pos  int64
		max  int
		want []int64
	}{
		{"from window start", 13, 10, []int64{14, 15, 16, 17}},
		{"inside", 15, 10, []int64{15, 16, 17}},
		{"bounded", 14, 2, []int64{14, 15}},
		{"at end", 18, 10, nil},
	} {
		if got := offsets(r.from(nil, tc.pos, tc.max)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: from(%d) = %v, want %v", tc.note, tc.pos, got, tc.want)
		}
	}
	r.reset(100)
	if r.lo != 100 || r.hi != 100 || r.n != 0 {
		t.Fatalf("after reset: [%d,%d) n=%d", r.lo, r.hi, r.n)
	}
	r.push(Event{Offset: 100}, 4)
	if got := offsets(r.from(nil, 100, 10)); !slices.Equal(got, []int64{100}) {
		t.Fatalf("after reset and push: %v", got)
	}
}

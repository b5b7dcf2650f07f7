package cursor

import (
	"errors"
	"slices"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	tag := Tag("cdr")
	for _, pos := range [][]int64{{0}, {0, 1, 2}, {1 << 40, 7, 0, 123456789}, make([]int64, 100)} {
		c := Encode(tag, pos)
		got, err := Decode(c, tag)
		if err != nil {
			t.Fatalf("Decode(%q): %v", c, err)
		}
		if !slices.Equal(got, pos) {
			t.Fatalf("round trip %v -> %q -> %v", pos, c, got)
		}
	}
}

func TestRejects(t *testing.T) {
	tag := Tag("cdr")
	good := Encode(tag, []int64{1, 2, 3})
	for _, tc := range []struct {
		note string
		in   string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"no prefix", "abc", ErrMalformed},
		{"bad base64", "c1!!!", ErrMalformed},
		{"too short", "c1AAAA", ErrMalformed},
		{"trailing", good + "AA", ErrMalformed},
		{"truncated", good[:len(good)-2], ErrMalformed},
		{"other product", Encode(Tag("fraud-alerts"), []int64{1, 2, 3}), ErrOtherProduct},
	} {
		if _, err := Decode(tc.in, tag); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode(%q) = %v, want %v", tc.note, tc.in, err, tc.want)
		}
	}
}

func TestAppendAllocs(t *testing.T) {
	pos := []int64{100, 200, 300}
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], 1, pos) }); n != 0 {
		t.Fatalf("Append allocates %v times, want 0", n)
	}
}

func FuzzDecode(f *testing.F) {
	tag := Tag("cdr")
	f.Add(Encode(tag, []int64{0, 1, 2}))
	f.Add("c1")
	f.Add("c1AAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := Decode(s, tag)
		if err != nil {
			return
		}
		if again := Encode(tag, pos); again != s {
			// Non-canonical varints may decode; the re-encoding must decode to the same positions.
			p2, err := Decode(again, tag)
			if err != nil || !slices.Equal(p2, pos) {
				t.Fatalf("re-encoding %q -> %q does not round trip: %v", s, again, err)
			}
		}
	})
}

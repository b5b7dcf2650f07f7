package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewKeyParses(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, presented := newKey()
		got, ok := parseKey(presented)
		if !ok || got != id || len(presented) != keyLen {
			t.Fatalf("parseKey(%q) = %q, %v; want %q", presented, got, ok, id)
		}
		if seen[id] {
			t.Fatalf("duplicate key id %s", id)
		}
		seen[id] = true
	}
}

func TestParseKeyAllocs(t *testing.T) {
	_, presented := newKey()
	if n := testing.AllocsPerRun(100, func() { parseKey(presented) }); n != 0 {
		t.Fatalf("parseKey allocates %v times", n)
	}
}

// FuzzVerifyKey: parsing never panics; whatever parses is a well-formed
// key; VerifyKey of arbitrary input fails with a key sentinel and never
// repeats the secret part.
func FuzzVerifyKey(f *testing.F) {
	_, valid := newKey()
	for _, seed := range []string{
		"", "slk_", "slk__", valid, valid[:len(valid)-1], valid + "A", strings.ToUpper(valid),
		"slk_aaaaaaaaaaaaaaaa_" + strings.Repeat("A", keySecretLen),
		"slk_aaaaaaaaaaaaaaaa_" + strings.Repeat("/", keySecretLen),
		"slk_aaaaaaaaaaaaaaaa-" + strings.Repeat("A", keySecretLen),
		"Bearer " + valid, "slk_\x00\xff", strings.Repeat("slk_", 16),
	} {
		f.Add(seed)
	}
	s, err := Open(context.Background(), filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, presented string) {
		id, ok := parseKey(presented)
		if ok {
			if len(presented) != keyLen || presented != keyPrefix+id+presented[len(keyPrefix)+keyIDLen:] ||
				strings.ContainsAny(id, "_-") {
				t.Fatalf("parseKey(%q) accepted id %q", presented, id)
			}
		}
		_, err := s.VerifyKey(context.Background(), presented)
		if err == nil {
			t.Fatalf("VerifyKey(%q) succeeded on an empty store", presented)
		}
		if want := map[bool]error{true: ErrKeyNotFound, false: ErrKeyMalformed}[ok]; !errors.Is(err, want) {
			t.Fatalf("VerifyKey(%q) = %v, want %v", presented, err, want)
		}
		if secret := presented[min(len(presented), len(keyPrefix)+keyIDLen+1):]; len(secret) >= 8 && strings.Contains(err.Error(), secret) {
			t.Fatalf("error %q repeats the secret", err)
		}
	})
}

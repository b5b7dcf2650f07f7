package store

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha512"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestScramKey: a key's SCRAM-SHA-512 credential lets a server check a
// client that knows the secret (RFC 5802: the client's proof, the server's
// signature) and nobody else; unknown ids and keys without a credential
// (created before it was kept) are told apart; the key's state is left to
// KeyInfo.Check.
func TestScramKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := t.Context()
		seedBasics(t, s)
		k, presented, err := s.CreateKey(ctx, "mvno-a", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		got, sc, err := s.ScramKey(ctx, k.ID)
		if err != nil || got != k {
			t.Fatalf("ScramKey = %+v, %v; want %+v", got, err, k)
		}
		if len(sc.Salt) != 32 || sc.Iterations != 4096 || len(sc.StoredKey) != 64 || len(sc.ServerKey) != 64 {
			t.Fatalf("credential shape: salt %d bytes, %d iterations, keys %d/%d bytes", len(sc.Salt), sc.Iterations, len(sc.StoredKey), len(sc.ServerKey))
		}
		// The client side of a login, from the password alone.
		authMessage := []byte("n=" + k.ID + ",r=abc,r=abcdef,s=...,i=4096,c=biws,r=abcdef")
		proof := func(password string) (clientProof, serverSig []byte) {
			salted, err := pbkdf2.Key(sha512.New, password, sc.Salt, sc.Iterations, sha512.Size)
			if err != nil {
				t.Fatal(err)
			}
			mac := func(key, msg []byte) []byte { h := hmac.New(sha512.New, key); h.Write(msg); return h.Sum(nil) }
			clientKey := mac(salted, []byte("Client Key"))
			stored := sha512.Sum512(clientKey)
			sig := mac(stored[:], authMessage)
			for i := range clientKey {
				clientKey[i] ^= sig[i]
			}
			return clientKey, mac(mac(salted, []byte("Server Key")), authMessage)
		}
		// The server side, from the stored credential alone.
		verify := func(clientProof []byte) bool {
			h := hmac.New(sha512.New, sc.StoredKey)
			h.Write(authMessage)
			ck := h.Sum(nil)
			for i := range ck {
				ck[i] ^= clientProof[i]
			}
			sum := sha512.Sum512(ck)
			return hmac.Equal(sum[:], sc.StoredKey)
		}
		secret := presented[len(keyPrefix)+keyIDLen+1:]
		p, serverSig := proof(secret)
		if !verify(p) {
			t.Fatal("the secret's proof does not verify against the stored credential")
		}
		h := hmac.New(sha512.New, sc.ServerKey)
		h.Write(authMessage)
		if !hmac.Equal(h.Sum(nil), serverSig) {
			t.Fatal("the server signature does not match what the client expects")
		}
		last := "A"
		if strings.HasSuffix(secret, last) {
			last = "B"
		}
		if wrong, _ := proof(secret[:len(secret)-1] + last); verify(wrong) {
			t.Fatal("a wrong password's proof verifies")
		}
		if wrong, _ := proof(presented); verify(wrong) {
			t.Fatal("the whole key as password verifies; the password is the secret")
		}

		if _, _, err := s.ScramKey(ctx, strings.Repeat("a", keyIDLen)); !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("unknown id: %v, want ErrKeyNotFound", err)
		}
		k2, _, err := s.CreateKey(ctx, "mvno-a", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		rawExec(t, s, `UPDATE api_keys SET scram_salt = NULL, scram_iterations = NULL, scram_stored_key = NULL, scram_server_key = NULL WHERE id = $1`, k2.ID)
		if _, _, err := s.ScramKey(ctx, k2.ID); !errors.Is(err, ErrKeyNoScram) {
			t.Fatalf("key without credential: %v, want ErrKeyNoScram", err)
		}
		// Revoked and expired keys are returned; Check judges them.
		if err := s.RevokeKey(ctx, "mvno-a", k.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		got, _, err = s.ScramKey(ctx, k.ID)
		if err != nil || !errors.Is(got.Check(time.Now()), ErrKeyRevoked) {
			t.Fatalf("revoked key: %+v, %v; Check = %v", got, err, got.Check(time.Now()))
		}
		if err := k2.Check(k2.ExpiresAt); !errors.Is(err, ErrKeyExpired) {
			t.Fatalf("Check at expiry = %v, want ErrKeyExpired", err)
		}
		if err := k2.Check(k2.ExpiresAt.Add(-time.Second)); err != nil {
			t.Fatalf("Check before expiry = %v", err)
		}
	})
}

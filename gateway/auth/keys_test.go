package auth_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluicehq/sluice/gateway/auth"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDevKey(t *testing.T) {
	dir := t.TempDir()
	key, kid, err := auth.DevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "auth", "dev-signing-key.pem")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(kid) {
		t.Errorf("kid %q, want 16 hex digits", kid)
	}
	if want, _ := auth.KeyID(key.Public()); kid != want {
		t.Errorf("kid %s, KeyID %s", kid, want)
	}
	before, _ := os.ReadFile(path)

	key2, kid2, err := auth.DevKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if !key.Equal(key2) || kid2 != kid || !bytes.Equal(before, after) {
		t.Error("second DevKey call did not reuse the key")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "auth"))
	if len(entries) != 1 {
		t.Errorf("auth dir holds %d entries; want only the key (no temp files left)", len(entries))
	}

	other, otherKID, err := auth.DevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other.Equal(key) || otherKID == kid {
		t.Error("two data dirs got the same key")
	}

	if runtime.GOOS != "windows" {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := auth.DevKey(dir); err == nil || !strings.Contains(err.Error(), "must be 0600") {
			t.Errorf("world-readable key: err %v", err)
		}
		os.Chmod(path, 0o600)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := auth.DevKey(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("corrupt key: err %v", err)
	}
}

// TestDevKeyConcurrentFirstUse: callers racing to create the key agree on
// one.
func TestDevKeyConcurrentFirstUse(t *testing.T) {
	dir := t.TempDir()
	kids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Go(func() {
			_, kid, err := auth.DevKey(dir)
			if err != nil {
				t.Error(err)
			}
			kids[i] = kid
		})
	}
	wg.Wait()
	for _, k := range kids {
		if k != kids[0] {
			t.Fatalf("kids differ: %v", kids)
		}
	}
}

// TestDevTokenVerifiesAgainstServedJWKS signs with the dev key and
// verifies through the dev key's JWKS served over HTTP.
func TestDevTokenVerifiesAgainstServedJWKS(t *testing.T) {
	key, kid, err := auth.DevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := newJWKSServer(t, auth.PublicKey{KID: kid, Key: key.Public()})
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: auth.DevIssuer, Audience: auth.DevAudience, JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	tok, err := auth.Sign(key, kid, auth.DevIssuer, auth.DevAudience, "enterprise-x", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id, f := v.Verify(context.Background(), "Bearer "+tok)
	if f != nil {
		t.Fatalf("%s: %s", f.Type, f.Detail)
	}
	if id.Partner != "enterprise-x" || id.KeyID != kid || time.Until(id.Expires) > 10*time.Minute || time.Until(id.Expires) < 9*time.Minute {
		t.Errorf("identity %+v", id)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Method.Alg() != "EdDSA" || parsed.Header["kid"] != kid {
		t.Errorf("header %v", parsed.Header)
	}
	if c := parsed.Claims.(jwt.MapClaims); c["jti"] == nil || c["iat"] == nil {
		t.Errorf("claims %v lack jti or iat", c)
	}
	// Another data dir's key does not verify.
	other, otherKID, err := auth.DevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := auth.Sign(other, otherKID, auth.DevIssuer, auth.DevAudience, "enterprise-x", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, f = v.Verify(context.Background(), "Bearer "+tok2)
	checkFailure(t, f, auth.ProblemTokenUnknownKey, tok2)
}

func TestSign(t *testing.T) {
	k := keys()
	v := newVerifier(t, auth.Config{StaticKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.ec.PublicKey, k.ed.Public()}})
	for _, signer := range []crypto.Signer{k.rsa, k.ec, k.ed} {
		kid, _ := auth.KeyID(signer.Public())
		tok, err := auth.Sign(signer, kid, testIssuer, testAudience, "mvno-b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if id, f := v.Verify(context.Background(), "Bearer "+tok); f != nil || id.Partner != "mvno-b" || id.KeyID != kid {
			t.Errorf("%T: %+v %v", signer, id, f)
		}
	}
	if _, err := auth.Sign(k.ed, "", "i", "a", "p", 0); err == nil {
		t.Error("ttl 0 accepted")
	}
	if _, err := auth.Sign(nil, "", "i", "a", "p", time.Minute); err == nil {
		t.Error("nil key accepted")
	}
}

func TestJWKS(t *testing.T) {
	k := keys()
	data, err := auth.JWKS(auth.PublicKey{KID: "r1", Key: &k.rsa.PublicKey}, auth.PublicKey{Key: k.ec}, auth.PublicKey{KID: "e1", Key: k.ed.Public()})
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	want := []struct{ kid, kty, alg string }{{"r1", "RSA", "RS256"}, {k.ecKID, "EC", "ES256"}, {"e1", "OKP", "EdDSA"}}
	if len(set.Keys) != len(want) {
		t.Fatalf("%d keys: %s", len(set.Keys), data)
	}
	for i, w := range want {
		got := set.Keys[i]
		if got["kid"] != w.kid || got["kty"] != w.kty || got["alg"] != w.alg || got["use"] != "sig" {
			t.Errorf("key %d: %v, want %+v", i, got, w)
		}
		if _, private := got["d"]; private {
			t.Errorf("key %d carries private material: %v", i, got)
		}
	}
	empty, err := auth.JWKS()
	if err != nil || string(empty) != `{"keys":[]}` {
		t.Errorf("empty JWKS %s, %v", empty, err)
	}
	if _, err := auth.JWKS(auth.PublicKey{Key: "not a key"}); err == nil {
		t.Error("JWKS accepted a string")
	}
}

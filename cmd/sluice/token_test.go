package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// devPublicKey reads the dev key file the way the gateway does
// (gateway/auth.DevKey: PKCS #8 Ed25519, kid = first 16 hex digits
// of SHA-256 of the PKIX public key), independently of token.go.
func devPublicKey(t *testing.T, dataDir string) (ed25519.PublicKey, string) {
	t.Helper()
	path := filepath.Join(dataDir, "auth", "dev-signing-key.pem")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("key file is not a PEM PRIVATE KEY:\n%s", data)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.(ed25519.PrivateKey).Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return pub, hex.EncodeToString(sum[:8])
}

func runToken(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = tokenCmd(args, &out, &errb)
	return out.String(), errb.String(), err
}

// verifyDev verifies a token as the embedded gateway does: EdDSA only, the
// dev issuer and audience, an exp, and the kid of the data dir's key.
func verifyDev(token string, pub ed25519.PublicKey, kid string) (jwt.MapClaims, error) {
	c := jwt.MapClaims{}
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer("sluice-dev"), jwt.WithAudience("sluice"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
	).ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != kid {
			return nil, jwt.ErrTokenUnverifiable
		}
		return pub, nil
	})
	return c, err
}

func TestTokenCmd(t *testing.T) {
	dir := t.TempDir()
	out, errOut, err := runToken(t, "--data-dir", dir, "--partner", "mvno-a", "--ttl", "10m")
	if err != nil {
		t.Fatal(err)
	}
	if errOut != "" {
		t.Errorf("stderr %q, want nothing", errOut)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") || strings.ContainsAny(strings.TrimSuffix(out, "\n"), " \t\r") {
		t.Fatalf("stdout %q, want exactly the token and a newline", out)
	}
	token := strings.TrimSuffix(out, "\n")
	pub, kid := devPublicKey(t, dir)
	c, err := verifyDev(token, pub, kid)
	if err != nil {
		t.Fatalf("token does not verify with the data dir's dev key: %v", err)
	}
	exp, _ := c.GetExpirationTime()
	if c["sub"] != "mvno-a" || exp == nil || time.Until(exp.Time) > 10*time.Minute || time.Until(exp.Time) < 9*time.Minute {
		t.Errorf("claims %v, want sub mvno-a and exp in 10m", c)
	}

	// A second token reuses the key.
	out2, _, err := runToken(t, "--data-dir", dir, "--partner", "regulator")
	if err != nil {
		t.Fatal(err)
	}
	if pub2, kid2 := devPublicKey(t, dir); !pub2.Equal(pub) || kid2 != kid {
		t.Error("second run replaced the dev key")
	}
	c, err = verifyDev(strings.TrimSpace(out2), pub, kid)
	if err != nil || c["sub"] != "regulator" {
		t.Errorf("second token: %v %v", c, err)
	}
	exp, _ = c.GetExpirationTime()
	if exp == nil || time.Until(exp.Time) < 59*time.Minute || time.Until(exp.Time) > time.Hour {
		t.Errorf("default ttl: exp %v, want in 1h", exp)
	}

	// Another data dir's key does not verify it.
	other := t.TempDir()
	if _, _, err := runToken(t, "--data-dir", other, "--partner", "mvno-a"); err != nil {
		t.Fatal(err)
	}
	otherPub, otherKID := devPublicKey(t, other)
	if _, err := verifyDev(token, otherPub, otherKID); err == nil {
		t.Error("token verifies with another data dir's key")
	}
}

func TestTokenCmdErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		note string
		args []string
		want []string
	}{
		{"unknown partner", []string{"--data-dir", dir, "--partner", "mvno-z"}, []string{`unknown partner "mvno-z"`,
			"registered partners: admin, enterprise-x, internal-fraud, internal-noc, iot-fleet, mvno-a, mvno-b, regulator"}},
		{"no partner", []string{"--data-dir", dir}, []string{"--partner is required", "mvno-a"}},
		{"zero ttl", []string{"--data-dir", dir, "--partner", "mvno-a", "--ttl", "0s"}, []string{"--ttl 0s out of range"}},
		{"huge ttl", []string{"--data-dir", dir, "--partner", "mvno-a", "--ttl", "8760h"}, []string{"out of range"}},
		{"extra argument", []string{"--partner", "mvno-a", "now"}, []string{`unexpected argument "now"`}},
		{"unknown flag", []string{"--partner", "mvno-a", "--scope", "x"}, []string{"flag provided but not defined"}},
	} {
		t.Run(tc.note, func(t *testing.T) {
			out, _, err := runToken(t, tc.args...)
			if err == nil {
				t.Fatal("succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if out != "" {
				t.Errorf("stdout %q on error", out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "auth")); err == nil {
		t.Error("a failed token command created the key directory")
	}

	// A group-readable key is refused, not used.
	if _, _, err := runToken(t, "--data-dir", dir, "--partner", "mvno-a"); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(filepath.Join(dir, "auth", "dev-signing-key.pem"), 0o640); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runToken(t, "--data-dir", dir, "--partner", "mvno-a"); err == nil || !strings.Contains(err.Error(), "must be 0600") {
			t.Errorf("group-readable key: %v", err)
		}
	}
}

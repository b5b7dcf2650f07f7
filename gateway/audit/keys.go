package audit

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/gateway/auth"
)

// PublicJWK is an Ed25519 public key as a JSON Web Key (RFC 8037).
type PublicJWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`   // base64url public key
	Kid string `json:"kid"` // RFC 7638 thumbprint
	Alg string `json:"alg"` // "EdDSA"
	Use string `json:"use"` // "sig"
}

// JWK returns pub as a JWK whose kid is its RFC 7638 thumbprint.
func JWK(pub ed25519.PublicKey) PublicJWK {
	return PublicJWK{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(pub), Kid: KeyID(pub), Alg: "EdDSA", Use: "sig"}
}

var b64 = base64.RawURLEncoding

// KeyID is the RFC 7638 JWK thumbprint of an Ed25519 public key,
// base64url-encoded.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(pub) + `"}`))
	return b64.EncodeToString(sum[:])
}

// Public decodes the key, checking that kid is its thumbprint.
func (j PublicJWK) Public() (ed25519.PublicKey, error) {
	if j.Kty != "OKP" || j.Crv != "Ed25519" {
		return nil, fmt.Errorf("audit: key %q: kty %q crv %q, want OKP Ed25519", j.Kid, j.Kty, j.Crv)
	}
	raw, err := b64.DecodeString(j.X)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit: key %q: x is not a base64url Ed25519 public key", j.Kid)
	}
	pub := ed25519.PublicKey(raw)
	if j.Kid != "" && j.Kid != KeyID(pub) {
		return nil, fmt.Errorf("audit: key %q: kid is not the key's RFC 7638 thumbprint %s", j.Kid, KeyID(pub))
	}
	return pub, nil
}

// KeySet returns the JWK set {"keys":[...]} of the given public keys: the
// body of GET /v1/audit/keys.
func KeySet(pubs ...ed25519.PublicKey) []byte {
	set := struct {
		Keys []PublicJWK `json:"keys"`
	}{Keys: []PublicJWK{}}
	for _, p := range pubs {
		set.Keys = append(set.Keys, JWK(p))
	}
	b, _ := json.Marshal(set) // cannot fail: strings only
	return b
}

// ParseKeySet reads a JWK set ({"keys":[...]}) of Ed25519 keys, keyed by
// kid. Keys of other types are an error: an audit key set holds only
// checkpoint keys.
func ParseKeySet(b []byte) (map[string]ed25519.PublicKey, error) {
	var set struct {
		Keys []PublicJWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("audit: key set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("audit: key set holds no keys")
	}
	out := make(map[string]ed25519.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		pub, err := k.Public()
		if err != nil {
			return nil, err
		}
		out[KeyID(pub)] = pub
	}
	return out, nil
}

// LoadOrCreateSigningKey reads the Ed25519 checkpoint signing key from path
// (PKCS#8 PEM), creating it (mode 0600, directory 0700) if it does not
// exist. Every replica needs its own key or a shared one: both verify, as
// long as every public half is published.
func LoadOrCreateSigningKey(path string) (ed25519.PrivateKey, error) {
	key, err := LoadSigningKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	return key, nil
}

// LoadSigningKey reads an Ed25519 private key (PKCS#8 PEM) from path.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	k, err := auth.ParseEd25519PrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreatePseudonymKey reads the audit pseudonym key (hex, at least 32
// bytes) from path, creating a random 32-byte key (mode 0600) if missing.
// It must differ from the partner pseudonym secret: an audit pseudonym must
// not be joinable with what any partner receives.
func LoadOrCreatePseudonymKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("audit: pseudonym key: %w", err)
		}
		if err := writeNew(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
			return nil, fmt.Errorf("audit: pseudonym key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: pseudonym key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("audit: pseudonym key %s: want at least 64 hex digits (32 bytes)", path)
	}
	return key, nil
}

// writeNew writes a secret file that must not exist yet (O_EXCL), so two
// processes starting together do not overwrite each other's key.
func writeNew(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pseudonymPrefix marks audit pseudonyms; the version lets the scheme change.
const pseudonymPrefix = "ap1_"

// PseudonymiseSubject returns the audit pseudonym of a subscriber
// identifier (MSISDN, IMSI, IMEI, ...): "ap1_" + base64url of the first 16
// bytes of HMAC-SHA256(key, value). The same identifier always gives the
// same pseudonym under one key, so a regulator holding the key can answer
// "what happened to this subscriber"; without the key it cannot be
// reversed by enumerating the (small) number space. The key must be the
// audit-only key, never a partner pseudonym key.
func PseudonymiseSubject(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	var sum [sha256.Size]byte
	return pseudonymPrefix + b64.EncodeToString(m.Sum(sum[:0])[:16])
}

// IsPseudonym reports whether s has the shape PseudonymiseSubject returns.
func IsPseudonym(s string) bool {
	rest, ok := strings.CutPrefix(s, pseudonymPrefix)
	if !ok || len(rest) != 22 {
		return false
	}
	_, err := b64.DecodeString(rest)
	return err == nil
}

// SigningKeyPath is where a gateway keeps its checkpoint signing key under
// its data directory.
func SigningKeyPath(dataDir string) string {
	return filepath.Join(dataDir, "audit", "signing-key.pem")
}

// PseudonymKeyPath is where a gateway keeps its audit pseudonym key under
// its data directory.
func PseudonymKeyPath(dataDir string) string {
	return filepath.Join(dataDir, "audit", "pseudonym-key")
}

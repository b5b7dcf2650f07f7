package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Defaults of the embedded mode's development tokens.
const (
	DevIssuer   = "sluice-dev"
	DevAudience = "sluice"
	// DevKeyFile is the dev signing key's path under the data directory.
	DevKeyFile = "auth/dev-signing-key.pem"
)

// minRSABits is the smallest RSA modulus sluice accepts (RFC 7518 3.3).
const minRSABits = 2048

// KeyID is the key id sluice gives a public key: the first 16 hex digits of
// the SHA-256 of its PKIX (SubjectPublicKeyInfo) DER encoding. It is stable
// for a key and differs between keys.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(publicOf(pub))
	if err != nil {
		return "", fmt.Errorf("auth: key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}

// publicOf returns the public half of a private key, or k itself.
func publicOf(k any) any {
	if pk, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		return pk.Public()
	}
	return k
}

// PublicKey is a public key with its key id, for JWKS.
type PublicKey struct {
	KID string // key id; empty: KeyID(Key)
	// Key is an *rsa.PublicKey (RS256), an *ecdsa.PublicKey on P-256
	// (ES256) or an ed25519.PublicKey (EdDSA). A private key is reduced to
	// its public half.
	Key crypto.PublicKey
}

// algFor returns the JWS alg sluice uses with a key, or an error for key
// types it does not accept.
func algFor(k any) (string, error) {
	switch k := publicOf(k).(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("%d-bit RSA key; want %d bits or more", k.N.BitLen(), minRSABits)
		}
		return jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key on %s; want P-256 (ES256)", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256.Alg(), nil
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg(), nil
	}
	return "", fmt.Errorf("unsupported key type %T; want RSA (RS256), ECDSA P-256 (ES256) or Ed25519 (EdDSA)", k)
}

// JWKS returns a JSON Web Key Set (RFC 7517) of the public keys, each with
// its kid, alg and use "sig", as a JWKS endpoint serves it.
func JWKS(keys ...PublicKey) ([]byte, error) {
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for i, k := range keys {
		pub := publicOf(k.Key)
		alg, err := algFor(pub)
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS key %d: %v", i, err)
		}
		kid := k.KID
		if kid == "" {
			if kid, err = KeyID(pub); err != nil {
				return nil, err
			}
		}
		jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: kid, ALG: jwkset.ALG(alg), USE: jwkset.UseSig,
		}})
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS key %d (kid %q): %w", i, kid, err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	return json.Marshal(set)
}

// Sign issues a token for partner: iss issuer, aud audience, sub partner,
// iat now, exp now+ttl, a random jti, and kid in the header. The alg
// follows the key: EdDSA for ed25519.PrivateKey, ES256 for an
// *ecdsa.PrivateKey on P-256, RS256 for an *rsa.PrivateKey.
func Sign(key crypto.Signer, kid, issuer, audience, partner string, ttl time.Duration) (string, error) {
	if key == nil {
		return "", errors.New("auth: sign: no key")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("auth: sign: ttl %s must be positive", ttl)
	}
	alg, err := algFor(key.Public())
	if err != nil {
		return "", fmt.Errorf("auth: sign: %v", err)
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	now := time.Now()
	t := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims{
		"iss": issuer,
		"aud": audience,
		"sub": partner,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"jti": hex.EncodeToString(jti[:]),
	})
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: sign %s token: %w", alg, err)
	}
	return s, nil
}

// DevKey returns the embedded mode's development signing key and its kid
// (KeyID). The key lives in <dataDir>/auth/dev-signing-key.pem (PKCS #8
// PEM, mode 0600): created on first use, reused after, so tokens survive
// restarts. A key file readable by group or others is refused. Concurrent
// first uses agree on one key.
func DevKey(dataDir string) (ed25519.PrivateKey, string, error) {
	path := filepath.Join(dataDir, filepath.FromSlash(DevKeyFile))
	key, err := readDevKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createDevKey(path)
	}
	if err != nil {
		return nil, "", err
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, "", err
	}
	return key, kid, nil
}

func readDevKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("auth: dev signing key %s has mode %04o; it holds a private key and must be 0600 (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read dev signing key: %w", err)
	}
	k, err := ParseEd25519PrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("auth: dev signing key %s: %w; delete it to have a new one created", path, err)
	}
	return k, nil
}

// ParseEd25519PrivateKey parses a PEM "PRIVATE KEY" block (PKCS#8)
// holding an Ed25519 key: the format of the dev signing key here and of
// the audit trail's signing key (`openssl genpkey -algorithm ed25519`).
// Errors never contain key material.
func ParseEd25519PrivateKey(pemData []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`not a PEM "PRIVATE KEY" (PKCS#8)`)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T; want Ed25519", k)
	}
	return ek, nil
}

// createDevKey writes a new key to a temporary file and links it into
// place, so a concurrent creator either wins or reads the winner's key, and
// no reader ever sees a partial file.
func createDevKey(path string) (ed25519.PrivateKey, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: dev signing key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate dev signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("auth: encode dev signing key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	tmp, err := os.CreateTemp(dir, ".dev-signing-key-*.pem") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("auth: dev signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: write dev signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: write dev signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("auth: write dev signing key: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return nil, fmt.Errorf("auth: dev signing key: %w", err)
	}
	switch err := os.Link(tmp.Name(), path); {
	case err == nil:
		return key, nil
	case errors.Is(err, fs.ErrExist):
		return readDevKey(path) // another process created it first
	default:
		// No hard links on this file system: create exclusively instead.
		f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(ferr, fs.ErrExist) {
			return readDevKey(path)
		}
		if ferr != nil {
			return nil, fmt.Errorf("auth: create dev signing key: %w", ferr)
		}
		if _, werr := f.Write(data); werr != nil {
			f.Close()
			return nil, fmt.Errorf("auth: write dev signing key: %w", werr)
		}
		if cerr := f.Close(); cerr != nil {
			return nil, fmt.Errorf("auth: write dev signing key: %w", cerr)
		}
		return key, nil
	}
}

// ParsePublicKeysPEM reads every public key of PEM data: "PUBLIC KEY"
// (PKIX), "RSA PUBLIC KEY" (PKCS #1) and "CERTIFICATE" blocks. Private
// keys are refused: a verifier needs only the public half.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				k = c.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			return nil, fmt.Errorf("PEM block %d is a %s; give the verifier the public key only (openssl pkey -pubout)", n, block.Type)
		default:
			return nil, fmt.Errorf("PEM block %d is a %q; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		if _, err := algFor(k); err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %v", n, block.Type, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gateway/auth"
)

// TestParseEd25519PrivateKey: the PKCS#8 PEM of an Ed25519 key parses to
// that key; anything else (not PEM, another block type, another key
// algorithm) is an error that shows no key bytes.
func TestParseEd25519PrivateKey(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	good := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	got, err := auth.ParseEd25519PrivateKey(good)
	if err != nil || !got.Equal(key) {
		t.Fatalf("ParseEd25519PrivateKey = %v, %v", got, err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"not PEM":      []byte("hello"),
		"public key":   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"bad DER":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der[:len(der)-3]}),
		"ECDSA key":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"empty":        nil,
		"wrapped text": append([]byte("junk\n"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}})...),
	} {
		k, err := auth.ParseEd25519PrivateKey(data)
		if err == nil || k != nil {
			t.Errorf("%s: parsed to %v", name, k)
			continue
		}
		if strings.Contains(err.Error(), string(der)) || strings.Contains(err.Error(), string(good)) {
			t.Errorf("%s: the error shows key material: %v", name, err)
		}
	}
}

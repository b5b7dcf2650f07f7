package kafkaproxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// selfSigned returns a server TLS config for 127.0.0.1 and localhost, a
// client config trusting it, and the certificate as PEM.
func selfSigned(t testing.TB) (server, client *tls.Config, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestTLSListener: a TLS listener (self-signed certificate) serves a
// franz-go consumer using kgo.DialTLSConfig; a plaintext client is refused.
func TestTLSListener(t *testing.T) {
	b, want := standardBackend()
	srv, cli, _ := selfSigned(t)
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}, TLS: srv, AuthTimeout: 2 * time.Second})
	cl := client(t, ts.addr, "key-a", "secret-a", kgo.DialTLSConfig(cli),
		kgo.ConsumeTopics("cdr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeAll(t, cl, len(want["cdr"]), 20*time.Second)
	checkExactlyOnce(t, "cdr", got, want["cdr"])

	r := dialRaw(t, ts.addr)
	r.send(metadataRequest()) // not TLS: the handshake fails
	r.expectClosed(3 * time.Second)
	waitFor(t, 2*time.Second, "tls handshake failure log", func() bool { return ts.logs.contains("tls handshake") })
}

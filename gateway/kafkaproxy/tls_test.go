package kafkaproxy

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/internal/selfsigned"
)

// selfSigned returns a server TLS config for 127.0.0.1 and localhost, a
// client config trusting it, and the certificate as PEM.
func selfSigned(t testing.TB) (server, client *tls.Config, certPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := selfsigned.Generate("sluice-test", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(pair.Leaf)
	server = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, certPEM
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

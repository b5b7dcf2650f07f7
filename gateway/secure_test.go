package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
)

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kafka-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestSecureUpstream connects sluice to a cluster that requires TLS and
// SASL, with each mechanism the cluster offers, and checks a wrong password
// keeps sluice not ready (fail closed) instead of serving.
func TestSecureUpstream(t *testing.T) {
	cert, caPEM := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	topics := []string{"telco.consent"}
	for _, p := range cat.Products {
		topics = append(topics, p.Topic)
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "sluice-plain", "pw-plain"),
		kfake.Superuser("SCRAM-SHA-256", "sluice-256", "pw-256"),
		kfake.Superuser("SCRAM-SHA-512", "sluice-512", "pw-512"),
		kfake.SeedTopics(3, topics...))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]

	// Write a few records as an authenticated producer.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "sluice-512", Pass: "pw-512"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	gen, err := generate.New(cat, generate.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	cdr, _ := cat.Get("cdr")
	for range 5 {
		r, err := gen.Next("cdr")
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: cdr.Topic, Value: r.Value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	no, yes := false, true
	for _, tc := range []struct {
		note, mech, user, pass string
		ready                  bool
	}{
		{"plain", "PLAIN", "sluice-plain", "pw-plain", true},
		{"scram-sha-256", "SCRAM-SHA-256", "sluice-256", "pw-256", true},
		{"scram-sha-512", "SCRAM-SHA-512", "sluice-512", "pw-512", true},
		{"wrong password", "SCRAM-SHA-512", "sluice-512", "nope", false},
	} {
		t.Run(tc.note, func(t *testing.T) {
			dataDir := t.TempDir()
			t.Setenv("SLUICE_TEST_KAFKA_PASSWORD", tc.pass)
			cfg := gateway.Config{
				Brokers: []string{addr}, HTTPAddr: "127.0.0.1:0", Generate: &no, DataDir: dataDir, Auth: gateway.AuthConfig{DevKey: &yes}, SeedDemo: &yes,
				Logger: slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
				Kafka: gateway.KafkaConfig{
					TLS:  gateway.TLSConfig{Enabled: true, CAFile: caFile},
					SASL: gateway.SASLConfig{Mechanism: tc.mech, Username: tc.user, PasswordEnv: "SLUICE_TEST_KAFKA_PASSWORD"},
				},
			}
			ctx, cancel := context.WithCancel(context.Background())
			gw, err := gateway.New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- gw.Run(ctx) }()
			defer func() { cancel(); <-done }()
			base := "http://" + gw.HTTPAddr()
			if !tc.ready {
				time.Sleep(2 * time.Second)
				resp, err := http.Get(base + "/readyz")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("readyz with a wrong password = %d, want 503", resp.StatusCode)
				}
				return
			}
			waitFor(t, 20*time.Second, func() bool {
				resp, err := http.Get(base + "/readyz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == 200
			}, "readiness over TLS+SASL")
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/products/cdr/records?from=earliest", nil)
			req.Header.Set("Authorization", "Bearer "+devToken(t, dataDir, "internal-fraud"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var page struct{ Records []json.RawMessage }
			if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Records) != 5 {
				t.Fatalf("records over TLS+SASL: %d records, err %v", len(page.Records), err)
			}
		})
	}
}

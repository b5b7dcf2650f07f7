package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluicehq/sluice/gateway/internal/selfsigned"
)

// The Kafka listener's TLS: a certificate from kafka_listen_tls.cert_file
// and key_file, re-read when the files change (rotation without a
// restart), or in the embedded default a self-signed certificate that
// sluice makes once in <data-dir>/kafka-tls/ (cert.pem, key.pem) and that
// clients trust as their CA (ssl.ca.location=<data-dir>/kafka-tls/cert.pem).

const (
	// selfSignedValidity is how long a generated certificate is valid;
	// one with less than selfSignedRenew left is replaced at start.
	selfSignedValidity = 365 * 24 * time.Hour
	selfSignedRenew    = 7 * 24 * time.Hour
	// certRecheck: how often the certificate files' modification times are
	// checked for a rotation.
	certRecheck = 5 * time.Second
)

// kafkaTLSFiles returns the certificate and key files of the Kafka
// listener, generating the self-signed pair in embedded mode when none is
// configured. hosts are added to a generated certificate's names.
func kafkaTLSFiles(cfg Config, hosts []string) (certFile, keyFile string, err error) {
	t := cfg.KafkaListenTLS
	if t.CertFile != "" {
		return t.CertFile, t.KeyFile, nil
	}
	dir := filepath.Join(cfg.DataDir, "kafka-tls")
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if ok, why := selfSignedUsable(certFile, keyFile, hosts); ok {
		return certFile, keyFile, nil
	} else if why != "" {
		cfg.Logger.Warn("kafka: replacing the self-signed certificate of the Kafka listener; clients must trust the new one",
			"cert", certFile, "reason", why)
	}
	if err := writeSelfSigned(dir, certFile, keyFile, hosts); err != nil {
		return "", "", fmt.Errorf("kafka_listen_tls: self-signed certificate in %s: %w", dir, err)
	}
	cfg.Logger.Info("kafka: generated a self-signed certificate for the Kafka listener", "cert", certFile)
	return certFile, keyFile, nil
}

// selfSignedUsable reports whether a generated pair exists, loads, is not
// about to expire and names every host; why says what is wrong with an
// existing one ("" when there is none).
func selfSignedUsable(certFile, keyFile string, hosts []string) (ok bool, why string) {
	if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
		return false, ""
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return false, err.Error()
	}
	leaf := pair.Leaf
	if time.Until(leaf.NotAfter) < selfSignedRenew {
		return false, "expires at " + leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			return false, "does not name " + h
		}
	}
	return true, ""
}

// writeSelfSigned makes an ECDSA P-256 self-signed certificate for
// 127.0.0.1, ::1, localhost and hosts; the key file is 0600.
func writeSelfSigned(dir, certFile, keyFile string, hosts []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	certPEM, keyPEM, err := selfsigned.Generate("sluice Kafka listener (self-signed)", hosts, selfSignedValidity)
	if err != nil {
		return err
	}
	// The key first, so a crash never leaves a certificate without its key.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, certPEM, 0o644)
}

func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil { // WriteFile keeps an existing file's mode
		return err
	}
	return os.Rename(tmp, name)
}

// certReloader serves a certificate pair from files, reloading it when
// either file's modification time changes (checked at most every
// certRecheck). A reload that fails keeps the previous pair and logs why.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	pair    *tls.Certificate
	mod     [2]time.Time
	checked time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.load(); err != nil {
		return nil, fmt.Errorf("kafka_listen_tls: %w", err)
	}
	return r, nil
}

func (r *certReloader) modTimes() ([2]time.Time, error) {
	var m [2]time.Time
	for i, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return m, err
		}
		m[i] = st.ModTime()
	}
	return m, nil
}

func (r *certReloader) load() error {
	mod, err := r.modTimes()
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.pair, r.mod, r.checked = &pair, mod, time.Now()
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= certRecheck {
		r.checked = time.Now()
		if mod, err := r.modTimes(); err == nil && mod != r.mod {
			if err := r.load(); err != nil {
				r.log.Warn("kafka: reloading the listener certificate failed; keeping the previous one", "cert", r.certFile, "err", err)
			} else {
				r.log.Info("kafka: listener certificate reloaded", "cert", r.certFile)
			}
		}
	}
	return r.pair, nil
}

// kafkaTLSConfig is the listener's TLS configuration.
func kafkaTLSConfig(certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	r, err := newCertReloader(certFile, keyFile, log)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}, nil
}

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicehq/sluice/gateway/audit"
)

// auditFixture starts an in-process broker and writes two chains of audit
// events to topic "audit-cmd" with the signing key in dir.
func auditFixture(t *testing.T) (addr, dir string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	dir = t.TempDir()
	key, err := audit.LoadOrCreateSigningKey(audit.SigningKeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	pkey, err := audit.LoadOrCreatePseudonymKey(audit.PseudonymKeyPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, inst := range []string{"gw-1", "gw-2"} {
		l, err := audit.Open(ctx, audit.Config{Brokers: c.ListenAddrs(), Topic: "audit-cmd", Instance: inst,
			SigningKey: key, PseudonymKey: pkey, CheckpointEvery: 10})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 25 {
			ev := audit.Event{Kind: audit.KindAccess, Access: &audit.Access{Allowed: i%2 == 0, Partner: "mvno-a", Product: "cdr", Purpose: "billing", Revision: "rev1"}}
			if i%5 == 0 {
				ev = audit.Event{Kind: audit.KindConsent, Consent: &audit.Consent{Subject: l.Pseudonymise("4915112345678"), OptOuts: []string{"marketing"}}}
			}
			if err := l.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c.ListenAddrs()[0], dir
}

func runAudit(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"audit"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestAuditCmdExportVerify(t *testing.T) {
	addr, dir := auditFixture(t)
	code, out, errOut := runAudit(t, "export", "--brokers", addr, "--topic", "audit-cmd")
	if code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 50 || !strings.Contains(errOut, "exported") {
		t.Fatalf("export wrote %d lines; stderr %s", len(lines), errOut)
	}
	if audit.ContainsRawIdentifier([]byte(out)) {
		t.Fatal("export holds a raw subscriber identifier")
	}
	file := filepath.Join(t.TempDir(), "audit.ndjson")
	os.WriteFile(file, []byte(out), 0o600)

	// The topic and the export verify alike; without --keys the output
	// says which keys it trusted.
	code, out, _ = runAudit(t, "verify", "--brokers", addr, "--topic", "audit-cmd", "--require-closed")
	if code != 0 || !strings.Contains(out, "OK: ") || !strings.Contains(out, "in 2 chains") || !strings.Contains(out, "publishes in its own chain-start") {
		t.Fatalf("verify topic: %d\n%s", code, out)
	}
	code, out, _ = runAudit(t, "verify", "--file", file)
	if code != 0 || !strings.Contains(out, "OK: ") {
		t.Fatalf("verify file: %d\n%s", code, out)
	}

	// The published key set, from a file and from a URL.
	code, jwks, errOut := runAudit(t, "keygen", "--data-dir", dir)
	if code != 0 || !strings.Contains(jwks, `"kty":"OKP"`) || !strings.Contains(errOut, "kid") {
		t.Fatalf("keygen: %d %s %s", code, jwks, errOut)
	}
	keys := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(keys, []byte(jwks), 0o600)
	code, out, _ = runAudit(t, "verify", "--file", file, "--keys", keys)
	if code != 0 || !strings.Contains(out, "checkpoints verified against "+keys) {
		t.Fatalf("verify --keys file: %d\n%s", code, out)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write([]byte(jwks))
	}))
	defer srv.Close()
	if code, out, _ = runAudit(t, "verify", "--file", file, "--keys", srv.URL+"/v1/audit/keys"); code != 0 {
		t.Fatalf("verify --keys url: %d\n%s", code, out)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	wrong := filepath.Join(t.TempDir(), "wrong.json")
	os.WriteFile(wrong, audit.KeySet(other), 0o600)
	if code, out, _ = runAudit(t, "verify", "--file", file, "--keys", wrong); code != 1 || !strings.Contains(out, "not in the trusted key set") {
		t.Fatalf("verify with a foreign key set: %d\n%s", code, out)
	}

	// One deleted event: exit 1 and the position of the first broken link.
	exported, _ := os.ReadFile(file)
	ls := strings.SplitAfter(string(exported), "\n")
	tampered := filepath.Join(t.TempDir(), "tampered.ndjson")
	os.WriteFile(tampered, []byte(strings.Join(append(ls[:10:10], ls[11:]...), "")), 0o600)
	code, out, _ = runAudit(t, "verify", "--file", tampered)
	if code != 1 || !strings.Contains(out, "BROKEN: ") || !strings.Contains(out, "first broken link at line 11: chain gw-1.") || !strings.Contains(out, "seq gap") {
		t.Fatalf("verify tampered: %d\n%s", code, out)
	}

	// A time range export is partial.
	code, out, _ = runAudit(t, "export", "--brokers", addr, "--topic", "audit-cmd", "--from", time.Now().Add(time.Hour).Format(time.RFC3339))
	if code != 0 || out != "" {
		t.Fatalf("export of a future range: %d %q", code, out)
	}
}

func TestAuditCmdUsage(t *testing.T) {
	dead := func() string { // a loopback port nothing listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	for _, tc := range []struct {
		note string
		args []string
		code int
		msg  string
	}{
		{"no command", nil, 2, "usage: sluice audit"},
		{"unknown command", []string{"nope"}, 2, "unknown command"},
		{"unknown flag", []string{"verify", "--nope"}, 2, "flag provided but not defined"},
		{"missing file", []string{"verify", "--file", "/nonexistent/audit.ndjson"}, 2, "no such file"},
		{"bad keys", []string{"verify", "--file", "-", "--keys", "/nonexistent/keys.json"}, 2, "--keys"},
		{"bad from", []string{"export", "--from", "yesterday"}, 2, "RFC 3339"},
		{"from after to", []string{"export", "--from", "1h", "--to", "2h"}, 2, "must be before"},
		{"broker down", []string{"verify", "--brokers", dead, "--timeout", "2s"}, 2, "verify: topic sluice.audit at " + dead},
		{"help", []string{"verify", "-h"}, 0, "Exit status"},
	} {
		code, _, errOut := runAudit(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%s: exit %d, want %d; stderr %q lacks %q", tc.note, code, tc.code, errOut, tc.msg)
		}
	}
}

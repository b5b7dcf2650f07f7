package audit_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gateway/audit"
)

func TestAuditContainsRawIdentifier(t *testing.T) {
	for _, tc := range []struct {
		note, in string
		want     bool
	}{
		{"msisdn in a string", `{"subject":"4915112345678"}`, true},
		{"msisdn with plus", `call +4915112345678 now`, true},
		{"imsi", `{"imsi":"262011234567890"}`, true},
		{"imsi as a number", `{"imsi":262011234567890}`, true},
		{"imei (luhn)", `imei 490154203237518`, true},
		{"iccid", `{"iccid":"8949011234567890123"}`, true},
		{"msisdn in a key path", `{"id":"sub/4915112345678/x"}`, true},
		{"byte counter", `{"bytes":49151123456789}`, false},
		{"sha256 hex", `{"prev":"4915112345678491511234567849151123456784915112345678abcdef012345"}`, false},
		{"hex with digit head", `{"h":"491511234567849a"}`, false},
		{"pseudonym", `{"subject":"` + audit.PseudonymiseSubject(pseudoKey, "4915112345678") + `"}`, false},
		{"time", `{"time":"2026-09-18T10:15:00.123456789Z"}`, false},
		{"chain id", `{"chain":"gw-1.20260918T101500Z.9f3a0c1e"}`, false},
		{"short number in string", `{"stream":"s-1234567890"}`, false},
		{"escaped quote", `{"a":"x\"","b":4915112345678}`, false},
	} {
		if got := audit.ContainsRawIdentifier([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: %s: got %v, want %v", tc.note, tc.in, got, tc.want)
		}
	}
}

func TestAuditPseudonym(t *testing.T) {
	a := audit.PseudonymiseSubject(pseudoKey, "4915112345678")
	if a != audit.PseudonymiseSubject(pseudoKey, "4915112345678") || !audit.IsPseudonym(a) {
		t.Fatalf("pseudonym %q not stable or not recognised", a)
	}
	other := append([]byte{}, pseudoKey...)
	other[0] ^= 1
	if a == audit.PseudonymiseSubject(other, "4915112345678") || a == audit.PseudonymiseSubject(pseudoKey, "4915112345679") {
		t.Fatal("pseudonym does not depend on key and value")
	}
	if audit.IsPseudonym("4915112345678") || audit.IsPseudonym("ap1_short") {
		t.Fatal("IsPseudonym accepts a raw value")
	}
}

func TestAuditKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit", "signing-key.pem")
	k1, err := audit.LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	k2, err := audit.LoadOrCreateSigningKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reload gave another key: %v", err)
	}
	set := audit.KeySet(k1.Public().(ed25519.PublicKey))
	keys, err := audit.ParseKeySet(set)
	if err != nil || len(keys) != 1 || !strings.Contains(string(set), `"kty":"OKP"`) {
		t.Fatalf("key set %s: %v", set, err)
	}
	if _, err := audit.ParseKeySet([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + strings.Repeat("A", 43) + `","kid":"wrong"}]}`)); err == nil {
		t.Fatal("kid that is not the thumbprint accepted")
	}

	pk := filepath.Join(dir, "audit", "pseudonym-key")
	p1, err := audit.LoadOrCreatePseudonymKey(pk)
	if err != nil || len(p1) != 32 {
		t.Fatalf("pseudonym key: %v", err)
	}
	p2, _ := audit.LoadOrCreatePseudonymKey(pk)
	if string(p1) != string(p2) {
		t.Fatal("pseudonym key changed on reload")
	}
	os.WriteFile(pk, []byte("abcd\n"), 0o600)
	if _, err := audit.LoadOrCreatePseudonymKey(pk); err == nil {
		t.Fatal("short pseudonym key accepted")
	}
}

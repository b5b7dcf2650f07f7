package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/gateway/audit"
)

// testKey is a deterministic Ed25519 key.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// clock is a deterministic clock advancing 250 ms per reading.
func clock() func() time.Time {
	t := time.Date(2026, 9, 18, 10, 0, 0, 123456000, time.UTC)
	return func() time.Time {
		t = t.Add(250 * time.Millisecond)
		return t
	}
}

var pseudoKey = bytes.Repeat([]byte{7}, 32)

// sampleEvent returns a caller event of a kind chosen by i.
func sampleEvent(i int) audit.Event {
	switch i % 8 {
	case 0:
		return audit.Event{Kind: audit.KindAccess, Access: &audit.Access{Allowed: i%16 == 0, Partner: "mvno-a", Product: "cdr",
			Purpose: "billing", Door: "sse", Revision: "a1b2c3d4e5f6", Reason: "ok", Dropped: []string{"imei"},
			Masked: map[string]string{"msisdn": "pseudonymise", "imsi": "pseudonymise"}, Stream: fmt.Sprintf("s-%d", i)}}
	case 1:
		return audit.Event{Kind: audit.KindStreamOpen, Stream: &audit.Stream{ID: fmt.Sprintf("s-%d", i), Partner: "mvno-a", Product: "cdr", Purpose: "billing", Cursor: "c1AAAB"}}
	case 2:
		return audit.Event{Kind: audit.KindDelivery, Delivery: &audit.Delivery{Stream: fmt.Sprintf("s-%d", i), Partner: "mvno-a", Product: "cdr",
			Records: uint64(i * 10), Bytes: uint64(i * 1000), FirstCursor: "c1AAAB", LastCursor: "c1AAAC", TotalRecords: uint64(i * 10), TotalBytes: uint64(i * 1000)}}
	case 3:
		return audit.Event{Kind: audit.KindStreamClose, Stream: &audit.Stream{ID: fmt.Sprintf("s-%d", i), Partner: "mvno-a", Product: "cdr", Reason: "client"}}
	case 4:
		return audit.Event{Kind: audit.KindSubscription, Lifecycle: &audit.Lifecycle{ID: fmt.Sprintf("sub-%d", i), Partner: "mvno-a", Product: "cdr", Action: "approved", From: "pending", To: "active", Actor: "alice@operator"}}
	case 5:
		return audit.Event{Kind: audit.KindPolicyReload, Policy: &audit.PolicyReload{Revision: "a1b2c3d4e5f6", Files: map[string]string{"sluice.rego": strings.Repeat("ab", 32)}}}
	case 6:
		return audit.Event{Kind: audit.KindConsent, Consent: &audit.Consent{Subject: audit.PseudonymiseSubject(pseudoKey, fmt.Sprintf("49151%08d", i)), OptOuts: []string{"marketing"}, Source: "telco.consent/0/17"}}
	default:
		return audit.Event{Kind: audit.KindAdmin, Admin: &audit.Admin{Actor: "bob@operator", Action: "key.rotate", Target: "mvno-a"}}
	}
}

// fixture writes three closed chains, 200 lines in all, interleaved as
// instances would be in one topic: gw-a's first chain, its successor
// (linked to it), and gw-b's chain running alongside both.
func fixture(t testing.TB) (lines [][]byte, keys map[string]ed25519.PublicKey) {
	t.Helper()
	mk := func(id, inst string, seed byte) *audit.Chain {
		c, err := audit.NewChain(id, inst, testKey(seed), clock())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const every = 7
	emit := func(c *audit.Chain, i int) [][]byte {
		ev := sampleEvent(i)
		out := [][]byte{must(c.Append(&ev))}
		if c.CheckpointDue(every, time.Hour) {
			out = append(out, must(c.Checkpoint(false)))
		}
		return out
	}
	a1 := mk("gw-a.20260918T100000Z.00000001", "gw-a", 1)
	b := mk("gw-b.20260918T100000Z.00000002", "gw-b", 2)
	lines = append(lines, must(a1.Start(audit.ChainStart{CheckpointEvery: every, CheckpointInterval: "1h0m0s"})))
	lines = append(lines, must(b.Start(audit.ChainStart{CheckpointEvery: every, CheckpointInterval: "1h0m0s"})))
	i := 0
	for len(lines) < 80 {
		lines = append(lines, emit(a1, i)...)
		if i%2 == 0 {
			lines = append(lines, emit(b, i)...)
		}
		i++
	}
	last := must(a1.Checkpoint(true))
	lines = append(lines, last)
	sum := sha256.Sum256(last)
	a2 := mk("gw-a.20260918T101000Z.00000003", "gw-a", 1)
	lines = append(lines, must(a2.Start(audit.ChainStart{CheckpointEvery: every, CheckpointInterval: "1h0m0s",
		Predecessor: &audit.Link{Chain: a1.ID(), Seq: a1.State().Next - 1, Hash: hex.EncodeToString(sum[:])}})))
	for len(lines) < 190 {
		lines = append(lines, emit(a2, i)...)
		if i%3 == 0 {
			lines = append(lines, emit(b, i)...)
		}
		i++
	}
	lines = append(lines, must(a2.Checkpoint(true)))
	for len(lines) < 199 {
		ev := sampleEvent(i)
		i++
		lines = append(lines, must(b.Append(&ev)))
	}
	lines = append(lines, must(b.Checkpoint(true)))
	if len(lines) != 200 {
		t.Fatalf("fixture has %d lines, want 200", len(lines))
	}
	keys = map[string]ed25519.PublicKey{}
	for _, s := range []byte{1, 2} {
		pub := testKey(s).Public().(ed25519.PublicKey)
		keys[audit.KeyID(pub)] = pub
	}
	return lines, keys
}

func ndjson(lines [][]byte) []byte {
	return append(bytes.Join(lines, []byte("\n")), '\n')
}

func TestAuditChainSignatures(t *testing.T) {
	lines, keys := fixture(t)
	rep, err := audit.Verify(bytes.NewReader(ndjson(lines)), audit.VerifyOptions{Keys: keys, RequireClosed: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("untouched fixture: %v", rep.Problems)
	}
	if rep.Events != 200 || len(rep.Chains) != 3 || rep.Unsealed() != 0 || rep.KeysFromLog || len(rep.Keys) != 2 {
		t.Fatalf("report: events %d chains %d unsealed %d fromLog %v keys %v", rep.Events, len(rep.Chains), rep.Unsealed(), rep.KeysFromLog, rep.Keys)
	}
	for _, c := range rep.Chains {
		if !c.Closed || c.Checkpoints < 3 {
			t.Errorf("chain %s: closed %v checkpoints %d", c.ID, c.Closed, c.Checkpoints)
		}
	}
	if rep.Chains[2].Predecessor == nil || rep.Chains[2].Predecessor.Chain != rep.Chains[0].ID {
		t.Errorf("chain %s predecessor %+v, want %s", rep.Chains[2].ID, rep.Chains[2].Predecessor, rep.Chains[0].ID)
	}

	// Without a key set the log's own keys are trusted, and the report says so.
	rep, _ = audit.Verify(bytes.NewReader(ndjson(lines)), audit.VerifyOptions{})
	if !rep.OK() || !rep.KeysFromLog {
		t.Fatalf("log keys: ok %v fromLog %v %v", rep.OK(), rep.KeysFromLog, rep.Problems)
	}

	// A key set that lacks gw-b's key fails gw-b's checkpoints.
	partial := map[string]ed25519.PublicKey{}
	pubA := testKey(1).Public().(ed25519.PublicKey)
	partial[audit.KeyID(pubA)] = pubA
	rep, _ = audit.Verify(bytes.NewReader(ndjson(lines)), audit.VerifyOptions{Keys: partial})
	if rep.OK() || !strings.Contains(rep.Problems[0].Msg, "not in the trusted key set") || !strings.HasPrefix(rep.Problems[0].Chain, "gw-b") {
		t.Fatalf("untrusted key: %v", rep.Problems)
	}

	// A forged chain signed with another key, published in its own start,
	// verifies only when the log's keys are trusted.
	forger, _ := audit.NewChain("gw-a.20260918T110000Z.0000000f", "gw-a", testKey(9), clock())
	f0, _ := forger.Start(audit.ChainStart{CheckpointEvery: 1, CheckpointInterval: "1s"})
	ev := sampleEvent(1)
	f1, _ := forger.Append(&ev)
	f2, _ := forger.Checkpoint(true)
	forged := append(append([][]byte{}, lines...), f0, f1, f2)
	if rep, _ := audit.Verify(bytes.NewReader(ndjson(forged)), audit.VerifyOptions{}); !rep.OK() {
		t.Fatalf("forged chain with log keys: %v", rep.Problems)
	}
	if rep, _ := audit.Verify(bytes.NewReader(ndjson(forged)), audit.VerifyOptions{Keys: keys}); rep.OK() {
		t.Fatal("forged chain verified against the published keys")
	}
}

func TestAuditChainCheckpointMessage(t *testing.T) {
	c, err := audit.NewChain("gw-1.x", "gw-1", testKey(3), clock())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(audit.ChainStart{}); err != nil {
		t.Fatal(err)
	}
	b, err := c.Checkpoint(false)
	if err != nil {
		t.Fatal(err)
	}
	var ev audit.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	msg := string(audit.SignedMessage(&ev))
	for _, want := range []string{"sluice-audit-checkpoint/v1\n", "chain=gw-1.x\n", "seq=1\n", "kind=checkpoint\n", "sealed_seq=0\n", "sealed_hash=" + ev.Prev + "\n", "running=" + ev.Checkpoint.Running + "\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("signed message lacks %q:\n%s", want, msg)
		}
	}
	sig, _ := base64RawURL(ev.Checkpoint.Sig)
	if !ed25519.Verify(testKey(3).Public().(ed25519.PublicKey), []byte(msg), sig) {
		t.Error("signature does not verify over SignedMessage")
	}

	// The chain refuses events it writes itself and raw consent subjects.
	for _, bad := range []audit.Event{
		{Kind: audit.KindCheckpoint, Checkpoint: &audit.Checkpoint{}},
		{Kind: audit.KindAccess},
		{Kind: audit.KindAccess, Access: &audit.Access{}, Admin: &audit.Admin{}},
		{Kind: "nope", Admin: &audit.Admin{}},
		{Kind: audit.KindConsent, Consent: &audit.Consent{Subject: "4915112345678"}},
	} {
		if _, err := c.Append(&bad); err == nil {
			t.Errorf("Append(%+v) accepted", bad)
		}
	}
	if _, err := audit.NewChain("x", "bad/instance", testKey(3), nil); err == nil {
		t.Error("instance with a slash accepted")
	}
}

func TestAuditChainReset(t *testing.T) {
	c, _ := audit.NewChain("gw-1.x", "gw-1", testKey(3), clock())
	c.Start(audit.ChainStart{})
	st := c.State()
	ev := sampleEvent(0)
	lost, _ := c.Append(&ev)
	c.Reset(st) // "lost" was not persisted: its seq is reused
	ev = sampleEvent(1)
	kept, _ := c.Append(&ev)
	var a, b audit.Event
	json.Unmarshal(lost, &a)
	json.Unmarshal(kept, &b)
	if a.Seq != 1 || b.Seq != 1 || a.Prev != b.Prev {
		t.Fatalf("after reset: lost seq %d prev %s, kept seq %d prev %s", a.Seq, a.Prev, b.Seq, b.Prev)
	}
}

func base64RawURL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

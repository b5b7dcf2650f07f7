package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/gateway/audit"
)

// newBroker starts an in-process Kafka broker on a loopback port.
func newBroker(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openLog(t testing.TB, c *kfake.Cluster, instance string, mod func(*audit.Config)) *audit.Log {
	t.Helper()
	cfg := audit.Config{
		Brokers: c.ListenAddrs(), Topic: "audit-test", Instance: instance,
		SigningKey: testKey(1), PseudonymKey: pseudoKey, AckTimeout: 2 * time.Second,
		CheckpointEvery: 50, Logger: quiet(),
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := audit.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// export reads the topic as `sluice audit export` writes it.
func export(t testing.TB, c *kfake.Cluster, topic string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var lines [][]byte
	err := audit.ReadTopic(ctx, audit.ReadOptions{Brokers: c.ListenAddrs(), Topic: topic}, func(_ audit.Position, r *kgo.Record) error {
		lines = append(lines, bytes.Clone(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func verifyTopic(t testing.TB, c *kfake.Cluster, topic string, opts audit.VerifyOptions) audit.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := audit.VerifyTopic(ctx, audit.ReadOptions{Brokers: c.ListenAddrs(), Topic: topic}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestAuditLogKafka appends from 8 goroutines through real franz-go to the
// in-process broker, restarts the instance, and verifies the topic: two
// closed chains, the second linked to the first, no raw identifiers.
func TestAuditLogKafka(t *testing.T) {
	c := newBroker(t)
	l := openLog(t, c, "gw-1", nil)
	first := l.Chain()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				if err := l.Append(context.Background(), sampleEvent(g*40+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// A raw subscriber id in a consent event is refused, not written.
	if err := l.Append(context.Background(), audit.Event{Kind: audit.KindConsent, Consent: &audit.Consent{Subject: "4915112345678"}}); !errors.Is(err, audit.ErrInvalidEvent) {
		t.Fatalf("raw consent subject: %v", err)
	}
	if err := l.Append(context.Background(), audit.Event{Kind: audit.KindConsent, Consent: &audit.Consent{Subject: l.Pseudonymise("4915112345678"), OptOuts: []string{"marketing"}}}); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Appended != 321 || st.Failed != 0 || !st.Healthy || st.Checkpoints < 6 || st.Batches >= 321 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("stats after 321 appends: %+v", st)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), sampleEvent(0)); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	l2 := openLog(t, c, "gw-1", nil)
	if l2.Chain() == first {
		t.Fatal("restart continued the old chain id")
	}
	if err := l2.Append(context.Background(), sampleEvent(3)); err != nil {
		t.Fatal(err)
	}
	l3 := openLog(t, c, "gw-2", func(cfg *audit.Config) { cfg.SigningKey = testKey(2) })
	if err := l3.Append(context.Background(), sampleEvent(4)); err != nil {
		t.Fatal(err)
	}
	l2.Close(context.Background())
	l3.Close(context.Background())

	keys, err := audit.ParseKeySet(l.PublicKeys())
	if err != nil {
		t.Fatal(err)
	}
	more, _ := audit.ParseKeySet(l3.PublicKeys())
	for k, v := range more {
		keys[k] = v
	}
	rep := verifyTopic(t, c, "audit-test", audit.VerifyOptions{Keys: keys, RequireClosed: true})
	if !rep.OK() || len(rep.Chains) != 3 || rep.Unsealed() != 0 {
		t.Fatalf("report: ok %v chains %d unsealed %d problems %v notes %v", rep.OK(), len(rep.Chains), rep.Unsealed(), rep.Problems, rep.Notes)
	}
	var second *audit.ChainReport
	for i := range rep.Chains {
		if rep.Chains[i].ID == l2.Chain() {
			second = &rep.Chains[i]
		}
	}
	if second == nil || second.Predecessor == nil || second.Predecessor.Chain != first {
		t.Fatalf("second chain %+v: want predecessor %s", second, first)
	}
	for i, line := range export(t, c, "audit-test") {
		if audit.ContainsRawIdentifier(line) {
			s, e := audit.FindRawIdentifier(line)
			t.Errorf("event %d holds a raw identifier %q: %s", i, line[s:e], line)
		}
	}
}

// TestAuditFailClosedHang makes the broker hold produce requests without
// answering: Append fails within the bound, Healthy reports it, events
// queued meanwhile are never written, and once the broker answers the
// held (in-doubt) event lands exactly once and the chain has no gap.
func TestAuditFailClosedHang(t *testing.T) {
	c := newBroker(t)
	const bound = 400 * time.Millisecond
	l := openLog(t, c, "gw-1", func(cfg *audit.Config) { cfg.AckTimeout = bound })
	if err := l.Append(context.Background(), sampleEvent(0)); err != nil {
		t.Fatal(err)
	}
	changed, err := l.Watch()
	if err != nil {
		t.Fatal(err)
	}

	var stall atomic.Bool
	stall.Store(true)
	release := make(chan struct{})
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if stall.Load() {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false // then handle it normally
	})

	marker := func(s string) audit.Event {
		return audit.Event{Kind: audit.KindAdmin, Admin: &audit.Admin{Actor: "test", Action: s}}
	}
	start := time.Now()
	err = l.Append(context.Background(), marker("in-doubt"))
	var ae *audit.AppendError
	if !errors.Is(err, audit.ErrUnavailable) || !errors.As(err, &ae) || !ae.InDoubt {
		t.Fatalf("append during hang: %v", err)
	}
	if d := time.Since(start); d > bound+300*time.Millisecond {
		t.Fatalf("append took %s, bound %s", d, bound)
	}
	select {
	case <-changed:
	case <-time.After(time.Second):
		t.Fatal("no health change signalled")
	}
	if l.Healthy() == nil {
		t.Fatal("healthy during hang")
	}
	// The chain is stalled: this one is never handed to Kafka.
	err = l.Append(context.Background(), marker("never-written"))
	if !errors.As(err, &ae) || ae.InDoubt {
		t.Fatalf("append while stalled: %v", err)
	}

	changed, _ = l.Watch()
	stall.Store(false)
	close(release)
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatalf("not healthy again: %v", l.Healthy())
	}
	if err := l.Append(context.Background(), marker("after")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.InDoubt != 1 || st.Failed != 2 {
		t.Errorf("stats %+v, want 1 in doubt of 2 failed", st)
	}

	if got := closedActions(t, c); got != "in-doubt,after" {
		t.Fatalf("admin events in the topic: %s, want in-doubt,after", got)
	}
}

// TestAuditFailClosedReject makes the broker refuse produce requests with
// a non-retryable error: Appends fail fast and were not persisted, their
// seqs are reused, an idle probe turns the log healthy once the fault is
// gone, and the chain verifies without gap.
func TestAuditFailClosedReject(t *testing.T) {
	c := newBroker(t)
	l := openLog(t, c, "gw-1", func(cfg *audit.Config) { cfg.AckTimeout = time.Second })
	if err := l.Append(context.Background(), sampleEvent(0)); err != nil {
		t.Fatal(err)
	}
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "audit-test", Err: kerr.PolicyViolation, Count: -1})
	marker := func(s string) audit.Event {
		return audit.Event{Kind: audit.KindAdmin, Admin: &audit.Admin{Actor: "test", Action: s}}
	}
	for i := range 3 {
		err := l.Append(context.Background(), marker(fmt.Sprintf("rejected-%d", i)))
		var ae *audit.AppendError
		if !errors.As(err, &ae) || ae.InDoubt || !errors.Is(err, kerr.PolicyViolation) {
			t.Fatalf("append %d against a refusing broker: %v", i, err)
		}
	}
	if err := l.Healthy(); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("healthy: %v", err)
	}
	if st := l.Stats(); st.Failed != 3 || st.InDoubt != 0 {
		t.Errorf("stats %+v, want 3 failed, none in doubt", st)
	}
	changed, _ := l.Watch()
	fault.Remove()
	select { // the idle probe (a checkpoint) finds the broker back
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatalf("not healthy again: %v", l.Healthy())
	}
	if err := l.Append(context.Background(), marker("after")); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := closedActions(t, c); got != "after" {
		t.Fatalf("admin events: %s, want after", got)
	}
}

// TestAuditFailClosedRetriable makes the broker answer produce with a
// retriable error (NOT_ENOUGH_REPLICAS): franz-go retries without end, so
// the Append is in doubt, and the event lands once the fault is gone.
func TestAuditFailClosedRetriable(t *testing.T) {
	c := newBroker(t)
	l := openLog(t, c, "gw-1", func(cfg *audit.Config) { cfg.AckTimeout = 300 * time.Millisecond })
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "audit-test", Err: kerr.NotEnoughReplicas, Count: -1})
	err := l.Append(context.Background(), audit.Event{Kind: audit.KindAdmin, Admin: &audit.Admin{Actor: "test", Action: "retried"}})
	var ae *audit.AppendError
	if !errors.As(err, &ae) || !ae.InDoubt {
		t.Fatalf("append: %v", err)
	}
	changed, err := l.Watch()
	if err == nil {
		t.Fatal("healthy while the broker refuses")
	}
	removed := time.Now()
	fault.Remove()
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatalf("not healthy again: %v", l.Healthy())
	}
	t.Logf("healthy %s after the fault was removed", time.Since(removed))
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := closedActions(t, c); got != "retried" {
		t.Fatalf("admin events: %q, want retried once", got)
	}
}

// TestAuditCloseHung: Close returns when its context ends even if the
// broker never answers, and reports that the chain-close was not written.
func TestAuditCloseHung(t *testing.T) {
	c := newBroker(t)
	l := openLog(t, c, "gw-1", func(cfg *audit.Config) { cfg.AckTimeout = 200 * time.Millisecond })
	release := make(chan struct{})
	defer close(release)
	c.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	if err := l.Append(context.Background(), sampleEvent(1)); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("append: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := l.Close(ctx); err == nil {
		t.Fatal("close reported success with the broker hung")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("close took %s", d)
	}
}

// TestAuditOpenUnavailable: Open fails within its bound when the start
// event cannot be written.
func TestAuditOpenUnavailable(t *testing.T) {
	c := newBroker(t)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.PolicyViolation, Count: -1})
	_, err := audit.Open(context.Background(), audit.Config{Brokers: c.ListenAddrs(), Topic: "audit-test", Instance: "gw-1",
		SigningKey: testKey(1), PseudonymKey: pseudoKey, AckTimeout: 500 * time.Millisecond, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), "chain start") {
		t.Fatalf("open: %v", err)
	}
	for _, bad := range []audit.Config{
		{Instance: "", SigningKey: testKey(1), PseudonymKey: pseudoKey},
		{Instance: "gw", PseudonymKey: pseudoKey},
		{Instance: "gw", SigningKey: testKey(1), PseudonymKey: []byte("short")},
	} {
		if _, err := audit.Open(context.Background(), bad); err == nil {
			t.Errorf("open %+v accepted", bad)
		}
	}
}

// actions lists the admin actions in lines, comma separated.
// closedActions verifies the closed chain of topic audit-test and returns
// the actions of its admin events.
func closedActions(t testing.TB, c *kfake.Cluster) string {
	t.Helper()
	if rep := verifyTopic(t, c, "audit-test", audit.VerifyOptions{RequireClosed: true}); !rep.OK() {
		t.Fatalf("problems %v", rep.Problems)
	}
	return actions(t, export(t, c, "audit-test"))
}

func actions(t testing.TB, lines [][]byte) string {
	var s []string
	for _, l := range lines {
		if ev := decode(t, l); ev.Admin != nil && ev.Admin.Actor == "test" {
			s = append(s, ev.Admin.Action)
		}
	}
	return strings.Join(s, ",")
}

package policy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// versioned is a valid policy whose reason names its version.
func versioned(v string) string {
	return `package sluice

decision := {"allow": true, "reason": "` + v + `", "fields": {"msisdn": {"op": "pseudonymise"}}, "consent_required": false}

row if input.record.mvno_id == input.partner.attributes.mvno_id
`
}

// broken does not parse: line 3 is the bad one.
const broken = `package sluice

decision := {"allow": true,, "reason": "x"}

row := true
`

func TestNewCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		note  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"parse error names file and line", map[string]string{"a.rego": versioned("v1"), "b.rego": broken},
			[]string{"b.rego:3: rego_parse_error"}},
		{"unsafe variable", map[string]string{"a.rego": `package sluice

decision := x

row := true
`}, []string{"a.rego:3: rego_unsafe_var_error", "var x is unsafe"}},
		{"several errors, each with its line", map[string]string{"a.rego": `package sluice

decision := x

row := y
`}, []string{"policy: 2 errors:", "a.rego:3:", "a.rego:5:"}},
		{"nondeterministic built-ins are not available", map[string]string{"a.rego": `package sluice

decision := {"allow": true, "reason": sprintf("%d", [time.now_ns()]), "fields": {}, "consent_required": false}

row := true
`}, []string{"a.rego:3: rego_type_error: undefined function time.now_ns"}},
		{"no decision rule", map[string]string{"a.rego": "package sluice\n\nrow := true\n"},
			[]string{"defines no rule data.sluice.decision"}},
		{"no row rule", map[string]string{"a.rego": "package sluice\n\ndecision := {}\n"},
			[]string{"defines no rule data.sluice.row"}},
		{"no policy files", map[string]string{"notes.txt": "hello", "only_test.rego": "package sluice_test\n"},
			[]string{"no .rego files"}},
	} {
		t.Run(tc.note, func(t *testing.T) {
			dir := t.TempDir()
			writePolicy(t, dir, tc.files)
			_, err := New(Options{Dir: dir})
			if !errors.Is(err, ErrCompile) {
				t.Fatalf("err = %v, want ErrCompile", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := New(Options{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "reading policy directory") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestReload(t *testing.T) {
	e, dir := newTestEngine(t, map[string]string{"sluice.rego": versioned("v1")})
	ch, cancel := e.Subscribe()
	defer cancel()
	rev1 := e.Revision()

	// A broken file: the old policy stays in force.
	writePolicy(t, dir, map[string]string{"extra.rego": broken})
	err := e.Reload()
	if !errors.Is(err, ErrCompile) {
		t.Fatalf("Reload with a broken file: %v", err)
	}
	want := filepath.Join(dir, "extra.rego") + ":3: rego_parse_error"
	if last := e.LastError(); last == nil || !strings.Contains(last.Error(), want) {
		t.Fatalf("LastError = %v, want it to name %s", last, want)
	}
	if e.Revision() != rev1 {
		t.Fatal("revision changed by a failed reload")
	}
	if d, err := decide(t, e, simpleInput()); err != nil || d.Reason != "v1" || d.Revision != rev1 {
		t.Fatalf("after a failed reload: %+v, %v", d, err)
	}
	select {
	case r := <-ch:
		t.Fatalf("notified %q of a failed reload", r)
	default:
	}

	// Fixed: the new policy is in force and subscribers hear of it.
	if err := os.Remove(filepath.Join(dir, "extra.rego")); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, map[string]string{"sluice.rego": versioned("v2")})
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.LastError() != nil {
		t.Fatalf("LastError after a good reload: %v", e.LastError())
	}
	rev2 := e.Revision()
	if rev2 == rev1 {
		t.Fatal("revision unchanged")
	}
	if got := <-ch; got != rev2 {
		t.Fatalf("notified %q, want %q", got, rev2)
	}
	if d, _ := decide(t, e, simpleInput()); d.Reason != "v2" || d.Revision != rev2 {
		t.Fatalf("after reload: %+v", d)
	}

	// Nothing changed, or only tests changed: no new revision, no notice.
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, map[string]string{"sluice_test.rego": "package sluice_test\n\ntest_one if true\n"})
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if e.Revision() != rev2 {
		t.Fatal("a test file changed the revision")
	}
	select {
	case r := <-ch:
		t.Fatalf("notified %q without a policy change", r)
	default:
	}
	if passed, failed, err := e.Test(context.Background(), &bytes.Buffer{}, false); passed != 1 || failed != 0 || err != nil {
		t.Fatalf("Test after the test file was added: %d passed, %d failed, %v", passed, failed, err)
	}

	// Unsubscribing closes the channel; later reloads do not block.
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	writePolicy(t, dir, map[string]string{"sluice.rego": versioned("v3")})
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
}

// TestSubscribeKeepsNewest: a subscriber that does not read gets the newest
// revision, and a reload never blocks on it.
func TestSubscribeKeepsNewest(t *testing.T) {
	e, dir := newTestEngine(t, map[string]string{"sluice.rego": versioned("v1")})
	ch, cancel := e.Subscribe()
	defer cancel()
	for _, v := range []string{"v2", "v3", "v4"} {
		writePolicy(t, dir, map[string]string{"sluice.rego": versioned(v)})
		if err := e.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-ch; got != e.Revision() {
		t.Fatalf("got %q, want the newest %q", got, e.Revision())
	}
	select {
	case r := <-ch:
		t.Fatalf("stale revision %q queued", r)
	default:
	}
}

// TestSubscribeFailures: a reload that fails hands its error (file and
// line) to failure subscribers, the newest if they fell behind; a
// successful reload hands them nothing.
func TestSubscribeFailures(t *testing.T) {
	e, dir := newTestEngine(t, map[string]string{"sluice.rego": versioned("v1")})
	fails, cancel := e.SubscribeFailures()
	defer cancel()
	writePolicy(t, dir, map[string]string{"sluice.rego": "package sluice\n\ndecision := {"})
	if err := e.Reload(); err == nil {
		t.Fatal("a truncated policy reloaded")
	}
	writePolicy(t, dir, map[string]string{"sluice.rego": broken})
	err := e.Reload()
	if err == nil {
		t.Fatal("a broken policy reloaded")
	}
	if got := <-fails; got != err || !strings.Contains(got.Error(), "sluice.rego:3:") {
		t.Fatalf("failure %v, want the newest %v (naming sluice.rego:3)", got, err)
	}
	writePolicy(t, dir, map[string]string{"sluice.rego": versioned("v2")})
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-fails:
		t.Fatalf("failure %v after a successful reload", f)
	default:
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatch(t *testing.T) {
	e, dir := newTestEngine(t, map[string]string{"sluice.rego": versioned("v1")})
	ch, unsubscribe := e.Subscribe()
	defer unsubscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Watch(ctx, 100*time.Millisecond)
	}()
	defer func() {
		cancel()
		<-done
	}()
	rev1 := e.Revision()

	writePolicy(t, dir, map[string]string{"sluice.rego": versioned("v2")})
	select {
	case rev := <-ch:
		if rev == rev1 || rev != e.Revision() {
			t.Fatalf("notified %q; revisions %q -> %q", rev, rev1, e.Revision())
		}
	case <-time.After(time.Second):
		t.Fatal("change not picked up within 1 s")
	}

	writePolicy(t, dir, map[string]string{"sluice.rego": broken})
	waitFor(t, time.Second, "broken policy reported", func() bool { return e.LastError() != nil })
	if !strings.Contains(e.LastError().Error(), "sluice.rego:3:") {
		t.Fatalf("LastError = %v", e.LastError())
	}
	if d, _ := decide(t, e, simpleInput()); d.Reason != "v2" {
		t.Fatalf("broken file replaced the policy: %+v", d)
	}

	writePolicy(t, dir, map[string]string{"sluice.rego": versioned("v3")})
	waitFor(t, time.Second, "fixed policy loaded", func() bool { return e.LastError() == nil })
	if d, _ := decide(t, e, simpleInput()); d.Reason != "v3" {
		t.Fatalf("after the fix: %+v", d)
	}
}

// TestWatchEmbedded returns at once: there is nothing to watch.
func TestWatchEmbedded(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		e.Watch(context.Background(), time.Millisecond)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Watch of the embedded policy did not return")
	}
	if err := e.Reload(); err != nil {
		t.Fatalf("Reload of the embedded policy: %v", err)
	}
}

// TestDecideDuringReload runs decisions while the policy flips between two
// versions: each decision is wholly one version's (run with -race).
func TestDecideDuringReload(t *testing.T) {
	e, dir := newTestEngine(t, map[string]string{"sluice.rego": versioned("v1")})
	revs := map[string]string{e.Revision(): "v1"}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := decide(t, e, simpleInput())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want, ok := revs[d.Revision]
				mu.Unlock()
				if ok && d.Reason != want {
					t.Errorf("revision %s decided %q, want %q", d.Revision, d.Reason, want)
				}
			}
		})
	}
	for i := range 10 {
		v := []string{"v1", "v2"}[i%2]
		writePolicy(t, dir, map[string]string{"sluice.rego": versioned(v)})
		if err := e.Reload(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		revs[e.Revision()] = v
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
}

func TestRevision(t *testing.T) {
	embedded, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	fromDir, err := New(Options{Dir: "rego"})
	if err != nil {
		t.Fatal(err)
	}
	if embedded.Revision() != fromDir.Revision() || len(embedded.Revision()) != 12 {
		t.Fatalf("embedded %q, directory %q", embedded.Revision(), fromDir.Revision())
	}
	// Names count, not only contents.
	a, _ := newTestEngine(t, map[string]string{"a.rego": versioned("v1")})
	b, _ := newTestEngine(t, map[string]string{"b.rego": versioned("v1")})
	if a.Revision() == b.Revision() {
		t.Fatal("renaming a file kept the revision")
	}
}

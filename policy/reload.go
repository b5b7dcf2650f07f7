package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultWatchInterval is Watch's poll interval when given none.
const DefaultWatchInterval = 2 * time.Second

// Reload re-reads the policy directory, compiles it and prepares its
// queries. On success the new policy replaces the old atomically (Decide
// calls already running finish with the old one) and, if its Revision
// differs, subscribers receive the new revision. On failure the old policy
// stays in force, LastError reports the failure (file and line for compile
// errors) and Reload returns it. Files identical to those in force are not
// recompiled. Reloads are serialised.
//
// With the embedded default (Options.Dir == "") there is nothing to re-read
// and Reload returns nil.
func (e *Engine) Reload() error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	old := e.cur.Load()
	files, err := readFiles(e.opts.Dir)
	if err == nil && hashFiles(files, anyFile) == old.content {
		e.setLastError(nil)
		return nil
	}
	var s *snapshot
	if err == nil {
		s, err = compile(context.Background(), e.opts.Dir, files)
	}
	if err != nil {
		e.setLastError(err)
		e.log.Error("policy reload failed; the previous policy stays in force",
			"dir", e.opts.Dir, "revision", old.revision, "err", err)
		e.failures.notify(err)
		return err
	}
	e.cur.Store(s)
	e.setLastError(nil)
	if s.revision != old.revision {
		e.log.Info("policy reloaded", "dir", e.opts.Dir, "revision", s.revision, "previous", old.revision)
		e.revisions.notify(s.revision)
	} else {
		e.log.Debug("policy tests changed; policy unchanged", "dir", e.opts.Dir, "revision", s.revision)
	}
	return nil
}

// LastError returns why the last reload failed, or nil if the policy in
// force is the newest one read (the last reload succeeded or found nothing
// new). For /readyz detail.
func (e *Engine) LastError() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastErr
}

func (e *Engine) setLastError(err error) {
	e.mu.Lock()
	e.lastErr = err
	e.mu.Unlock()
}

// Subscribe returns a channel that receives the new Revision after each
// reload that changes it, and a function that ends the subscription and
// closes the channel. The channel holds one pending revision: a subscriber
// that falls behind gets the newest revision, never a stale one, and never
// blocks a reload.
func (e *Engine) Subscribe() (<-chan string, func()) { return e.revisions.subscribe() }

// SubscribeFailures is Subscribe for failed reloads: the channel receives
// each reload's error (the previous policy stays in force), the newest one
// if the subscriber fell behind. An audit trail records them: an attempt
// to change the policy that did not take effect.
func (e *Engine) SubscribeFailures() (<-chan error, func()) { return e.failures.subscribe() }

// latest hands values to subscribers, each holding at most the newest
// value it has not read.
type latest[T any] struct {
	mu   sync.Mutex
	subs map[*chan T]struct{}
}

func (l *latest[T]) subscribe() (<-chan T, func()) {
	ch := make(chan T, 1)
	l.mu.Lock()
	if l.subs == nil {
		l.subs = map[*chan T]struct{}{}
	}
	l.subs[&ch] = struct{}{}
	l.mu.Unlock()
	return ch, sync.OnceFunc(func() {
		l.mu.Lock()
		delete(l.subs, &ch)
		close(ch)
		l.mu.Unlock()
	})
}

// notify hands v to every subscriber, replacing a value it has not read.
func (l *latest[T]) notify(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs {
		select {
		case <-*ch: // drop the stale pending value
		default:
		}
		*ch <- v // cannot block: the buffer is empty and we are the only sender
	}
}

// Watch polls the policy directory every interval (DefaultWatchInterval if
// <= 0) and calls Reload when the names, sizes or modification times of its
// .rego files change; Reload then compares contents, so a touched but
// unchanged file reloads nothing. Failures are logged and left in LastError;
// the same broken files are not retried until they change again. The first
// poll always checks, catching edits made between New and Watch. On a file
// system with coarse timestamps, an edit that keeps a file's size within
// one timestamp tick is seen only with the next change; Reload (on SIGHUP,
// say) always re-reads.
//
// Watch blocks until ctx is done: run it in a goroutine you own and cancel
// ctx to stop it. With the embedded default it returns at once.
func (e *Engine) Watch(ctx context.Context, every time.Duration) {
	dir := e.opts.Dir
	if dir == "" {
		e.log.Debug("policy watch: embedded policy, nothing to watch")
		return
	}
	if every <= 0 {
		every = DefaultWatchInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last, lastStatErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp, err := fingerprint(dir)
		if err != nil {
			if msg := err.Error(); msg != lastStatErr {
				lastStatErr = msg
				e.setLastError(err)
				e.log.Error("policy watch: cannot read the policy directory; the current policy stays in force", "dir", dir, "err", err)
			}
			last = ""
			continue
		}
		lastStatErr = ""
		if fp == last {
			continue
		}
		last = fp
		_ = e.Reload() // logs and records its own failure
	}
}

// fingerprint summarises the .rego files of dir by name, size and
// modification time (nanoseconds).
func fingerprint(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("policy: reading policy directory: %w", err)
	}
	var lines []string
	for _, de := range entries {
		if de.IsDir() || !strings.HasSuffix(de.Name(), ".rego") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, de.Name()))
		if err != nil {
			if os.IsNotExist(err) {
				continue // removed since ReadDir; the next poll sees it gone
			}
			return "", fmt.Errorf("policy: %w", err)
		}
		lines = append(lines, fmt.Sprintf("%s\x00%d\x00%d", de.Name(), fi.Size(), fi.ModTime().UnixNano()))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/policy"
)

// AuditConfig tunes the audit trail. It is always on: sluice serves no
// data it has not recorded (fail closed).
type AuditConfig struct {
	// Topic is the audit topic (after topic_prefix). Default sluice.audit.
	Topic string `yaml:"topic"`
	// Instance names this gateway's chains across restarts (1-63 of
	// [A-Za-z0-9._-]). Default: the host name and a hash of the data
	// directory.
	Instance string `yaml:"instance"`
	// AckTimeout bounds how long an event may take to be persisted before
	// the trail counts as unavailable. Default 5s: a burst of stream opens
	// (a thousand subscribers reconnecting) must not trip it.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// CheckpointEvery and CheckpointInterval: a signed checkpoint every N
	// events or T. Defaults 1000 and 10s.
	CheckpointEvery    int           `yaml:"checkpoint_every"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// SigningKeyFile is the Ed25519 key (PKCS#8 PEM) that signs
	// checkpoints; created if missing. Replicas that share one file
	// publish one key at GET /v1/audit/keys. Default
	// <data-dir>/audit/signing-key.pem.
	SigningKeyFile string `yaml:"signing_key_file"`
	// SummaryInterval: a stream's delivery summary at least this often.
	// Default 1 minute.
	SummaryInterval time.Duration `yaml:"summary_interval"`
}

var instancePattern = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (c *AuditConfig) defaults(dataDir string) {
	if c.Topic == "" {
		c.Topic = audit.DefaultTopic
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		abs, _ := filepath.Abs(dataDir)
		sum := sha256.Sum256([]byte(abs))
		host = strings.Trim(instancePattern.ReplaceAllString(host, "-"), "-")
		if len(host) > 40 {
			host = host[:40]
		}
		if host == "" {
			host = "sluice"
		}
		c.Instance = host + "-" + hex.EncodeToString(sum[:4])
	}
	if c.SummaryInterval <= 0 {
		c.SummaryInterval = time.Minute
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 5 * time.Second
	}
	if c.SigningKeyFile == "" {
		c.SigningKeyFile = audit.SigningKeyPath(dataDir)
	}
}

// auditor writes the gateway's audit events: access decisions, streams and
// their deliveries, lifecycle changes, policy reloads, consent.
type auditor struct {
	log     *lazyLog
	logger  *slog.Logger
	summary time.Duration
	now     func() time.Time
	consent *consentQueue
}

// openAudit opens the audit log on the gateway's Kafka cluster, with keys
// kept in the data directory.
func openAudit(ctx context.Context, cfg Config, opts []kgo.Opt, m *prometheus.Registry) (*auditor, error) {
	sk, err := audit.LoadOrCreateSigningKey(cfg.Audit.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("audit: signing key: %w", err)
	}
	pk, err := audit.LoadOrCreatePseudonymKey(audit.PseudonymKeyPath(cfg.DataDir))
	if err != nil {
		return nil, fmt.Errorf("audit: pseudonym key: %w", err)
	}
	acfg := audit.Config{
		KafkaOpts: opts, Topic: cfg.TopicPrefix + cfg.Audit.Topic, Instance: cfg.Audit.Instance,
		SigningKey: sk, PseudonymKey: pk, AckTimeout: cfg.Audit.AckTimeout,
		CheckpointEvery: cfg.Audit.CheckpointEvery, CheckpointInterval: cfg.Audit.CheckpointInterval,
		Software: "sluice", Logger: cfg.Logger,
	}
	l := &lazyLog{cfg: acfg, pk: pk, pub: audit.KeySet(sk.Public().(ed25519.PublicKey)), stop: make(chan struct{}), done: make(chan struct{})}
	// The trail opens now if Kafka answers; otherwise it keeps trying and,
	// until it opens, refuses access (fail closed) while the gateway
	// starts and reports not ready.
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = l.open(octx)
	cancel()
	if err != nil {
		cfg.Logger.Error("audit trail not open; access is refused until it is", "err", err)
		go l.retry(cfg.Logger)
	} else {
		close(l.done)
	}
	a := &auditor{log: l, logger: cfg.Logger, summary: cfg.Audit.SummaryInterval, now: time.Now,
		consent: &consentQueue{ch: make(chan audit.Consent, 4096)}}
	stat := func(name, help string, f func(audit.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(l.Stats()) })
	}
	m.MustRegister(
		stat("sluice_audit_events_total", "Audit events persisted (acks=all).", func(s audit.Stats) float64 { return float64(s.Appended) }),
		stat("sluice_audit_failures_total", "Audit appends that failed or were not acknowledged in time.", func(s audit.Stats) float64 { return float64(s.Failed) }),
		stat("sluice_audit_checkpoints_total", "Signed audit checkpoints persisted.", func(s audit.Stats) float64 { return float64(s.Checkpoints) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_audit_healthy", Help: "1 while audit events are persisted; 0: access refused and streams paused."},
			func() float64 {
				if l.Healthy() == nil {
					return 1
				}
				return 0
			}),
	)
	return a, nil
}

// lazyLog is the audit log, opened at start or, when Kafka did not answer
// then, by a background retry; until it is open it is unhealthy and takes
// no events.
type lazyLog struct {
	cfg  audit.Config
	pk   []byte
	pub  []byte // the key set, known before the log opens
	l    atomic.Pointer[audit.Log]
	err  atomic.Pointer[error] // why it is not open
	stop chan struct{}         // closed by Close: stop retrying
	done chan struct{}         // closed when no retry runs
	once sync.Once
}

func (z *lazyLog) open(ctx context.Context) error {
	l, err := audit.Open(ctx, z.cfg)
	if err != nil {
		err = fmt.Errorf("audit trail not open: %w", err)
		z.err.Store(&err)
		return err
	}
	z.l.Store(l)
	return nil
}

// retry opens the log every 2 s until it opens or Close is called.
func (z *lazyLog) retry(log *slog.Logger) {
	defer close(z.done)
	for {
		select {
		case <-z.stop:
			return
		case <-time.After(2 * time.Second):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go func() {
			select {
			case <-z.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := z.open(ctx)
		cancel()
		if err == nil {
			log.Info("audit trail open; access resumes")
			return
		}
	}
}

func (z *lazyLog) Healthy() error {
	if l := z.l.Load(); l != nil {
		return l.Healthy()
	}
	if e := z.err.Load(); e != nil {
		return *e
	}
	return errors.New("audit trail not open")
}

func (z *lazyLog) Append(ctx context.Context, ev audit.Event) error {
	if l := z.l.Load(); l != nil {
		return l.Append(ctx, ev)
	}
	return fmt.Errorf("%w: %v", audit.ErrUnavailable, z.Healthy())
}

func (z *lazyLog) Stats() audit.Stats {
	if l := z.l.Load(); l != nil {
		return l.Stats()
	}
	return audit.Stats{}
}

func (z *lazyLog) PublicKeys() []byte { return z.pub }

func (z *lazyLog) Topic() string { return z.cfg.Topic }

func (z *lazyLog) Pseudonymise(v string) string { return audit.PseudonymiseSubject(z.pk, v) }

// Close stops a retry and closes the log if it opened.
func (z *lazyLog) Close(ctx context.Context) error {
	z.once.Do(func() { close(z.stop) })
	<-z.done
	if l := z.l.Load(); l != nil {
		return l.Close(ctx)
	}
	return nil
}

// PublicKeys is the JWK set of the key that signs this gateway's
// checkpoints (GET /v1/audit/keys).
func (a *auditor) PublicKeys() []byte { return a.log.PublicKeys() }

// Topic is the audit topic's full name.
func (a *auditor) Topic() string { return a.log.Topic() }

// Healthy implements httpapi.Auditor.
func (a *auditor) Healthy() error { return a.log.Healthy() }

// appendEvent persists ev; it fails fast while the trail is unhealthy.
func (a *auditor) appendEvent(ctx context.Context, ev audit.Event) error {
	if err := a.log.Healthy(); err != nil {
		return err
	}
	return a.log.Append(ctx, ev)
}

// decision records an access decision.
func (a *auditor) decision(ctx context.Context, ev audit.Access) error {
	return a.appendEvent(ctx, audit.Event{Kind: audit.KindAccess, Access: &ev})
}

// accessEvent describes a compiled plan's decision for the trail: what it
// drops and what it masks (transform names, never keys or values).
func accessEvent(pl *plan, door, credential string) audit.Access {
	ev := audit.Access{
		Allowed: pl.view != nil, Partner: pl.partner.ID, Product: pl.product.ID, Purpose: pl.purpose,
		Door: door, Revision: pl.decision.Revision, Credential: credential,
	}
	if !ev.Allowed {
		ev.Reason = reasonCode(pl)
	}
	for _, f := range pl.fields {
		op, _ := f.Treatment["op"].(string)
		switch op {
		case "drop":
			ev.Dropped = append(ev.Dropped, f.Name)
		case "", "keep", "clear":
		default:
			if ev.Masked == nil {
				ev.Masked = map[string]string{}
			}
			ev.Masked[f.Name] = op
		}
	}
	sort.Strings(ev.Dropped)
	return ev
}

// reasonCode is the stable code of a denial.
func reasonCode(pl *plan) string {
	switch {
	case errors.Is(pl.err, policy.ErrFailed):
		return "policy-error"
	case pl.err != nil:
		return "plan-not-applicable"
	}
	return "policy-denied"
}

// doorOf names the front door of an HTTP request for the trail.
func doorOf(path string) string {
	switch {
	case strings.HasSuffix(path, "/stream"):
		return "sse"
	case strings.HasSuffix(path, "/records"):
		return "rest"
	case strings.HasSuffix(path, "/view"), strings.HasSuffix(path, "/schema"):
		return "preview"
	}
	return "http"
}

// Open implements httpapi.Auditor.
func (a *auditor) Open(ctx context.Context, s httpapi.AuditStream) (httpapi.Delivery, error) {
	d := &delivery{a: a, stream: streamID(), s: s, first: s.Cursor}
	if s.Door == "rest" {
		// A page is covered by its access decision, just recorded; its
		// delivery is summarised when it is written.
		if err := a.log.Healthy(); err != nil {
			return nil, err
		}
		d.coveredAt = a.now()
		return d, nil
	}
	if err := a.appendEvent(ctx, audit.Event{Kind: audit.KindStreamOpen, Stream: &audit.Stream{
		ID: d.stream, Partner: s.Partner, Product: s.Product, Purpose: s.Purpose, Door: s.Door, Revision: s.Revision, Cursor: s.Cursor,
	}}); err != nil {
		return nil, err
	}
	d.coveredAt = a.now()
	return d, nil
}

func streamID() string { return "st_" + strings.ToLower(rand.Text()[:16]) }

// delivery is httpapi.Delivery: a stream's (or page's) audit record.
type delivery struct {
	a      *auditor
	stream string
	s      httpapi.AuditStream

	mu                   sync.Mutex
	coveredAt            time.Time // when the last persisted event covering deliveries was written
	records, bytes       uint64    // since the last summary
	totalRec, totalBytes uint64
	first, last          string // cursors bounding the current window
	closed               bool
}

// Cover implements httpapi.Delivery.
func (d *delivery) Cover(ctx context.Context) error {
	if err := d.a.log.Healthy(); err != nil {
		return err
	}
	d.mu.Lock()
	due := d.a.now().Sub(d.coveredAt) >= d.a.summary
	d.mu.Unlock()
	if !due {
		return nil
	}
	return d.summarise(ctx, false)
}

// summarise appends the summary of the window since the last one.
func (d *delivery) summarise(ctx context.Context, final bool) error {
	d.mu.Lock()
	ev := audit.Delivery{Stream: d.stream, Partner: d.s.Partner, Product: d.s.Product,
		Records: d.records, Bytes: d.bytes, FirstCursor: d.first, LastCursor: d.last,
		TotalRecords: d.totalRec, TotalBytes: d.totalBytes, Final: final}
	d.mu.Unlock()
	// Not cancelled with the request: a summary the client's leaving cut
	// short could land and then be written again at close (Append is
	// bounded by the ack timeout anyway). After a summary in doubt (not
	// acknowledged in time, persisted later) the next one repeats its
	// window; the totals are authoritative.
	if err := d.a.log.Append(context.WithoutCancel(ctx), audit.Event{Kind: audit.KindDelivery, Delivery: &ev}); err != nil {
		return err
	}
	d.mu.Lock()
	d.records -= ev.Records
	d.bytes -= ev.Bytes
	if ev.LastCursor != "" {
		d.first = ev.LastCursor
	}
	d.coveredAt = d.a.now()
	d.mu.Unlock()
	return nil
}

// Delivered implements httpapi.Delivery.
func (d *delivery) Delivered(records, bytes int, cursor string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records += uint64(records)
	d.bytes += uint64(bytes)
	d.totalRec += uint64(records)
	d.totalBytes += uint64(bytes)
	d.last = cursor
}

// Close implements httpapi.Delivery: the final summary, then (streams)
// the close event. Bounded: a trail that is down gets a logged failure.
func (d *delivery) Close(reason string) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.summarise(ctx, true)
	if err == nil && d.s.Door != "rest" {
		err = d.a.log.Append(ctx, audit.Event{Kind: audit.KindStreamClose, Stream: &audit.Stream{
			ID: d.stream, Partner: d.s.Partner, Product: d.s.Product, Purpose: d.s.Purpose, Door: d.s.Door,
			Revision: d.s.Revision, Cursor: d.last, Reason: reason,
		}})
	}
	if err != nil {
		d.a.logFailure("stream close", err, "stream", d.stream, "partner", d.s.Partner, "product", d.s.Product)
	}
}

// logFailure logs an event the trail could not take (the trail's own
// health turns the gateway away meanwhile).
func (a *auditor) logFailure(what string, err error, kv ...any) {
	a.logger.Error("audit event not persisted: "+what, append(kv, "err", err)...)
}

// lifecycle records a subscription or key change.
func (a *auditor) lifecycle(ctx context.Context, kind audit.Kind, ev audit.Lifecycle) error {
	return a.appendEvent(ctx, audit.Event{Kind: kind, Lifecycle: &ev})
}

// admin records an administrative action.
func (a *auditor) admin(ctx context.Context, ev audit.Admin) error {
	return a.appendEvent(ctx, audit.Event{Kind: audit.KindAdmin, Admin: &ev})
}

// policyReload records a revision coming into force, with the SHA-256 of
// each policy file (embedded files when no directory is configured).
func (a *auditor) policyReload(ctx context.Context, rev, dir string, reloadErr error) error {
	ev := audit.PolicyReload{Revision: rev, Files: policyHashes(dir)}
	if reloadErr != nil {
		ev.Error = reloadErr.Error()
	}
	return a.appendEvent(ctx, audit.Event{Kind: audit.KindPolicyReload, Policy: &ev})
}

// policyHashes hashes the .rego and .json files of the policy: dir, or
// the embedded defaults.
func policyHashes(dir string) map[string]string {
	fsys, _ := fs.Sub(policy.DefaultPolicy, "rego")
	if dir != "" {
		fsys = os.DirFS(dir)
	}
	out := map[string]string{}
	_ = fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !(strings.HasSuffix(p, ".rego") || strings.HasSuffix(p, ".json")) {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(b)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	return out
}

// close writes the chain's close checkpoint (after the streams ended).
func (a *auditor) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.log.Close(ctx); err != nil {
		a.logger.Warn("audit log close incomplete: the chain stays open", "err", err)
	}
}

// ready is nil when a change may be made: the trail records it (fail
// closed). A nil auditor is always ready.
func (a *auditor) ready() error {
	if a == nil {
		return nil
	}
	if err := a.log.Healthy(); err != nil {
		return fmt.Errorf("%w: %v", httpapi.ErrAuditUnavailable, err)
	}
	return nil
}

// change records a subscription or key change made through the API (after
// it is committed: ready was checked before). The acting user is the
// caller; an admin's change is also an admin action.
func (a *auditor) change(ctx context.Context, kind audit.Kind, ev audit.Lifecycle) {
	if a == nil {
		return
	}
	if err := a.lifecycle(ctx, kind, ev); err != nil {
		a.logFailure(string(kind)+" "+ev.Action, err, "id", ev.ID, "partner", ev.Partner, "actor", ev.Actor)
		return
	}
	if ev.Actor == AdminPartner && ev.Partner != AdminPartner {
		if err := a.admin(ctx, audit.Admin{Actor: ev.Actor, Action: string(kind) + " " + ev.Action, Target: ev.Partner + "/" + ev.ID, Detail: ev.Reason}); err != nil {
			a.logFailure("admin action", err, "actor", ev.Actor)
		}
	}
}

// consentQueue takes applied consent changes to record; the consent
// reader must never wait for the trail (an opt-out applies regardless).
type consentQueue struct {
	ch      chan audit.Consent
	dropped atomic.Uint64
}

// consentChanged is consent.Store.OnChange: it queues the change with the
// subject pseudonymised under the audit-only key.
func (a *auditor) consentChanged(subject []byte, optOuts []string) {
	ev := audit.Consent{Subject: a.log.Pseudonymise(string(subject)), OptOuts: optOuts, Source: "consent-topic"}
	if ev.OptOuts == nil {
		ev.OptOuts = []string{}
	}
	select {
	case a.consent.ch <- ev:
	default:
		if a.consent.dropped.Add(1) == 1 {
			a.logger.Error("audit: consent changes arrive faster than the trail takes them; some are not recorded")
		}
	}
}

// runConsent records queued consent changes until ctx ends.
func (a *auditor) runConsent(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-a.consent.ch:
			if err := a.appendEvent(ctx, audit.Event{Kind: audit.KindConsent, Consent: &ev}); err != nil && ctx.Err() == nil {
				a.logFailure("consent change", err)
			}
		}
	}
}

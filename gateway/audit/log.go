package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures Open. The zero value of every optional field means its
// default.
type Config struct {
	// Brokers are the seed brokers. Optional when KafkaOpts has
	// kgo.SeedBrokers.
	Brokers []string
	// KafkaOpts are connection options (TLS, SASL, client id) shared with
	// the rest of the gateway. Producer options that the audit guarantees
	// depend on (acks, idempotence, partitioning, linger) are set after
	// them and win.
	KafkaOpts []kgo.Opt
	// Topic is the audit topic. Default "sluice.audit". Created if missing
	// with Partitions partitions and unlimited retention.
	Topic string
	// Partitions is the partition count when creating the topic. Default 1.
	// Each chain is pinned to one partition (chosen from its id when it
	// starts), so any count keeps each chain in order.
	Partitions int32
	// ReplicationFactor when creating the topic. Default -1: the broker's
	// default.
	ReplicationFactor int16
	// Instance identifies this gateway process across restarts, e.g. the
	// pod name: 1-63 of [A-Za-z0-9._-]. Required.
	Instance string
	// SigningKey signs checkpoints. Required (LoadOrCreateSigningKey).
	SigningKey ed25519.PrivateKey
	// PseudonymKey is the audit-only HMAC key of Log.Pseudonymise, at
	// least 32 bytes. Required (LoadOrCreatePseudonymKey).
	PseudonymKey []byte
	// AckTimeout bounds Append: an event not acknowledged by every in-sync
	// replica within it fails, and the log turns unhealthy. Default 2s.
	AckTimeout time.Duration
	// CheckpointEvery seals the chain after this many events. Default 1000.
	CheckpointEvery int
	// CheckpointInterval seals the chain this long after its last
	// checkpoint if events came since. Default 10s.
	CheckpointInterval time.Duration
	// MaxBatch is the most events produced in one round. Default 1024.
	MaxBatch int
	// PredecessorScan is how many records at the end of each partition
	// Open reads to find this instance's previous chain and link it.
	// Default 10000; negative disables the link.
	PredecessorScan int
	// Software is recorded in each chain's start event, e.g. the version.
	Software string
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultTopic is the audit topic's default name.
const DefaultTopic = "sluice.audit"

func (c *Config) defaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 2 * time.Second
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 1000
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 10 * time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.PredecessorScan == 0 {
		c.PredecessorScan = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	switch {
	case !instanceRE.MatchString(c.Instance):
		return fmt.Errorf("audit: instance %q: want 1-63 of [A-Za-z0-9._-], starting with a letter or digit", c.Instance)
	case len(c.SigningKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("audit: signing key: want an Ed25519 private key (%d bytes), have %d bytes", ed25519.PrivateKeySize, len(c.SigningKey))
	case len(c.PseudonymKey) < 32:
		return fmt.Errorf("audit: pseudonym key: %d bytes must be >= 32", len(c.PseudonymKey))
	case c.Partitions < 1:
		return fmt.Errorf("audit: partitions %d must be >= 1", c.Partitions)
	case c.AckTimeout < 0:
		return fmt.Errorf("audit: ack timeout %s must be > 0", c.AckTimeout)
	case c.CheckpointEvery < 1:
		return fmt.Errorf("audit: checkpoint every %d must be >= 1", c.CheckpointEvery)
	case c.CheckpointInterval < 0:
		return fmt.Errorf("audit: checkpoint interval %s must be > 0", c.CheckpointInterval)
	case c.MaxBatch < 1:
		return fmt.Errorf("audit: max batch %d must be >= 1", c.MaxBatch)
	}
	return nil
}

// Sentinel errors.
var (
	// ErrUnavailable is wrapped by every error of an Append that could not
	// be persisted in time: the caller must not deliver what the event
	// covers (deny the access, pause the stream).
	ErrUnavailable = errors.New("audit: unavailable")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit: log closed")
)

// AppendError is an Append failure. It wraps ErrUnavailable and the cause.
type AppendError struct {
	// InDoubt is true when the event was handed to Kafka and not
	// acknowledged within the bound: it may still be persisted later
	// (exactly once, in its place in the chain). Treat it as not
	// persisted; the chain stays valid either way.
	InDoubt bool
	Bound   time.Duration
	Err     error
}

func (e *AppendError) Error() string {
	if e.InDoubt {
		return fmt.Sprintf("audit: event not acknowledged within %s (it may still be persisted; treat it as not): %v", e.Bound, e.Err)
	}
	return fmt.Sprintf("audit: event not persisted: %v", e.Err)
}

func (e *AppendError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Log is the audit sink: one hash chain per Log, written to the audit
// topic. Append is safe for concurrent use; one writer goroutine, owned by
// the Log and stopped by Close, orders, hashes, signs and produces.
type Log struct {
	cfg       Config
	cl        *kgo.Client
	chain     *Chain // owned by the writer goroutine
	partition int32
	pub       ed25519.PublicKey

	queue     chan *pending
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	clOnce    sync.Once
	closeErr  error

	health health
	n      counters
	log    *slog.Logger
}

type pending struct {
	ev    Event
	state atomic.Int32 // pendingWaiting -> pendingTaken -> pendingEncoded, or pendingWaiting -> pendingAbandoned
	done  chan error   // buffered 1
}

const (
	pendingWaiting   int32 = iota
	pendingTaken           // the writer is encoding it
	pendingEncoded         // in the chain; the payload is no longer read
	pendingAbandoned       // Append gave up before the writer took it
)

type counters struct {
	appended, failed, inDoubt, checkpoints, batches, seq atomic.Uint64
}

// Stats are the log's counters since Open, for metrics.
type Stats struct {
	Appended    uint64 // caller events acknowledged (with in-doubt ones that landed late)
	Failed      uint64 // Appends that returned an error (including in doubt)
	InDoubt     uint64 // of Failed: handed to Kafka, not acknowledged in time
	Checkpoints uint64 // checkpoint events acknowledged
	Batches     uint64 // produce rounds
	Seq         uint64 // events of the chain acknowledged (the next seq)
	Healthy     bool
}

// Open creates the topic if missing, links the instance's previous chain,
// starts a new chain and writes its start event (waiting for the ack), and
// starts the writer. Close stops it.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base := slices.Clone(cfg.KafkaOpts)
	if len(cfg.Brokers) > 0 {
		base = append(base, kgo.SeedBrokers(cfg.Brokers...))
	}
	cl, err := kgo.NewClient(append(slices.Clone(base),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(max(4*cfg.MaxBatch, 10000)),
		// Recover quickly once Kafka is back: the gateway refuses access
		// until then.
		kgo.RetryBackoffFn(func(tries int) time.Duration { return min(50*time.Millisecond<<min(tries, 4), 500*time.Millisecond) }),
		kgo.MetadataMinAge(500*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("audit: kafka client: %w", err)
	}
	l := &Log{cfg: cfg, cl: cl, queue: make(chan *pending, 2*cfg.MaxBatch), stop: make(chan struct{}), done: make(chan struct{}),
		log: cfg.Logger.With("topic", cfg.Topic), pub: cfg.SigningKey.Public().(ed25519.PublicKey)}
	l.health.ch = make(chan struct{})
	fail := func(err error) (*Log, error) {
		l.closeClient()
		return nil, err
	}
	parts, err := ensureTopic(ctx, kadm.NewClient(cl), cfg)
	if err != nil {
		return fail(err)
	}
	var pred *Link
	if cfg.PredecessorScan > 0 {
		if pred, err = findPredecessor(ctx, base, cfg.Topic, cfg.Instance, cfg.PredecessorScan); err != nil {
			return fail(err)
		}
	}
	id := NewChainID(cfg.Instance, cfg.Now())
	if l.chain, err = NewChain(id, cfg.Instance, cfg.SigningKey, cfg.Now); err != nil {
		return fail(err)
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	l.partition = int32(h.Sum32() % uint32(parts))
	l.log = l.log.With("chain", id)

	start, err := l.chain.Start(ChainStart{Predecessor: pred, Software: cfg.Software,
		CheckpointEvery: cfg.CheckpointEvery, CheckpointInterval: cfg.CheckpointInterval.String()})
	if err != nil {
		return fail(err)
	}
	res := l.produce([]*kgo.Record{l.record(start)}, true)
	if res[0] != nil {
		return fail(fmt.Errorf("audit: write chain start to %s: %w", cfg.Topic, res[0]))
	}
	l.n.seq.Store(l.chain.State().Next)
	go l.run()
	return l, nil
}

// Chain is this log's chain id.
func (l *Log) Chain() string { return l.chain.ID() }

// Topic is the audit topic.
func (l *Log) Topic() string { return l.cfg.Topic }

// PublicKeys is the JWK set of the keys that sign this log's checkpoints:
// the body of GET /v1/audit/keys (merge sets when several keys are in use).
func (l *Log) PublicKeys() []byte { return KeySet(l.pub) }

// Pseudonymise returns the audit pseudonym of a subscriber identifier
// under the log's audit-only key.
func (l *Log) Pseudonymise(value string) string {
	return PseudonymiseSubject(l.cfg.PseudonymKey, value)
}

// Append adds ev to the chain and returns once it is acknowledged by Kafka
// (acks=all), or fails within AckTimeout (or ctx) with an error wrapping
// ErrUnavailable. ev needs Kind and the payload of its kind; the envelope
// is filled in. Many concurrent Appends are produced together.
func (l *Log) Append(ctx context.Context, ev Event) error {
	if err := ev.checkCaller(); err != nil {
		return err
	}
	p := &pending{ev: ev, done: make(chan error, 1)}
	bound := time.NewTimer(l.cfg.AckTimeout)
	defer bound.Stop()
	select {
	case <-l.stop:
		return ErrClosed
	default:
	}
	select {
	case l.queue <- p:
	case <-l.stop:
		return ErrClosed
	case <-ctx.Done():
		l.n.failed.Add(1)
		return &AppendError{Bound: l.cfg.AckTimeout, Err: ctx.Err()}
	case <-bound.C:
		return l.gaveUp(p, errors.New("queue full: the writer is stalled"))
	}
	select {
	case err := <-p.done:
		if err != nil {
			l.n.failed.Add(1)
		}
		return err
	case <-ctx.Done():
		return l.gaveUp(p, ctx.Err())
	case <-bound.C:
		return l.gaveUp(p, fmt.Errorf("no acknowledgement within %s", l.cfg.AckTimeout))
	case <-l.done:
		if p.state.CompareAndSwap(pendingWaiting, pendingAbandoned) {
			return ErrClosed
		}
		err := <-p.done // the writer answers everything it took before exiting
		if err != nil {
			l.n.failed.Add(1)
		}
		return err
	}
}

// gaveUp ends an Append that ran out of time or context.
func (l *Log) gaveUp(p *pending, cause error) error {
	if p.state.CompareAndSwap(pendingWaiting, pendingAbandoned) {
		// Never handed to Kafka: definitely not persisted.
		l.n.failed.Add(1)
		err := &AppendError{Bound: l.cfg.AckTimeout, Err: cause}
		if !errors.Is(cause, context.Canceled) {
			l.health.set(err)
		}
		return err
	}
	// The writer took it; wait the few microseconds until it is encoded,
	// so the caller may reuse the event's payload once we return.
	for p.state.Load() == pendingTaken {
		runtime.Gosched()
	}
	select {
	case err := <-p.done: // answered in the meantime
		if err != nil {
			l.n.failed.Add(1)
		}
		return err
	default:
	}
	l.n.failed.Add(1)
	l.n.inDoubt.Add(1)
	err := &AppendError{InDoubt: true, Bound: l.cfg.AckTimeout, Err: cause}
	l.health.set(err)
	return err
}

// Healthy is nil while events are being persisted within the bound, else
// why not. It does not block. The gateway refuses new access and pauses
// streams while it is not nil.
func (l *Log) Healthy() error {
	_, err := l.Watch()
	return err
}

// Watch returns the current health (as Healthy) and a channel closed at
// the next change between healthy and unhealthy.
func (l *Log) Watch() (changed <-chan struct{}, err error) {
	l.health.mu.Lock()
	defer l.health.mu.Unlock()
	return l.health.ch, l.health.err
}

// Stats returns the counters.
func (l *Log) Stats() Stats {
	return Stats{
		Appended: l.n.appended.Load(), Failed: l.n.failed.Load(), InDoubt: l.n.inDoubt.Load(),
		Checkpoints: l.n.checkpoints.Load(), Batches: l.n.batches.Load(), Seq: l.n.seq.Load(),
		Healthy: l.Healthy() == nil,
	}
}

// Close stops accepting events, writes what is queued and a final signed
// chain-close, waits for their acks until ctx ends, and closes the Kafka
// client. It returns an error if the chain-close was not persisted (the
// chain then verifies as open). Call it after the streams have ended.
func (l *Log) Close(ctx context.Context) error {
	l.closeOnce.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-ctx.Done():
		l.closeClient() // fails what is buffered; the writer then exits
		<-l.done
		if l.closeErr == nil {
			l.closeErr = fmt.Errorf("audit: close: %w", ctx.Err())
		}
	}
	l.closeClient()
	return l.closeErr
}

func (l *Log) closeClient() { l.clOnce.Do(l.cl.Close) }

// health is the log's state, with a channel replaced at each transition.
type health struct {
	mu  sync.Mutex
	err error
	ch  chan struct{}
}

func (h *health) set(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	was := h.err == nil
	h.err = err
	if was != (err == nil) {
		close(h.ch)
		h.ch = make(chan struct{})
	}
}

func (l *Log) record(b []byte) *kgo.Record {
	return &kgo.Record{Key: []byte(l.chain.ID()), Value: b, Partition: l.partition, Topic: l.cfg.Topic}
}

// run is the writer: it takes queued events in batches, chains them and
// produces each batch, waiting for its outcome before the next. Waiting
// keeps the chain exact: if part of a batch fails, franz-go's idempotent
// producer fails that record and every later one of the partition, so what
// Kafka holds is a prefix of the batch, and the chain continues from the
// last acknowledged event, reusing the failed seqs. A batch that is
// neither acknowledged nor failed (broker hung) stalls the chain: nothing
// else is produced until franz-go resolves it, so an in-doubt event lands
// at most once and in its place.
func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(min(l.cfg.CheckpointInterval, time.Second))
	defer tick.Stop()
	for {
		select {
		case p := <-l.queue:
			l.write(l.collect(p), false)
		case <-tick.C:
			l.write(nil, false)
		case <-l.stop:
			l.finish()
			return
		}
	}
}

func (l *Log) collect(p *pending) []*pending {
	batch := []*pending{p}
	for len(batch) < l.cfg.MaxBatch {
		select {
		case p := <-l.queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// finish writes what is queued and the chain-close.
func (l *Log) finish() {
	var batch []*pending
	for drained := false; !drained; {
		select {
		case p := <-l.queue:
			batch = append(batch, p)
		default:
			drained = true
		}
	}
	for len(batch) > l.cfg.MaxBatch {
		l.write(batch[:l.cfg.MaxBatch], false)
		batch = batch[l.cfg.MaxBatch:]
	}
	if err := l.write(batch, true); err != nil {
		l.closeErr = fmt.Errorf("audit: chain-close not persisted: %w", err)
	}
}

type out struct {
	p   *pending // nil for a checkpoint
	st  ChainState
	rec *kgo.Record
}

// write chains and produces one batch; with final it ends with the
// chain-close. It returns the first produce error.
func (l *Log) write(batch []*pending, final bool) error {
	base := l.chain.State()
	outs := make([]out, 0, len(batch)+2)
	checkpoint := func(final bool) {
		b, err := l.chain.Checkpoint(final)
		if err != nil { // cannot happen once started
			l.log.Error("audit checkpoint", "err", err)
			return
		}
		outs = append(outs, out{st: l.chain.State(), rec: l.record(b)})
	}
	for _, p := range batch {
		if !p.state.CompareAndSwap(pendingWaiting, pendingTaken) {
			continue // its Append gave up before we took it
		}
		b, err := l.chain.Append(&p.ev)
		p.state.Store(pendingEncoded)
		if err != nil {
			p.done <- err
			continue
		}
		outs = append(outs, out{p: p, st: l.chain.State(), rec: l.record(b)})
		if l.chain.CheckpointDue(l.cfg.CheckpointEvery, l.cfg.CheckpointInterval) {
			checkpoint(false)
		}
	}
	switch {
	case final:
		checkpoint(true)
	case len(outs) == 0 && (l.Healthy() != nil || l.chain.CheckpointDue(l.cfg.CheckpointEvery, l.cfg.CheckpointInterval)):
		// Idle: seal what came, or probe whether Kafka is back.
		checkpoint(false)
	}
	if len(outs) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(outs))
	for i := range outs {
		recs[i] = outs[i].rec
	}
	res := l.produce(recs, false)
	last, failed := -1, 0
	var first error
	for i, err := range res {
		if err == nil {
			last = i
			continue
		}
		if first == nil {
			first = err
		}
		failed++
	}
	if failed > 0 && last > slices.IndexFunc(res, func(e error) bool { return e != nil }) {
		// Cannot happen with franz-go's idempotent producer (it fails
		// every later record of the partition); if it does, the topic
		// has a gap that Verify will report.
		l.log.Error("audit: an event after a failed one was persisted; the chain has a gap", "err", first)
	}
	if last >= 0 {
		l.chain.Reset(outs[last].st)
	} else {
		l.chain.Reset(base)
	}
	l.n.seq.Store(l.chain.State().Next)
	l.n.batches.Add(1)
	for i, o := range outs {
		err := res[i]
		switch {
		case o.p == nil && err == nil:
			l.n.checkpoints.Add(1)
		case o.p == nil:
		case err == nil:
			l.n.appended.Add(1)
			o.p.done <- nil
		default:
			o.p.done <- &AppendError{Bound: l.cfg.AckTimeout, Err: err}
		}
	}
	if first != nil {
		l.log.Warn("audit events not persisted", "events", failed, "err", first)
		l.health.set(&AppendError{Bound: l.cfg.AckTimeout, Err: first})
		return first
	}
	l.health.set(nil)
	return nil
}

// produce hands recs to franz-go and waits until every one is acknowledged
// or failed, which may be longer than AckTimeout: past it the log is marked
// unhealthy and waiting goes on (franz-go does not fail records that are
// in flight); Close with an expired context ends the wait by closing the
// client. With opening (the start event) the client is closed at the bound.
func (l *Log) produce(recs []*kgo.Record, opening bool) []error {
	res := make([]error, len(recs))
	left := atomic.Int64{}
	left.Store(int64(len(recs)))
	all := make(chan struct{})
	for i, r := range recs {
		l.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			res[i] = err
			if left.Add(-1) == 0 {
				close(all)
			}
		})
	}
	bound := time.NewTimer(l.cfg.AckTimeout)
	defer bound.Stop()
	select {
	case <-all:
		return res
	case <-bound.C:
	}
	stalled := &AppendError{InDoubt: true, Bound: l.cfg.AckTimeout, Err: errors.New("produce to the audit topic stalled")}
	l.health.set(stalled)
	l.log.Warn("audit produce not acknowledged in time; chain stalled until Kafka answers", "bound", l.cfg.AckTimeout)
	if opening {
		l.closeClient()
	}
	<-all
	return res
}

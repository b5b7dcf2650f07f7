// Package hub shares one upstream read per product among all subscribers.
//
// For every product the hub runs one reader goroutine that long-polls the
// product's topic from its end, decodes every record once, and encodes it
// once per active view into that view's ring: a per-partition window of the
// most recent encoded events. Subscribers (SSE streams, REST pages) read the
// ring at their own positions. A subscriber whose position is older than the
// ring's window, because it started in the past or fell behind, reads Kafka
// directly through a shared non-blocking fetcher until it reaches the window
// again: it is never skipped ahead and never slows anyone else.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/gateway/internal/metrics"
	"github.com/sluicehq/sluice/gateway/internal/upstream"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/schemas"
)

// Config tunes the hub. The zero value means defaults.
type Config struct {
	// RingSize is the number of recent events kept per partition per view.
	// Default 8192.
	RingSize int
	// MaxWait is how long the reader's fetch waits for new records. Default 500ms.
	MaxWait time.Duration
	// FetchBytes is the most bytes fetched per partition per request. Default 1 MiB.
	FetchBytes int32
	// MetadataInterval is how often the reader looks for new partitions. Default 10s.
	MetadataInterval time.Duration
}

func (c *Config) defaults() {
	if c.RingSize <= 0 {
		c.RingSize = 8192
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.FetchBytes <= 0 {
		c.FetchBytes = 1 << 20
	}
	if c.MetadataInterval <= 0 {
		c.MetadataInterval = 10 * time.Second
	}
}

// Source is what the hub needs to know of a product.
type Source struct {
	Product string
	Topic   string
	Codec   *schemas.Codec
}

// Hub owns one reader per product. Create with New, start with Run, which
// returns when ctx is done and every reader has stopped.
type Hub struct {
	cfg     Config
	cluster *upstream.Cluster
	direct  *upstream.Fetcher
	m       *metrics.Metrics
	log     *slog.Logger

	products map[string]*Product
}

// New creates a hub for the given products.
func New(cfg Config, cluster *upstream.Cluster, m *metrics.Metrics, log *slog.Logger, sources []Source) *Hub {
	cfg.defaults()
	h := &Hub{cfg: cfg, cluster: cluster, direct: cluster.SharedFetcher(), m: m, log: log, products: map[string]*Product{}}
	for _, s := range sources {
		h.products[s.Product] = &Product{
			h: h, src: s, views: map[string]*viewRing{}, ready: make(chan struct{}),
			log: log.With("product", s.Product, "topic", s.Topic),
			lag: m.UpstreamLag.WithLabelValues(s.Product), read: m.UpstreamRecords.WithLabelValues(s.Product),
		}
	}
	return h
}

// Product returns the hub's product, or nil.
func (h *Hub) Product(id string) *Product { return h.products[id] }

// Run runs every product's reader until ctx is done.
func (h *Hub) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range h.products {
		wg.Go(func() { p.run(ctx) })
	}
	wg.Wait()
}

// Product is one product's reader and its views.
type Product struct {
	h    *Hub
	src  Source
	log  *slog.Logger
	lag  interface{ Set(float64) }
	read interface{ Add(float64) }

	ready chan struct{} // closed once the reader knows its start positions

	mu    sync.Mutex
	pos   []int64 // the reader's next offset per partition
	views map[string]*viewRing
	err   error // last reader error, for readiness
}

// Source returns what the product reads.
func (p *Product) Source() Source { return p.src }

// errNotStarted is the readiness error until the reader knows where it is.
var errNotStarted = errors.New("upstream reader starting")

// Err returns the reader's last error, nil when it is positioned and healthy.
func (p *Product) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	select {
	case <-p.ready:
		return nil
	default:
		return errNotStarted
	}
}

func (p *Product) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func (p *Product) run(ctx context.Context) {
	g := p.h.m.UpstreamReaders.WithLabelValues(p.src.Product)
	g.Inc()
	defer g.Dec()
	f, err := p.h.cluster.NewFetcher()
	if err != nil {
		p.setErr(err)
		p.log.Error("upstream reader not started", "err", err)
		return
	}
	defer f.Close()
	defer p.closeViews()

	// Start at the end: history is served by direct reads.
	for {
		pos, err := p.h.cluster.Offsets(ctx, p.src.Topic, upstream.End)
		if err == nil {
			p.mu.Lock()
			p.pos, p.err = pos, nil
			p.mu.Unlock()
			break
		}
		p.setErr(err)
		p.log.Warn("upstream reader waiting for topic", "err", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
	close(p.ready)

	rec := p.src.Codec.Layout().NewRecord()
	var ar arena
	lastMeta := time.Now()
	parts := allParts(len(p.pos))
	for ctx.Err() == nil {
		if time.Since(lastMeta) > p.h.cfg.MetadataInterval {
			lastMeta = time.Now()
			p.grow(ctx)
			parts = allParts(p.partitions())
		}
		p.mu.Lock()
		pos := append([]int64(nil), p.pos...)
		p.mu.Unlock()
		res, err := f.Fetch(ctx, p.src.Topic, pos, parts, p.h.cfg.MaxWait, p.h.cfg.FetchBytes)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.setErr(err)
			p.log.Warn("upstream fetch failed", "err", err)
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		p.setErr(nil)
		p.publish(ctx, res, rec, &ar)
	}
}

func allParts(n int) []int32 {
	ps := make([]int32, n)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps
}

func (p *Product) partitions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pos)
}

// grow picks up partitions added to the topic; they are read from the start.
func (p *Product) grow(ctx context.Context) {
	n, err := p.h.cluster.Partitions(ctx, p.src.Topic)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.pos) < n {
		p.pos = append(p.pos, 0)
		for _, r := range p.views {
			r.mu.Lock()
			r.parts = append(r.parts, partRing{})
			r.mu.Unlock()
		}
	}
}

// publish decodes each fetched record once, encodes it once per view, and
// appends the events to the views' rings.
func (p *Product) publish(ctx context.Context, res []upstream.Partition, rec *schemas.Record, ar *arena) {
	p.mu.Lock()
	defer p.mu.Unlock()
	views := make([]*viewRing, 0, len(p.views))
	for _, r := range p.views {
		views = append(views, r)
	}
	var lag int64
	var n int
	// Events of this batch, per view, per result.
	evs := make([][]Event, len(views))
	for _, fp := range res {
		part := fp.Partition
		if int(part) >= len(p.pos) {
			continue
		}
		if fp.Err != nil {
			var oor *upstream.OutOfRangeError
			if errors.As(fp.Err, &oor) && oor.LogStart >= 0 {
				// Retention removed records before we read them: restart the
				// partition at the log start. Rings lose their window there,
				// so subscribers behind it read directly and see the loss.
				p.log.Warn("upstream reader position out of range; restarting at log start",
					"partition", part, "offset", p.pos[part], "log_start", oor.LogStart)
				p.pos[part] = oor.LogStart
				for _, r := range views {
					r.mu.Lock()
					r.parts[part].reset(oor.LogStart)
					r.mu.Unlock()
				}
			} else {
				p.log.Warn("upstream partition read failed", "partition", part, "err", fp.Err)
			}
			continue
		}
		if fp.Next <= p.pos[part] {
			if fp.HighWatermark > p.pos[part] {
				lag += fp.HighWatermark - p.pos[part]
			}
			continue
		}
		for i := range evs {
			evs[i] = evs[i][:0]
		}
		for _, kr := range fp.Records {
			n++
			ok := true
			if len(views) > 0 {
				if err := p.src.Codec.Decode(ctx, kr.Value, rec); err != nil {
					ok = false
					p.decodeError(kr.Partition, kr.Offset, err)
				}
			}
			meta := view.Meta{Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp.UnixMilli()}
			for i, r := range views {
				e := Event{Partition: meta.Partition, Offset: meta.Offset, Timestamp: meta.Timestamp}
				if ok {
					cv, _ := r.view.(view.ConsentView)
					e.Data, e.Subject = ar.encode(r.view, cv, rec, meta, len(kr.Value))
				}
				evs[i] = append(evs[i], e)
			}
		}
		for i, r := range views {
			r.mu.Lock()
			pr := &r.parts[part]
			for _, e := range evs[i] {
				pr.push(e, r.capacity)
			}
			if pr.hi < fp.Next {
				pr.hi = fp.Next // control records and transaction markers
			}
			if pr.n == 0 {
				pr.lo = pr.hi
			}
			r.mu.Unlock()
		}
		p.pos[part] = fp.Next
		if fp.HighWatermark > fp.Next {
			lag += fp.HighWatermark - fp.Next
		}
	}
	for _, r := range views {
		r.mu.Lock()
		r.wake()
		r.mu.Unlock()
	}
	p.read.Add(float64(n))
	p.lag.Set(float64(lag))
}

var decodeLog = newLogLimiter(10, time.Minute)

func (p *Product) decodeError(part int32, off int64, err error) {
	reason := "malformed"
	switch {
	case errors.Is(err, schemas.ErrUnknownSchemaID):
		reason = "unknown_schema"
	case errors.Is(err, schemas.ErrIncompatible):
		reason = "incompatible_schema"
	}
	p.h.m.DecodeErrors.WithLabelValues(p.src.Product, reason).Inc()
	if decodeLog.allow() {
		p.log.Warn("record does not decode; skipped", "partition", part, "offset", off, "reason", reason, "err", err)
	}
}

func (p *Product) closeViews() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.views {
		r.mu.Lock()
		r.closed = true
		r.wake()
		r.mu.Unlock()
	}
}

// acquire returns the ring of v, creating it at the reader's position.
func (p *Product) acquire(ctx context.Context, v view.View) (*viewRing, error) {
	select {
	case <-p.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.views[v.Key()]
	if r == nil {
		r = newViewRing(v, p.pos, p.h.cfg.RingSize)
		p.views[v.Key()] = r
		p.h.m.Views.WithLabelValues(p.src.Product).Set(float64(len(p.views)))
	}
	r.refs++
	return r, nil
}

func (p *Product) release(r *viewRing) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.refs--
	if r.refs == 0 {
		delete(p.views, r.view.Key())
		p.h.m.Views.WithLabelValues(p.src.Product).Set(float64(len(p.views)))
	}
}

// peek returns the ring of v if one is being maintained.
func (p *Product) peek(key string) *viewRing {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.views[key]
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type logLimiter struct {
	mu     sync.Mutex
	n, max int
	per    time.Duration
	start  time.Time
}

func newLogLimiter(max int, per time.Duration) *logLimiter {
	return &logLimiter{max: max, per: per}
}

func (l *logLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.start) > l.per {
		l.start, l.n = time.Now(), 0
	}
	l.n++
	return l.n <= l.max
}

// PositionError says a requested position cannot be served.
type PositionError struct {
	Gone      bool    // true: older than retention; false: ahead of the log
	Earliest  []int64 // earliest valid positions (when Gone)
	Partition int32
	Offset    int64
}

func (e *PositionError) Error() string {
	if e.Gone {
		return fmt.Sprintf("hub: partition %d offset %d is older than the topic's retention", e.Partition, e.Offset)
	}
	return fmt.Sprintf("hub: partition %d offset %d is ahead of the end of the log", e.Partition, e.Offset)
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/internal/hub"
	"github.com/sluicehq/sluice/gateway/internal/upstream"
	"github.com/sluicehq/sluice/products"
)

// auditReader is httpapi.AuditReader: regulators read the audit topic
// through the upstream cluster with stateless fetches at exact offsets (no
// consumer group, nothing remembered between requests: the cursor is the
// whole state). It reads the topic, not this process's chain, so any
// replica serves every replica's events.
//
// The audit topic is not a product: no hub reader keeps it in memory. A
// page fetches from Kafka (non-blocking, through the cluster's shared
// client); a stream long-polls through a Fetcher of its own, closed with
// the stream.
type auditReader struct {
	cluster  *upstream.Cluster
	audit    *auditor
	partners *products.Partners
	topic    string
	now      func() time.Time
}

var _ httpapi.AuditReader = (*auditReader)(nil)

// newAuditReader reads g's audit topic; g's cluster, auditor and partners
// must be set.
func newAuditReader(g *Gateway) *auditReader {
	return &auditReader{cluster: g.cluster, audit: g.audit, partners: g.partners, topic: g.audit.Topic(), now: time.Now}
}

const (
	// auditClockSlack widens time seeks: an event's time is set when its
	// chain encodes it, its record's timestamp when it is produced, a
	// moment later (or by the broker's clock with LogAppendTime). Seeking
	// by record timestamp this much early (for from) and late (for to)
	// cannot miss an event; the event time filter does the exact cut.
	auditClockSlack = 5 * time.Minute
	// auditScanTime bounds the reading for one page; the page then ends
	// early, its cursor after what was read.
	auditScanTime = 2 * time.Second
	// auditFetchBytes is the most read from one partition per fetch.
	auditFetchBytes = 1 << 20
	// auditTailGrace is how long a stream rides out failing fetches
	// (a leader moving, a broker restarting) before it ends with an error
	// event; the client then resumes from its last id.
	auditTailGrace = 30 * time.Second
	// auditNotRegulator is the reason code of a refused read of the trail.
	auditNotRegulator = "not-regulator"
)

// Admit implements httpapi.AuditReader: only partners of type regulator
// read the audit trail, and every attempt is recorded in it, allowed or
// not, before the answer (fail closed: an attempt that cannot be recorded
// is refused).
func (a *auditReader) Admit(ctx context.Context, partner, door string) error {
	p, ok := a.partners.Get(partner)
	allowed := ok && p.Type == products.PartnerRegulator
	ev := audit.Access{Allowed: allowed, Partner: partner, Purpose: products.PurposeRegulatory, Door: door}
	if !allowed {
		ev.Reason = auditNotRegulator
	}
	if err := a.audit.decision(ctx, ev); err != nil {
		return err
	}
	if !allowed {
		return httpapi.ErrNotRegulator
	}
	return nil
}

// Keys implements httpapi.AuditReader.
func (a *auditReader) Keys() []byte { return a.audit.PublicKeys() }

// Resolve implements httpapi.AuditReader.
func (a *auditReader) Resolve(ctx context.Context, s hub.Start) ([]int64, error) {
	c := a.cluster
	switch s.Kind {
	case hub.StartEarliest:
		return c.Offsets(ctx, a.topic, upstream.Start)
	case hub.StartLatest:
		return c.Offsets(ctx, a.topic, upstream.End)
	case hub.StartTime:
		return c.OffsetsAfter(ctx, a.topic, s.Time.Add(-auditClockSlack).UnixMilli())
	}
	start, err := c.Offsets(ctx, a.topic, upstream.Start)
	if err != nil {
		return nil, err
	}
	end, err := c.Offsets(ctx, a.topic, upstream.End)
	if err != nil {
		return nil, err
	}
	if len(s.Positions) > len(start) {
		return nil, &hub.PositionError{Partition: int32(len(start)), Offset: -1}
	}
	pos := slices.Clone(s.Positions)
	for len(pos) < len(start) {
		pos = append(pos, start[len(pos)])
	}
	for i := range pos {
		switch {
		case pos[i] < start[i]:
			return nil, &hub.PositionError{Gone: true, Earliest: start, Partition: int32(i), Offset: pos[i]}
		case i < len(end) && pos[i] > end[i]:
			return nil, &hub.PositionError{Partition: int32(i), Offset: pos[i]}
		}
	}
	return pos, nil
}

// Read implements httpapi.AuditReader: it reads up to the end of each
// partition as it is now, or, with f.To, up to the first record
// (comfortably) after it, so that paging through a past time range ends.
func (a *auditReader) Read(ctx context.Context, pos []int64, f httpapi.AuditFilter, limit int) (httpapi.AuditPage, error) {
	end, err := a.cluster.Offsets(ctx, a.topic, upstream.End)
	if err != nil {
		return httpapi.AuditPage{}, err
	}
	pos = slices.Clone(pos)
	if pos, err = a.grow(ctx, pos, len(end)); err != nil {
		return httpapi.AuditPage{}, err
	}
	if !f.To.IsZero() {
		if bound := f.To.Add(auditClockSlack); bound.Before(a.now()) {
			after, err := a.cluster.OffsetsAfter(ctx, a.topic, bound.UnixMilli())
			if err != nil {
				return httpapi.AuditPage{}, err
			}
			for i := range end {
				if i < len(after) {
					end[i] = min(end[i], after[i])
				}
			}
		}
	}
	for len(end) < len(pos) {
		end = append(end, pos[len(end)]) // cannot happen: partitions never go away
	}
	sc := auditScan{r: a, f: f, fetcher: a.cluster.SharedFetcher()}
	return sc.read(ctx, pos, end, limit, 0, auditScanTime)
}

// grow appends the log start of partitions the topic gained beyond pos.
func (a *auditReader) grow(ctx context.Context, pos []int64, n int) ([]int64, error) {
	if n <= len(pos) {
		return pos, nil
	}
	start, err := a.cluster.Offsets(ctx, a.topic, upstream.Start)
	if err != nil {
		return pos, err
	}
	for len(pos) < min(n, len(start)) {
		pos = append(pos, start[len(pos)])
	}
	return pos, nil
}

// Follow implements httpapi.AuditReader.
func (a *auditReader) Follow(pos []int64, f httpapi.AuditFilter) (httpapi.AuditTail, error) {
	fe, err := a.cluster.NewFetcher()
	if err != nil {
		return nil, err
	}
	return &auditTail{sc: auditScan{r: a, f: f, fetcher: fe}, pos: slices.Clone(pos)}, nil
}

// auditTail is httpapi.AuditTail: it long-polls the topic from its
// positions through a Fetcher of its own.
type auditTail struct {
	sc      auditScan
	pos     []int64
	failing time.Time // when the current run of failed fetches began
}

// Next implements httpapi.AuditTail. A failing fetch is retried for
// auditTailGrace before it is returned; a position error (records deleted
// under the stream) is returned at once.
func (t *auditTail) Next(ctx context.Context, limit int, wait time.Duration) (httpapi.AuditPage, error) {
	a := t.sc.r
	n, err := a.cluster.Partitions(ctx, a.topic) // metadata, cached
	if err == nil {
		t.pos, err = a.grow(ctx, t.pos, n)
	}
	var pg httpapi.AuditPage
	if err == nil {
		pg, err = t.sc.read(ctx, t.pos, nil, limit, wait, 0)
	}
	var pe *hub.PositionError
	if err == nil || ctx.Err() != nil || errors.As(err, &pe) {
		t.failing = time.Time{}
		return pg, err
	}
	now := time.Now()
	if t.failing.IsZero() {
		t.failing = now
		a.audit.logger.Warn("audit stream: reading the audit topic failed; retrying", "topic", a.topic, "for", auditTailGrace, "err", err)
	}
	if now.Sub(t.failing) >= auditTailGrace {
		return pg, err
	}
	select {
	case <-ctx.Done():
		return pg, ctx.Err()
	case <-time.After(wait):
	}
	return httpapi.AuditPage{Positions: slices.Clone(t.pos)}, nil
}

// Close implements httpapi.AuditTail.
func (t *auditTail) Close() { t.sc.fetcher.Close() }

// auditScan reads and filters the audit topic.
type auditScan struct {
	r       *auditReader
	f       httpapi.AuditFilter
	fetcher *upstream.Fetcher
}

// read reads from pos, advancing it in place, until limit events match,
// nothing more is there (up to end per partition; nil: no end), or budget
// has passed. With wait > 0 it makes one fetch that waits up to wait for
// records. Across partitions records are taken in timestamp order; each
// partition's in offset order.
func (s *auditScan) read(ctx context.Context, pos, end []int64, limit int, wait, budget time.Duration) (httpapi.AuditPage, error) {
	started := time.Now()
	var pg httpapi.AuditPage
	batch := make([][]*kgo.Record, len(pos))
	next := make([]int64, len(pos))
	idx := make([]int, len(pos))
	for len(pg.Events) < limit {
		var parts []int32
		for p := range pos {
			if end == nil || pos[p] < end[p] {
				parts = append(parts, int32(p))
			}
		}
		if len(parts) == 0 {
			break
		}
		res, err := s.fetcher.Fetch(ctx, s.r.topic, pos, parts, wait, auditFetchBytes)
		if err != nil {
			return pg, err
		}
		for p := range batch {
			batch[p], next[p], idx[p] = nil, pos[p], 0
		}
		for _, fp := range res {
			if fp.Err != nil {
				return pg, s.positionError(ctx, fp.Err)
			}
			p := fp.Partition
			if int(p) >= len(pos) {
				continue
			}
			next[p] = max(fp.Next, pos[p])
			if end != nil {
				next[p] = min(next[p], end[p])
			}
			for _, r := range fp.Records {
				if r.Offset >= pos[p] && (end == nil || r.Offset < end[p]) {
					batch[p] = append(batch[p], r)
				}
			}
		}
		moved := false
		for len(pg.Events) < limit {
			best := -1
			for p, recs := range batch {
				if idx[p] < len(recs) && (best < 0 || recs[idx[p]].Timestamp.Before(batch[best][idx[best]].Timestamp)) {
					best = p
				}
			}
			if best < 0 {
				break
			}
			r := batch[best][idx[best]]
			idx[best]++
			pos[best] = r.Offset + 1
			moved = true
			if s.match(r) {
				pg.Events = append(pg.Events, httpapi.AuditEvent{Partition: r.Partition, Offset: r.Offset, Data: r.Value})
			}
		}
		// Past control records and gaps of partitions read to the end.
		for p := range batch {
			if idx[p] == len(batch[p]) && next[p] > pos[p] {
				pos[p] = next[p]
				moved = true
			}
		}
		if !moved || wait > 0 || time.Since(started) >= budget {
			break
		}
	}
	pg.Positions = slices.Clone(pos)
	pg.CaughtUp = end != nil
	for p := range end {
		pg.CaughtUp = pg.CaughtUp && pos[p] >= end[p]
	}
	return pg, nil
}

// positionError maps a fetch's partition error: offsets before the log
// start (deleted records) or past its end are *hub.PositionError.
func (s *auditScan) positionError(ctx context.Context, err error) error {
	var oor *upstream.OutOfRangeError
	if !errors.As(err, &oor) {
		return err
	}
	start, serr := s.r.cluster.Offsets(ctx, s.r.topic, upstream.Start)
	if serr == nil && int(oor.Partition) < len(start) && oor.Offset < start[oor.Partition] {
		return &hub.PositionError{Gone: true, Earliest: start, Partition: oor.Partition, Offset: oor.Offset}
	}
	return &hub.PositionError{Partition: oor.Partition, Offset: oor.Offset}
}

// auditHead is what the filter reads of an event.
type auditHead struct {
	Time      time.Time   `json:"time"`
	Kind      audit.Kind  `json:"kind"`
	Access    *auditNames `json:"access"`
	Stream    *auditNames `json:"stream"`
	Delivery  *auditNames `json:"delivery"`
	Lifecycle *auditNames `json:"lifecycle"`
}

// auditNames are the partner and product a payload names.
type auditNames struct {
	Partner string `json:"partner"`
	Product string `json:"product"`
}

// match reports whether the filter selects r. A record that is not an
// audit event (never written by sluice) is selected only by a filter on
// time alone, by its record timestamp: a regulator reading everything
// must see it.
func (s *auditScan) match(r *kgo.Record) bool {
	f := &s.f
	if !f.Filtered() {
		return true
	}
	var h auditHead
	decoded := json.Unmarshal(r.Value, &h) == nil
	t := h.Time
	if !decoded || t.IsZero() {
		t = r.Timestamp
	}
	if (!f.From.IsZero() && t.Before(f.From)) || (!f.To.IsZero() && !t.Before(f.To)) {
		return false
	}
	if len(f.Kinds) > 0 && (!decoded || !slices.Contains(f.Kinds, h.Kind)) {
		return false
	}
	if f.Partner == "" && f.Product == "" {
		return true
	}
	if !decoded {
		return false
	}
	for _, n := range []*auditNames{h.Access, h.Stream, h.Delivery, h.Lifecycle} {
		if n != nil && (f.Partner == "" || n.Partner == f.Partner) && (f.Product == "" || n.Product == f.Product) {
			return true
		}
	}
	return false
}

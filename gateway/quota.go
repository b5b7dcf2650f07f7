package gateway

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/internal/metrics"
	"github.com/sluicehq/sluice/gateway/internal/quota"
	"github.com/sluicehq/sluice/products/store"
)

// Quota coordination and metering intervals.
const (
	// shareInterval: how often a replica publishes its demand and open
	// streams and re-reads the other replicas' (PostgreSQL only).
	shareInterval = 200 * time.Millisecond
	// shareFresh: a replica whose shares are older than this is gone.
	shareFresh = 2 * time.Second
	// minShare: the smallest share of a plan's rate a replica keeps, so a
	// client arriving at an idle replica is served at once, not after a
	// long Retry-After; the others split the rest.
	minShare = 0.02
	// flushInterval bounds the usage a crash loses (documented: at most
	// one interval; none on a clean shutdown).
	flushInterval = time.Second
)

// limiter enforces subscriptions' plans (rate, concurrent streams, monthly
// quota) and meters deliveries into the store's daily usage.
//
// Rates: one token bucket per partner and product on each replica. With
// PostgreSQL, replicas publish their recent demand and open streams every
// shareInterval (store.ShareQuota) and each sets its bucket to its share of
// the plan's rate, in proportion to demand, so the sum over replicas is
// the plan's rate. Stream limits count every replica's open streams.
// Monthly quotas count the store's usage (every replica's flushed
// deliveries) plus this replica's unflushed ones.
type limiter struct {
	store   store.Store
	replica string
	shared  bool // several replicas may share the store: coordinate
	reg     *quota.Registry
	m       *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	plans   map[string]store.Plan
	pairs   map[pairKey]*pair
	pending map[usageKey]*usageCount // delivered, not yet in the store
}

type pairKey struct{ partner, product string }

type usageKey struct {
	partner, product, purpose string
	day                       time.Time
}

type usageCount struct{ records, bytes int64 }

// pair is the state of one partner and product on this replica.
type pair struct {
	key    pairKey
	limits quota.Limits
	bucket *quota.Bucket // guarded by limiter.mu
	asked  atomic.Int64  // records wanted since the last share tick
	demand float64       // records/s wanted, smoothed
	used   time.Time     // last request; idle pairs stop being shared

	open        int // streams open here (guarded by limiter.mu)
	otherOpen   int // streams open on other replicas, as of the last tick
	month       time.Time
	monthStored int64 // this month's records in the store, as of the last refresh
	unflushed   int64 // this month's records delivered here, not yet in monthStored
}

func newLimiter(s store.Store, replica string, shared bool, m *metrics.Metrics, log *slog.Logger) *limiter {
	return &limiter{
		store: s, replica: replica, shared: shared, reg: quota.NewRegistry(nil), m: m, log: log, now: time.Now,
		plans: map[string]store.Plan{}, pairs: map[pairKey]*pair{}, pending: map[usageKey]*usageCount{},
	}
}

// limitsOf are a plan's limits for the buckets.
func limitsOf(p store.Plan) quota.Limits {
	return quota.Limits{
		RecordsPerSec:     float64(p.RecordsPerSecond),
		BytesPerSec:       float64(p.BytesPerSecond),
		ConcurrentStreams: p.ConcurrentStreams,
		MonthlyRecords:    p.MonthlyRecordQuota,
	}
}

// plan returns a plan, cached until the store says plans changed.
func (l *limiter) plan(ctx context.Context, id string) (store.Plan, error) {
	l.mu.Lock()
	p, ok := l.plans[id]
	l.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := l.store.Plan(ctx, id)
	if err != nil {
		return p, err
	}
	l.mu.Lock()
	l.plans[id] = p
	l.mu.Unlock()
	return p, nil
}

// plansChanged drops the plan cache (a plan was edited, here or elsewhere).
func (l *limiter) plansChanged() {
	l.mu.Lock()
	clear(l.plans)
	l.mu.Unlock()
}

// quota returns the Quota of a partner's subscription of a product. The
// front doors that deliver records enforce it (a used-up monthly quota
// refuses records, not the product's metadata).
func (l *limiter) quota(ctx context.Context, partner, product, purpose string, p store.Plan) (httpapi.Quota, error) {
	lim := limitsOf(p)
	k := pairKey{partner, product}
	now := l.now()
	l.mu.Lock()
	pr := l.pairs[k]
	if pr == nil {
		pr = &pair{key: k}
		l.pairs[k] = pr
	}
	pr.limits = lim
	pr.used = now
	pr.bucket = l.reg.Bucket(partner, product, lim)
	b := pr.bucket
	month := quota.MonthStart(now)
	fresh := pr.month.Equal(month)
	l.mu.Unlock()
	if !fresh {
		if err := l.refreshMonth(ctx, k, month); err != nil {
			return nil, err
		}
	}
	return &planQuota{l: l, p: pr, b: b, purpose: purpose}, nil
}

// refreshMonth reads one pair's usage this month from the store.
func (l *limiter) refreshMonth(ctx context.Context, k pairKey, month time.Time) error {
	rows, err := l.store.Usage(ctx, store.UsageFilter{From: month, To: quota.NextMonth(month), PartnerID: k.partner, Product: k.product})
	if err != nil {
		return err
	}
	var n int64
	for _, r := range rows {
		n += r.Records
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pr := l.pairs[k]
	if !pr.month.Equal(month) {
		pr.month, pr.monthStored, pr.unflushed = month, n, l.pendingRecords(k, month)
	}
	return nil
}

// pendingRecords is what this replica delivered to k in month that is not
// yet in the store (l.mu held).
func (l *limiter) pendingRecords(k pairKey, month time.Time) int64 {
	var n int64
	for uk, c := range l.pending {
		if uk.partner == k.partner && uk.product == k.product && !uk.day.Before(month) {
			n += c.records
		}
	}
	return n
}

// planQuota is httpapi.Quota for one request.
type planQuota struct {
	l       *limiter
	p       *pair
	b       *quota.Bucket // p.bucket when the request was authorized
	purpose string
}

var _ httpapi.Quota = (*planQuota)(nil)

func (q *planQuota) Bucket() *quota.Bucket { return q.b }

func (q *planQuota) Asked(records int) { q.p.asked.Add(int64(records)) }

func (q *planQuota) Refused(limit string) {
	q.l.m.Throttled.WithLabelValues(q.p.key.partner, q.p.key.product, limit).Inc()
}

func (q *planQuota) OpenStream() (release func(), limit int, ok bool) {
	l := q.l
	l.mu.Lock()
	defer l.mu.Unlock()
	limit = q.p.limits.ConcurrentStreams
	if limit > 0 && q.p.open+q.p.otherOpen >= limit {
		return nil, limit, false
	}
	q.p.open++
	q.p.used = l.now()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			q.p.open--
			q.p.used = l.now()
			l.mu.Unlock()
		})
	}, limit, true
}

func (q *planQuota) Remaining() (int64, time.Time) {
	l := q.l
	now := l.now()
	resets := quota.NextMonth(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if q.p.limits.MonthlyRecords <= 0 {
		return math.MaxInt64, resets
	}
	used := q.p.unflushed
	if q.p.month.Equal(quota.MonthStart(now)) {
		used += q.p.monthStored
	}
	return max(q.p.limits.MonthlyRecords-used, 0), resets
}

func (q *planQuota) Delivered(records, bytes int) {
	if records == 0 && bytes == 0 {
		return
	}
	l := q.l
	now := l.now().UTC()
	k := usageKey{q.p.key.partner, q.p.key.product, q.purpose, now.Truncate(24 * time.Hour)}
	l.mu.Lock()
	c := l.pending[k]
	if c == nil {
		c = &usageCount{}
		l.pending[k] = c
	}
	c.records += int64(records)
	c.bytes += int64(bytes)
	if !q.p.month.Equal(quota.MonthStart(now)) {
		// A new month began since the pair was read: this month so far is
		// only what is pending.
		q.p.month, q.p.monthStored, q.p.unflushed = quota.MonthStart(now), 0, l.pendingRecords(q.p.key, quota.MonthStart(now))
	} else {
		q.p.unflushed += int64(records)
	}
	l.mu.Unlock()
	l.m.UsageRecords.WithLabelValues(q.p.key.partner, q.p.key.product, q.purpose).Add(float64(records))
	l.m.UsageBytes.WithLabelValues(q.p.key.partner, q.p.key.product, q.purpose).Add(float64(bytes))
}

func (q *planQuota) BatchHint(max int) int {
	r, _ := q.b.Rates()
	if r <= 0 {
		return max
	}
	return min(max, int(math.Max(1, r/4)))
}

// run flushes usage every flushInterval and, with a shared store, shares
// quotas every shareInterval, until ctx ends; then it flushes once more.
func (l *limiter) run(ctx context.Context) {
	flush := time.NewTicker(flushInterval)
	defer flush.Stop()
	var share <-chan time.Time
	if l.shared {
		t := time.NewTicker(shareInterval)
		defer t.Stop()
		share = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			l.flush(ctx)
		case <-share:
			l.share(ctx)
		}
	}
}

// flush writes the pending usage to the store in one batch and refreshes
// the monthly counts (which then include every replica's flushed usage).
// A failed write keeps the usage pending for the next flush.
func (l *limiter) flush(ctx context.Context) error {
	l.mu.Lock()
	batch := l.pending
	l.pending = map[usageKey]*usageCount{}
	l.mu.Unlock()
	if len(batch) > 0 {
		deltas := make([]store.UsageDelta, 0, len(batch))
		for k, c := range batch {
			deltas = append(deltas, store.UsageDelta{PartnerID: k.partner, Product: k.product, Purpose: k.purpose, Day: k.day, Records: c.records, Bytes: c.bytes})
		}
		if err := l.store.AddUsage(ctx, deltas); err != nil {
			l.m.UsageFlushes.WithLabelValues("failed").Inc()
			l.mu.Lock()
			for k, c := range batch {
				if p := l.pending[k]; p != nil {
					p.records += c.records
					p.bytes += c.bytes
				} else {
					l.pending[k] = c
				}
			}
			l.mu.Unlock()
			if !errors.Is(err, context.Canceled) {
				l.log.Warn("usage flush failed; kept for the next flush", "err", err)
			}
			return err
		}
		l.m.UsageFlushes.WithLabelValues("ok").Inc()
	}
	return l.refreshMonths(ctx)
}

// refreshMonths re-reads this month's usage of every active pair.
func (l *limiter) refreshMonths(ctx context.Context) error {
	now := l.now()
	month := quota.MonthStart(now)
	l.mu.Lock()
	active := false
	for _, p := range l.pairs {
		active = active || now.Sub(p.used) < time.Minute || p.open > 0
	}
	l.mu.Unlock()
	if !active {
		return nil
	}
	rows, err := l.store.Usage(ctx, store.UsageFilter{From: month, To: quota.NextMonth(month)})
	if err != nil {
		return err
	}
	sum := map[pairKey]int64{}
	for _, r := range rows {
		sum[pairKey{r.PartnerID, r.Product}] += r.Records
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, p := range l.pairs {
		p.month, p.monthStored, p.unflushed = month, sum[k], l.pendingRecords(k, month)
	}
	return nil
}

// share publishes this replica's demand and streams and sets each bucket's
// rate to this replica's share of the plan.
func (l *limiter) share(ctx context.Context) {
	now := l.now()
	secs := shareInterval.Seconds()
	l.mu.Lock()
	var mine []store.QuotaShare
	live := map[pairKey]*pair{}
	for k, p := range l.pairs {
		asked := float64(p.asked.Swap(0)) / secs
		p.demand = 0.5*p.demand + 0.5*asked
		if now.Sub(p.used) > 10*time.Second && p.open == 0 && p.demand < 0.01 {
			continue
		}
		live[k] = p
		mine = append(mine, store.QuotaShare{PartnerID: k.partner, Product: k.product, Demand: p.demand, Streams: p.open})
	}
	l.mu.Unlock()
	rows, err := l.store.ShareQuota(ctx, l.replica, mine, shareFresh)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			l.log.Warn("quota sharing failed; keeping the last shares", "err", err)
		}
		return
	}
	type agg struct {
		total, mine float64
		replicas    int
		otherOpen   int
	}
	sums := map[pairKey]*agg{}
	for _, r := range rows {
		k := pairKey{r.PartnerID, r.Product}
		if live[k] == nil {
			continue
		}
		a := sums[k]
		if a == nil {
			a = &agg{}
			sums[k] = a
		}
		a.total += r.Demand
		a.replicas++
		if r.Replica == l.replica {
			a.mine = r.Demand
		} else {
			a.otherOpen += r.Streams
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, p := range live {
		a := sums[k]
		share := 1.0
		if a != nil && a.replicas > 1 {
			if a.total > 0 {
				share = minShare + (1-minShare*float64(a.replicas))*a.mine/a.total
			} else {
				share = 1 / float64(a.replicas)
			}
			p.otherOpen = a.otherOpen
		} else {
			p.otherOpen = 0
		}
		p.bucket.SetRate(p.limits.RecordsPerSec*share, p.limits.BytesPerSec*share)
		l.m.QuotaShare.WithLabelValues(k.partner, k.product).Set(share)
	}
}

// close flushes what is pending (a clean shutdown loses no usage).
func (l *limiter) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.flush(ctx); err != nil {
		l.mu.Lock()
		var lost int64
		for _, c := range l.pending {
			lost += c.records
		}
		l.mu.Unlock()
		l.log.Error("final usage flush failed: usage not recorded", "records", lost, "err", err)
	}
	if l.shared {
		// Leave the share table: the others take this replica's share now.
		if _, err := l.store.ShareQuota(ctx, l.replica, nil, shareFresh); err != nil {
			l.log.Warn("could not withdraw quota shares", "err", err)
		}
	}
}

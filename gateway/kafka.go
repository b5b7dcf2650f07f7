package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/internal/hub"
	"github.com/sluicehq/sluice/gateway/internal/quota"
	"github.com/sluicehq/sluice/gateway/internal/upstream"
	"github.com/sluicehq/sluice/gateway/kafkaproxy"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/store"
)

// The Kafka front door: kafkaproxy speaks the protocol; this file decides
// what a partner sees through it, with the same decisions as HTTP:
//
//   - login: SASL/PLAIN with an API key (username = key id, password =
//     secret; the key is slk_<username>_<password>) checked by the store,
//     or SASL/OAUTHBEARER with the same JWTs as HTTP, checked by the
//     gateway's verifier;
//   - topics: one virtual topic per product the partner holds an ACTIVE
//     subscription of whose policy decision allows a view (access.grant and
//     access.plan, as a request without ?purpose=), named by the product id;
//   - records: the partner's compiled view (rows filtered out are offset
//     gaps, fields masked), read through the hub's shared ring
//     (hub.PartitionReader), values byte-identical to SSE's data: lines, or,
//     for a subscription whose kafka_format is avro, the same values in
//     Schema Registry wire format (view.Avro, its own ring; schemas served
//     at /schema-registry, see schemaregistry.go); no keys (an upstream key
//     is often a subscriber identifier);
//   - plans: the subscription's limiter quota (rate, concurrent streams,
//     monthly quota) and usage metering, as SSE;
//   - revocation: every session re-checks on access.changed() and ends
//     (the proxy closes the connection) when its credential or a topic it
//     used is withdrawn.

// Fetch limits of one partition read.
const (
	// kafkaMaxEvents bounds the events (kept and filtered rows) one
	// Session.Fetch reads; the client's byte limits usually cut earlier.
	kafkaMaxEvents = 8192
	// kafkaTopicsTTL: how long a session trusts its topics' partition
	// counts before asking the upstream metadata cache again.
	kafkaTopicsTTL = 10 * time.Second
	// kafkaLogStartTTL: how long a partition's log start offset (sent with
	// every fetch response, informational) is cached.
	kafkaLogStartTTL = 10 * time.Second
	// kafkaRecheckTimeout bounds one re-authorization after a change.
	kafkaRecheckTimeout = 5 * time.Second
)

// kafkaBackend is kafkaproxy.Backend over the gateway's access decisions.
type kafkaBackend struct{ g *Gateway }

var _ kafkaproxy.ScramBackend = (*kafkaBackend)(nil) // PLAIN, OAUTHBEARER and SCRAM-SHA-512

// apiKeyFromPlain turns SASL/PLAIN credentials into the API key they stand
// for: username is the key id (or its listed prefix slk_<id>), password the
// secret; a password that is a whole key is taken as it is.
func apiKeyFromPlain(username, password string) string {
	if strings.HasPrefix(password, "slk_") && strings.HasPrefix(password, "slk_"+strings.TrimPrefix(username, "slk_")+"_") {
		return password
	}
	return "slk_" + strings.TrimPrefix(username, "slk_") + "_" + password
}

// Authenticate checks credentials like HTTP does (an API key against the
// store, a JWT against the verifier), finds the partner and its topics.
// Errors never contain the secret.
func (b *kafkaBackend) Authenticate(ctx context.Context, c kafkaproxy.Credentials) (kafkaproxy.Session, error) {
	a := b.g.access
	var partnerID, key, keyID string
	var expires time.Time
	switch c.Mechanism {
	case kafkaproxy.MechanismPlain:
		key = apiKeyFromPlain(c.Username, c.Secret)
		k, err := a.store.VerifyKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%w: %s", kafkaproxy.ErrAuthentication, keyFailure(err).Detail)
		}
		partnerID, keyID, expires = k.PartnerID, k.ID, k.ExpiresAt
	case kafkaproxy.MechanismOAuthBearer:
		id, f := a.verifier.Verify(ctx, "Bearer "+c.Secret)
		if f != nil {
			return nil, fmt.Errorf("%w: %s", kafkaproxy.ErrAuthentication, f.Detail)
		}
		if c.Username != "" && c.Username != id.Partner {
			return nil, fmt.Errorf("%w: the authorization identity is not the token's partner; leave it empty", kafkaproxy.ErrAuthentication)
		}
		partnerID, expires = id.Partner, id.Expires
	default:
		return nil, fmt.Errorf("%w: mechanism %s is not accepted", kafkaproxy.ErrAuthentication, c.Mechanism)
	}
	return b.login(ctx, partnerID, key, keyID, expires)
}

// login opens the session of an authenticated partner.
func (b *kafkaBackend) login(ctx context.Context, partnerID, key, keyID string, expires time.Time) (kafkaproxy.Session, error) {
	a := b.g.access
	partner, f := auth.LookupPartner(a.partners, auth.Identity{Partner: partnerID})
	if f != nil {
		return nil, fmt.Errorf("%w: %s", kafkaproxy.ErrAuthentication, f.Detail)
	}
	s := newKafkaSession(b.g, partner, key, keyID, expires)
	changed := a.changed() // before the first look: no change can slip between
	if err := s.refresh(ctx); err != nil {
		s.log.Error("kafka: reading the partner's subscriptions failed; login refused", "err", err)
		s.Close()
		return nil, fmt.Errorf("%w: the partner's subscriptions could not be read; retry", kafkaproxy.ErrAuthentication)
	}
	s.wg.Go(func() { s.watch(changed) })
	return s, nil
}

// ScramLookup is SASL/SCRAM-SHA-512 with an API key: username = key id
// (or slk_<id>), password = secret. The proxy checks the client's proof
// against the key's stored credential; only then does Complete say
// whether the key is revoked or expired, and open the session.
func (b *kafkaBackend) ScramLookup(ctx context.Context, username string) (kafkaproxy.ScramLogin, error) {
	id := strings.TrimPrefix(username, "slk_")
	k, cred, err := b.g.access.store.ScramKey(ctx, id)
	switch {
	case errors.Is(err, store.ErrKeyNotFound):
		return kafkaproxy.ScramLogin{}, kafkaproxy.ErrUnknownUser
	case errors.Is(err, store.ErrKeyNoScram):
		return kafkaproxy.ScramLogin{}, fmt.Errorf("%w: this API key was created before SCRAM logins were offered; create a new key, or log in with PLAIN", kafkaproxy.ErrAuthentication)
	case err != nil:
		return kafkaproxy.ScramLogin{}, fmt.Errorf("%w: %s", kafkaproxy.ErrAuthentication, keyFailure(err).Detail)
	}
	return kafkaproxy.ScramLogin{
		Credential: kafkaproxy.ScramCredential{Salt: cred.Salt, Iterations: cred.Iterations, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey},
		Complete: func(ctx context.Context) (kafkaproxy.Session, error) {
			if err := k.Check(time.Now()); err != nil {
				return nil, fmt.Errorf("%w: %s", kafkaproxy.ErrAuthentication, keyFailure(err).Detail)
			}
			return b.login(ctx, k.PartnerID, "", k.ID, k.ExpiresAt)
		},
	}, nil
}

// kafkaSession is one partner's login on one connection.
//
// Goroutines: the connection's serving goroutine calls it (Fetch also from
// the long-poll goroutines of one request); watch, started at login and
// stopped by Close, re-authorizes on every change and closes done when
// access ends.
type kafkaSession struct {
	g       *Gateway
	partner *products.Partner
	log     *slog.Logger

	// The credential, replaced by a re-authentication (KIP-368), under
	// credMu.
	credMu  sync.Mutex
	key     string        // the API key presented (PLAIN), checked again on changes; never logged
	keyID   string        // the API key's id (PLAIN, SCRAM); "" for a token
	expires time.Time     // of the credential: the session ends then
	renewed chan struct{} // a re-authentication replaced the credential (watch re-arms)

	ctx    context.Context // cancelled by Close: ends a re-check in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	done     chan struct{}
	doneOnce sync.Once

	mu        sync.Mutex
	closed    bool
	stopping  bool                   // Close is waiting for the session's goroutines
	ended     string                 // why access ended (end), for the audit trail
	auditRead bool                   // a regulator's read of the trail is recorded
	topics    map[string]*kafkaTopic // every product with a hub reader, by topic name
	order     []string               // topic names, sorted
	checked   time.Time              // partition counts last refreshed
	ledger    []kafkaDelivery        // returned by Fetch, not yet settled by Throttle
}

// kafkaTopic is a product as one session sees it. Fields are guarded by
// the session's mu.
type kafkaTopic struct {
	name    string
	product *products.Product
	hp      *hub.Product

	allowed    bool
	purpose    string
	view       *view.Governed
	out        view.View     // what records are encoded by: view (json) or its Avro form
	quota      httpapi.Quota // nil: unlimited (no limiter)
	partitions int32

	used     bool                  // read (Fetch, Offsets): losing it ends the session
	reader   *kafkaReader          // the view's hub reader, opened at the first Fetch
	release  func()                // the plan's stream slot, taken at the first Fetch
	refused  string                // the last limit refused (logged once)
	aud      httpapi.Delivery      // the audit record of this stream, opened at the first Fetch
	ahead    map[int32]*kafkaAhead // per partition: read and encoded, not yet sent (kafka_ahead.go)
	logStart []int64
	startAt  time.Time
	high     map[int32]int64 // last high watermark seen per partition
}

// kafkaReader is a hub reader of one view, shared by the session's
// concurrent Fetch calls; a reader replaced by a new view (policy change)
// is closed when its last read returns.
type kafkaReader struct {
	r       *hub.PartitionReader
	key     string
	refs    int
	retired bool
}

// kafkaDelivery is what one Fetch returned, until Throttle says how much
// of it went to the client.
type kafkaDelivery struct {
	t     *kafkaTopic
	q     httpapi.Quota
	aud   httpapi.Delivery
	sizes []int // value bytes per record
	bytes int
}

func newKafkaSession(g *Gateway, p *products.Partner, key, keyID string, expires time.Time) *kafkaSession {
	s := &kafkaSession{g: g, partner: p, key: key, keyID: keyID, expires: expires, renewed: make(chan struct{}, 1), done: make(chan struct{}),
		log: g.cfg.Logger.With("partner", p.ID, "front_door", "kafka"), topics: map[string]*kafkaTopic{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, prod := range g.catalog.Products {
		hp := g.hub.Product(prod.ID)
		if hp == nil {
			continue
		}
		s.topics[prod.ID] = &kafkaTopic{name: prod.ID, product: prod, hp: hp, high: map[int32]int64{}}
		s.order = append(s.order, prod.ID)
	}
	slices.Sort(s.order)
	return s
}

func (s *kafkaSession) Partner() string { return s.partner.ID }

// Expires is when the session's credential expires (zero: never); the
// front door tells clients to re-authenticate before then.
func (s *kafkaSession) Expires() time.Time {
	s.credMu.Lock()
	defer s.credMu.Unlock()
	return s.expires
}

// Reauthenticate adopts next's credential (a login of the same partner on
// this connection, KIP-368; the proxy checked the partner): its expiry and
// the key re-checked on changes. The session keeps its topics, readers,
// stream slots and audit records; next is closed.
func (s *kafkaSession) Reauthenticate(next kafkaproxy.Session) error {
	n, ok := next.(*kafkaSession)
	if !ok {
		next.Close()
		return fmt.Errorf("%w: not a session of this gateway", kafkaproxy.ErrAuthentication)
	}
	n.credMu.Lock()
	key, keyID, expires := n.key, n.keyID, n.expires
	n.credMu.Unlock()
	n.Close()
	s.credMu.Lock()
	s.key, s.keyID, s.expires = key, keyID, expires
	s.credMu.Unlock()
	select {
	case s.renewed <- struct{}{}:
	default: // a renewal is pending already; watch reads the newest expiry
	}
	return nil
}

func (s *kafkaSession) Done() <-chan struct{} { return s.done }

// end closes done once, saying why.
func (s *kafkaSession) end(reason string, args ...any) {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		s.ended = reason
		s.mu.Unlock()
		s.log.Info("kafka: partner's access ended; closing its connection", append([]any{"reason", reason}, args...)...)
		close(s.done)
	})
}

// watch re-authorizes on every change of subscriptions, keys, plans or
// policy, and ends the session when the credential expires.
func (s *kafkaSession) watch(changed <-chan struct{}) {
	var timer *time.Timer
	var expiry <-chan time.Time
	arm := func() {
		if timer != nil {
			timer.Stop()
			timer, expiry = nil, nil
		}
		if exp := s.Expires(); !exp.IsZero() {
			timer = time.NewTimer(time.Until(exp))
			expiry = timer.C
		}
	}
	arm()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.renewed:
			arm()
		case <-expiry:
			s.end("credential expired", "expired_at", s.Expires().UTC().Format(time.RFC3339))
			return
		case <-changed:
			changed = s.g.access.changed()
			if !s.recheck() {
				return
			}
		}
	}
}

// recheck authorizes the session again; false when it ended.
func (s *kafkaSession) recheck() bool {
	ctx, cancel := context.WithTimeout(s.ctx, kafkaRecheckTimeout)
	defer cancel()
	s.credMu.Lock()
	key, keyID := s.key, s.keyID
	s.credMu.Unlock()
	if keyID != "" {
		var err error
		if key != "" {
			_, err = s.g.access.store.VerifyKey(ctx, key)
		} else { // SCRAM: the secret was never seen; the key's state is what can change
			var k store.KeyInfo
			if k, _, err = s.g.access.store.ScramKey(ctx, keyID); err == nil {
				err = k.Check(time.Now())
			}
		}
		if err != nil {
			if s.ctx.Err() != nil {
				return false
			}
			s.end("API key no longer valid", "detail", keyFailure(err).Detail)
			return false
		}
	}
	if err := s.refresh(ctx); err != nil {
		if s.ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errKafkaWithdrawn) {
			s.end(err.Error())
		} else {
			// Fail closed: the client reconnects and logs in again.
			s.end("re-authorization failed", "err", err)
		}
		return false
	}
	return true
}

var errKafkaWithdrawn = errors.New("access withdrawn")

// refresh decides the partner's topics again (grant, plan, quota and
// partition count of every product) and applies the result; it returns an
// error wrapping errKafkaWithdrawn when a topic the session used is no
// longer allowed.
func (s *kafkaSession) refresh(ctx context.Context) error {
	a := s.g.access
	type decision struct {
		allowed    bool
		purpose    string
		view       *view.Governed
		out        view.View
		quota      httpapi.Quota
		partitions int32
	}
	next := map[string]decision{}
	for _, name := range s.order {
		t := s.topics[name] // immutable fields only
		sub, _, err := a.grant(ctx, s.partner.ID, t.product.ID, "")
		if err != nil {
			return fmt.Errorf("subscriptions of %s: %w", t.product.ID, err)
		}
		if sub.ID == "" {
			continue
		}
		pl := a.plan(ctx, s.partner, t.product, sub.Purpose)
		if pl.view == nil {
			continue
		}
		out, err := s.g.kafkaOutput(ctx, pl.view, sub.KafkaFormat)
		if err != nil {
			return fmt.Errorf("%s output of %s: %w", sub.KafkaFormat, t.product.ID, err)
		}
		d := decision{allowed: true, purpose: sub.Purpose, view: pl.view, out: out}
		if a.limits != nil {
			plan, err := a.limits.plan(ctx, sub.PlanID)
			if err == nil && !slices.Contains(plan.Formats, store.FormatKafka) {
				continue // the plan does not include the Kafka front door: not listed
			}
			if err == nil {
				d.quota, err = a.limits.quota(ctx, s.partner.ID, t.product.ID, sub.Purpose, plan)
			}
			if err != nil {
				return fmt.Errorf("plan %s of %s: %w", sub.PlanID, t.product.ID, err)
			}
		}
		n, err := s.g.cluster.Partitions(ctx, t.product.Topic)
		if err != nil {
			// The product is not served now (its upstream topic is
			// missing): it is not listed, like an unready product.
			s.log.Warn("kafka: product's upstream topic unavailable; not listed", "product", t.product.ID, "err", err)
			continue
		}
		d.partitions = int32(n)
		next[name] = d
	}
	var withdrawn []string
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range s.order {
		t := s.topics[name]
		d := next[name]
		if t.used && t.allowed && !d.allowed {
			withdrawn = append(withdrawn, name)
		}
		t.allowed, t.purpose, t.quota, t.partitions = d.allowed, d.purpose, d.quota, d.partitions
		if d.out != nil && (t.out == nil || t.out.Key() != d.out.Key()) {
			s.retireReader(t) // a new plan or format: the next read switches at the client's offsets
		}
		t.view, t.out = d.view, d.out
	}
	s.checked = time.Now()
	if len(withdrawn) > 0 {
		return fmt.Errorf("%w: %s", errKafkaWithdrawn, strings.Join(withdrawn, ", "))
	}
	return nil
}

// retireReader drops t's reader; it is closed when its last read returns
// (s.mu held).
func (s *kafkaSession) retireReader(t *kafkaTopic) {
	s.dropAhead(t, -1) // encoded by the old view
	if r := t.reader; r != nil {
		r.retired = true
		if r.refs == 0 {
			r.r.Close()
		}
		t.reader = nil
	}
}

// Topics lists the allowed topics, from memory (partition counts are asked
// of the upstream metadata cache at most every kafkaTopicsTTL).
func (s *kafkaSession) Topics(ctx context.Context) ([]kafkaproxy.Topic, error) {
	s.mu.Lock()
	stale := time.Since(s.checked) > kafkaTopicsTTL
	s.mu.Unlock()
	if stale {
		s.refreshPartitions(ctx)
	}
	at, isRegulator := s.auditTopicInfo(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]kafkaproxy.Topic, 0, len(s.order)+1)
	for _, name := range s.order {
		if t := s.topics[name]; t.allowed {
			out = append(out, kafkaproxy.Topic{Name: name, Partitions: t.partitions})
		}
	}
	if isRegulator {
		out = append(out, at)
	}
	return out, nil
}

// refreshPartitions picks up partitions added upstream.
func (s *kafkaSession) refreshPartitions(ctx context.Context) {
	counts := map[string]int32{}
	for _, name := range s.order {
		if n, err := s.g.cluster.Partitions(ctx, s.topics[name].product.Topic); err == nil {
			counts[name] = int32(n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, n := range counts {
		if t := s.topics[name]; t.allowed && n > t.partitions {
			t.partitions = n
		}
	}
	s.checked = time.Now()
}

// allowedTopic returns an allowed topic and marks it used.
func (s *kafkaSession) allowedTopic(topic string, partition int32) (*kafkaTopic, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	switch {
	case t == nil || !t.allowed:
		return nil, kafkaproxy.ErrNotAuthorized
	case partition < 0 || partition >= t.partitions:
		return nil, kafkaproxy.ErrUnknownTopic
	}
	t.used = true
	return t, nil
}

// Offsets returns the partition's log start and end (last stable offset).
func (s *kafkaSession) Offsets(ctx context.Context, topic string, partition int32) (int64, int64, error) {
	if topic == kafkaAuditTopic {
		return s.auditOffsets(ctx, partition)
	}
	t, err := s.allowedTopic(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	start, err := s.g.cluster.Offsets(ctx, t.product.Topic, upstream.Start)
	if err != nil {
		return 0, 0, kafkaUpstreamErr(err)
	}
	end, err := s.g.cluster.Offsets(ctx, t.product.Topic, upstream.End)
	if err != nil {
		return 0, 0, kafkaUpstreamErr(err)
	}
	if int(partition) >= len(start) || int(partition) >= len(end) {
		return 0, 0, kafkaproxy.ErrUnknownTopic
	}
	s.mu.Lock()
	t.logStart, t.startAt = start, time.Now()
	s.mu.Unlock()
	return start[partition], end[partition], nil
}

// OffsetForTime returns the first offset at or after ts.
func (s *kafkaSession) OffsetForTime(ctx context.Context, topic string, partition int32, ts time.Time) (int64, error) {
	if topic == kafkaAuditTopic {
		return s.auditOffsetForTime(ctx, partition, ts)
	}
	t, err := s.allowedTopic(topic, partition)
	if err != nil {
		return 0, err
	}
	offs, err := s.g.cluster.OffsetsAfter(ctx, t.product.Topic, ts.UnixMilli())
	if err != nil {
		return 0, kafkaUpstreamErr(err)
	}
	if int(partition) >= len(offs) {
		return 0, kafkaproxy.ErrUnknownTopic
	}
	return offs[partition], nil
}

// kafkaUpstreamErr maps an upstream failure to what a Kafka client
// understands.
func kafkaUpstreamErr(err error) error {
	var pe *hub.PositionError
	switch {
	case errors.As(err, &pe):
		return kafkaproxy.ErrOffsetOutOfRange
	case errors.Is(err, upstream.ErrUnknownTopic):
		return kafkaproxy.ErrUnknownTopic
	case errors.Is(err, hub.ErrClosed):
		return kerr.NotLeaderForPartition // shutting down: the client retries elsewhere
	}
	return err
}

// debtWait is how long until a bucket is out of debt (0: it is not).
func debtWait(b *quota.Bucket) time.Duration {
	tr, tb := b.Tokens()
	rr, rb := b.Rates()
	var d float64
	if tr < 0 && rr > 0 {
		d = -tr / rr
	}
	if tb < 0 && rb > 0 {
		d = max(d, -tb/rb)
	}
	return time.Duration(d * float64(time.Second))
}

// openStream takes the plan's stream slot at a topic's first Fetch and
// checks the monthly quota. It returns the quota (nil: unlimited), the
// records the month still allows, and ErrNotAuthorized when a limit
// refuses.
func (s *kafkaSession) openStream(t *kafkaTopic) (httpapi.Quota, int64, error) {
	s.mu.Lock()
	q := t.quota
	needSlot := t.release == nil
	pending := 0
	for _, d := range s.ledger {
		if d.t == t {
			pending += len(d.sizes)
		}
	}
	s.mu.Unlock()
	if q == nil {
		return nil, kafkaMaxEvents, nil
	}
	left, resets := q.Remaining()
	left -= int64(pending)
	if left <= 0 {
		s.refuse(t, q, "monthly_record_quota", "resets", resets.UTC().Format(time.RFC3339))
		return nil, 0, kafkaproxy.ErrNotAuthorized
	}
	if needSlot {
		release, limit, ok := q.OpenStream()
		if !ok {
			s.refuse(t, q, "concurrent_streams", "limit", limit)
			return nil, 0, kafkaproxy.ErrNotAuthorized
		}
		s.mu.Lock()
		if t.release != nil || s.closed {
			release() // a concurrent Fetch took it first, or the session closed
		} else {
			t.release = release
			s.g.metrics.ActiveStreams.WithLabelValues(t.product.ID, "kafka").Inc()
		}
		s.mu.Unlock()
	}
	return q, left, nil
}

// refuse counts a refusal by a plan limit and logs the first of a run.
func (s *kafkaSession) refuse(t *kafkaTopic, q httpapi.Quota, limit string, args ...any) {
	q.Refused(limit)
	s.mu.Lock()
	first := t.refused != limit
	t.refused = limit
	s.mu.Unlock()
	if first {
		s.log.Info("kafka: plan limit reached; fetches of the topic are refused (TOPIC_AUTHORIZATION_FAILED)",
			append([]any{"topic", t.name, "limit", limit}, args...)...)
	}
}

// acquireReader returns the hub reader of t's current view, opening it at
// the first read or after a plan change.
func (s *kafkaSession) acquireReader(ctx context.Context, t *kafkaTopic) (*kafkaReader, error) {
	s.mu.Lock()
	v := t.out
	if r := t.reader; r != nil && v != nil && r.key == v.Key() {
		r.refs++
		s.mu.Unlock()
		return r, nil
	}
	s.mu.Unlock()
	if v == nil {
		return nil, kafkaproxy.ErrNotAuthorized
	}
	pr, err := t.hp.PartitionReader(ctx, v)
	if err != nil {
		return nil, kafkaUpstreamErr(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		pr.Close()
		return nil, kerr.NotLeaderForPartition
	}
	if r := t.reader; r != nil && r.key == v.Key() {
		pr.Close() // a concurrent Fetch opened it first
	} else {
		s.retireReader(t)
		t.reader = &kafkaReader{r: pr, key: v.Key()}
	}
	t.reader.refs++
	return t.reader, nil
}

func (s *kafkaSession) releaseReader(r *kafkaReader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.refs--
	if r.retired && r.refs == 0 {
		r.r.Close()
	}
}

// Fetch reads the partner's view of a partition through the hub. The plan
// applies here: a bucket in debt is waited off (up to maxWait) before
// anything is read, a read takes at most a quarter second of the plan's
// rate, and the tokens are charged at once (so the next partition of the
// same request sees them gone); Throttle settles what was sent.
func (s *kafkaSession) Fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int32, maxWait time.Duration) (kafkaproxy.FetchResult, error) {
	if topic == kafkaAuditTopic {
		return s.auditFetch(ctx, partition, offset, maxBytes, maxWait)
	}
	t, err := s.allowedTopic(topic, partition)
	if err != nil {
		return kafkaproxy.FetchResult{}, err
	}
	q, left, err := s.openStream(t)
	if err != nil {
		return kafkaproxy.FetchResult{}, err
	}
	// The audit trail covers what this response carries, or nothing is
	// sent (the client gets a retriable error and tries again).
	aud, err := s.auditTopic(ctx, t)
	if err == nil && aud != nil {
		err = aud.Cover(ctx)
	}
	if err != nil {
		return kafkaproxy.FetchResult{}, fmt.Errorf("audit trail unavailable (retriable): %v", err) // %v: not the trail's own Kafka error code
	}
	empty := func() (kafkaproxy.FetchResult, error) {
		s.mu.Lock()
		hw := max(t.high[partition], offset)
		s.mu.Unlock()
		return kafkaproxy.FetchResult{Next: offset, HighWatermark: hw, LogStart: s.logStart(ctx, t, partition)}, nil
	}
	limit := kafkaMaxEvents
	byteLimit := int(max(maxBytes, 1))
	if q != nil {
		b := q.Bucket()
		if d := debtWait(b); d > 0 {
			q.Asked(q.BatchHint(kafkaMaxEvents))
			if maxWait <= 0 {
				return empty()
			}
			w := min(d, maxWait)
			tm := time.NewTimer(w)
			select {
			case <-tm.C:
			case <-ctx.Done():
				tm.Stop()
				return empty()
			}
			maxWait -= w
			if debtWait(b) > 0 {
				return empty()
			}
		}
		limit = int(min(int64(q.BatchHint(kafkaMaxEvents)), left))
		if _, br := b.Rates(); br > 0 {
			byteLimit = min(byteLimit, max(int(br/4), 1))
		}
	}
	// What this session read ahead of the partition (the tail of the last
	// hub read, or a read in flight) answers first; see kafka_ahead.go.
	s.mu.Lock()
	outView, key := t.out, ""
	if outView != nil {
		key = outView.Key()
	}
	s.mu.Unlock()
	res, ok, pending := s.takeAhead(ctx, t, partition, offset, key, maxWait > 0)
	if pending {
		return empty() // being read: a later pass or Fetch takes it
	}
	if ok {
		hub.Withhold(outView, res.Events) // an opt-out since they were read ahead
	} else {
		r, err := s.acquireReader(ctx, t)
		if err != nil {
			return kafkaproxy.FetchResult{}, err
		}
		key = r.key
		// A Fetch that does not wait (the first pass over a request's
		// partitions) leaves a read of history to the background, so the
		// response goes out with what the other partitions have ready;
		// the request's waiting pass, or the next Fetch, takes it.
		if maxWait <= 0 && r.r.Direct(partition, offset) && s.readInBackground(t, partition, key, offset, byteLimit, limit) {
			high := r.r.High(partition)
			s.releaseReader(r)
			s.mu.Lock()
			t.high[partition] = max(t.high[partition], high) // not the end: clients stop at the high watermark
			s.mu.Unlock()
			return empty()
		}
		res, err = r.r.Read(ctx, partition, offset, limit, max(maxWait, 0))
		s.releaseReader(r)
		if err != nil {
			if ctx.Err() != nil {
				return empty() // the request ended (deadline, connection closed)
			}
			return kafkaproxy.FetchResult{}, kafkaUpstreamErr(err)
		}
	}

	// The trail may have failed while the read waited: then nothing goes
	// out (the client retries; its offset is unchanged).
	if aud != nil {
		if err := s.g.audit.Healthy(); err != nil {
			return kafkaproxy.FetchResult{}, fmt.Errorf("audit trail unavailable (retriable): %v", err) // %v: not the trail's own Kafka error code
		}
	}
	// The records the view keeps, cut at the client's byte limit (never
	// before the first record) and the monthly quota.
	out := kafkaproxy.FetchResult{Next: res.Next, HighWatermark: res.High}
	var sizes []int
	var tail []hub.Event
	size := 0
	for i := range res.Events {
		e := &res.Events[i]
		if e.Data != nil {
			if (len(out.Records) > 0 && size+len(e.Data) > byteLimit) || len(out.Records) >= limit || int64(len(out.Records)) >= left {
				out.Next = e.Offset
				tail = res.Events[i:]
				break
			}
			out.Records = append(out.Records, kafkaproxy.Record{Offset: e.Offset, Timestamp: e.Timestamp, Value: e.Data})
			sizes = append(sizes, len(e.Data))
			size += len(e.Data)
		}
	}
	s.keepAhead(t, partition, key, res, tail, out.Next, byteLimit, limit)
	out.LogStart = s.logStart(ctx, t, partition)
	s.mu.Lock()
	t.high[partition] = max(t.high[partition], out.HighWatermark)
	if len(out.Records) > 0 {
		s.ledger = append(s.ledger, kafkaDelivery{t: t, q: q, aud: aud, sizes: sizes, bytes: size})
	}
	s.mu.Unlock()
	if q != nil && len(out.Records) > 0 {
		q.Asked(len(out.Records))
		q.Bucket().Charge(len(out.Records), size)
	}
	return out, nil
}

// logStart is a partition's log start offset, cached for
// kafkaLogStartTTL; -1 when unknown.
func (s *kafkaSession) logStart(ctx context.Context, t *kafkaTopic, partition int32) int64 {
	s.mu.Lock()
	ls, at := t.logStart, t.startAt
	s.mu.Unlock()
	if time.Since(at) > kafkaLogStartTTL {
		if start, err := s.g.cluster.Offsets(ctx, t.product.Topic, upstream.Start); err == nil {
			ls = start
			s.mu.Lock()
			t.logStart, t.startAt = start, time.Now()
			s.mu.Unlock()
		}
	}
	if int(partition) < len(ls) {
		return ls[partition]
	}
	return -1
}

// Throttle settles one Fetch response: records is how many of the records
// Fetch returned went into it (the proxy drops a late long-poll result
// when the response is full). Those are metered exactly as SSE meters
// (records and value bytes, per partner, product and purpose); tokens of
// records not sent are given back. It returns how long the client must
// back off: until the bucket of every product in the response is out of
// debt.
func (s *kafkaSession) Throttle(records, _ int) time.Duration {
	s.mu.Lock()
	ledger := s.ledger
	s.ledger = nil
	s.mu.Unlock()
	var backoff time.Duration
	left := records
	for _, d := range ledger {
		n := min(len(d.sizes), max(left, 0))
		left -= n
		size := d.bytes
		if n < len(d.sizes) {
			size = 0
			for _, b := range d.sizes[:n] {
				size += b
			}
			if d.q != nil {
				d.q.Bucket().Charge(-(len(d.sizes) - n), -(d.bytes - size))
			}
		}
		if n == 0 {
			continue
		}
		s.g.metrics.Delivered.WithLabelValues(d.t.product.ID, "kafka").Add(float64(n))
		s.g.metrics.DeliveredBytes.WithLabelValues(d.t.product.ID, "kafka").Add(float64(size))
		if d.q != nil {
			d.q.Delivered(n, size)
			backoff = max(backoff, debtWait(d.q.Bucket()))
		}
		if d.aud != nil {
			d.aud.Delivered(n, size, "")
		}
	}
	return backoff
}

// Close releases the session: its watcher, hub readers and stream slots.
// Records returned by a Fetch that was never settled were not sent: their
// tokens are given back.
func (s *kafkaSession) Close() {
	s.cancel()
	s.mu.Lock()
	s.stopping = true // no read ahead starts after this (kafka_ahead.go)
	s.mu.Unlock()
	s.wg.Wait()
	var auds []httpapi.Delivery
	defer func() {
		// Final summaries and stream closes, outside the lock.
		for _, d := range auds {
			d.Close(s.closeReason())
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, d := range s.ledger {
		if d.q != nil {
			d.q.Bucket().Charge(-len(d.sizes), -d.bytes)
		}
	}
	s.ledger = nil
	for _, t := range s.topics {
		if t.aud != nil {
			auds = append(auds, t.aud)
			t.aud = nil
		}
		s.retireReader(t)
		if t.release != nil {
			t.release()
			t.release = nil
			s.g.metrics.ActiveStreams.WithLabelValues(t.product.ID, "kafka").Dec()
		}
	}
}

// kafkaOffsets is kafkaproxy.OffsetStore on the store: committed group
// offsets survive restarts and are shared by replicas.
type kafkaOffsets struct{ s store.Store }

var _ kafkaproxy.OffsetStore = kafkaOffsets{}

func (o kafkaOffsets) Commit(ctx context.Context, partner, group string, offsets map[kafkaproxy.TopicPartition]kafkaproxy.Committed) error {
	list := make([]store.GroupOffset, 0, len(offsets))
	for tp, c := range offsets {
		list = append(list, store.GroupOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: c.Offset, Metadata: c.Metadata})
	}
	return o.s.CommitOffsets(ctx, partner, group, list)
}

func (o kafkaOffsets) Fetch(ctx context.Context, partner, group string) (map[kafkaproxy.TopicPartition]kafkaproxy.Committed, error) {
	list, err := o.s.GroupOffsets(ctx, partner, group)
	if err != nil {
		return nil, err
	}
	out := make(map[kafkaproxy.TopicPartition]kafkaproxy.Committed, len(list))
	for _, g := range list {
		out[kafkaproxy.TopicPartition{Topic: g.Topic, Partition: g.Partition}] = kafkaproxy.Committed{Offset: g.Offset, Metadata: g.Metadata}
	}
	return out, nil
}

// closeReason is the audit trail's reason for the session's streams
// ending.
func (s *kafkaSession) closeReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ended == "":
		return "client"
	case strings.Contains(s.ended, "expired"):
		return "reauthenticate"
	}
	return "revoked"
}

// auditTopic opens the audit record of the session's stream of t at its
// first Fetch: the access decision (door kafka) and the stream's open,
// both persisted before any record goes out. Later calls return it.
func (s *kafkaSession) auditTopic(ctx context.Context, t *kafkaTopic) (httpapi.Delivery, error) {
	au := s.g.audit
	if au == nil {
		return nil, nil
	}
	s.mu.Lock()
	d, purpose := t.aud, t.purpose
	s.mu.Unlock()
	if d != nil {
		return d, nil
	}
	pl := s.g.access.plan(ctx, s.partner, t.product, purpose)
	cred := "token"
	s.credMu.Lock()
	if s.keyID != "" {
		cred = "key:" + s.keyID
	}
	s.credMu.Unlock()
	if err := au.decision(ctx, accessEvent(pl, "kafka", cred)); err != nil {
		return nil, err
	}
	d, err := au.Open(ctx, httpapi.AuditStream{Door: "kafka", Partner: s.partner.ID, Product: t.product.ID,
		Purpose: purpose, Revision: pl.decision.Revision})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if t.aud == nil && !s.closed {
		t.aud = d
		s.mu.Unlock()
		return d, nil
	}
	other := t.aud
	s.mu.Unlock()
	d.Close("duplicate") // a concurrent Fetch opened it first
	if other == nil {
		return nil, errors.New("session closed")
	}
	return other, nil
}

// kafkaAuditTopic is the audit trail as a read-only virtual topic of the
// Kafka front door: listed and readable only for regulators, record for
// record as stored (value = the event's exact bytes, key = its chain), so
// a regulator's own Kafka tooling can archive and verify it.
const kafkaAuditTopic = "audit"

// regulator reports whether the session's partner reads the audit trail.
func (s *kafkaSession) regulator() bool {
	return s.partner.Type == products.PartnerRegulator && s.g.audit != nil
}

// auditTopicInfo is the virtual audit topic for Metadata.
func (s *kafkaSession) auditTopicInfo(ctx context.Context) (kafkaproxy.Topic, bool) {
	if !s.regulator() {
		return kafkaproxy.Topic{}, false
	}
	n, err := s.g.cluster.Partitions(ctx, s.g.audit.Topic())
	if err != nil || n == 0 {
		return kafkaproxy.Topic{}, false
	}
	return kafkaproxy.Topic{Name: kafkaAuditTopic, Partitions: int32(n)}, true
}

// auditAdmit records, once per session, that the regulator reads the trail
// over Kafka (fail closed: unrecorded, unread).
func (s *kafkaSession) auditAdmit(ctx context.Context) error {
	if !s.regulator() {
		return kafkaproxy.ErrNotAuthorized
	}
	s.mu.Lock()
	done := s.auditRead
	s.mu.Unlock()
	if done {
		return s.g.audit.Healthy()
	}
	if err := s.g.audit.decision(ctx, audit.Access{Allowed: true, Partner: s.partner.ID, Purpose: products.PurposeRegulatory,
		Door: "audit-kafka", Revision: s.g.engine.Revision()}); err != nil {
		return fmt.Errorf("audit trail unavailable (retriable): %v", err) // %v: not the trail's own Kafka error code
	}
	s.mu.Lock()
	s.auditRead = true
	s.mu.Unlock()
	return nil
}

// auditOffsets is Offsets of the virtual audit topic.
func (s *kafkaSession) auditOffsets(ctx context.Context, partition int32) (int64, int64, error) {
	if !s.regulator() {
		return 0, 0, kafkaproxy.ErrNotAuthorized
	}
	start, err := s.g.cluster.Offsets(ctx, s.g.audit.Topic(), upstream.Start)
	if err != nil {
		return 0, 0, kafkaUpstreamErr(err)
	}
	end, err := s.g.cluster.Offsets(ctx, s.g.audit.Topic(), upstream.End)
	if err != nil {
		return 0, 0, kafkaUpstreamErr(err)
	}
	if partition < 0 || int(partition) >= len(start) || int(partition) >= len(end) {
		return 0, 0, kafkaproxy.ErrUnknownTopic
	}
	return start[partition], end[partition], nil
}

// auditOffsetForTime is OffsetForTime of the virtual audit topic.
func (s *kafkaSession) auditOffsetForTime(ctx context.Context, partition int32, ts time.Time) (int64, error) {
	if !s.regulator() {
		return 0, kafkaproxy.ErrNotAuthorized
	}
	offs, err := s.g.cluster.OffsetsAfter(ctx, s.g.audit.Topic(), ts.UnixMilli())
	if err != nil {
		return 0, kafkaUpstreamErr(err)
	}
	if partition < 0 || int(partition) >= len(offs) {
		return 0, kafkaproxy.ErrUnknownTopic
	}
	return offs[partition], nil
}

// auditFetch is Fetch of the virtual audit topic: the stored records of
// the audit topic's partition from offset.
func (s *kafkaSession) auditFetch(ctx context.Context, partition int32, offset int64, maxBytes int32, maxWait time.Duration) (kafkaproxy.FetchResult, error) {
	if err := s.auditAdmit(ctx); err != nil {
		return kafkaproxy.FetchResult{}, err
	}
	n, err := s.g.cluster.Partitions(ctx, s.g.audit.Topic())
	if err != nil {
		return kafkaproxy.FetchResult{}, kafkaUpstreamErr(err)
	}
	if partition < 0 || int(partition) >= n {
		return kafkaproxy.FetchResult{}, kafkaproxy.ErrUnknownTopic
	}
	pos := make([]int64, n)
	pos[partition] = offset
	parts, err := s.g.cluster.SharedFetcher().Fetch(ctx, s.g.audit.Topic(), pos, []int32{partition}, maxWait, max(maxBytes, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return kafkaproxy.FetchResult{Next: offset, HighWatermark: offset, LogStart: -1}, nil
		}
		return kafkaproxy.FetchResult{}, kafkaUpstreamErr(err)
	}
	for _, p := range parts {
		if p.Partition != partition {
			continue
		}
		var oor *upstream.OutOfRangeError
		if errors.As(p.Err, &oor) {
			return kafkaproxy.FetchResult{}, kafkaproxy.ErrOffsetOutOfRange
		}
		if p.Err != nil {
			return kafkaproxy.FetchResult{}, p.Err
		}
		out := kafkaproxy.FetchResult{Next: p.Next, HighWatermark: p.HighWatermark, LogStart: p.LogStart}
		for _, r := range p.Records {
			if r.Offset < offset {
				continue
			}
			out.Records = append(out.Records, kafkaproxy.Record{Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value})
		}
		return out, nil
	}
	return kafkaproxy.FetchResult{Next: offset, HighWatermark: offset, LogStart: -1}, nil
}

// KafkaView returns the view partner reads product through on the Kafka
// front door (the purpose of its oldest active subscription, the policy's
// decision, compiled as for every front door). It is for tools that apply
// the same governance outside the gateway: `sluice bench` runs a direct
// consumer that decodes and encodes every record by it, to compare the
// front door with the same work done in the client. An error when the
// partner holds no active subscription or the policy gives no view.
func (g *Gateway) KafkaView(ctx context.Context, partnerID, productID string) (view.View, error) {
	a := g.access
	partner, f := auth.LookupPartner(a.partners, auth.Identity{Partner: partnerID})
	if f != nil {
		return nil, errors.New(f.Detail)
	}
	prod, ok := g.catalog.Get(productID)
	if !ok {
		return nil, fmt.Errorf("no product %q", productID)
	}
	sub, _, err := a.grant(ctx, partner.ID, prod.ID, "")
	if err != nil {
		return nil, err
	}
	if sub.ID == "" {
		return nil, fmt.Errorf("%s holds no active subscription of %s", partnerID, productID)
	}
	pl := a.plan(ctx, partner, prod, sub.Purpose)
	if pl.view == nil {
		return nil, fmt.Errorf("the policy gives %s no view of %s for %s", partnerID, productID, sub.Purpose)
	}
	return pl.view, nil
}

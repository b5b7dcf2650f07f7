package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sluicehq/sluice/products"
)

// Store is sluice's persistent state: partners, their API keys, plans,
// subscriptions with their history, usage counters, and a feed of changes.
//
// Lifecycle: Open returns a ready Store (schema migrated); it is safe for
// concurrent use by any number of goroutines. Close stops the change feed
// (every channel returned by Changes is closed), waits for the goroutines the
// Store started and releases the database; calls after Close fail. Every
// method returns an error wrapping one of the sentinels below when a caller
// may branch on it (ErrNotFound, ErrInvalid, ErrConflict, the ErrKey* family,
// ErrIllegalTransition); anything else is a database failure.
//
// All times are UTC with microsecond precision.
type Store interface {
	// UpsertPartner creates or replaces a partner (name, type, attributes).
	// Writing identical values changes nothing (no change notification).
	UpsertPartner(ctx context.Context, p Partner) error
	// Partner returns one partner; ErrNotFound if there is none.
	Partner(ctx context.Context, id string) (Partner, error)
	// Partners returns every partner, sorted by id.
	Partners(ctx context.Context) ([]Partner, error)

	// CreateKey creates an API key for the partner, valid for ttl (> 0). The
	// secret, "slk_<id>_<secret>", is returned once and never stored: only
	// its SHA-256 is. ErrNotFound if the partner does not exist.
	CreateKey(ctx context.Context, partnerID string, ttl time.Duration) (KeyInfo, string, error)
	// VerifyKey checks a presented key ("slk_<id>_<secret>") and returns the
	// key it belongs to. Errors: ErrKeyMalformed, ErrKeyNotFound (unknown id
	// or wrong secret: the two are not told apart), ErrKeyRevoked,
	// ErrKeyExpired. The error never contains the presented secret.
	VerifyKey(ctx context.Context, presented string) (KeyInfo, error)
	// ScramKey returns a key and its SCRAM-SHA-512 credential by key id,
	// for a SASL/SCRAM login (username = key id, password = secret), which
	// proves the secret without sending it. It does not judge the key:
	// the caller checks the client's proof first, then KeyInfo.Check, so
	// only the key's holder learns whether it is revoked or expired.
	// Errors: ErrKeyNotFound (no such id), ErrKeyNoScram (a key created
	// before SCRAM credentials were kept).
	ScramKey(ctx context.Context, id string) (KeyInfo, ScramCredential, error)
	// Keys lists a partner's keys (revoked and expired included), oldest first.
	Keys(ctx context.Context, partnerID string) ([]KeyInfo, error)
	// RevokeKey revokes a key of the partner. Revoking a revoked key is a
	// no-op that keeps the first revocation; ErrKeyNotFound if the partner
	// has no such key.
	RevokeKey(ctx context.Context, partnerID, keyID, actor string) error

	// UpsertPlan creates or replaces a plan. A plan with Default set becomes
	// the only default plan. Writing identical values changes nothing.
	UpsertPlan(ctx context.Context, p Plan) error
	// Plan returns one plan; ErrNotFound if there is none.
	Plan(ctx context.Context, id string) (Plan, error)
	// Plans returns every plan, sorted by id.
	Plans(ctx context.Context) ([]Plan, error)

	// CreateSubscription requests a product for a purpose under a plan, in
	// state requested, recording the request (actor) in its history.
	// ErrNotFound if the partner or plan does not exist; ErrConflict if the
	// partner already holds an open (not rejected, not revoked)
	// subscription for the same product and purpose.
	// Options: WithKafkaFormat (default KafkaFormatJSON).
	CreateSubscription(ctx context.Context, partnerID, product, purpose, planID, actor string, opts ...SubscriptionOption) (Subscription, error)
	// SetKafkaFormat sets the Kafka front door's value format of a
	// subscription (KafkaFormatJSON or KafkaFormatAvro), in any state, and
	// records it in the history (action ActionSetKafkaFormat, from and to
	// the current state, reason "kafka_format <old> -> <new>"). Setting the
	// format it already has changes nothing. ErrNotFound if there is no
	// such subscription, ErrInvalid for another format.
	SetKafkaFormat(ctx context.Context, subID, format, actor string) (Subscription, error)
	// Transition applies an action to a subscription atomically and returns
	// it as it now is. An action the current state does not allow fails
	// with a *TransitionError (errors.Is ErrIllegalTransition). See the
	// package documentation for the state machine.
	Transition(ctx context.Context, subID string, action Action, actor, reason string) (Subscription, error)
	// Subscription returns one subscription; ErrNotFound if there is none.
	Subscription(ctx context.Context, id string) (Subscription, error)
	// Subscriptions returns the subscriptions matching every non-empty
	// field of the filter, oldest first.
	Subscriptions(ctx context.Context, f Filter) ([]Subscription, error)
	// History returns a subscription's transitions in the order they
	// happened, starting with its request; ErrNotFound if there is no such
	// subscription.
	History(ctx context.Context, subID string) ([]TransitionRecord, error)

	// AddUsage adds a batch of usage deltas atomically: either every delta
	// is counted or none is.
	AddUsage(ctx context.Context, deltas []UsageDelta) error
	// Usage returns the daily usage rows matching the filter, ordered by
	// day, partner, product and purpose.
	Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error)

	// ShareQuota replaces this replica's quota shares (its recent demand and
	// open streams per partner and product; rows of pairs not in mine are
	// removed) and returns every replica's shares written within fresh of
	// now, this replica's included, sorted by partner, product and replica.
	// Replicas call it a few times a second to split plan limits between
	// them; shares older than fresh are ignored and eventually deleted.
	ShareQuota(ctx context.Context, replica string, mine []QuotaShare, fresh time.Duration) ([]QuotaShare, error)

	// ShareKafkaNode writes this replica's Kafka front door node (replacing
	// the replica's previous row) and returns every node written within
	// fresh of now, this one included, sorted by node id and replica.
	// Replicas call it every second to list each other as brokers and to
	// agree on consumer group coordinators; rows older than ten times
	// fresh are deleted.
	ShareKafkaNode(ctx context.Context, me KafkaNode, fresh time.Duration) ([]KafkaNode, error)
	// DropKafkaNode removes a replica's node (a clean shutdown), so the
	// others stop listing it at their next refresh.
	DropKafkaNode(ctx context.Context, replica string) error

	// CommitOffsets stores a Kafka consumer group's committed offsets
	// (the Kafka front door), namespaced by partner, atomically: every
	// offset is written or none is. A partition already committed is
	// overwritten (last commit wins, as in Kafka). No change notification.
	CommitOffsets(ctx context.Context, partnerID, group string, offsets []GroupOffset) error
	// GroupOffsets returns every committed offset of a partner's group,
	// sorted by topic and partition; none (an unknown group) is an empty
	// list and no error.
	GroupOffsets(ctx context.Context, partnerID, group string) ([]GroupOffset, error)

	// RegisterSchema registers a (view) schema's text and returns its id:
	// the same text always gets the same id, on every replica and across
	// restarts; ids are positive and grow in registration order. The text
	// is stored as given (at most 1 MiB); callers register a canonical
	// form so equal schemas have equal text.
	RegisterSchema(ctx context.Context, schema string) (int, error)
	// Schema returns a registered schema's text; ErrNotFound if no schema
	// has that id.
	Schema(ctx context.Context, id int) (string, error)

	// Changes returns a feed of partner, key, plan and subscription changes
	// made through any Store on the same database (every replica, for
	// PostgreSQL; every Store of this process, for SQLite). Only changes
	// committed after Changes returns are delivered. The channel is closed
	// when ctx ends or the Store closes. A Change of kind ChangeResync means
	// changes may have been missed (a slow reader, a lost database
	// connection): reload whatever you cache.
	Changes(ctx context.Context) (<-chan Change, error)

	// Close releases the Store; see the lifecycle above.
	Close() error
}

// Errors callers branch on. Returned errors wrap them with context, e.g.
// `store: not found: subscription "sub_..."`.
var (
	ErrNotFound = errors.New("store: not found")
	// ErrInvalid: an argument failed validation (the message names it).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrConflict: the write contradicts existing data, e.g. a second open
	// subscription for the same partner, product and purpose.
	ErrConflict = errors.New("store: conflict")
	// ErrIllegalTransition: the action is not allowed in the subscription's
	// current state. The error is a *TransitionError.
	ErrIllegalTransition = errors.New("store: illegal subscription transition")
	// ErrClosed: the Store has been closed.
	ErrClosed = errors.New("store: closed")

	// ErrKeyMalformed: the presented key is not of the form slk_<id>_<secret>.
	ErrKeyMalformed = errors.New("store: malformed API key")
	// ErrKeyNotFound: no key with that id, or the secret does not match.
	ErrKeyNotFound = errors.New("store: API key not recognised")
	// ErrKeyExpired: the key is past its expiry.
	ErrKeyExpired = errors.New("store: API key expired")
	// ErrKeyRevoked: the key has been revoked.
	ErrKeyRevoked = errors.New("store: API key revoked")
	// ErrKeyNoScram: the key has no SCRAM credential (it was created
	// before they were kept).
	ErrKeyNoScram = errors.New("store: API key has no SCRAM credential")
)

// Partner is an organisation that reads data products. Its grants are
// subscriptions, not part of the partner.
type Partner struct {
	ID   string // ^[a-z][a-z0-9-]{1,62}$
	Name string
	Type products.PartnerType
	// Attributes are the facts policy matches rows against (see
	// products.Partner). Values are string, int64, float64, bool, []any or
	// map[string]any of those; nil is stored as an empty map.
	Attributes map[string]any
	CreatedAt  time.Time // set by the store
	UpdatedAt  time.Time // set by the store; last change of name, type or attributes
}

// KeyInfo describes an API key. It never holds the secret.
type KeyInfo struct {
	ID        string // the lookup id: the <id> of slk_<id>_<secret>
	PartnerID string
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero unless revoked
	RevokedBy string    // who revoked it
}

// Prefix returns the public part of the key, "slk_<id>", to show in
// listings so a partner can tell its keys apart.
func (k KeyInfo) Prefix() string { return keyPrefix + k.ID }

// Revoked reports whether the key has been revoked.
func (k KeyInfo) Revoked() bool { return !k.RevokedAt.IsZero() }

// Check returns ErrKeyRevoked or ErrKeyExpired (wrapped, with when and by
// whom) when the key is not usable at now, else nil.
func (k KeyInfo) Check(now time.Time) error {
	if k.Revoked() {
		return fmt.Errorf("%w: key slk_%s was revoked at %s by %s; create a new key",
			ErrKeyRevoked, k.ID, k.RevokedAt.Format(time.RFC3339), k.RevokedBy)
	}
	if !now.Before(k.ExpiresAt) {
		return fmt.Errorf("%w: key slk_%s expired at %s; create a new key",
			ErrKeyExpired, k.ID, k.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// ScramCredential is what a SCRAM-SHA-512 server keeps of a password
// (RFC 5802 section 3): the salt and iteration count of
// SaltedPassword = PBKDF2-HMAC-SHA-512(password, salt, iterations),
// StoredKey = SHA-512(HMAC(SaltedPassword, "Client Key")) and
// ServerKey = HMAC(SaltedPassword, "Server Key"). It cannot be used to
// log in, only to check a login.
type ScramCredential struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Plan formats: how a partner may receive data.
const (
	FormatJSON   = "json"   // REST pages, application/json
	FormatNDJSON = "ndjson" // REST pages, application/x-ndjson
	FormatSSE    = "sse"    // Server-Sent Events streams
	FormatKafka  = "kafka"  // the Kafka wire protocol front door
)

// Plan is a set of limits a subscription runs under. Rates are per partner
// and product.
type Plan struct {
	ID                 string        // ^[a-z][a-z0-9-]{1,62}$, e.g. "standard"
	Name               string        // display name
	RecordsPerSecond   int64         // > 0
	BytesPerSecond     int64         // > 0
	ConcurrentStreams  int           // > 0: open SSE or Kafka streams
	MonthlyRecordQuota int64         // > 0: records per UTC calendar month
	ReplayWindow       time.Duration // >= 0, whole seconds: how far back a partner may start reading (0: live only)
	Formats            []string      // non-empty; Format* constants
	// Default marks the plan a subscription request without a plan gets.
	// At most one plan is the default.
	Default   bool
	CreatedAt time.Time // set by the store
	UpdatedAt time.Time // set by the store
}

// Subscription is a partner's standing access to one product for one
// purpose under a plan.
type Subscription struct {
	ID        string // "sub_" + 16 base32 characters
	PartnerID string
	Product   string
	Purpose   string // one of the products.Purpose* constants
	PlanID    string
	State     State
	// KafkaFormat is how the Kafka front door encodes this subscription's
	// record values: KafkaFormatJSON (default) or KafkaFormatAvro.
	KafkaFormat string
	CreatedAt   time.Time
	UpdatedAt   time.Time // time of the last transition or format change
}

// Kafka front door value formats of a subscription.
const (
	// KafkaFormatJSON: each value is the view's JSON object, byte for byte
	// what SSE sends.
	KafkaFormatJSON = "json"
	// KafkaFormatAvro: each value is Schema Registry wire format (magic 0,
	// 4-byte schema id, Avro binary) of the view's schema.
	KafkaFormatAvro = "avro"
)

// ValidKafkaFormat reports whether f is one of the KafkaFormat* constants.
func ValidKafkaFormat(f string) bool { return f == KafkaFormatJSON || f == KafkaFormatAvro }

// SubscriptionOption sets an optional property of a new subscription.
type SubscriptionOption func(*Subscription)

// WithKafkaFormat requests a Kafka front door value format
// (KafkaFormatJSON or KafkaFormatAvro; "" keeps the default, json).
func WithKafkaFormat(format string) SubscriptionOption {
	return func(s *Subscription) {
		if format != "" {
			s.KafkaFormat = format
		}
	}
}

// Filter selects subscriptions; empty fields match everything.
type Filter struct {
	PartnerID string
	Product   string
	State     State
}

// TransitionRecord is one entry of a subscription's history.
type TransitionRecord struct {
	SubscriptionID string
	Action         Action // ActionRequest for the creation
	From           State  // empty for the creation
	To             State
	Actor          string // who
	Reason         string // why
	At             time.Time
}

// UsageDelta is usage to add to one partner, product, purpose and day.
type UsageDelta struct {
	PartnerID string
	Product   string
	Purpose   string
	Day       time.Time // any time of the UTC day the usage belongs to
	Records   int64     // >= 0
	Bytes     int64     // >= 0
}

// UsageRow is the usage of one partner, product and purpose on one UTC day.
type UsageRow struct {
	PartnerID string
	Product   string
	Purpose   string
	Day       time.Time // midnight UTC
	Records   int64
	Bytes     int64
}

// UsageFilter selects usage rows. A row for day D matches when the day
// overlaps [From, To): D+24h > From and D < To. A zero From or To is
// unbounded; empty PartnerID or Product match every partner or product.
// So From=2026-11-01, To=2026-12-01 is November.
type UsageFilter struct {
	From, To  time.Time
	PartnerID string
	Product   string
}

// QuotaShare is one replica's recent use of one partner's product, which
// replicas weigh to split the plan's rate and stream limit between them.
type QuotaShare struct {
	Replica   string // non-empty, at most 200 characters
	PartnerID string
	Product   string
	Demand    float64   // records per second the replica's clients asked for, recently (>= 0)
	Streams   int       // streams the replica has open (>= 0)
	UpdatedAt time.Time // set by the store
}

// KafkaNode is one replica's Kafka front door as clients reach it.
type KafkaNode struct {
	Replica   string    // non-empty, at most 200 characters
	NodeID    int32     // >= 0: the broker id the replica reports for itself
	Host      string    // advertised host, non-empty
	Port      int32     // advertised port, 1..65535
	UpdatedAt time.Time // set by the store
}

// GroupOffset is a Kafka consumer group's committed position in one
// partition of a virtual topic (the Kafka front door's topic: a product id).
type GroupOffset struct {
	Topic     string // non-empty, at most 249 bytes (Kafka's limit)
	Partition int32  // >= 0
	Offset    int64  // the next offset to consume, as the client committed it
	Metadata  string // the client's commit metadata, at most 4096 bytes
	// CommittedAt is set by the store.
	CommittedAt time.Time
}

// ChangeKind says what changed.
type ChangeKind string

// Change kinds.
const (
	ChangePartner      ChangeKind = "partner"      // ID: the partner id
	ChangeKey          ChangeKind = "key"          // ID: the key id
	ChangePlan         ChangeKind = "plan"         // ID: the plan id
	ChangeSubscription ChangeKind = "subscription" // ID: the subscription id
	// ChangeResync: changes may have been lost; reload everything cached.
	ChangeResync ChangeKind = "resync"
)

// Change says that an entity changed; read it from the store for its new
// state.
type Change struct {
	Kind ChangeKind
	ID   string
}

func (c Change) String() string {
	if c.ID == "" {
		return string(c.Kind)
	}
	return string(c.Kind) + " " + c.ID
}

// parseChange is the inverse of Change.String.
func parseChange(s string) (Change, bool) {
	kind, id, _ := strings.Cut(s, " ")
	switch ChangeKind(kind) {
	case ChangePartner, ChangeKey, ChangePlan, ChangeSubscription, ChangeResync:
		return Change{Kind: ChangeKind(kind), ID: id}, true
	}
	return Change{}, false
}

// Open opens the store named by dsn and applies the schema migrations it
// lacks:
//
//   - "postgres://..." or "postgresql://...": PostgreSQL (pgx DSN: the
//     usual connection parameters, plus any server parameter such as
//     search_path);
//   - "sqlite:PATH" or a plain file path: SQLite at PATH, created if missing
//     (with its directory).
//
// A database migrated by a newer sluice than this one is refused.
func Open(ctx context.Context, dsn string) (Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//"))
	case dsn == "":
		return nil, fmt.Errorf("%w: empty store DSN (want postgres://..., sqlite:PATH or a file path)", ErrInvalid)
	case schemePattern.MatchString(dsn):
		return nil, fmt.Errorf("%w: unsupported store DSN scheme %q (want postgres://..., sqlite:PATH or a file path)",
			ErrInvalid, dsn[:strings.Index(dsn, "://")])
	}
	return openSQLite(ctx, dsn)
}

var (
	schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
	// idPattern: partner, plan and product ids (the shape package products
	// gives them; the store does not know the catalog).
	idPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
)

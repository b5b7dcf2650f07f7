package kafkaproxy

import (
	"context"
	"errors"
	"net"
	"time"
)

// Backend is what the proxy needs of the gateway: it turns SASL credentials
// into a partner's Session. The gateway implements it; tests use an
// in-memory one.
//
// Lifecycle: the Server calls Authenticate once per connection, from that
// connection's goroutine, after the client's SaslAuthenticate (or raw SASL
// v0) frame. A nil error must come with a non-nil Session, which the Server
// owns from then on and closes exactly once when the connection ends.
// Authenticate may be called concurrently for different connections.
type Backend interface {
	// Authenticate checks credentials and returns the partner's session.
	// An error means the credentials are not accepted: the client gets
	// SASL_AUTHENTICATION_FAILED with the error's text (so the text must
	// not contain the secret) and the connection is closed.
	Authenticate(ctx context.Context, c Credentials) (Session, error)
}

// Mechanism names a SASL mechanism the proxy speaks.
const (
	MechanismPlain       = "PLAIN"
	MechanismOAuthBearer = "OAUTHBEARER"
)

// Credentials are what a client presented at login.
type Credentials struct {
	// Mechanism is MechanismPlain or MechanismOAuthBearer.
	Mechanism string
	// Username is PLAIN's authentication identity (sluice: the API key
	// id), or OAUTHBEARER's optional authorization identity (a= in the
	// GS2 header, usually empty).
	Username string
	// Secret is PLAIN's password (the API key secret) or OAUTHBEARER's
	// bearer token (a JWT). Never log it.
	Secret string
	// Extensions are OAUTHBEARER's key=value extensions (RFC 7628 3.1),
	// nil for PLAIN.
	Extensions map[string]string
	// Remote is the client's address, for audit.
	Remote net.Addr
}

// Reauthenticator is a Session whose credential expires and that can be
// renewed on its connection (KIP-368 re-authentication). The Server tells
// clients (SaslAuthenticate v1+) how long the credential lasts, so they log
// in again on the same connection before it expires; that login's Session
// is handed to Reauthenticate, which adopts its credential (and closes it)
// while keeping the connection's state: topics, readers, group membership,
// streams. A re-authentication as another partner, or with another
// mechanism, fails and closes the connection, as Kafka does.
type Reauthenticator interface {
	// Expires is when the current credential expires (zero: never).
	Expires() time.Time
	// Reauthenticate adopts next's credential; next is a Session of the
	// same partner, which Reauthenticate closes.
	Reauthenticate(next Session) error
}

// Session is one authenticated partner on one connection: its entitled
// topics and its governed view of them.
//
// Lifecycle: created by Backend.Authenticate, used by the goroutine that
// serves its connection (calls do not overlap, except Fetch, see there, and
// Done, which a watcher goroutine selects on), and closed exactly once by
// the Server when the connection ends, whatever the reason, after every
// other call has returned. Done is closed by the
// session itself when the partner's access ends (revocation, credential
// expiry): the Server then closes the connection within a second and
// cancels the context of any call in flight.
type Session interface {
	// Partner is the partner's id. Consumer groups and committed offsets
	// are namespaced by it.
	Partner() string

	// Topics lists the virtual topics the partner may read (one per
	// subscribed product), in a stable order. Metadata shows only these;
	// every other topic is TOPIC_AUTHORIZATION_FAILED. It is called by
	// every request that names topics (Metadata, Fetch, ListOffsets,
	// OffsetCommit, OffsetFetch), so it should answer from memory.
	Topics(ctx context.Context) ([]Topic, error)

	// Offsets returns the first offset still readable (log start) and the
	// high watermark (the offset the next record will get) of a partition.
	Offsets(ctx context.Context, topic string, partition int32) (logStart, high int64, err error)

	// OffsetForTime returns the first offset whose timestamp is at or after
	// ts, or the high watermark when there is none.
	OffsetForTime(ctx context.Context, topic string, partition int32, ts time.Time) (int64, error)

	// Fetch reads the partner's view of one partition from offset. It
	// returns the records the view keeps (in offset order; rows the view
	// filters are left out, so offsets have gaps), Next (the offset to
	// read next: past the last record read, including filtered ones) and
	// the partition's marks. It returns at least one record when one is
	// available, even if it is larger than maxBytes, and otherwise stops
	// before maxBytes of values and keys. When nothing is available it
	// waits up to maxWait (0: do not wait) for records, returning early
	// when ctx is done. An offset outside [LogStart, HighWatermark] is
	// ErrOffsetOutOfRange. Fetch is called concurrently for different
	// partitions (a long-polling Fetch request waits on all of its
	// partitions at once); the returned records are only read by the
	// caller, and must not be modified by the session afterwards.
	Fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int32, maxWait time.Duration) (FetchResult, error)

	// Throttle accounts a delivery of records and bytes against the
	// partner's quota and returns how long the client should back off
	// (sent as throttle_time_ms; the Server also stops reading that
	// connection for as long). 0 means no throttling.
	Throttle(records, bytes int) time.Duration

	// Done is closed when the partner's access ends.
	Done() <-chan struct{}

	// Close releases the session. Called once, by the Server.
	Close()
}

// Topic is a virtual topic: a product the partner is subscribed to.
type Topic struct {
	Name       string
	Partitions int32
}

// Record is one record of a partner's view.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds since the Unix epoch
	Key       []byte
	Value     []byte // the view's encoding of the row (JSON)
}

// FetchResult is what Session.Fetch read from one partition.
type FetchResult struct {
	Records       []Record
	Next          int64 // >= the requested offset; > last record's offset
	HighWatermark int64
	LogStart      int64
}

// TopicPartition names a partition of a virtual topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Committed is a group's committed position in one partition.
type Committed struct {
	Offset   int64
	Metadata string
}

// OffsetStore persists consumer group offsets, namespaced by partner, so
// that they survive a restart of the Server. The gateway supplies a
// database-backed one; MemoryOffsets is for tests. Methods are called
// concurrently from connection goroutines.
type OffsetStore interface {
	// Commit stores offsets of a partner's group atomically (all or none).
	Commit(ctx context.Context, partner, group string, offsets map[TopicPartition]Committed) error
	// Fetch returns every committed offset of a partner's group; a group
	// with none returns an empty map and no error.
	Fetch(ctx context.Context, partner, group string) (map[TopicPartition]Committed, error)
}

// Errors a Session returns that have a Kafka meaning. Any other error is
// reported to the client as KAFKA_STORAGE_ERROR (retriable) for reads and
// logged. A *kerr.Error (franz-go pkg/kerr) is passed through as its code.
var (
	// ErrUnknownTopic: no such topic or partition for this partner
	// (UNKNOWN_TOPIC_OR_PARTITION).
	ErrUnknownTopic = errors.New("kafkaproxy: unknown topic or partition")
	// ErrNotAuthorized: the partner may not read this topic
	// (TOPIC_AUTHORIZATION_FAILED).
	ErrNotAuthorized = errors.New("kafkaproxy: topic not authorized")
	// ErrOffsetOutOfRange: the offset is older than retention or ahead of
	// the log (OFFSET_OUT_OF_RANGE); the client resets per its policy.
	ErrOffsetOutOfRange = errors.New("kafkaproxy: offset out of range")
	// ErrAuthentication: credentials rejected; Authenticate may wrap it.
	ErrAuthentication = errors.New("kafkaproxy: authentication failed")
)

package audit

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the event format version written in every event's "v".
const Version = 1

// Kind names what an event records. Kinds are stable strings: they are read
// by regulators' tools, so they are never renamed.
type Kind string

// Kinds written by the gateway (through Log.Append).
const (
	// KindAccess is one access decision (allowed or denied) with what the
	// plan drops and masks. Payload: Access.
	KindAccess Kind = "access"
	// KindStreamOpen records that a stream (SSE, Kafka wire session, REST
	// page) may start delivering from a cursor. Payload: Stream.
	KindStreamOpen Kind = "stream-open"
	// KindStreamClose records that a stream ended and why. Payload: Stream.
	KindStreamClose Kind = "stream-close"
	// KindDelivery summarises what a stream delivered since its previous
	// summary. Payload: Delivery.
	KindDelivery Kind = "delivery"
	// KindSubscription is a subscription lifecycle change. Payload: Lifecycle.
	KindSubscription Kind = "subscription"
	// KindKey is an API key lifecycle change. Payload: Lifecycle.
	KindKey Kind = "key"
	// KindPolicyReload records a policy revision coming into force (or a
	// failed reload). Payload: PolicyReload.
	KindPolicyReload Kind = "policy-reload"
	// KindConsent is a consent change the gateway applied. Payload: Consent.
	KindConsent Kind = "consent"
	// KindAdmin is an administrative action. Payload: Admin.
	KindAdmin Kind = "admin"
)

// Kinds written by the chain itself; Log.Append refuses them.
const (
	// KindChainStart is the first event (seq 0) of every chain: it
	// publishes the chain's signing key and links the instance's previous
	// chain. Payload: ChainStart.
	KindChainStart Kind = "chain-start"
	// KindCheckpoint seals every event before it with an Ed25519
	// signature. Payload: Checkpoint.
	KindCheckpoint Kind = "checkpoint"
	// KindChainClose is the signed checkpoint written on a clean Close; no
	// event follows it in its chain. Payload: Checkpoint.
	KindChainClose Kind = "chain-close"
)

// Event is one audit record. The envelope (V, Chain, Seq, Prev, Time,
// Instance) is filled in by the chain; callers set Kind and exactly the
// payload that Kind names.
//
// Events are stored as the JSON encoding/json produces for this struct, and
// Verify requires that stored bytes re-encode to themselves. Fields may be
// added (with omitempty) but never removed or renamed, or old events would
// no longer verify.
type Event struct {
	V        int       `json:"v"`
	Chain    string    `json:"chain"`
	Seq      uint64    `json:"seq"`
	Prev     string    `json:"prev"` // hex SHA-256 of the previous event's stored bytes; 64 zeros at seq 0
	Time     time.Time `json:"time"` // UTC, when the chain wrote it
	Instance string    `json:"instance"`
	Kind     Kind      `json:"kind"`

	Start      *ChainStart   `json:"start,omitempty"`
	Checkpoint *Checkpoint   `json:"checkpoint,omitempty"`
	Access     *Access       `json:"access,omitempty"`
	Stream     *Stream       `json:"stream,omitempty"`
	Delivery   *Delivery     `json:"delivery,omitempty"`
	Lifecycle  *Lifecycle    `json:"lifecycle,omitempty"`
	Policy     *PolicyReload `json:"policy,omitempty"`
	Consent    *Consent      `json:"consent,omitempty"`
	Admin      *Admin        `json:"admin,omitempty"`
}

// ChainStart is the payload of the first event of a chain.
type ChainStart struct {
	// Keys are the public keys that sign this chain's checkpoints (JWK).
	// Verify trusts them only when no key set is given, and says so.
	Keys []PublicJWK `json:"keys"`
	// Predecessor is the last event of this instance's previous chain
	// found in the topic when this chain started; nil if none was found.
	Predecessor *Link `json:"predecessor,omitempty"`
	// Software is the sluice version that wrote the chain.
	Software string `json:"software,omitempty"`
	// CheckpointEvery and CheckpointInterval are the sealing cadence, so a
	// reader knows how many unsealed events to expect at most.
	CheckpointEvery    int    `json:"checkpoint_every"`
	CheckpointInterval string `json:"checkpoint_interval"`
}

// Link points at one event of another chain.
type Link struct {
	Chain string `json:"chain"`
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"` // hex SHA-256 of that event's stored bytes
}

// Checkpoint is the payload of checkpoint and chain-close events. The
// signature covers SignedMessage of the event (chain, seq, sealed seq,
// sealed hash = the event's Prev, running hash, time, instance, kind, key
// id).
type Checkpoint struct {
	SealedSeq uint64 `json:"sealed_seq"` // = Seq-1: the event whose hash is Prev
	// Running is SHA-256 folded over every event hash of the chain up to
	// and including SealedSeq: r(-1) = 32 zero bytes, r(n) = SHA-256(r(n-1) || SHA-256(bytes(n))).
	Running string `json:"running"`
	KeyID   string `json:"kid"`
	Sig     string `json:"sig"` // base64url (no padding) Ed25519 signature
}

// Access is one access decision.
type Access struct {
	Allowed  bool   `json:"allowed"`
	Partner  string `json:"partner"`
	Product  string `json:"product"`
	Purpose  string `json:"purpose"`
	Door     string `json:"door,omitempty"` // rest, sse, kafka, preview
	Revision string `json:"policy_revision"`
	// Reason is the stable code of a denial (or of a conditional grant).
	Reason string `json:"reason,omitempty"`
	// Dropped and Masked are what the compiled plan does to fields; Masked
	// maps a field to its transform name.
	Dropped []string          `json:"fields_dropped,omitempty"`
	Masked  map[string]string `json:"fields_masked,omitempty"`
	// Stream is the stream or request id the decision was made for.
	Stream       string `json:"stream,omitempty"`
	Subscription string `json:"subscription,omitempty"`
	// Credential is the API key id or token subject used, never a secret.
	Credential string `json:"credential,omitempty"`
}

// Stream identifies a delivery stream; used by stream-open and stream-close.
type Stream struct {
	ID       string `json:"id"`
	Partner  string `json:"partner"`
	Product  string `json:"product"`
	Purpose  string `json:"purpose,omitempty"`
	Door     string `json:"door,omitempty"`
	Revision string `json:"policy_revision,omitempty"`
	// Cursor is where delivery starts (open) or the last delivered
	// cursor (close).
	Cursor string `json:"cursor,omitempty"`
	// Reason is why the stream closed: client, shutdown, revoked,
	// policy-changed, audit-unavailable, error.
	Reason string `json:"reason,omitempty"`
}

// Delivery summarises what a stream delivered in one window (since its
// previous summary or its open) and in total.
type Delivery struct {
	Stream  string `json:"stream"`
	Partner string `json:"partner"`
	Product string `json:"product"`
	Records uint64 `json:"records"`
	Bytes   uint64 `json:"bytes"`
	// FirstCursor and LastCursor bound the window: the cursor before its
	// first record and after its last.
	FirstCursor  string `json:"first_cursor,omitempty"`
	LastCursor   string `json:"last_cursor,omitempty"`
	TotalRecords uint64 `json:"total_records"`
	TotalBytes   uint64 `json:"total_bytes"`
	Final        bool   `json:"final,omitempty"` // the summary written at close
}

// Lifecycle is a subscription or API key change.
type Lifecycle struct {
	ID      string `json:"id"`
	Partner string `json:"partner"`
	Product string `json:"product,omitempty"`
	Action  string `json:"action"` // created, approved, suspended, revoked, rotated, ...
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
	Actor   string `json:"actor"` // the acting user or "system"
	Reason  string `json:"reason,omitempty"`
}

// PolicyReload is a policy revision coming into force.
type PolicyReload struct {
	Revision string `json:"revision"`
	// Files maps each policy file to the hex SHA-256 of its content.
	Files map[string]string `json:"files,omitempty"`
	// Error is set when the reload failed (the previous revision stays).
	Error string `json:"error,omitempty"`
}

// Consent is a consent change the gateway applied.
type Consent struct {
	// Subject is the subscriber pseudonymised with PseudonymiseSubject;
	// Log.Append refuses anything else.
	Subject string   `json:"subject"`
	OptOuts []string `json:"opt_outs"` // purposes opted out of after the change
	Source  string   `json:"source,omitempty"`
}

// Admin is an administrative action.
type Admin struct {
	Actor  string `json:"actor"`
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// ErrInvalidEvent is wrapped by every error about an event's content (a
// programming error in the caller, not an audit outage).
var ErrInvalidEvent = errors.New("audit: invalid event")

// payloads returns the names of the payload fields that are set.
func (e *Event) payloads() []string {
	var s []string
	add := func(set bool, name string) {
		if set {
			s = append(s, name)
		}
	}
	add(e.Start != nil, "start")
	add(e.Checkpoint != nil, "checkpoint")
	add(e.Access != nil, "access")
	add(e.Stream != nil, "stream")
	add(e.Delivery != nil, "delivery")
	add(e.Lifecycle != nil, "lifecycle")
	add(e.Policy != nil, "policy")
	add(e.Consent != nil, "consent")
	add(e.Admin != nil, "admin")
	return s
}

// payloadFor is the payload field a kind needs, "" for an unknown kind.
func payloadFor(k Kind) string {
	switch k {
	case KindChainStart:
		return "start"
	case KindCheckpoint, KindChainClose:
		return "checkpoint"
	case KindAccess:
		return "access"
	case KindStreamOpen, KindStreamClose:
		return "stream"
	case KindDelivery:
		return "delivery"
	case KindSubscription, KindKey:
		return "lifecycle"
	case KindPolicyReload:
		return "policy"
	case KindConsent:
		return "consent"
	case KindAdmin:
		return "admin"
	}
	return ""
}

// checkPayload checks that exactly the payload of e.Kind is set.
func (e *Event) checkPayload() error {
	want := payloadFor(e.Kind)
	if want == "" {
		return fmt.Errorf("%w: unknown kind %q", ErrInvalidEvent, e.Kind)
	}
	got := e.payloads()
	if len(got) != 1 || got[0] != want {
		return fmt.Errorf("%w: kind %s needs exactly the %q payload, has [%s]", ErrInvalidEvent, e.Kind, want, strings.Join(got, " "))
	}
	return nil
}

// checkCaller validates an event handed to Log.Append.
func (e *Event) checkCaller() error {
	switch e.Kind {
	case KindChainStart, KindCheckpoint, KindChainClose:
		return fmt.Errorf("%w: kind %s is written by the chain itself", ErrInvalidEvent, e.Kind)
	}
	if err := e.checkPayload(); err != nil {
		return err
	}
	if e.Consent != nil && !IsPseudonym(e.Consent.Subject) {
		return fmt.Errorf("%w: consent subject is not an audit pseudonym; pass it through PseudonymiseSubject", ErrInvalidEvent)
	}
	return nil
}

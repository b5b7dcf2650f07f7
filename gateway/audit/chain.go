package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// zeroHash is Prev of seq 0.
var zeroHash = strings.Repeat("0", 64)

// instanceRE is what an instance id may look like: it becomes part of the
// chain id and of the signed message, so no separators or newlines.
var instanceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// NewChainID returns a fresh chain id for instance: instance, the UTC start
// time and 32 random bits, e.g. "gw-1.20260918T101500Z.9f3a0c1e".
func NewChainID(instance string, now time.Time) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return instance + "." + now.UTC().Format("20060102T150405Z") + "." + hex.EncodeToString(r[:])
}

// Chain orders, hashes and seals the events of one chain. It does no I/O
// and is not safe for concurrent use: one goroutine (Log's writer) owns it,
// which is what makes seq order equal topic order.
//
// Each event's Prev is the SHA-256 of the previous event's stored bytes;
// every CheckpointEvery events (or when the caller asks) a checkpoint event
// signs the chain head.
type Chain struct {
	id       string
	instance string
	key      ed25519.PrivateKey
	kid      string
	now      func() time.Time
	st       ChainState
}

// ChainState is the position of a chain after an event: what the next
// event links to. Log keeps the state after each event of a batch in
// flight and rolls back to the last acknowledged one when produce fails.
type ChainState struct {
	Next    uint64   // seq of the next event
	Prev    [32]byte // hash of the event at Next-1 (zero at Next 0)
	Running [32]byte // running hash up to Next-1
	// SinceCheckpoint counts events after the last checkpoint.
	SinceCheckpoint int
	// LastCheckpoint is when the last checkpoint (or the start) was written.
	LastCheckpoint time.Time
}

// NewChain returns an empty chain; its first event must come from Start.
// now may be nil (time.Now).
func NewChain(id, instance string, key ed25519.PrivateKey, now func() time.Time) (*Chain, error) {
	if !instanceRE.MatchString(instance) {
		return nil, fmt.Errorf("audit: instance %q: want 1-63 of [A-Za-z0-9._-], starting with a letter or digit", instance)
	}
	if id == "" || strings.ContainsAny(id, "\n\r") || len(id) > 200 {
		return nil, fmt.Errorf("audit: chain id %q: want 1-200 characters, no newline", id)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit: signing key: want an Ed25519 private key, have %d bytes", len(key))
	}
	if now == nil {
		now = time.Now
	}
	pub := key.Public().(ed25519.PublicKey)
	return &Chain{id: id, instance: instance, key: key, kid: KeyID(pub), now: now}, nil
}

// ID is the chain id.
func (c *Chain) ID() string { return c.id }

// State is the chain's current position.
func (c *Chain) State() ChainState { return c.st }

// Reset moves the chain back to an earlier state (events after it were not
// persisted and their seqs will be reused).
func (c *Chain) Reset(s ChainState) { c.st = s }

// Public is the public half of the signing key.
func (c *Chain) Public() ed25519.PublicKey { return c.key.Public().(ed25519.PublicKey) }

// Start returns the chain's first event (seq 0, kind chain-start).
func (c *Chain) Start(s ChainStart) ([]byte, error) {
	if c.st.Next != 0 {
		return nil, fmt.Errorf("audit: chain %s already started", c.id)
	}
	s.Keys = []PublicJWK{JWK(c.Public())}
	return c.add(&Event{Kind: KindChainStart, Start: &s})
}

// Append assigns ev the next seq and returns its stored bytes. ev's
// envelope fields are overwritten.
func (c *Chain) Append(ev *Event) ([]byte, error) {
	if c.st.Next == 0 {
		return nil, fmt.Errorf("audit: chain %s not started", c.id)
	}
	if err := ev.checkCaller(); err != nil {
		return nil, err
	}
	return c.add(ev)
}

// Checkpoint returns a signed checkpoint sealing every event so far; with
// final it is the chain-close event.
func (c *Chain) Checkpoint(final bool) ([]byte, error) {
	if c.st.Next == 0 {
		return nil, fmt.Errorf("audit: chain %s not started", c.id)
	}
	ev := &Event{Kind: KindCheckpoint, Checkpoint: &Checkpoint{
		SealedSeq: c.st.Next - 1,
		Running:   hex.EncodeToString(c.st.Running[:]),
		KeyID:     c.kid,
	}}
	if final {
		ev.Kind = KindChainClose
	}
	c.envelope(ev)
	ev.Checkpoint.Sig = b64.EncodeToString(ed25519.Sign(c.key, SignedMessage(ev)))
	return c.commit(ev)
}

// CheckpointDue reports whether a checkpoint should follow now: every
// events since the last one, or interval elapsed with at least one event.
func (c *Chain) CheckpointDue(every int, interval time.Duration) bool {
	if c.st.SinceCheckpoint == 0 {
		return false
	}
	return c.st.SinceCheckpoint >= every || c.now().Sub(c.st.LastCheckpoint) >= interval
}

func (c *Chain) envelope(ev *Event) {
	ev.V = Version
	ev.Chain = c.id
	ev.Seq = c.st.Next
	ev.Prev = zeroHash
	if c.st.Next > 0 {
		ev.Prev = hex.EncodeToString(c.st.Prev[:])
	}
	ev.Time = c.now().UTC()
	ev.Instance = c.instance
}

func (c *Chain) add(ev *Event) ([]byte, error) {
	c.envelope(ev)
	return c.commit(ev)
}

func (c *Chain) commit(ev *Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	h := sha256.Sum256(b)
	c.st.Running = foldRunning(c.st.Running, h)
	c.st.Prev = h
	c.st.Next++
	switch ev.Kind {
	case KindCheckpoint, KindChainClose:
		c.st.SinceCheckpoint = 0
		c.st.LastCheckpoint = ev.Time
	case KindChainStart:
		c.st.SinceCheckpoint = 1 // the start needs sealing too
		c.st.LastCheckpoint = ev.Time
	default:
		c.st.SinceCheckpoint++
	}
	return b, nil
}

func foldRunning(r, h [32]byte) [32]byte {
	var buf [64]byte
	copy(buf[:32], r[:])
	copy(buf[32:], h[:])
	return sha256.Sum256(buf[:])
}

// SignedMessage is the byte string a checkpoint's signature covers: every
// field of the checkpoint event except the signature, one per line, so an
// independent verifier can rebuild it without re-encoding JSON:
//
//	sluice-audit-checkpoint/v1
//	chain=<chain id>
//	seq=<seq of the checkpoint>
//	kind=<checkpoint|chain-close>
//	time=<RFC 3339 UTC, as stored>
//	instance=<instance>
//	sealed_seq=<seq-1>
//	sealed_hash=<prev: hex SHA-256 of the sealed event's stored bytes>
//	running=<hex running hash>
//	kid=<key id>
func SignedMessage(ev *Event) []byte {
	cp := ev.Checkpoint
	var b []byte
	b = append(b, "sluice-audit-checkpoint/v1\nchain="...)
	b = append(b, ev.Chain...)
	b = append(b, "\nseq="...)
	b = strconv.AppendUint(b, ev.Seq, 10)
	b = append(b, "\nkind="...)
	b = append(b, ev.Kind...)
	b = append(b, "\ntime="...)
	b = ev.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, "\ninstance="...)
	b = append(b, ev.Instance...)
	b = append(b, "\nsealed_seq="...)
	b = strconv.AppendUint(b, cp.SealedSeq, 10)
	b = append(b, "\nsealed_hash="...)
	b = append(b, ev.Prev...)
	b = append(b, "\nrunning="...)
	b = append(b, cp.Running...)
	b = append(b, "\nkid="...)
	b = append(b, cp.KeyID...)
	b = append(b, '\n')
	return b
}

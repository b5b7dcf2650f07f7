package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
)

// Position is where an event was read: a line of an NDJSON export, or a
// partition and offset of the audit topic.
type Position struct {
	Line      int // 1-based; 0 when read from the topic
	Partition int32
	Offset    int64
}

func (p Position) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d", p.Line)
	}
	return fmt.Sprintf("partition %d offset %d", p.Partition, p.Offset)
}

// Problem is one broken link or bad event.
type Problem struct {
	Pos   Position
	Chain string // "" when the event could not be read
	Seq   uint64
	Msg   string
}

func (p Problem) String() string {
	if p.Chain == "" {
		return fmt.Sprintf("%s: %s", p.Pos, p.Msg)
	}
	return fmt.Sprintf("%s: chain %s seq %d: %s", p.Pos, p.Chain, p.Seq, p.Msg)
}

// ChainReport is what Verify found about one chain.
type ChainReport struct {
	ID          string
	Instance    string
	FirstSeq    uint64
	LastSeq     uint64
	LastPos     Position
	Events      int
	Checkpoints int
	// Unsealed counts events after the last valid checkpoint: their
	// content is only as trustworthy as the storage (a tail truncated or
	// rewritten after the last checkpoint cannot be told apart).
	Unsealed    int
	Closed      bool // ends with a valid chain-close
	Partial     bool // does not start at seq 0 (AllowPartial)
	Broken      bool // at least one problem
	Predecessor *Link
}

// Report is the result of verifying an export or the topic.
type Report struct {
	Events      int
	Checkpoints int
	Chains      []ChainReport // in order of first appearance
	// Problems in the order found, at most MaxProblems; the first is the
	// first broken link. ProblemCount counts all.
	Problems     []Problem
	ProblemCount int
	// KeysFromLog is true when no key set was given and the signatures were
	// checked against keys published in the log's own chain-start events:
	// that proves the log is consistent, not who wrote it.
	KeysFromLog bool
	Keys        []string // key ids checkpoints were verified with
	// Notes are observations that are not failures (open chains, events
	// that landed after a successor chain linked their chain, ...).
	Notes []string
}

// MaxProblems bounds Report.Problems.
const MaxProblems = 100

// OK reports whether every chain verified.
func (r *Report) OK() bool { return r.ProblemCount == 0 }

// Unsealed is the number of events after the last checkpoint of their chain.
func (r *Report) Unsealed() int {
	n := 0
	for _, c := range r.Chains {
		n += c.Unsealed
	}
	return n
}

// VerifyOptions says what to trust and what to require.
type VerifyOptions struct {
	// Keys are the trusted checkpoint keys by kid (ParseKeySet of the
	// published GET /v1/audit/keys). Nil trusts the keys each chain
	// publishes in its own chain-start event, and the report says so.
	Keys map[string]ed25519.PublicKey
	// RequireClosed makes a chain without a chain-close a problem: use it
	// for archives of stopped instances, where a missing close means the
	// tail was cut.
	RequireClosed bool
	// AllowPartial accepts chains that do not start at seq 0 (an export
	// of a time range). Their running hash cannot be checked; prev links
	// and signatures still are.
	AllowPartial bool
}

// Verifier checks events fed to it in stored order. The zero value is not
// usable; use NewVerifier.
type Verifier struct {
	opts    VerifyOptions
	chains  map[string]*vchain
	order   []*vchain
	links   []vlink
	keysUse map[string]bool
	logKeys map[string]ed25519.PublicKey // published by any chain-start read
	rep     Report
}

type vchain struct {
	r         ChainReport
	lastHash  [32]byte
	running   [32]byte
	runningOK bool
	keys      map[string]ed25519.PublicKey
}

type vlink struct {
	from string
	pos  Position
	to   Link
}

// NewVerifier returns a verifier.
func NewVerifier(opts VerifyOptions) *Verifier {
	return &Verifier{opts: opts, chains: map[string]*vchain{}, keysUse: map[string]bool{}, logKeys: map[string]ed25519.PublicKey{},
		rep: Report{KeysFromLog: opts.Keys == nil}}
}

func (v *Verifier) problem(pos Position, chain string, seq uint64, format string, args ...any) {
	v.rep.ProblemCount++
	if c := v.chains[chain]; c != nil {
		c.r.Broken = true
	}
	if len(v.rep.Problems) < MaxProblems {
		v.rep.Problems = append(v.rep.Problems, Problem{Pos: pos, Chain: chain, Seq: seq, Msg: fmt.Sprintf(format, args...)})
	}
}

// Add checks one stored event (the exact bytes of the record value or
// export line).
func (v *Verifier) Add(pos Position, raw []byte) {
	v.rep.Events++
	hash := sha256.Sum256(raw)
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		v.problem(pos, "", 0, "not an audit event: %v", err)
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		v.problem(pos, "", 0, "not an audit event: data after the JSON object")
		return
	}
	if ev.Chain == "" {
		v.problem(pos, "", 0, "not an audit event: no chain id")
		return
	}
	c := v.chains[ev.Chain]
	if c == nil {
		c = &vchain{r: ChainReport{ID: ev.Chain, Instance: ev.Instance, FirstSeq: ev.Seq}, keys: map[string]ed25519.PublicKey{}}
		v.chains[ev.Chain] = c
		v.order = append(v.order, c)
		v.first(c, pos, &ev)
	} else {
		v.next(c, pos, &ev)
	}
	c.r.Events++
	c.r.LastSeq, c.r.LastPos = ev.Seq, pos
	prevRunning := c.running
	c.lastHash = hash
	c.running = foldRunning(c.running, hash)

	if canon, err := json.Marshal(&ev); err != nil || !bytes.Equal(canon, raw) {
		v.problem(pos, ev.Chain, ev.Seq, "stored bytes are not the canonical encoding of the event: altered")
	}
	if ev.V != Version {
		v.problem(pos, ev.Chain, ev.Seq, "format version %d, want %d", ev.V, Version)
	}
	if ev.Instance != c.r.Instance {
		v.problem(pos, ev.Chain, ev.Seq, "instance %q, chain started as %q", ev.Instance, c.r.Instance)
	}
	if err := ev.checkPayload(); err != nil {
		v.problem(pos, ev.Chain, ev.Seq, "%v", err)
		c.r.Unsealed++
		return
	}
	switch ev.Kind {
	case KindChainStart:
		v.start(c, pos, &ev)
		c.r.Unsealed++
	case KindCheckpoint, KindChainClose:
		v.checkpoint(c, pos, &ev, prevRunning)
	default:
		c.r.Unsealed++
	}
}

// first handles the first event seen of a chain.
func (v *Verifier) first(c *vchain, pos Position, ev *Event) {
	if ev.Seq == 0 {
		c.runningOK = true
		if ev.Prev != zeroHash {
			v.problem(pos, ev.Chain, ev.Seq, "seq 0 has prev %.16s..., want zeros", ev.Prev)
		}
		if ev.Kind != KindChainStart {
			v.problem(pos, ev.Chain, ev.Seq, "seq 0 is %s, want chain-start", ev.Kind)
		}
		return
	}
	c.r.Partial = true
	if !v.opts.AllowPartial {
		v.problem(pos, ev.Chain, ev.Seq, "chain starts at seq %d: seq 0..%d missing (deleted; for an export of a time range use partial mode)", ev.Seq, ev.Seq-1)
	}
}

// next checks an event's link to its chain's previous event.
func (v *Verifier) next(c *vchain, pos Position, ev *Event) {
	if c.r.Closed {
		v.problem(pos, ev.Chain, ev.Seq, "event after the chain-close at seq %d (%s): inserted", c.r.LastSeq, c.r.LastPos)
		c.r.Closed = false
	}
	want := c.r.LastSeq + 1
	switch {
	case ev.Seq == want:
		if ev.Prev != hex.EncodeToString(c.lastHash[:]) {
			c.runningOK = false
			v.problem(pos, ev.Chain, ev.Seq, "prev hash does not match seq %d (%s): that event was altered, or an event was inserted or removed between them", c.r.LastSeq, c.r.LastPos)
		}
	case ev.Seq > want:
		c.runningOK = false
		v.problem(pos, ev.Chain, ev.Seq, "seq gap after seq %d (%s): seq %d..%d missing (deleted or reordered)", c.r.LastSeq, c.r.LastPos, want, ev.Seq-1)
	default:
		c.runningOK = false
		v.problem(pos, ev.Chain, ev.Seq, "seq %d follows seq %d (%s): an event was inserted, duplicated or reordered", ev.Seq, c.r.LastSeq, c.r.LastPos)
	}
}

func (v *Verifier) start(c *vchain, pos Position, ev *Event) {
	if ev.Seq != 0 {
		v.problem(pos, ev.Chain, ev.Seq, "chain-start at seq %d, want 0", ev.Seq)
	}
	for _, k := range ev.Start.Keys {
		pub, err := k.Public()
		if err != nil {
			v.problem(pos, ev.Chain, ev.Seq, "published key: %v", err)
			continue
		}
		c.keys[KeyID(pub)] = pub
		v.logKeys[KeyID(pub)] = pub
	}
	if p := ev.Start.Predecessor; p != nil {
		c.r.Predecessor = p
		v.links = append(v.links, vlink{from: ev.Chain, pos: pos, to: *p})
	}
}

func (v *Verifier) checkpoint(c *vchain, pos Position, ev *Event, running [32]byte) {
	cp := ev.Checkpoint
	ok := true
	bad := func(format string, args ...any) {
		ok = false
		v.problem(pos, ev.Chain, ev.Seq, format, args...)
	}
	if ev.Seq == 0 || cp.SealedSeq != ev.Seq-1 {
		bad("checkpoint seals seq %d, want %d", cp.SealedSeq, ev.Seq-1)
	}
	if c.runningOK && cp.Running != hex.EncodeToString(running[:]) {
		bad("running hash does not match the events before it: an earlier event of this chain was altered, inserted or removed")
	}
	pub := c.keys[cp.KeyID]
	if pub == nil && c.r.Partial {
		// The chain's start is not in a partial export: another chain
		// of the same instance may have published the key.
		pub = v.logKeys[cp.KeyID]
	}
	if v.opts.Keys != nil {
		pub = v.opts.Keys[cp.KeyID]
	}
	sig, err := b64.DecodeString(cp.Sig)
	switch {
	case pub == nil && v.opts.Keys != nil:
		bad("signed by key %q, which is not in the trusted key set", cp.KeyID)
	case pub == nil && c.r.Partial:
		bad("signed by key %q, published in a chain-start that is not in this partial input: give the trusted keys", cp.KeyID)
	case pub == nil:
		bad("signed by key %q, which the chain did not publish", cp.KeyID)
	case err != nil || !ed25519.Verify(pub, SignedMessage(ev), sig):
		bad("bad checkpoint signature (key %s): the checkpoint was altered", cp.KeyID)
	}
	if !ok {
		c.r.Unsealed++
		return
	}
	v.keysUse[cp.KeyID] = true
	v.rep.Checkpoints++
	c.r.Checkpoints++
	c.r.Unsealed = 0
	if ev.Kind == KindChainClose {
		c.r.Closed = true
	}
}

// Report finishes the checks that need the whole input (links between
// chains, open chains) and returns the result. Call it once, after the
// last Add.
func (v *Verifier) Report() Report {
	for _, l := range v.links {
		p := v.chains[l.to.Chain]
		switch {
		case p == nil && v.opts.AllowPartial:
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("chain %s: predecessor chain %s is not in the input", l.from, l.to.Chain))
		case p == nil:
			v.problem(l.pos, l.from, 0, "predecessor chain %s (seq %d) is not in the input: deleted", l.to.Chain, l.to.Seq)
		case p.r.LastSeq < l.to.Seq:
			v.problem(p.r.LastPos, p.r.ID, p.r.LastSeq, "chain ends at seq %d, but its successor %s saw it end at seq %d: tail deleted", p.r.LastSeq, l.from, l.to.Seq)
		case p.r.LastSeq == l.to.Seq && hex.EncodeToString(p.lastHash[:]) != l.to.Hash:
			v.problem(p.r.LastPos, p.r.ID, p.r.LastSeq, "last event differs from the one its successor %s recorded: altered or replaced", l.from)
		case p.r.LastSeq > l.to.Seq:
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("chain %s: %d events after seq %d landed after its successor %s started (in-doubt writes of a stopped process)",
				p.r.ID, p.r.LastSeq-l.to.Seq, l.to.Seq, l.from))
		}
	}
	succeeded := map[string]bool{}
	for _, l := range v.links {
		succeeded[l.to.Chain] = true
	}
	for _, c := range v.order {
		if c.r.Closed {
			continue
		}
		switch {
		case v.opts.RequireClosed:
			v.problem(c.r.LastPos, c.r.ID, c.r.LastSeq, "chain has no chain-close: its tail after seq %d was cut, or its instance is still running or crashed (%d unsealed events)", c.r.LastSeq, c.r.Unsealed)
		case succeeded[c.r.ID]:
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("chain %s ended without chain-close at seq %d (%s) and a later chain of %s links it: the process stopped uncleanly; %d events unsealed",
				c.r.ID, c.r.LastSeq, c.r.LastPos, c.r.Instance, c.r.Unsealed))
		default:
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("chain %s is open at seq %d (%s): its instance is running, crashed, or the tail was cut; %d events after the last checkpoint are unsealed",
				c.r.ID, c.r.LastSeq, c.r.LastPos, c.r.Unsealed))
		}
	}
	v.rep.Chains = v.rep.Chains[:0]
	for _, c := range v.order {
		v.rep.Chains = append(v.rep.Chains, c.r)
	}
	v.rep.Keys = v.rep.Keys[:0]
	for k := range v.keysUse {
		v.rep.Keys = append(v.rep.Keys, k)
	}
	sort.Strings(v.rep.Keys)
	r := v.rep
	r.Problems = slices.Clone(r.Problems)
	return r
}

// MaxLine bounds one NDJSON line (an event is a few hundred bytes).
const MaxLine = 1 << 20

// Verify reads an NDJSON export (one stored event per line, as Export
// writes it) and verifies it. The error is only for reading r; what is
// wrong with the content is in the Report.
func Verify(r io.Reader, opts VerifyOptions) (Report, error) {
	v := NewVerifier(opts)
	err := ReadLines(r, func(line int, raw []byte) {
		v.Add(Position{Line: line}, raw)
	})
	return v.Report(), err
}

// ReadLines calls fn with each non-empty line of r (without its line end)
// and its 1-based number; b is valid only during the call. A line longer
// than MaxLine is an error.
func ReadLines(r io.Reader, fn func(line int, b []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	line := 0
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, b...)
			if len(long) > MaxLine {
				return fmt.Errorf("audit: line %d longer than %d bytes", line+1, MaxLine)
			}
			continue
		}
		if long != nil {
			b = append(long, b...)
			long = nil
		}
		if len(b) > 0 {
			line++
			b = bytes.TrimSuffix(b, []byte("\n"))
			b = bytes.TrimSuffix(b, []byte("\r"))
			if len(b) > MaxLine {
				return fmt.Errorf("audit: line %d longer than %d bytes", line, MaxLine)
			}
			if len(bytes.TrimSpace(b)) > 0 {
				fn(line, b)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit: read line %d: %w", line+1, err)
		}
	}
}

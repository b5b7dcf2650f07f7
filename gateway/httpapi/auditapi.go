package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/internal/hub"
)

// The audit trail over HTTP, for regulators:
//
//	GET /v1/audit          a page of events as stored, with a cursor
//	GET /v1/audit/stream   the same as Server-Sent Events, live
//	GET /v1/audit/keys     the JWK set that verifies the checkpoints
//
// Events are sent as their exact stored bytes, so a regulator can hash
// them and run `sluice audit verify` on what it received. Only partners of
// type regulator read events (403 forbidden-audit for anyone else); the
// keys are public and any authenticated partner may fetch them. Every read
// of the trail is itself recorded in it (AuditReader.Admit), allowed or
// denied, before anything is sent: who read the audit trail is part of the
// audit trail.

// AuditReader reads the audit topic for the front door. It is implemented
// by the gateway on the upstream Kafka cluster, safe for concurrent use and
// lives as long as the gateway; the AuditTails it returns are owned by the
// request that opened them, which closes them.
type AuditReader interface {
	// Admit decides whether partner may read audit events (only
	// regulators) and records the decision (allowed or denied) in the
	// audit trail before it returns. ErrNotRegulator: denied and recorded.
	// Any other error: the decision could not be recorded; nothing may be
	// served (fail closed).
	Admit(ctx context.Context, partner, door string) error
	// Keys is the JWK set of the keys that sign the checkpoints.
	Keys() []byte
	// Resolve turns a start into positions, one per partition of the
	// audit topic. A cursor naming fewer partitions than the topic has
	// starts the new ones at their log start. Errors: *hub.PositionError
	// for a cursor before the log start (Gone) or past its end.
	Resolve(ctx context.Context, s hub.Start) ([]int64, error)
	// Read returns up to limit events from pos that f selects, without
	// waiting for new ones. It reads for a bounded time; a page may hold
	// fewer than limit events even when more follow (CaughtUp is then
	// false), and its Positions point after what was read. Errors as
	// Resolve.
	Read(ctx context.Context, pos []int64, f AuditFilter, limit int) (AuditPage, error)
	// Follow opens a tail of the topic from pos for a stream.
	Follow(pos []int64, f AuditFilter) (AuditTail, error)
}

// AuditTail follows the audit topic from a position. It is used by one
// goroutine; Close releases it.
type AuditTail interface {
	// Next returns up to limit events that arrived after the previous
	// page, waiting up to wait when there are none. The page's Positions
	// may grow when the topic gains partitions.
	Next(ctx context.Context, limit int, wait time.Duration) (AuditPage, error)
	Close()
}

// AuditFilter selects events. The zero value selects every event.
type AuditFilter struct {
	// From and To bound the event time ("time"): From inclusive, To
	// exclusive; zero is unbounded.
	From, To time.Time
	// Partner and Product select events whose payload (access, stream,
	// delivery, subscription or key change) names them; "" is any. The
	// chain's own events (chain-start, checkpoint, chain-close) name
	// neither.
	Partner, Product string
	// Kinds selects events of these kinds; empty is every kind.
	Kinds []audit.Kind
}

// Filtered reports whether f selects only some events.
func (f AuditFilter) Filtered() bool {
	return !f.From.IsZero() || !f.To.IsZero() || f.Partner != "" || f.Product != "" || len(f.Kinds) > 0
}

// AuditEvent is one record of the audit topic.
type AuditEvent struct {
	Partition int32
	Offset    int64
	Data      []byte // the stored bytes, exactly
}

// AuditPage is what a read returns: the events in topic order per
// partition (roughly time order across partitions), and the next offset
// per partition after everything read, including events the filter
// skipped.
type AuditPage struct {
	Events    []AuditEvent
	Positions []int64
	// CaughtUp is set by Read when the page read everything the topic
	// held when it was asked for (up to the filter's To): a shorter page
	// without it was cut by the read's time bound.
	CaughtUp bool
}

// ErrNotRegulator is returned by AuditReader.Admit for a partner that may
// not read the audit trail.
var ErrNotRegulator = errors.New("not a regulator")

// AuditCursorTag is the tag of audit cursors: a product's cursor is not
// an audit cursor, and the other way round.
var AuditCursorTag = cursor.Tag("audit")

// Doors named in the access events of audit reads.
const (
	AuditDoorREST = "audit-rest"
	AuditDoorSSE  = "audit-sse"
)

// auditKinds are the kinds ?kind= accepts.
var auditKinds = []audit.Kind{
	audit.KindAccess, audit.KindStreamOpen, audit.KindStreamClose, audit.KindDelivery,
	audit.KindSubscription, audit.KindKey, audit.KindPolicyReload, audit.KindConsent, audit.KindAdmin,
	audit.KindChainStart, audit.KindCheckpoint, audit.KindChainClose,
}

// auditPageTime bounds a page's request: resolving and reading.
const auditPageTime = 10 * time.Second

// auditReader answers the AuditReader, or a 404 when the gateway runs
// without one (after the identity check, as everywhere).
func (s *Server) auditReader(w http.ResponseWriter, r *http.Request) (AuditReader, *Access, bool) {
	acc, ok := s.authorize(w, r, nil)
	if !ok {
		return nil, nil, false
	}
	if s.cfg.AuditReader == nil {
		writeProblem(w, r, newProblem(ProblemNotFound, http.StatusNotFound, "this gateway serves no audit trail"))
		return nil, nil, false
	}
	return s.cfg.AuditReader, acc, true
}

// auditAccess admits a regulator to the audit events (and records the
// decision); anyone else gets a 403.
func (s *Server) auditAccess(w http.ResponseWriter, r *http.Request, door string) (AuditReader, *Access, bool) {
	ar, acc, ok := s.auditReader(w, r)
	if !ok {
		return nil, nil, false
	}
	switch err := ar.Admit(r.Context(), acc.Partner, door); {
	case errors.Is(err, ErrNotRegulator):
		writeProblem(w, r, newProblem(ProblemForbiddenAudit, http.StatusForbidden,
			"partner "+acc.Partner+" may not read the audit trail; only partners of type regulator may (this attempt is recorded in it)"))
		return nil, nil, false
	case err != nil:
		if s.cfg.Log != nil {
			s.cfg.Log.Error("audit: read of the audit trail not recorded; refusing", "partner", acc.Partner, "err", err)
		}
		writeProblem(w, r, auditUnavailable(err))
		return nil, nil, false
	}
	return ar, acc, true
}

// auditKeys serves GET /v1/audit/keys: public keys, for any authenticated
// partner (a regulator fetches them once and verifies exports offline).
func (s *Server) auditKeys(w http.ResponseWriter, r *http.Request) {
	ar, _, ok := s.auditReader(w, r)
	if !ok || !onlyParams(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(ar.Keys())
}

// auditQuery is a parsed audit request.
type auditQuery struct {
	start  hub.Start
	filter AuditFilter
	limit  int
}

// parseAuditQuery reads where to start and what to select. from is an
// event time filter (and, without a cursor, where to start) or, without a
// cursor, earliest or latest; with a cursor it may only be a time.
func parseAuditQuery(r *http.Request, lastEventID string, def hub.StartKind) (auditQuery, *Problem) {
	q := r.URL.Query()
	aq := auditQuery{start: hub.Start{Kind: def}, limit: defaultLimit}
	c := lastEventID
	if c == "" {
		c = q.Get("cursor")
	}
	if from := q.Get("from"); from != "" {
		switch from {
		case "earliest":
			aq.start = hub.Start{Kind: hub.StartEarliest}
		case "latest":
			aq.start = hub.Start{Kind: hub.StartLatest}
		default:
			t, err := time.Parse(time.RFC3339Nano, from)
			if err != nil {
				pr := newProblem(ProblemInvalidFrom, http.StatusBadRequest, "from must be earliest, latest or an RFC 3339 time; got "+quote(from))
				pr.Example = "from=earliest, from=latest or from=2026-11-25T10:00:00Z"
				return aq, pr
			}
			aq.start = hub.Start{Kind: hub.StartTime, Time: t}
			aq.filter.From = t
		}
		if c != "" && aq.start.Kind != hub.StartTime && lastEventID == "" {
			return aq, newProblem(ProblemInvalidQuery, http.StatusBadRequest,
				"from="+from+" names a start, and so does cursor; give one of them (with a cursor, from may only be an RFC 3339 time, which then filters)")
		}
	}
	if c != "" {
		pos, err := cursor.Decode(c, AuditCursorTag)
		if err != nil {
			pr := newProblem(ProblemInvalidCursor, http.StatusBadRequest, err.Error())
			if errors.Is(err, cursor.ErrOtherProduct) {
				pr.Detail = "this cursor was issued for a data product, not for the audit trail; use the next_cursor or SSE id returned by /v1/audit"
			}
			pr.Example = "use the value of next_cursor (REST) or of the last SSE id: field, e.g. " + cursor.Encode(AuditCursorTag, []int64{0})
			return aq, pr
		}
		aq.start = hub.Start{Kind: hub.StartCursor, Positions: pos}
	}
	if to := q.Get("to"); to != "" {
		t, err := time.Parse(time.RFC3339Nano, to)
		if err != nil {
			return aq, newProblem(ProblemInvalidQuery, http.StatusBadRequest, "to must be an RFC 3339 time; got "+quote(to))
		}
		if !aq.filter.From.IsZero() && !aq.filter.From.Before(t) {
			return aq, newProblem(ProblemInvalidQuery, http.StatusBadRequest, "from must be before to")
		}
		aq.filter.To = t
	}
	for _, name := range []string{"partner", "product"} {
		v := q.Get(name)
		if v != "" && !idPattern.MatchString(v) {
			return aq, newProblem(ProblemInvalidQuery, http.StatusBadRequest, name+" "+quote(v)+" is not a "+name+" id (^[a-z][a-z0-9-]{1,62}$)")
		}
	}
	aq.filter.Partner, aq.filter.Product = q.Get("partner"), q.Get("product")
	if ks := q.Get("kind"); ks != "" {
		for k := range strings.SplitSeq(ks, ",") {
			kind := audit.Kind(strings.TrimSpace(k))
			known := false
			for _, a := range auditKinds {
				known = known || a == kind
			}
			if !known {
				names := make([]string, len(auditKinds))
				for i, a := range auditKinds {
					names[i] = string(a)
				}
				return aq, newProblem(ProblemInvalidQuery, http.StatusBadRequest,
					"kind "+quote(string(kind))+" is not an audit event kind; give one or more of "+strings.Join(names, ", ")+", separated by commas")
			}
			aq.filter.Kinds = append(aq.filter.Kinds, kind)
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxLimit {
			return aq, newProblem(ProblemInvalidLimit, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(maxLimit)+"; got "+quote(l))
		}
		aq.limit = n
	}
	return aq, nil
}

// auditPositionProblem maps a failure to resolve or read a position of the
// audit topic.
func auditPositionProblem(err error) *Problem {
	var pe *hub.PositionError
	if errors.As(err, &pe) {
		at := "partition " + strconv.Itoa(int(pe.Partition)) + " offset " + strconv.FormatInt(pe.Offset, 10)
		if pe.Gone {
			// The audit topic's retention is unlimited: records before the
			// log start were deleted, which a regulator wants to know.
			pr := newProblem(ProblemCursorExpired, http.StatusGone,
				at+" is no longer in the audit topic (its retention is unlimited, so the records were deleted); resume from earliest_cursor")
			if pe.Earliest != nil {
				pr.EarliestCursor = cursor.Encode(AuditCursorTag, pe.Earliest)
			}
			return pr
		}
		return newProblem(ProblemInvalidCursor, http.StatusBadRequest,
			"the cursor names a position the audit topic does not have ("+at+"); use a cursor returned by /v1/audit")
	}
	return upstreamProblem(err)
}

// appendAuditEvent appends one stored event: its bytes as they are, or,
// for a record that is not one line of JSON (never written by sluice), the
// bytes as a JSON string, so that the page, line or SSE event around it
// stays well-formed and verification reports the record.
func appendAuditEvent(buf, raw []byte) []byte {
	if !bytes.ContainsAny(raw, "\r\n") && json.Valid(raw) {
		return append(buf, raw...)
	}
	s, _ := json.Marshal(string(raw))
	return append(buf, s...)
}

// auditEvents serves GET /v1/audit: a page of events as stored.
func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request) {
	ar, _, ok := s.auditAccess(w, r, AuditDoorREST)
	if !ok || !onlyParams(w, r, "cursor", "from", "to", "partner", "product", "kind", "limit") {
		return
	}
	aq, pr := parseAuditQuery(r, "", hub.StartEarliest)
	if pr != nil {
		writeProblem(w, r, pr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), auditPageTime)
	defer cancel()
	pos, err := ar.Resolve(ctx, aq.start)
	if err != nil {
		writeProblem(w, r, auditPositionProblem(err))
		return
	}
	pg, err := ar.Read(ctx, pos, aq.filter, aq.limit)
	if err != nil {
		writeProblem(w, r, auditPositionProblem(err))
		return
	}
	next := cursor.Encode(AuditCursorTag, pg.Positions)
	size := 64
	for _, e := range pg.Events {
		size += len(e.Data) + 1
	}
	buf := make([]byte, 0, size+len(next))
	if strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		for _, e := range pg.Events {
			buf = appendAuditEvent(buf, e.Data)
			buf = append(buf, '\n')
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		buf = append(buf, `{"events":[`...)
		for i, e := range pg.Events {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendAuditEvent(buf, e.Data)
		}
		buf = append(buf, `],"next_cursor":"`...)
		buf = append(buf, next...)
		buf = append(buf, `","caught_up":`...)
		buf = strconv.AppendBool(buf, pg.CaughtUp)
		buf = append(buf, "}\n"...)
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Sluice-Next-Cursor", next)
	w.Header().Set("Sluice-Caught-Up", strconv.FormatBool(pg.CaughtUp))
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf)
}

// auditStream serves GET /v1/audit/stream: the audit events as they are
// written, as Server-Sent Events with the conventions of product streams
// (see stream): each event is
//
//	id: <cursor after this event>
//	event: audit
//	data: <the stored event>
//
// with idle cursor events, heartbeats, and a final shutdown, error,
// reauthenticate or revoked event.
func (s *Server) auditStream(w http.ResponseWriter, r *http.Request) {
	ar, acc, ok := s.auditAccess(w, r, AuditDoorSSE)
	if !ok || !onlyParams(w, r, "cursor", "from", "partner", "product", "kind") {
		return
	}
	aq, pr := parseAuditQuery(r, r.Header.Get("Last-Event-ID"), hub.StartLatest)
	if pr != nil {
		writeProblem(w, r, pr)
		return
	}
	ctx, changed, end, ok := s.streamContext(w, r)
	if !ok {
		return
	}
	defer end()

	rctx, rcancel := context.WithTimeout(ctx, auditPageTime)
	pos, err := ar.Resolve(rctx, aq.start)
	rcancel()
	if err != nil {
		writeProblem(w, r, auditPositionProblem(err))
		return
	}
	tail, err := ar.Follow(pos, aq.filter)
	if err != nil {
		writeProblem(w, r, upstreamProblem(err))
		return
	}
	defer tail.Close()

	cfg := s.cfg.Stream
	st, ok := openSSE(w, cfg, AuditCursorTag, "sluice audit stream", pos)
	if !ok {
		return
	}
	st.data = appendAuditEvent
	for {
		if !acc.Expires.IsZero() && !time.Now().Before(acc.Expires) {
			st.final("reauthenticate", []byte(`{"reason":"token expired","reconnect":true}`))
			return
		}
		// A credential revoked meanwhile (an API key) ends the stream.
		select {
		case <-changed:
			changed = s.changed()
			if _, pr := s.cfg.Authorize(r, nil, ""); pr != nil {
				body, _ := json.Marshal(pr)
				st.final("revoked", body)
				return
			}
		default:
		}
		pg, err := tail.Next(ctx, cfg.MaxBatch, st.wait(acc.Expires))
		if err != nil {
			if context.Cause(ctx) == errShutdown {
				st.shutdown()
				return
			}
			if ctx.Err() != nil {
				return // client went away
			}
			body, _ := json.Marshal(auditPositionProblem(err))
			st.final("error", body)
			return
		}
		// Partitions that appeared since the last page start where their
		// first event is, or where the tail put them.
		grow(st, pg.Positions, pg.Events, func(e *AuditEvent) (int32, int64) { return e.Partition, e.Offset })
		for _, e := range pg.Events {
			st.cur[e.Partition] = e.Offset + 1
			st.event("audit", e.Data)
		}
		if len(pg.Events) > 0 {
			copy(st.sent, st.cur)
		}
		copy(st.cur, pg.Positions) // past what the filter skipped
		now := time.Now()
		st.idle(now, len(pg.Events) > 0)
		if !st.flush(now) {
			return
		}
	}
}

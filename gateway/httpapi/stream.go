package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/internal/hub"
)

var errShutdown = errors.New("server shutting down")

// replanInterval bounds how long a stream waits before it looks for a policy
// change or an expired credential: open streams switch within about this.
const replanInterval = 250 * time.Millisecond

func (s *Server) changed() <-chan struct{} {
	if s.cfg.Changed == nil {
		return nil
	}
	return s.cfg.Changed()
}

// stream serves text/event-stream. Each record is
//
//	id: <cursor after this record>
//	event: record
//	data: <JSON object>
//
// The cursor covers every partition, so Last-Event-ID resumes on any replica
// with no gap and no duplicate. Comment heartbeats keep proxies from timing
// out; an "event: cursor" moves the client's position forward over records
// it was not sent; "event: shutdown" and "event: error" end the stream.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	p, hp, ok := s.product(w, r)
	if !ok {
		return
	}
	acc, ok := s.authorize(w, r, p)
	if !ok {
		return
	}
	if !onlyParams(w, r, "cursor", "from", "purpose") {
		return
	}
	start, pr := parseStart(r, p, r.Header.Get("Last-Event-ID"), hub.StartLatest)
	if pr != nil {
		writeProblem(w, r, pr)
		return
	}
	if q := acc.Quota; q != nil {
		if left, resets := q.Remaining(); left <= 0 {
			q.Refused("monthly_record_quota")
			writeProblem(w, r, quotaExhausted(resets))
			return
		}
		release, limit, ok := q.OpenStream()
		if !ok {
			q.Refused("concurrent_streams")
			pr := newProblem(ProblemStreamLimit, http.StatusTooManyRequests,
				"the plan allows "+strconv.Itoa(limit)+" concurrent streams of this product and they are all open; close one first")
			pr.Limit = "concurrent_streams"
			writeProblem(w, r, pr)
			return
		}
		defer release()
	}
	ctx, changed, end, ok := s.streamContext(w, r)
	if !ok {
		return
	}
	defer end()

	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	pos, err := hp.Resolve(rctx, start)
	rcancel()
	if err != nil {
		writeProblem(w, r, positionProblem(p, err))
		return
	}
	sub, err := hp.Subscribe(ctx, acc.View, pos)
	if err != nil {
		writeProblem(w, r, upstreamProblem(err))
		return
	}
	defer func() { sub.Close() }()

	// The audit trail records the stream before its first record (fail
	// closed: no open, no stream).
	var aud Delivery
	closeReason := "client"
	if a := s.cfg.Audit; a != nil {
		if aud, err = a.Open(ctx, AuditStream{Door: "sse", Partner: acc.Partner, Product: p.ID, Purpose: acc.Purpose,
			Revision: acc.Revision, Cursor: cursor.Encode(cursor.Tag(p.ID), pos)}); err != nil {
			writeProblem(w, r, auditUnavailable(err))
			return
		}
		defer func() { aud.Close(closeReason) }()
	}

	cfg := s.cfg.Stream
	tag := cursor.Tag(p.ID)
	delivered := s.cfg.Metrics.Delivered.WithLabelValues(p.ID, "sse")
	deliveredBytes := s.cfg.Metrics.DeliveredBytes.WithLabelValues(p.ID, "sse")
	active := s.cfg.Metrics.ActiveStreams.WithLabelValues(p.ID, "sse")
	active.Inc()
	defer active.Dec()

	st, ok := openSSE(w, cfg, tag, "sluice stream of "+p.ID, sub.Positions())
	if !ok {
		return
	}
	for {
		// A credential that expires ends the stream: the client reconnects
		// with a fresh token and its last id.
		if !acc.Expires.IsZero() && !time.Now().Before(acc.Expires) {
			closeReason = "reauthenticate"
			st.final("reauthenticate", []byte(`{"reason":"token expired","reconnect":true}`))
			return
		}
		// A policy reload: authorize again and switch to the new plan, or
		// end the stream if access is now denied.
		select {
		case <-changed:
			changed = s.changed()
			nacc, pr := s.cfg.Authorize(r, p, r.URL.Query().Get("purpose"))
			if pr != nil {
				closeReason = "revoked"
				body, _ := json.Marshal(pr)
				st.final("revoked", body)
				return
			}
			if nacc.View.Key() != acc.View.Key() {
				nsub, err := hp.Subscribe(ctx, nacc.View, sub.Positions())
				if err != nil {
					return
				}
				sub.Close()
				sub = nsub
			}
			acc = nacc
		default:
		}
		batch := cfg.MaxBatch
		if acc.Quota != nil {
			batch = acc.Quota.BatchHint(batch)
		}
		evs, err := sub.Next(ctx, batch, st.wait(acc.Expires))
		if err != nil {
			if context.Cause(ctx) == errShutdown || errors.Is(err, hub.ErrClosed) {
				closeReason = "shutdown"
				st.shutdown()
				return
			}
			if ctx.Err() != nil {
				return // client went away
			}
			closeReason = "error"
			body, _ := json.Marshal(positionProblem(p, err))
			st.final("error", body)
			return
		}
		grow(st, sub.Positions(), evs, func(e *hub.Event) (int32, int64) { return e.Partition, e.Offset })
		n, size := 0, 0
		// The monthly quota: a batch is cut at what is left; the stream
		// then ends (the client's last id is after the last record sent).
		allow, exhausted := int64(math.MaxInt64), false
		if acc.Quota != nil {
			allow, _ = acc.Quota.Remaining()
		}
		for i := range evs {
			e := &evs[i]
			if e.Data != nil && int64(n) >= allow {
				exhausted = true
				break
			}
			st.cur[e.Partition] = e.Offset + 1
			if e.Data == nil {
				continue
			}
			st.event("record", e.Data)
			n++
			size += len(e.Data)
		}
		if n > 0 && aud != nil && !coverAudit(ctx, aud) {
			// The audit sink is down and the stream was cancelled while it
			// waited: nothing of the batch is sent.
			st.buf = st.buf[:0]
			continue
		}
		if n == 0 && aud != nil {
			// An idle stream is summarised on time too (an empty window);
			// a failure here only matters for the next batch, which waits.
			_ = aud.Cover(ctx)
		}
		if n > 0 && acc.Quota != nil {
			// The plan's rate: the batch waits its turn (never dropped).
			if err := pace(ctx, acc.Quota, n, size); err != nil {
				// The client left or the server is stopping: the batch is
				// not sent (the client's last id stays before it) and the
				// next read says which.
				st.buf = st.buf[:0]
				continue
			}
		}
		now := time.Now()
		if n > 0 {
			copy(st.sent, st.cur)
		}
		st.idle(now, n > 0)
		if !st.flush(now) {
			return
		}
		if n > 0 {
			delivered.Add(float64(n))
			deliveredBytes.Add(float64(size))
			if q := acc.Quota; q != nil {
				q.Delivered(n, size)
			}
			if aud != nil {
				aud.Delivered(n, size, cursor.Encode(tag, st.cur))
			}
		}
		if q := acc.Quota; q != nil && exhausted {
			closeReason = "quota"
			_, resets := q.Remaining()
			q.Refused("monthly_record_quota")
			body, _ := json.Marshal(quotaExhausted(resets))
			st.final("error", body)
			return
		}
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// coverAudit waits until the audit trail covers a delivery: at once while
// the sink persists events; while it does not, the stream pauses (its
// position kept) and tries again every auditPause. False when ctx ended
// first.
func coverAudit(ctx context.Context, aud Delivery) bool {
	for {
		if err := aud.Cover(ctx); err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(auditPause):
		}
	}
}

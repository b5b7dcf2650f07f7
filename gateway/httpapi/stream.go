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
	changed := s.changed()
	if s.cfg.Streams.Err() != nil {
		writeProblem(w, r, newProblem(ProblemShuttingDown, http.StatusServiceUnavailable, "this server is shutting down; reconnect to another replica"))
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stop := context.AfterFunc(s.cfg.Streams, func() { cancel(errShutdown) })
	defer stop()

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

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	cfg := s.cfg.Stream
	tag := cursor.Tag(p.ID)
	delivered := s.cfg.Metrics.Delivered.WithLabelValues(p.ID, "sse")
	deliveredBytes := s.cfg.Metrics.DeliveredBytes.WithLabelValues(p.ID, "sse")
	active := s.cfg.Metrics.ActiveStreams.WithLabelValues(p.ID, "sse")
	active.Inc()
	defer active.Dec()

	buf := make([]byte, 0, 4<<10)
	buf = append(buf, ": sluice stream of "...)
	buf = append(buf, p.ID...)
	buf = append(buf, "\nretry: "...)
	buf = strconv.AppendInt(buf, cfg.Retry.Milliseconds(), 10)
	buf = append(buf, "\n\n"...)
	write := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		if _, err := w.Write(buf); err != nil {
			return false
		}
		if err := rc.Flush(); err != nil {
			return false
		}
		if cap(buf) > 64<<10 && len(buf) < 4<<10 {
			buf = make([]byte, 0, 4<<10) // a burst grew it and it is quiet now: do not keep it
		} else {
			buf = buf[:0]
		}
		return true
	}
	if !write() {
		return
	}

	cur := append([]int64(nil), sub.Positions()...) // position after the last event written
	sent := append([]int64(nil), cur...)            // position the client last got an id for
	lastWrite := time.Now()
	final := func(event string, body []byte) {
		buf = append(buf[:0], "event: "...)
		buf = append(buf, event...)
		buf = append(buf, "\ndata: "...)
		buf = append(buf, body...)
		buf = append(buf, "\n\n"...)
		write()
	}
	for {
		// A credential that expires ends the stream: the client reconnects
		// with a fresh token and its last id.
		if !acc.Expires.IsZero() && !time.Now().Before(acc.Expires) {
			closeReason = "reauthenticate"
			final("reauthenticate", []byte(`{"reason":"token expired","reconnect":true}`))
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
				final("revoked", body)
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
		wait := cfg.Heartbeat - time.Since(lastWrite)
		if !equal(cur, sent) {
			wait = min(wait, cfg.IdleCursor-time.Since(lastWrite))
		}
		wait = min(wait, replanInterval)
		if !acc.Expires.IsZero() {
			wait = min(wait, time.Until(acc.Expires))
		}
		batch := cfg.MaxBatch
		if acc.Quota != nil {
			batch = acc.Quota.BatchHint(batch)
		}
		evs, err := sub.Next(ctx, batch, max(wait, time.Millisecond))
		if err != nil {
			if context.Cause(ctx) == errShutdown || errors.Is(err, hub.ErrClosed) {
				closeReason = "shutdown"
				buf = append(buf[:0], "event: shutdown\nretry: 1000\ndata: {\"reason\":\"server shutting down\",\"reconnect\":true}\n\n"...)
				write()
				return
			}
			if ctx.Err() != nil {
				return // client went away
			}
			closeReason = "error"
			pr := positionProblem(p, err)
			body, _ := json.Marshal(pr)
			buf = append(buf[:0], "event: error\ndata: "...)
			buf = append(buf, body...)
			buf = append(buf, "\n\n"...)
			write()
			return
		}
		// Positions of partitions that appeared since the last batch.
		for len(cur) < len(sub.Positions()) {
			p := len(cur)
			at := sub.Positions()[p]
			for _, e := range evs {
				if int(e.Partition) == p && e.Offset < at {
					at = e.Offset
				}
			}
			cur = append(cur, at)
			sent = append(sent, at)
		}
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
			cur[e.Partition] = e.Offset + 1
			if e.Data == nil {
				continue
			}
			buf = append(buf, "id: "...)
			buf = cursor.Append(buf, tag, cur)
			buf = append(buf, "\nevent: record\ndata: "...)
			buf = append(buf, e.Data...)
			buf = append(buf, "\n\n"...)
			n++
			size += len(e.Data)
		}
		if n > 0 && aud != nil && !coverAudit(ctx, aud) {
			// The audit sink is down and the stream was cancelled while it
			// waited: nothing of the batch is sent.
			buf = buf[:0]
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
				buf = buf[:0]
				continue
			}
		}
		now := time.Now()
		switch {
		case n > 0:
			copy(sent, cur)
		case !equal(cur, sent) && now.Sub(lastWrite) >= cfg.IdleCursor:
			mark := len(buf)
			buf = append(buf, "id: "...)
			buf = cursor.Append(buf, tag, cur)
			c := buf[mark+4:]
			buf = append(buf, "\nevent: cursor\ndata: {\"cursor\":\""...)
			buf = append(buf, c...)
			buf = append(buf, "\"}\n\n"...)
			copy(sent, cur)
		case now.Sub(lastWrite) >= cfg.Heartbeat:
			buf = append(buf, ": heartbeat\n\n"...)
		}
		if len(buf) > 0 {
			if !write() {
				return
			}
			lastWrite = now
			if n > 0 {
				delivered.Add(float64(n))
				deliveredBytes.Add(float64(size))
				if q := acc.Quota; q != nil {
					q.Delivered(n, size)
				}
				if aud != nil {
					aud.Delivered(n, size, cursor.Encode(tag, cur))
				}
			}
		}
		if q := acc.Quota; q != nil && exhausted {
			closeReason = "quota"
			_, resets := q.Remaining()
			q.Refused("monthly_record_quota")
			body, _ := json.Marshal(quotaExhausted(resets))
			final("error", body)
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

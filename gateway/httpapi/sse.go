package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/gateway/internal/cursor"
)

// sseStream writes one text/event-stream response, for product streams and
// the audit stream alike: the headers, a buffer of events written and
// flushed together, the client's positions, and the idle-cursor and
// heartbeat rules.
//
//   - cur is the position after the last event handled (records sent and
//     rows skipped);
//   - sent is the position the client last got an id for.
type sseStream struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	cfg       StreamConfig
	tag       uint32 // cursor tag of ids
	buf       []byte
	cur, sent []int64
	lastWrite time.Time
	// data appends an event's data; nil appends it as it is.
	data func(buf, data []byte) []byte
}

// openSSE sends the headers and a preamble (the comment and the retry
// hint) and starts at pos; ok is false when the client is already gone.
func openSSE(w http.ResponseWriter, cfg StreamConfig, tag uint32, comment string, pos []int64) (*sseStream, bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseStream{w: w, rc: http.NewResponseController(w), cfg: cfg, tag: tag, buf: make([]byte, 0, 4<<10)}
	s.buf = append(s.buf, ": "...)
	s.buf = append(s.buf, comment...)
	s.buf = append(s.buf, "\nretry: "...)
	s.buf = strconv.AppendInt(s.buf, cfg.Retry.Milliseconds(), 10)
	s.buf = append(s.buf, "\n\n"...)
	s.cur = append([]int64(nil), pos...)
	s.sent = append([]int64(nil), pos...)
	s.lastWrite = time.Now()
	return s, s.write()
}

// write sends the buffer and flushes it; false when the client is gone or
// accepts nothing for WriteTimeout.
func (s *sseStream) write() bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := s.w.Write(s.buf); err != nil {
		return false
	}
	if err := s.rc.Flush(); err != nil {
		return false
	}
	if cap(s.buf) > 64<<10 && len(s.buf) < 4<<10 {
		s.buf = make([]byte, 0, 4<<10) // a burst grew it and it is quiet now: do not keep it
	} else {
		s.buf = s.buf[:0]
	}
	return true
}

// final replaces what is buffered with one ending event and sends it.
func (s *sseStream) final(event string, body []byte) {
	s.buf = append(s.buf[:0], "event: "...)
	s.buf = append(s.buf, event...)
	s.buf = append(s.buf, "\ndata: "...)
	s.buf = append(s.buf, body...)
	s.buf = append(s.buf, "\n\n"...)
	s.write()
}

// shutdown sends the event that tells the client to reconnect elsewhere.
func (s *sseStream) shutdown() {
	s.buf = append(s.buf[:0], "event: shutdown\nretry: 1000\ndata: {\"reason\":\"server shutting down\",\"reconnect\":true}\n\n"...)
	s.write()
}

// wait is how long the next read may wait: until a heartbeat or idle
// cursor is due, the next look for changes, or the credential's expiry.
func (s *sseStream) wait(expires time.Time) time.Duration {
	wait := s.cfg.Heartbeat - time.Since(s.lastWrite)
	if !equal(s.cur, s.sent) {
		wait = min(wait, s.cfg.IdleCursor-time.Since(s.lastWrite))
	}
	wait = min(wait, replanInterval)
	if !expires.IsZero() {
		wait = min(wait, time.Until(expires))
	}
	return max(wait, time.Millisecond)
}

// grow adds the partitions that appeared since the last read: each starts
// at its first event in evs, or where the reader put it.
func grow[E any](s *sseStream, positions []int64, evs []E, at func(*E) (partition int32, offset int64)) {
	for len(s.cur) < len(positions) {
		p := len(s.cur)
		start := positions[p]
		for i := range evs {
			if part, off := at(&evs[i]); int(part) == p && off < start {
				start = off
			}
		}
		s.cur = append(s.cur, start)
		s.sent = append(s.sent, start)
	}
}

// event buffers one event whose id is the cursor at cur.
func (s *sseStream) event(name string, data []byte) {
	s.buf = append(s.buf, "id: "...)
	s.buf = cursor.Append(s.buf, s.tag, s.cur)
	s.buf = append(s.buf, "\nevent: "...)
	s.buf = append(s.buf, name...)
	s.buf = append(s.buf, "\ndata: "...)
	if s.data != nil {
		s.buf = s.data(s.buf, data)
	} else {
		s.buf = append(s.buf, data...)
	}
	s.buf = append(s.buf, "\n\n"...)
}

// idle buffers, when no event was written this round, a cursor event once
// the client's position has moved over skipped rows for IdleCursor, or a
// heartbeat comment after Heartbeat of silence.
func (s *sseStream) idle(now time.Time, wrote bool) {
	switch {
	case wrote:
	case !equal(s.cur, s.sent) && now.Sub(s.lastWrite) >= s.cfg.IdleCursor:
		mark := len(s.buf)
		s.buf = append(s.buf, "id: "...)
		s.buf = cursor.Append(s.buf, s.tag, s.cur)
		c := s.buf[mark+4:]
		s.buf = append(s.buf, "\nevent: cursor\ndata: {\"cursor\":\""...)
		s.buf = append(s.buf, c...)
		s.buf = append(s.buf, "\"}\n\n"...)
		copy(s.sent, s.cur)
	case now.Sub(s.lastWrite) >= s.cfg.Heartbeat:
		s.buf = append(s.buf, ": heartbeat\n\n"...)
	}
}

// flush sends what is buffered, if anything; false when the client is gone.
func (s *sseStream) flush(now time.Time) bool {
	if len(s.buf) == 0 {
		return true
	}
	if !s.write() {
		return false
	}
	s.lastWrite = now
	return true
}

// streamContext begins a stream's life: the change channel, taken before
// anything is read so no plan change slips between, and a context that
// ends with the request or, with cause errShutdown, when the server shuts
// down. ok is false (503 shutting-down written) when it already is; end
// releases the context.
func (s *Server) streamContext(w http.ResponseWriter, r *http.Request) (ctx context.Context, changed <-chan struct{}, end func(), ok bool) {
	changed = s.changed()
	if s.cfg.Streams.Err() != nil {
		writeProblem(w, r, newProblem(ProblemShuttingDown, http.StatusServiceUnavailable, "this server is shutting down; reconnect to another replica"))
		return nil, nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	stop := context.AfterFunc(s.cfg.Streams, func() { cancel(errShutdown) })
	return ctx, changed, func() { stop(); cancel(nil) }, true
}

package kafkaproxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// conn is one client connection. Its serving goroutine reads a frame,
// handles it and writes the response before reading the next one, like a
// Kafka broker that processes one request per connection at a time.
type conn struct {
	s   *Server
	nc  net.Conn
	log *slog.Logger

	ctx    context.Context // cancelled when the connection ends
	cancel context.CancelFunc

	authed chan struct{} // closed once sess is set
	sess   Session       // nil until login; owned by the serving goroutine
	sasl   saslState
	mech   string       // mechanism chosen by SaslHandshake
	scram  *scramServer // a SCRAM exchange after its first round

	rbuf []byte // frame buffer, reused
	wbuf []byte // response buffer, reused

	closeAfter bool          // close the connection once the response is written
	throttle   time.Duration // pause reading after this response
	fetchBuf   []byte        // record batches of the current Fetch response
	clientID   string        // the last request header's client id (group members report it)
}

// saslState is where a connection is in its login.
type saslState uint8

const (
	saslBegin     saslState = iota // ApiVersions, SaslHandshake
	saslHandshook                  // v1 handshake done: SaslAuthenticate next
	saslRaw                        // v0 handshake done: next frame is a raw SASL token
	saslDone                       // authenticated
	saslReauth                     // authenticated, re-authenticating (KIP-368): SaslAuthenticate next
)

// protocolError ends a connection: the client broke the protocol (or a
// rule of ours); the message says how, for the log line.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "kafkaproxy: " + e.msg }

func protoErr(format string, args ...any) error {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serveConn(nc net.Conn) {
	defer s.wg.Done()
	if s.cfg.TLS != nil {
		nc = tls.Server(nc, s.cfg.TLS)
	}
	c := &conn{s: s, nc: nc, authed: make(chan struct{})}
	c.log = s.log.With("remote", nc.RemoteAddr().String())
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	if !s.track() {
		c.cancel()
		nc.Close()
		return
	}
	go c.watch()
	s.cfg.Observer.Connection(1)
	defer s.cfg.Observer.Connection(-1)
	defer func() {
		c.cancel()
		nc.Close()
		if c.sess != nil {
			c.sess.Close()
		}
	}()
	defer func() {
		// A handler bug must cost one connection, never the process.
		if v := recover(); v != nil {
			c.log.Error("kafkaproxy: panic serving connection; closing it", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	if err := c.serve(); err != nil {
		c.logEnd(err)
	}
}

// watch closes the connection when the server closes, the session ends or
// the serving goroutine returns; closing unblocks its reads and writes.
func (c *conn) watch() {
	defer c.s.wg.Done()
	select {
	case <-c.ctx.Done():
	case <-c.authed:
		select {
		case <-c.ctx.Done():
		case <-c.sess.Done():
			c.log.Info("kafkaproxy: session ended; closing connection")
		}
	}
	c.cancel()
	c.nc.Close()
}

func (c *conn) logEnd(err error) {
	var pe *protocolError
	switch {
	case errors.As(err, &pe):
		c.s.cfg.Observer.ProtocolError()
		c.log.Warn("kafkaproxy: closing connection", "reason", err)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), c.ctx.Err() != nil:
		c.log.Debug("kafkaproxy: connection closed", "err", err)
	default:
		c.log.Info("kafkaproxy: connection ended", "err", err)
	}
}

func (c *conn) serve() error {
	cfg := &c.s.cfg
	if tc, ok := c.nc.(*tls.Conn); ok {
		c.nc.SetDeadline(time.Now().Add(cfg.AuthTimeout))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			return fmt.Errorf("kafkaproxy: tls handshake: %w", err)
		}
	}
	authDeadline := time.Now().Add(cfg.AuthTimeout)
	for {
		limit, deadline := cfg.MaxFrameBytes, time.Now().Add(cfg.IdleTimeout)
		if c.sasl != saslDone && c.sasl != saslReauth {
			limit, deadline = cfg.MaxSASLFrameBytes, authDeadline
		}
		c.nc.SetReadDeadline(deadline)
		frame, err := c.readFrame(limit)
		if err != nil {
			return err
		}
		if err := c.handleFrame(frame); err != nil {
			return err
		}
		if c.closeAfter {
			return protoErr("closing after error response")
		}
		if len(c.rbuf) > 1<<20 {
			c.rbuf = nil // do not keep a large request's buffer
		}
		if d := c.throttle; d > 0 {
			c.throttle = 0
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return c.ctx.Err()
			}
		}
	}
}

// readFrame reads one size-prefixed frame of at most limit bytes.
func (c *conn) readFrame(limit int32) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	switch {
	case n < 0:
		return nil, protoErr("frame size %d is negative", n)
	case n > limit:
		return nil, protoErr("frame size %d exceeds the limit of %d bytes", n, limit)
	}
	if cap(c.rbuf) < int(n) {
		c.rbuf = make([]byte, n)
	}
	c.rbuf = c.rbuf[:n]
	if _, err := io.ReadFull(c.nc, c.rbuf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, protoErr("frame truncated: %d bytes announced", n)
		}
		return nil, err
	}
	return c.rbuf, nil
}

// handleFrame parses one request, checks it is allowed now, handles it and
// writes the response.
func (c *conn) handleFrame(frame []byte) error {
	if c.sasl == saslRaw {
		return c.handleRawSASL(frame)
	}
	start := time.Now()
	if len(frame) < 10 { // key, version, correlation id, client id length
		return protoErr("frame of %d bytes is too short for a request header", len(frame))
	}
	r := kbin.Reader{Src: frame}
	key, version, corr := r.Int16(), r.Int16(), r.Int32()
	if cid := r.UnsafeNullableString(); cid != nil && *cid != c.clientID {
		c.clientID = strings.Clone(*cid) // the frame buffer is reused; cloned only when it changes
	}
	a := lookupAPI(key)
	if a == nil {
		return protoErr("unknown or unsupported api key %d (version %d)", key, version)
	}
	if key == apiVersionsKey && version > a.max {
		// KIP-511: answer with v0 and UNSUPPORTED_VERSION so the client
		// retries at a version we speak; the body is not parsed.
		return c.write(corr, unsupportedAPIVersions(a))
	}
	if version < a.min || version > a.max {
		return protoErr("%s version %d is not supported (we handle %d to %d)", kmsg.NameForKey(key), version, a.min, a.max)
	}
	if !c.allowed(key) {
		return protoErr("%s before authentication completed", kmsg.NameForKey(key))
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
	}
	if !r.Ok() {
		return protoErr("%s v%d: malformed request header", kmsg.NameForKey(key), version)
	}
	if err := req.ReadFrom(r.Src); err != nil {
		return protoErr("%s v%d: malformed request: %v", kmsg.NameForKey(key), version, err)
	}
	resp, err := a.handle(c, req)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil // acks=0 produce: no response
	}
	if err := c.write(corr, resp); err != nil {
		return err
	}
	c.s.cfg.Observer.Request(key, time.Since(start))
	return nil
}

// allowed says whether a request of key may be served in the current
// SASL state: nothing but ApiVersions and the SASL requests before login.
func (c *conn) allowed(key int16) bool {
	switch c.sasl {
	case saslDone:
		return key != saslAuthenticateKey
	case saslReauth:
		return true
	case saslBegin:
		return key == apiVersionsKey || key == saslHandshakeKey
	case saslHandshook:
		return key == apiVersionsKey || key == saslAuthenticateKey
	}
	return false
}

// write sends one response: size, correlation id, the response header's
// tagged fields for flexible versions (not for ApiVersions, whose response
// header is always v0), and the body.
func (c *conn) write(corr int32, resp kmsg.Response) error {
	if n := responseSizeHint(resp); cap(c.wbuf) < n {
		c.wbuf = make([]byte, 0, n) // one allocation, not a growing copy of every record batch
	}
	b := append(c.wbuf[:0], 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		b = append(b, 0)
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	c.wbuf = b
	return c.writeRaw(b)
}

// responseSizeHint is an upper bound of a Fetch response's encoded size
// (its record batches and the fields around them), 0 for other responses.
func responseSizeHint(resp kmsg.Response) int {
	f, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 64
	for i := range f.Topics {
		t := &f.Topics[i]
		n += 32 + len(t.Topic)
		for j := range t.Partitions {
			p := &t.Partitions[j]
			n += 96 + len(p.RecordBatches) + 24*len(p.AbortedTransactions)
		}
	}
	return n
}

func (c *conn) writeRaw(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	_, err := c.nc.Write(b)
	if cap(c.wbuf) > 4<<20 {
		c.wbuf = nil
	}
	if err != nil {
		return fmt.Errorf("kafkaproxy: write response: %w", err)
	}
	return nil
}

// partner returns the session's partner (only after login).
func (c *conn) partner() string { return c.sess.Partner() }

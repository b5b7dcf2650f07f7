package kafkaproxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// testBackend stands in for the gateway: in-memory views per topic and
// partition (records with offset gaps where the "view" filtered rows), a few
// partners with PLAIN keys and bearer tokens, entitlements, revocation and a
// fixed throttle.
type testBackend struct {
	mu       sync.Mutex
	topics   map[string][]*testPart
	partners map[string]*testPartner // by id
	keys     map[string]string       // PLAIN key id -> partner id
	tokens   map[string]string       // bearer token -> partner id
	throttle time.Duration
	logins   atomic.Int32
	fetches  atomic.Int32
}

type testPartner struct {
	id       string
	secret   string
	topics   []string
	revoked  chan struct{}
	sessions []*testSession
}

type testPart struct {
	recs   []Record
	hw     int64
	notify chan struct{}
}

func newTestBackend() *testBackend {
	return &testBackend{topics: map[string][]*testPart{}, partners: map[string]*testPartner{}, keys: map[string]string{}, tokens: map[string]string{}}
}

func (b *testBackend) addTopic(name string, partitions int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range partitions {
		b.topics[name] = append(b.topics[name], &testPart{notify: make(chan struct{})})
	}
}

// addPartner registers a partner with PLAIN key id key, password secret
// and bearer token token, entitled to topics.
func (b *testBackend) addPartner(id, key, secret, token string, topics ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.partners[id] = &testPartner{id: id, secret: secret, topics: topics, revoked: make(chan struct{})}
	b.keys[key] = id
	b.tokens[token] = id
}

// produce appends n offsets to a partition; offsets for which keep is
// false are filtered by the "view" (gaps). It returns the kept records.
func (b *testBackend) produce(topic string, partition int32, n int, keep func(off int64) bool) []Record {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.topics[topic][partition]
	var out []Record
	for range n {
		off := p.hw
		p.hw++
		if keep != nil && !keep(off) {
			continue
		}
		r := Record{
			Offset:    off,
			Timestamp: time.Now().UnixMilli(),
			Key:       fmt.Appendf(nil, "k-%d", off),
			Value:     fmt.Appendf(nil, `{"topic":%q,"partition":%d,"offset":%d,"pad":"%s"}`, topic, partition, off, strings.Repeat("x", int(off%7))),
		}
		p.recs = append(p.recs, r)
		out = append(out, r)
	}
	close(p.notify)
	p.notify = make(chan struct{})
	return out
}

func (b *testBackend) revoke(partner string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.partners[partner]
	select {
	case <-p.revoked:
	default:
		close(p.revoked)
	}
}

func (b *testBackend) setThrottle(d time.Duration) {
	b.mu.Lock()
	b.throttle = d
	b.mu.Unlock()
}

func (b *testBackend) Authenticate(_ context.Context, c Credentials) (Session, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var id string
	switch c.Mechanism {
	case MechanismPlain:
		id = b.keys[c.Username]
		if p := b.partners[id]; p == nil || p.secret != c.Secret {
			return nil, fmt.Errorf("%w: unknown key or wrong secret", ErrAuthentication)
		}
	case MechanismOAuthBearer:
		id = b.tokens[c.Secret]
		if id == "" {
			id = b.tokens[unsecuredJWTSubject(c.Secret)]
		}
		if id == "" {
			return nil, fmt.Errorf("%w: token not accepted", ErrAuthentication)
		}
	}
	p := b.partners[id]
	select {
	case <-p.revoked:
		return nil, fmt.Errorf("%w: access revoked", ErrAuthentication)
	default:
	}
	b.logins.Add(1)
	s := &testSession{b: b, p: p}
	p.sessions = append(p.sessions, s)
	return s, nil
}

// unsecuredJWTSubject returns the sub claim of an unsigned (alg none) JWT
// as librdkafka makes with enable.sasl.oauthbearer.unsecure.jwt, or "".
// Only the test backend accepts such tokens; the gateway verifies
// signatures.
func unsecuredJWTSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[2] != "" {
		return ""
	}
	var hdr struct{ Alg string }
	var claims struct{ Sub string }
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	p, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || json.Unmarshal(h, &hdr) != nil || json.Unmarshal(p, &claims) != nil || hdr.Alg != "none" {
		return ""
	}
	return claims.Sub
}

type testSession struct {
	b      *testBackend
	p      *testPartner
	closed atomic.Bool
}

func (s *testSession) Partner() string { return s.p.id }

func (s *testSession) Topics(context.Context) ([]Topic, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	var out []Topic
	for _, t := range s.p.topics {
		out = append(out, Topic{Name: t, Partitions: int32(len(s.b.topics[t]))})
	}
	return out, nil
}

func (s *testSession) part(topic string, partition int32) (*testPart, error) {
	if !slices.Contains(s.p.topics, topic) {
		return nil, ErrNotAuthorized
	}
	ps := s.b.topics[topic]
	if partition < 0 || int(partition) >= len(ps) {
		return nil, ErrUnknownTopic
	}
	return ps[partition], nil
}

func (s *testSession) Offsets(_ context.Context, topic string, partition int32) (int64, int64, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return 0, 0, err
	}
	return 0, p.hw, nil
}

func (s *testSession) OffsetForTime(_ context.Context, topic string, partition int32, ts time.Time) (int64, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	p, err := s.part(topic, partition)
	if err != nil {
		return 0, err
	}
	for _, r := range p.recs {
		if r.Timestamp >= ts.UnixMilli() {
			return r.Offset, nil
		}
	}
	return p.hw, nil
}

func (s *testSession) Fetch(ctx context.Context, topic string, partition int32, offset int64, maxBytes int32, maxWait time.Duration) (FetchResult, error) {
	s.b.fetches.Add(1)
	var deadline <-chan time.Time
	for {
		s.b.mu.Lock()
		p, err := s.part(topic, partition)
		if err != nil {
			s.b.mu.Unlock()
			return FetchResult{}, err
		}
		if offset < 0 || offset > p.hw {
			s.b.mu.Unlock()
			return FetchResult{}, ErrOffsetOutOfRange
		}
		i := sort.Search(len(p.recs), func(i int) bool { return p.recs[i].Offset >= offset })
		res := FetchResult{Next: offset, HighWatermark: p.hw}
		var size int32
		for ; i < len(p.recs); i++ {
			r := p.recs[i]
			if len(res.Records) > 0 && size+int32(len(r.Value)+len(r.Key)) > maxBytes {
				break
			}
			size += int32(len(r.Value) + len(r.Key))
			res.Records = append(res.Records, r)
		}
		if i == len(p.recs) {
			res.Next = p.hw // everything up to the end, including filtered rows
		} else {
			res.Next = res.Records[len(res.Records)-1].Offset + 1
		}
		notify := p.notify
		s.b.mu.Unlock()
		if res.Next > offset || maxWait <= 0 {
			return res, nil
		}
		if deadline == nil {
			t := time.NewTimer(maxWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-notify:
		case <-deadline:
			return res, nil
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

func (s *testSession) Throttle(records, bytes int) time.Duration {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if records == 0 {
		return 0
	}
	return s.b.throttle
}

func (s *testSession) Done() <-chan struct{} { return s.p.revoked }

func (s *testSession) Close() {
	if s.closed.Swap(true) {
		panic("session closed twice")
	}
}

// testLogger writes slog output to the test log.
type testLogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	buf  bytes.Buffer
	done atomic.Bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.t != nil && !w.done.Load() {
		w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) contains(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Contains(w.buf.String(), s)
}

type testServer struct {
	*Server
	addr string
	logs *testLogWriter
	done chan error
}

// startServer starts a Server on 127.0.0.1:0 and closes it at cleanup.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ts, err := launch(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ts.logs.done.Store(true)
		ts.stop(t)
	})
	return ts
}

// launch starts a Server whose log goes to t (nil: kept only in memory).
func launch(t testing.TB, cfg Config) (*testServer, error) {
	logs := &testLogWriter{t: t}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if cfg.MinSessionTimeout == 0 {
		cfg.MinSessionTimeout = time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s, err := New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	ts := &testServer{Server: s, addr: ln.Addr().String(), logs: logs, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ln) }()
	return ts, nil
}

func (ts *testServer) stop(t testing.TB) {
	ts.Close()
	select {
	case err := <-ts.done:
		if err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		ts.done <- err // for a second stop
	case <-time.After(5 * time.Second):
		t.Error("Serve did not return after Close")
	}
}

// saslClient returns a franz-go client of addr logged in with mech,
// closed at the test's end.
func saslClient(t testing.TB, addr string, mech sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.SASL(mech), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// client returns a franz-go client logged in with PLAIN.
func client(t testing.TB, addr, key, secret string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return saslClient(t, addr, plain.Auth{User: key, Pass: secret}.AsMechanism(), opts...)
}

func oauthClient(t testing.TB, addr, token string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return saslClient(t, addr, oauth.Auth{Token: token}.AsMechanism(), opts...)
}

// rawClient speaks kmsg over a plain connection, for protocol-level tests.
type rawClient struct {
	t    testing.TB
	c    net.Conn
	corr int32
	f    *kmsg.RequestFormatter
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw-test"))}
}

func (r *rawClient) send(req kmsg.Request) int32 {
	r.t.Helper()
	r.corr++
	if _, err := r.c.Write(r.f.AppendRequest(nil, req, r.corr)); err != nil {
		r.t.Fatalf("write %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return r.corr
}

func (r *rawClient) readFrame(timeout time.Duration) ([]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(r.c, b)
	return b, err
}

// roundTrip sends req and decodes its response.
func (r *rawClient) roundTrip(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	corr := r.send(req)
	b, err := r.readFrame(10 * time.Second)
	if err != nil {
		r.t.Fatalf("read %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	if got := int32(binary.BigEndian.Uint32(b)); got != corr {
		r.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	b = b[4:]
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != 18 {
		if len(b) == 0 || b[0] != 0 {
			r.t.Fatalf("%s: response header tagged fields missing", kmsg.NameForKey(req.Key()))
		}
		b = b[1:]
	}
	if err := resp.ReadFrom(b); err != nil {
		r.t.Fatalf("decode %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// login performs SaslHandshake v1 + SaslAuthenticate with PLAIN and returns
// the SaslAuthenticate error code.
func (r *rawClient) login(key, secret string) int16 {
	r.t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 1
	hs.Mechanism = MechanismPlain
	if code := r.roundTrip(hs).(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
		r.t.Fatalf("handshake error code %d", code)
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version = 2
	au.SASLAuthBytes = []byte("\x00" + key + "\x00" + secret)
	return r.roundTrip(au).(*kmsg.SASLAuthenticateResponse).ErrorCode
}

// expectClosed waits until the server closes the connection.
func (r *rawClient) expectClosed(within time.Duration) {
	r.t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if _, err := r.readFrame(within - time.Since(start)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			return
		}
	}
	r.t.Fatalf("connection still open after %s", within)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// standardBackend has partners "mvno-a" (cdr, fraud-alerts) and "mvno-b"
// (cdr), "cdr" with 3 partitions of 200 offsets where every third is
// filtered, "fraud-alerts" with 1 partition whose last rows are filtered,
// and "network-quality" that nobody is entitled to.
func standardBackend() (*testBackend, map[string][]Record) {
	b := newTestBackend()
	b.addTopic("cdr", 3)
	b.addTopic("fraud-alerts", 1)
	b.addTopic("network-quality", 1)
	b.addPartner("mvno-a", "key-a", "secret-a", "token-a", "cdr", "fraud-alerts")
	b.addPartner("mvno-b", "key-b", "secret-b", "token-b", "cdr")
	want := map[string][]Record{}
	for p := range int32(3) {
		want["cdr"] = append(want["cdr"], b.produce("cdr", p, 200, func(off int64) bool { return off%3 != 1 })...)
	}
	want["fraud-alerts"] = b.produce("fraud-alerts", 0, 50, func(off int64) bool { return off < 40 && off%5 != 0 })
	b.produce("network-quality", 0, 10, nil)
	return b, want
}

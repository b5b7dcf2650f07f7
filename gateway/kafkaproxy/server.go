package kafkaproxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Config configures a Server. The zero value of every field but Backend
// and Offsets means its default.
type Config struct {
	// Backend authenticates partners. Required.
	Backend Backend
	// Offsets persists committed group offsets. Required (MemoryOffsets in
	// tests).
	Offsets OffsetStore
	// Logger receives connection and protocol errors. Default slog.Default().
	Logger *slog.Logger
	// Observer receives protocol events for metrics. Default: none.
	Observer Observer
	// TLS, when set, makes the listener speak TLS (SASL_SSL); nil means
	// plaintext (SASL_PLAINTEXT).
	TLS *tls.Config

	// AdvertisedAddr is the host:port clients are told to connect to in
	// Metadata and FindCoordinator. Default: the listener's address.
	AdvertisedAddr string
	// NodeID is the broker id the proxy reports for itself. Default 0.
	NodeID int32
	// Cluster, when set, lists the front door's other nodes (replicas):
	// Metadata reports them as brokers and each consumer group gets one
	// coordinator among them (cluster.go). Nil: the proxy alone.
	Cluster Cluster
	// ClusterID is reported in Metadata. Default "sluice".
	ClusterID string

	// MaxFrameBytes caps a request frame after login. Default 100 MiB.
	MaxFrameBytes int32
	// MaxSASLFrameBytes caps a frame before login. Default 512 KiB (Kafka's
	// sasl.server.max.receive.size).
	MaxSASLFrameBytes int32
	// AuthTimeout bounds TLS handshake plus SASL login. Default 10s.
	AuthTimeout time.Duration
	// IdleTimeout closes a connection with no request for this long.
	// Default 10 minutes (Kafka's connections.max.idle.ms).
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one response. Default 30s.
	WriteTimeout time.Duration
	// MaxFetchWait caps a Fetch request's MaxWaitMillis. Default 10s.
	MaxFetchWait time.Duration
	// MaxFetchBytes caps a Fetch response's size whatever the client asks.
	// Default 50 MiB (Kafka's fetch.max.bytes).
	MaxFetchBytes int32

	// MinSessionTimeout and MaxSessionTimeout bound a group member's
	// session timeout; JoinGroup outside is INVALID_SESSION_TIMEOUT.
	// Defaults 6s and 30 minutes (Kafka's group.min/max.session.timeout.ms).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is how long the first join of an empty group
	// waits for more members before completing. Default 0 (Kafka: 3s).
	InitialRebalanceDelay time.Duration
}

func (c *Config) validate() error {
	if c.Backend == nil {
		return errors.New("kafkaproxy: config Backend is nil; it is required")
	}
	if c.Offsets == nil {
		return errors.New("kafkaproxy: config Offsets is nil; it is required (MemoryOffsets for tests)")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	if c.ClusterID == "" {
		c.ClusterID = "sluice"
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 100 << 20
	}
	if c.MaxSASLFrameBytes == 0 {
		c.MaxSASLFrameBytes = 512 << 10
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxFetchWait == 0 {
		c.MaxFetchWait = 10 * time.Second
	}
	if c.MaxFetchBytes == 0 {
		c.MaxFetchBytes = 50 << 20
	}
	if c.MinSessionTimeout == 0 {
		c.MinSessionTimeout = 6 * time.Second
	}
	if c.MaxSessionTimeout == 0 {
		c.MaxSessionTimeout = 30 * time.Minute
	}
	switch {
	case c.MaxFrameBytes < 1024:
		return fmt.Errorf("kafkaproxy: config MaxFrameBytes %d must be >= 1024", c.MaxFrameBytes)
	case c.MaxSASLFrameBytes < 1024:
		return fmt.Errorf("kafkaproxy: config MaxSASLFrameBytes %d must be >= 1024", c.MaxSASLFrameBytes)
	case c.AuthTimeout < 0, c.IdleTimeout < 0, c.WriteTimeout < 0, c.MaxFetchWait < 0, c.InitialRebalanceDelay < 0:
		return errors.New("kafkaproxy: config timeouts must be >= 0")
	case c.MaxFetchBytes < 1024:
		return fmt.Errorf("kafkaproxy: config MaxFetchBytes %d must be >= 1024", c.MaxFetchBytes)
	case c.MinSessionTimeout > c.MaxSessionTimeout:
		return fmt.Errorf("kafkaproxy: config MinSessionTimeout %s must be <= MaxSessionTimeout %s", c.MinSessionTimeout, c.MaxSessionTimeout)
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := splitHostPort(c.AdvertisedAddr); err != nil {
			return fmt.Errorf("kafkaproxy: config AdvertisedAddr %q: %w", c.AdvertisedAddr, err)
		}
	}
	return nil
}

func splitHostPort(addr string) (string, int32, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", ps, err)
	}
	return host, int32(port), nil
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("kafkaproxy: server closed")

// Server serves the Kafka protocol on listeners. Create with New, run with
// Serve, stop with Close.
//
// Goroutines: Serve runs the accept loop on the caller's goroutine; each
// accepted connection gets one serving goroutine (read, handle, write, in
// order) and one watcher that closes the connection when the server
// closes, the session ends or the serving goroutine returns. Close owns
// the shutdown order: stop accepting, close every connection (which
// cancels every request in flight, including JoinGroup and Fetch waits),
// wait for all connection goroutines, then stop the group coordinator's
// timers. Sessions are closed by their connection goroutine.
type Server struct {
	cfg    Config
	log    *slog.Logger
	groups *coordinator

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	closed bool
	wg     sync.WaitGroup // accept loops' connections and watchers
	host   string         // advertised, from cfg or the first listener
	port   int32

	mechanisms []string // SASL mechanisms offered
	pepper     []byte   // keys the made-up SCRAM salts of unknown users
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, lns: map[net.Listener]struct{}{},
		mechanisms: []string{MechanismPlain, MechanismOAuthBearer}, pepper: make([]byte, 32)}
	if _, ok := cfg.Backend.(ScramBackend); ok {
		s.mechanisms = append(s.mechanisms, MechanismScramSHA512)
	}
	rand.Read(s.pepper)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.groups = newCoordinator(&s.cfg)
	if cfg.AdvertisedAddr != "" {
		s.host, s.port, _ = splitHostPort(cfg.AdvertisedAddr)
	}
	return s, nil
}

// Serve accepts connections on ln until Close, then returns
// ErrServerClosed. It closes ln on return.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	if s.host == "" {
		if h, p, err := splitHostPort(ln.Addr().String()); err == nil {
			s.host, s.port = h, p
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("kafkaproxy: accept failed; retrying", "err", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-s.ctx.Done():
					return ErrServerClosed
				}
			}
			return fmt.Errorf("kafkaproxy: accept: %w", err)
		}
		backoff = 0
		if !s.track() {
			nc.Close()
			return ErrServerClosed
		}
		go s.serveConn(nc)
	}
}

// track registers a connection goroutine; false after Close.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// advertised returns the host and port clients should use.
func (s *Server) advertised() (string, int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host, s.port
}

// Close stops accepting, closes every connection, waits for every
// goroutine the Server started and stops the group coordinator. Groups and
// their members are forgotten; committed offsets stay in the OffsetStore.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel() // before closing listeners: Serve tells Close from failure by it
	for ln := range s.lns {
		ln.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.groups.close()
	return nil
}

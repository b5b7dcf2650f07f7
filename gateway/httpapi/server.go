// Package httpapi is sluice's HTTP front door: the product catalog, REST
// pull with resumable cursors, Server-Sent Events streams, the OpenAPI
// document, health and metrics. Errors are RFC 9457 problem+json with a
// stable type URN. It reads through the hub and never talks to Kafka itself.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/gateway/internal/hub"
	"github.com/sluicehq/sluice/gateway/internal/metrics"
	"github.com/sluicehq/sluice/gateway/internal/upstream"
	"github.com/sluicehq/sluice/products"
)

// StreamConfig tunes SSE streams. The zero value means defaults.
type StreamConfig struct {
	Heartbeat    time.Duration // comment line when nothing else was sent; default 15s
	IdleCursor   time.Duration // cursor event after this long with only skipped records; default 5s
	Retry        time.Duration // the retry: hint sent to clients; default 2s
	WriteTimeout time.Duration // a client that accepts no bytes for this long is disconnected; default 30s
	MaxBatch     int           // records written per flush at most; default 512
}

func (c *StreamConfig) defaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.IdleCursor <= 0 {
		c.IdleCursor = 5 * time.Second
	}
	if c.Retry <= 0 {
		c.Retry = 2 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
}

// Config wires the front door.
type Config struct {
	Catalog *products.Catalog
	Hub     *hub.Hub
	Cluster *upstream.Cluster
	Metrics *metrics.Metrics
	Log     *slog.Logger
	Stream  StreamConfig
	// Streams is cancelled to end every open stream (shutdown): each gets a
	// final event telling it to reconnect.
	Streams context.Context
	// Authorize decides every /v1 request but the OpenAPI document.
	Authorize Authorizer
	// Changed returns a channel closed when access decisions may have
	// changed (a policy reload): open streams then authorize again.
	Changed func() <-chan struct{}
	// JWKS, when set, is published at /.well-known/jwks.json (the embedded
	// mode's development key).
	JWKS []byte
	// Subscriptions serves plans and subscriptions; nil answers 404.
	Subscriptions SubscriptionService
	// Keys serves API keys, partners and usage; nil answers 404.
	Keys KeyService
	// Audit records deliveries in the audit trail (fail closed); nil
	// records nothing.
	Audit Auditor
	// AuditReader serves the audit trail to regulators (GET /v1/audit,
	// /v1/audit/stream, /v1/audit/keys); nil answers 404.
	AuditReader AuditReader
	// Registry serves the view schemas of partners' Avro topics at
	// /schema-registry (a read-only Schema Registry); nil: every subject
	// is unknown.
	Registry SchemaRegistry
	// Checks are further readiness checks (policy, consent); nil is healthy.
	Checks func() map[string]error
}

// Degraded is a readiness check failure that does not stop serving, e.g. a
// policy reload that failed while the previous policy stays in force.
type Degraded struct{ Err error }

func (d *Degraded) Error() string { return d.Err.Error() }

// Server serves the HTTP API.
type Server struct {
	cfg    Config
	router chi.Router
}

// New builds the router.
func New(cfg Config) *Server {
	cfg.Stream.defaults()
	if cfg.Streams == nil {
		cfg.Streams = context.Background()
	}
	s := &Server{cfg: cfg}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, newProblem(ProblemNotFound, http.StatusNotFound, "no such endpoint; see /v1/openapi.json"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, newProblem(ProblemMethod, http.StatusMethodNotAllowed, r.Method+" is not allowed here"))
	})
	r.Use(recoverer(cfg.Log))
	r.Get("/healthz", s.healthz)
	if cfg.JWKS != nil {
		r.Get("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/jwk-set+json")
			_, _ = w.Write(cfg.JWKS)
		})
	}
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	r.Mount("/schema-registry", s.schemaRegistry())
	r.Route("/v1", func(r chi.Router) {
		r.Get("/openapi.json", s.openapi)
		r.Get("/products", s.listProducts)
		r.Route("/products/{id}", func(r chi.Router) {
			r.Get("/", s.getProduct)
			r.Get("/schema", s.getSchema)
			r.Get("/view", s.getView)
			r.Get("/records", s.records)
			r.Get("/stream", s.stream)
		})
		r.Get("/plans", s.listPlans)
		r.Get("/subscriptions", s.listSubscriptions)
		r.Post("/subscriptions", s.createSubscription)
		r.Get("/subscriptions/{id}", s.getSubscription)
		r.Patch("/subscriptions/{id}", s.patchSubscription)
		r.Post("/subscriptions/{id}/{action}", s.transitionSubscription)
		r.Get("/keys", s.listKeys)
		r.Post("/keys", s.createKey)
		r.Delete("/keys/{id}", s.revokeKey)
		r.Get("/usage", s.usage)
		r.Get("/partners", s.listPartners)
		r.Get("/partners/{id}/keys", s.listPartnerKeys)
		r.Post("/partners/{id}/keys", s.createPartnerKey)
		r.Delete("/partners/{id}/keys/{key}", s.revokePartnerKey)
		r.Get("/audit", s.auditEvents)
		r.Get("/audit/stream", s.auditStream)
		r.Get("/audit/keys", s.auditKeys)
	})
	s.router = r
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error("handler panic", "path", r.URL.Path, "panic", v)
					writeProblem(w, r, newProblem(ProblemInternal, http.StatusInternalServerError, "internal error; it has been logged"))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ready := true
	if err := s.cfg.Cluster.Ping(ctx); err != nil {
		checks["kafka"] = "unreachable: " + err.Error()
		ready = false
	} else {
		checks["kafka"] = "ok"
	}
	if s.cfg.Catalog == nil || len(s.cfg.Catalog.Products) == 0 {
		checks["catalog"] = "no products loaded"
		ready = false
	} else {
		checks["catalog"] = "ok"
	}
	var prods []*products.Product
	if s.cfg.Catalog != nil {
		prods = s.cfg.Catalog.Products
	}
	for _, p := range prods {
		hp := s.cfg.Hub.Product(p.ID)
		if hp == nil {
			continue
		}
		if err := hp.Err(); err != nil {
			checks["product:"+p.ID] = err.Error()
			ready = false
		} else {
			checks["product:"+p.ID] = "ok"
		}
	}
	if s.cfg.Checks != nil {
		for name, err := range s.cfg.Checks() {
			var d *Degraded
			switch {
			case err == nil:
				checks[name] = "ok"
			case errors.As(err, &d):
				checks[name] = "degraded: " + d.Err.Error() // reported, still serving
			default:
				checks[name] = err.Error()
				ready = false
			}
		}
	}
	status, code := "ready", http.StatusOK
	if !ready {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks})
}

// onlyParams writes a 400 and returns false when the query has a parameter
// not in allowed: a typo must not silently change what is served.
func onlyParams(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for k := range r.URL.Query() {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			what := "no query parameters"
			if len(allowed) > 0 {
				what = "only " + strings.Join(allowed, ", ")
			}
			writeProblem(w, r, newProblem(ProblemInvalidQuery, http.StatusBadRequest, "unknown query parameter "+quote(k)+"; this endpoint takes "+what))
			return false
		}
	}
	return true
}

// product resolves {id} or writes a 404. An unknown product is only
// revealed to a caller with a valid credential (else 401), so product ids
// cannot be probed anonymously.
func (s *Server) product(w http.ResponseWriter, r *http.Request) (*products.Product, *hub.Product, bool) {
	id := chi.URLParam(r, "id")
	p, ok := s.cfg.Catalog.Get(id)
	hp := s.cfg.Hub.Product(id)
	if !ok || hp == nil {
		if _, ok := s.authorize(w, r, nil); !ok {
			return nil, nil, false
		}
		writeProblem(w, r, newProblem(ProblemUnknownProduct, http.StatusNotFound, "no data product with id "+quote(id)+"; GET /v1/products lists them"))
		return nil, nil, false
	}
	return p, hp, true
}

func quote(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// upstreamProblem maps an error from the hub or Kafka to a problem.
func upstreamProblem(err error) *Problem {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return newProblem(ProblemUpstream, http.StatusServiceUnavailable, "the upstream read did not complete in time; retry")
	}
	return newProblem(ProblemUpstream, http.StatusServiceUnavailable, "the upstream Kafka cluster did not answer; retry later")
}

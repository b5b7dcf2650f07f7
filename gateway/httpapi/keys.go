package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
)

// Key is an API key as the API shows it. It never holds the secret.
type Key struct {
	ID        string     `json:"id"`
	Prefix    string     `json:"prefix"` // "slk_<id>": what a partner sees of its key
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	State     string     `json:"state"` // KeyActive, KeyExpired or KeyRevoked
}

// Key states.
const (
	KeyActive  = "active"
	KeyExpired = "expired"
	KeyRevoked = "revoked"
)

// NewKey is a key just created: the only answer that holds its secret.
type NewKey struct {
	ID        string    `json:"id"`
	Prefix    string    `json:"prefix"`
	Secret    string    `json:"secret"` // "slk_<id>_<secret>", shown once
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Partner is an organisation that reads data products, as the admin API
// shows it.
type Partner struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Attributes map[string]any `json:"attributes"`
}

// Errors a KeyService returns for the API to branch on; anything else is a
// server failure.
var (
	// ErrUnknownKey: the partner has no key with that id.
	ErrUnknownKey = errors.New("unknown API key")
	// ErrUnknownPartner: no partner has that id in the store.
	ErrUnknownPartner = errors.New("unknown partner")
)

// KeyService is API key management, the partners that hold keys and the
// usage they are billed for, implemented by the gateway on its store. It
// is safe for concurrent use and lives as long as the gateway.
type KeyService interface {
	// CreateKey creates a key for partner valid for ttl; the secret is in
	// the answer and nowhere else. ErrUnknownPartner if there is no such
	// partner.
	CreateKey(ctx context.Context, partner string, ttl time.Duration, actor string) (NewKey, error)
	// Keys lists the partner's keys (revoked and expired included), oldest
	// first. ErrUnknownPartner if there is no such partner.
	Keys(ctx context.Context, partner string) ([]Key, error)
	// RevokeKey revokes one of the partner's keys as actor; revoking a
	// revoked key keeps the first revocation. ErrUnknownKey if the partner
	// has no such key.
	RevokeKey(ctx context.Context, partner, id, actor string) error
	// Partners lists every partner, sorted by id.
	Partners(ctx context.Context) ([]Partner, error)
	// Usage returns the daily usage rows the filter selects, ordered by
	// day, partner, product and purpose.
	Usage(ctx context.Context, f UsageFilter) ([]UsageRow, error)
	// Admin reports whether the partner may manage every partner's keys
	// and read every partner's usage.
	Admin(partner string) bool
}

// Bounds of POST /v1/keys's ttl_days.
const (
	DefaultKeyTTLDays = 90
	MaxKeyTTLDays     = 365
)

var (
	// keyIDPattern: the <id> of slk_<id>_<secret> (16 lowercase base32
	// characters). Checked before any store call.
	keyIDPattern = regexp.MustCompile(`^[a-z2-7]{16}$`)
	// idPattern: partner and product ids.
	idPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)
)

// keys answers with the service, or a 404 when the gateway runs without
// one. params are the query parameters the endpoint takes.
func (s *Server) keys(w http.ResponseWriter, r *http.Request, params ...string) (KeyService, *Access, bool) {
	acc, ok := s.authorize(w, r, nil)
	if !ok || !onlyParams(w, r, params...) {
		return nil, nil, false
	}
	if s.cfg.Keys == nil {
		writeProblem(w, r, newProblem(ProblemNotFound, http.StatusNotFound, "this gateway manages no API keys"))
		return nil, nil, false
	}
	return s.cfg.Keys, acc, true
}

// keysAdmin is keys for the admin endpoints: any other caller gets a 403.
func (s *Server) keysAdmin(w http.ResponseWriter, r *http.Request, what string) (KeyService, *Access, bool) {
	svc, acc, ok := s.keys(w, r)
	if !ok {
		return nil, nil, false
	}
	if !svc.Admin(acc.Partner) {
		writeProblem(w, r, newProblem(ProblemForbiddenAdmin, http.StatusForbidden,
			"partner "+acc.Partner+" may not "+what+"; only the data owner's admin identity may"))
		return nil, nil, false
	}
	return svc, acc, true
}

// pathPartner is the partner {id} of an admin endpoint. A malformed id
// names no partner; like a malformed key id it is not repeated.
func pathPartner(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if !idPattern.MatchString(id) {
		p := newProblem(ProblemUnknownPartner, http.StatusNotFound, "that is not a partner id; GET /v1/partners lists them")
		p.Instance = chi.RouteContext(r.Context()).RoutePattern()
		writeProblem(w, r, p)
		return "", false
	}
	return id, true
}

func unknownPartner(id string) *Problem {
	return newProblem(ProblemUnknownPartner, http.StatusNotFound, "no partner with id "+quote(id)+" is registered; GET /v1/partners (admin) lists them")
}

// unknownKey is the 404 of a key id the partner does not hold. A malformed
// id is not repeated (see redactKeyPath).
func unknownKey(partner, id string) *Problem {
	if !keyIDPattern.MatchString(id) {
		return newProblem(ProblemUnknownKey, http.StatusNotFound,
			"that is not an API key id: an id is the 16 characters (a-z, 2-7) after slk_ in slk_<id>_<secret>; GET /v1/keys lists them")
	}
	return newProblem(ProblemUnknownKey, http.StatusNotFound, "partner "+partner+" has no API key with id "+id)
}

// redactKeyPath returns r with the route pattern as its path when the key
// id in URL parameter param is malformed: it may be a whole key, secret
// included, pasted where its id belongs, and no problem's instance nor
// log line may repeat it.
func redactKeyPath(r *http.Request, param string) *http.Request {
	if keyIDPattern.MatchString(chi.URLParam(r, param)) {
		return r
	}
	u := *r.URL
	u.Path, u.RawPath = chi.RouteContext(r.Context()).RoutePattern(), ""
	r2 := *r
	r2.URL = &u
	return &r2
}

// keyProblem maps a key service failure to a problem, logging server
// failures (which never hold a secret: the service has none to give).
func (s *Server) keyProblem(r *http.Request, err error, partner, key string) *Problem {
	switch {
	case errors.Is(err, ErrUnknownKey):
		return unknownKey(partner, key)
	case errors.Is(err, ErrUnknownPartner):
		return unknownPartner(partner)
	case errors.Is(err, ErrAuditUnavailable):
		return auditUnavailable(err)
	}
	if s.cfg.Log != nil {
		s.cfg.Log.Error("API keys failed", "path", r.URL.Path, "err", err)
	}
	return newProblem(ProblemInternal, http.StatusServiceUnavailable, "API keys or usage could not be read or written; retry")
}

// readOptionalBody is readBody for a body that may be left out: an empty
// body leaves v as it is.
func readOptionalBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeProblem(w, r, newProblem(ProblemInvalidRequest, http.StatusBadRequest, "the body could not be read: "+err.Error()))
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return true
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	return readBody(w, r, v)
}

// createKeyFor creates a key for partner from the request's ttl_days.
func (s *Server) createKeyFor(w http.ResponseWriter, r *http.Request, svc KeyService, partner, actor string) {
	var req struct {
		TTLDays *int `json:"ttl_days"`
	}
	if !readOptionalBody(w, r, &req) {
		return
	}
	days := DefaultKeyTTLDays
	if req.TTLDays != nil {
		days = *req.TTLDays
	}
	if days < 1 || days > MaxKeyTTLDays {
		writeProblem(w, r, newProblem(ProblemInvalidRequest, http.StatusBadRequest,
			"ttl_days "+strconv.Itoa(days)+" must be from 1 to "+strconv.Itoa(MaxKeyTTLDays)+" (default "+strconv.Itoa(DefaultKeyTTLDays)+")"))
		return
	}
	k, err := svc.CreateKey(r.Context(), partner, time.Duration(days)*24*time.Hour, actor)
	if err != nil {
		writeProblem(w, r, s.keyProblem(r, err, partner, ""))
		return
	}
	w.Header().Set("Cache-Control", "no-store") // the secret must not linger in a cache
	writeJSON(w, http.StatusCreated, k)
}

// listKeysOf answers partner's keys.
func (s *Server) listKeysOf(w http.ResponseWriter, r *http.Request, svc KeyService, partner string) {
	keys, err := svc.Keys(r.Context(), partner)
	if err != nil {
		writeProblem(w, r, s.keyProblem(r, err, partner, ""))
		return
	}
	if keys == nil {
		keys = []Key{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// revokeKeyOf revokes partner's key id as actor. A malformed id names no
// key: it is refused before the store is asked.
func (s *Server) revokeKeyOf(w http.ResponseWriter, r *http.Request, svc KeyService, partner, id, actor string) {
	err := ErrUnknownKey
	if keyIDPattern.MatchString(id) {
		err = svc.RevokeKey(r.Context(), partner, id, actor)
	}
	if err != nil {
		writeProblem(w, r, s.keyProblem(r, err, partner, id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	if svc, acc, ok := s.keys(w, r); ok {
		s.createKeyFor(w, r, svc, acc.Partner, acc.Partner)
	}
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	if svc, acc, ok := s.keys(w, r); ok {
		s.listKeysOf(w, r, svc, acc.Partner)
	}
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	r = redactKeyPath(r, "id")
	if svc, acc, ok := s.keys(w, r); ok {
		s.revokeKeyOf(w, r, svc, acc.Partner, chi.URLParam(r, "id"), acc.Partner)
	}
}

func (s *Server) listPartners(w http.ResponseWriter, r *http.Request) {
	svc, _, ok := s.keysAdmin(w, r, "list partners")
	if !ok {
		return
	}
	ps, err := svc.Partners(r.Context())
	if err != nil {
		writeProblem(w, r, s.keyProblem(r, err, "", ""))
		return
	}
	if ps == nil {
		ps = []Partner{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"partners": ps})
}

func (s *Server) listPartnerKeys(w http.ResponseWriter, r *http.Request) {
	svc, _, ok := s.keysAdmin(w, r, "list another partner's API keys")
	if !ok {
		return
	}
	if partner, ok := pathPartner(w, r); ok {
		s.listKeysOf(w, r, svc, partner)
	}
}

func (s *Server) createPartnerKey(w http.ResponseWriter, r *http.Request) {
	svc, acc, ok := s.keysAdmin(w, r, "create API keys for another partner")
	if !ok {
		return
	}
	if partner, ok := pathPartner(w, r); ok {
		s.createKeyFor(w, r, svc, partner, acc.Partner)
	}
}

func (s *Server) revokePartnerKey(w http.ResponseWriter, r *http.Request) {
	r = redactKeyPath(r, "key")
	svc, acc, ok := s.keysAdmin(w, r, "revoke another partner's API keys")
	if !ok {
		return
	}
	if partner, ok := pathPartner(w, r); ok {
		s.revokeKeyOf(w, r, svc, partner, chi.URLParam(r, "key"), acc.Partner)
	}
}

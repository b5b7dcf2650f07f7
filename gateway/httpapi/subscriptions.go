package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice/products"
)

// Plan is a set of limits a subscription runs under, as the API shows it.
type Plan struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	RecordsPerSecond   int64    `json:"records_per_second"`
	BytesPerSecond     int64    `json:"bytes_per_second"`
	ConcurrentStreams  int      `json:"concurrent_streams"`
	MonthlyRecordQuota int64    `json:"monthly_record_quota"`
	ReplayWindow       int64    `json:"replay_window"` // seconds
	Formats            []string `json:"formats"`
	Default            bool     `json:"default"`
}

// Subscription is a partner's standing access to one product for one
// purpose under a plan, as the API shows it.
type Subscription struct {
	ID      string `json:"id"`
	Partner string `json:"partner"`
	Product string `json:"product"`
	Purpose string `json:"purpose"`
	Plan    string `json:"plan"`
	State   string `json:"state"`
	// KafkaFormat is how the Kafka front door encodes the values: "json"
	// or "avro" (Schema Registry wire format; schemas at /schema-registry).
	KafkaFormat string    `json:"kafka_format"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// KafkaFormats are the values of Subscription.KafkaFormat.
var KafkaFormats = []string{"json", "avro"}

// Errors a SubscriptionService returns for the API to branch on; anything
// else is a server failure.
var (
	// ErrNotFound: no such subscription.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request names an unknown plan (the message says which).
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the partner already holds an open subscription for the
	// product and purpose.
	ErrConflict = errors.New("conflict")
)

// IllegalTransitionError is the error of an action the subscription's
// current state does not allow.
type IllegalTransitionError struct {
	Subscription, State, Action string
	Detail                      string // what is allowed instead
}

func (e *IllegalTransitionError) Error() string {
	d := "subscription " + e.Subscription + " is " + e.State + ": " + e.Action + " is not allowed"
	if e.Detail != "" {
		d += " (" + e.Detail + ")"
	}
	return d
}

// SubscriptionService is the subscriptions and plans the API serves,
// implemented by the gateway on its store.
type SubscriptionService interface {
	// Plans lists every plan.
	Plans(ctx context.Context) ([]Plan, error)
	// Create requests product for purpose under plan ("" for the default
	// plan) on behalf of partner, with a Kafka value format ("" for json).
	Create(ctx context.Context, partner, product, purpose, plan, kafkaFormat string) (Subscription, error)
	// SetKafkaFormat changes a subscription's Kafka value format as actor.
	SetKafkaFormat(ctx context.Context, id, format, actor string) (Subscription, error)
	// List returns the partner's subscriptions ("": every partner's),
	// oldest first.
	List(ctx context.Context, partner string) ([]Subscription, error)
	// Get returns one subscription; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (Subscription, error)
	// Transition applies action (approve, reject, suspend, resume, revoke)
	// as actor, with a reason.
	Transition(ctx context.Context, id, action, actor, reason string) (Subscription, error)
	// Admin reports whether the partner may act on any subscription.
	Admin(partner string) bool
}

// SubscriptionActions are the actions POST /v1/subscriptions/{id}/{action}
// takes.
var SubscriptionActions = []string{"approve", "reject", "suspend", "resume", "revoke"}

const maxBody = 64 << 10

// subscriptions answers with the service, or a 404 when the gateway runs
// without one. params are the query parameters the endpoint takes.
func (s *Server) subscriptions(w http.ResponseWriter, r *http.Request, params ...string) (SubscriptionService, *Access, bool) {
	acc, ok := s.authorize(w, r, nil)
	if !ok || !onlyParams(w, r, params...) {
		return nil, nil, false
	}
	if s.cfg.Subscriptions == nil {
		writeProblem(w, r, newProblem(ProblemNotFound, http.StatusNotFound, "this gateway serves no subscriptions"))
		return nil, nil, false
	}
	return s.cfg.Subscriptions, acc, true
}

// serviceProblem maps a service failure to a problem, logging server
// failures.
func (s *Server) serviceProblem(r *http.Request, err error) *Problem {
	var te *IllegalTransitionError
	switch {
	case errors.As(err, &te):
		return newProblem(ProblemIllegalTransition, http.StatusConflict, te.Error())
	case errors.Is(err, ErrInvalid):
		return newProblem(ProblemInvalidRequest, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrConflict):
		return newProblem(ProblemConflict, http.StatusConflict, err.Error())
	case errors.Is(err, ErrNotFound):
		return newProblem(ProblemUnknownSubscription, http.StatusNotFound, "no such subscription")
	case errors.Is(err, ErrAuditUnavailable):
		return auditUnavailable(err)
	}
	if s.cfg.Log != nil {
		s.cfg.Log.Error("subscriptions failed", "path", r.URL.Path, "err", err)
	}
	return newProblem(ProblemInternal, http.StatusServiceUnavailable, "subscriptions could not be read or written; retry")
}

// readBody decodes a JSON object body into v, strictly.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		writeProblem(w, r, newProblem(ProblemInvalidRequest, http.StatusBadRequest, "the body is not a valid JSON request: "+err.Error()))
		return false
	}
	return true
}

func (s *Server) listPlans(w http.ResponseWriter, r *http.Request) {
	svc, _, ok := s.subscriptions(w, r)
	if !ok {
		return
	}
	plans, err := svc.Plans(r.Context())
	if err != nil {
		writeProblem(w, r, s.serviceProblem(r, err))
		return
	}
	if plans == nil {
		plans = []Plan{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"plans": plans})
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) {
	svc, acc, ok := s.subscriptions(w, r)
	if !ok {
		return
	}
	var req struct {
		Product     string `json:"product"`
		Purpose     string `json:"purpose"`
		Plan        string `json:"plan"`
		KafkaFormat string `json:"kafka_format"`
	}
	if !readBody(w, r, &req) {
		return
	}
	bad := func(detail string) {
		writeProblem(w, r, newProblem(ProblemInvalidRequest, http.StatusBadRequest, detail))
	}
	if !s.knownProduct(req.Product) {
		bad("product " + quote(req.Product) + " is not a data product; GET /v1/products lists them")
		return
	}
	if !products.ValidPurpose(req.Purpose) {
		bad("purpose " + quote(req.Purpose) + " is not one of billing, fraud-prevention, network-analytics, marketing, regulatory")
		return
	}
	if req.KafkaFormat != "" && !slices.Contains(KafkaFormats, req.KafkaFormat) {
		bad("kafka_format " + quote(req.KafkaFormat) + " is not one of json, avro")
		return
	}
	sub, err := svc.Create(r.Context(), acc.Partner, req.Product, req.Purpose, req.Plan, req.KafkaFormat)
	if err != nil {
		writeProblem(w, r, s.serviceProblem(r, err))
		return
	}
	w.Header().Set("Location", "/v1/subscriptions/"+sub.ID)
	writeJSON(w, http.StatusCreated, sub)
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	svc, acc, ok := s.subscriptions(w, r, "partner")
	if !ok {
		return
	}
	// The admin sees every partner's subscriptions (?partner= narrows
	// them to one); a partner only its own.
	q := r.URL.Query()
	partner := q.Get("partner")
	switch {
	case q.Has("partner") && !idPattern.MatchString(partner):
		writeProblem(w, r, newProblem(ProblemInvalidQuery, http.StatusBadRequest, "partner "+quote(partner)+" is not a partner id"))
		return
	case svc.Admin(acc.Partner):
		// Every partner's ("") or the one named.
	case partner == "" || partner == acc.Partner:
		partner = acc.Partner
	default:
		writeProblem(w, r, newProblem(ProblemForbiddenAdmin, http.StatusForbidden,
			"partner "+acc.Partner+" may only list its own subscriptions; leave out partner= (only the data owner's admin identity may name another)"))
		return
	}
	subs, err := svc.List(r.Context(), partner)
	if err != nil {
		writeProblem(w, r, s.serviceProblem(r, err))
		return
	}
	if subs == nil {
		subs = []Subscription{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": subs})
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) {
	svc, acc, ok := s.subscriptions(w, r)
	if !ok {
		return
	}
	if sub, ok := s.visibleSubscription(w, r, svc, acc); ok {
		writeJSON(w, http.StatusOK, sub)
	}
}

// visibleSubscription reads subscription {id} if the caller holds it or is
// the admin, or writes the 404 (another partner's is not revealed).
func (s *Server) visibleSubscription(w http.ResponseWriter, r *http.Request, svc SubscriptionService, acc *Access) (Subscription, bool) {
	sub, err := svc.Get(r.Context(), chi.URLParam(r, "id"))
	if err == nil && sub.Partner != acc.Partner && !svc.Admin(acc.Partner) {
		err = ErrNotFound
	}
	if err != nil {
		writeProblem(w, r, s.serviceProblem(r, err))
		return Subscription{}, false
	}
	return sub, true
}

// patchSubscription changes what a subscription's holder or the admin may
// change without a new approval: today its Kafka value format.
func (s *Server) patchSubscription(w http.ResponseWriter, r *http.Request) {
	svc, acc, ok := s.subscriptions(w, r)
	if !ok {
		return
	}
	sub, ok := s.visibleSubscription(w, r, svc, acc)
	if !ok {
		return
	}
	var req struct {
		KafkaFormat *string `json:"kafka_format"`
	}
	if !readBody(w, r, &req) {
		return
	}
	if req.KafkaFormat == nil || !slices.Contains(KafkaFormats, *req.KafkaFormat) {
		got := "missing"
		if req.KafkaFormat != nil {
			got = quote(*req.KafkaFormat)
		}
		writeProblem(w, r, newProblem(ProblemInvalidRequest, http.StatusBadRequest,
			"kafka_format is "+got+"; want {\"kafka_format\": \"json\"} or {\"kafka_format\": \"avro\"}"))
		return
	}
	sub, err := svc.SetKafkaFormat(r.Context(), sub.ID, *req.KafkaFormat, acc.Partner)
	if err != nil {
		writeProblem(w, r, s.serviceProblem(r, err))
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

func (s *Server) transitionSubscription(w http.ResponseWriter, r *http.Request) {
	svc, acc, ok := s.subscriptions(w, r)
	if !ok {
		return
	}
	action := chi.URLParam(r, "action")
	known := false
	for _, a := range SubscriptionActions {
		known = known || a == action
	}
	if !known {
		writeProblem(w, r, newProblem(ProblemNotFound, http.StatusNotFound,
			"no subscription action "+quote(action)+"; the actions are "+strings.Join(SubscriptionActions, ", ")))
		return
	}
	if !svc.Admin(acc.Partner) {
		writeProblem(w, r, newProblem(ProblemForbiddenAdmin, http.StatusForbidden,
			"partner "+acc.Partner+" may not "+action+" subscriptions; only the data owner's admin identity may"))
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if !readBody(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Reason) == "" {
		writeProblem(w, r, newProblem(ProblemInvalidRequest, http.StatusBadRequest, "a reason is required: {\"reason\": \"...\"}"))
		return
	}
	sub, err := svc.Transition(r.Context(), chi.URLParam(r, "id"), action, acc.Partner, req.Reason)
	if err != nil {
		writeProblem(w, r, s.serviceProblem(r, err))
		return
	}
	writeJSON(w, http.StatusOK, sub)
}

func (s *Server) knownProduct(id string) bool {
	if s.cfg.Catalog == nil {
		return false
	}
	_, ok := s.cfg.Catalog.Get(id)
	return ok
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hamba/avro/v2"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/internal/consent"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/masking"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/store"
	"github.com/sluicehq/sluice/schemas"
)

// access decides what a caller may see of a product and compiles it into a
// view: once per (partner, product, purpose, policy revision), never per
// record. It fails closed: any error on the way is a denial.
type access struct {
	verifier *auth.Verifier
	partners *products.Partners
	engine   *policy.Engine
	consent  *consent.Store
	secret   []byte
	layouts  map[string]*schemas.Layout

	mu    sync.Mutex
	plans map[planKey]*plan
	gen   chan struct{} // closed and replaced when plans may have changed
	keys  map[string][]byte
	log   *slog.Logger
	store store.Store // active subscriptions are the grants; API keys
	// limits enforces the subscriptions' plans; nil: unlimited.
	limits *limiter
	// audit records every decision; nil: none (tests of access alone).
	audit *auditor
}

type planKey struct{ partner, product, purpose, revision string }

// plan is a compiled decision.
type plan struct {
	partner  *products.Partner
	product  *products.Product
	purpose  string
	decision policy.Decision
	view     *view.Governed // nil when denied
	fields   []httpapi.FieldTreatment
	err      error // why it is denied beyond the decision (compile failure)
	// transient: denied for a passing reason (consent still loading); not
	// cached, the next request compiles again.
	transient bool
}

func newAccess(v *auth.Verifier, partners *products.Partners, engine *policy.Engine, cs *consent.Store, secret []byte, layouts map[string]*schemas.Layout) *access {
	return &access{verifier: v, partners: partners, engine: engine, consent: cs, secret: secret, layouts: layouts,
		plans: map[planKey]*plan{}, gen: make(chan struct{}), keys: map[string][]byte{}, log: slog.Default()}
}

// changed returns a channel closed the next time plans may change (a new
// policy revision).
func (a *access) changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// wake tells open streams to authorize again (a subscription or key
// changed); plans stay cached.
func (a *access) wake() {
	a.mu.Lock()
	defer a.mu.Unlock()
	close(a.gen)
	a.gen = make(chan struct{})
}

// policyChanged drops plans of old revisions and wakes streams.
func (a *access) policyChanged(rev string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.plans {
		if k.revision != rev {
			delete(a.plans, k)
		}
	}
	close(a.gen)
	a.gen = make(chan struct{})
}

// partnerKey is the partner's pseudonym key (cached; derivation is not free).
func (a *access) partnerKey(partner string) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if k, ok := a.keys[partner]; ok {
		return k, nil
	}
	k, err := masking.DeriveKey(a.secret, partner, "")
	if err != nil {
		return nil, err
	}
	a.keys[partner] = k
	return k, nil
}

// plan returns the compiled plan for a partner's grant of a product.
func (a *access) plan(ctx context.Context, partner *products.Partner, p *products.Product, purpose string) *plan {
	rev := a.engine.Revision()
	key := planKey{partner.ID, p.ID, purpose, rev}
	a.mu.Lock()
	pl := a.plans[key]
	a.mu.Unlock()
	if pl != nil {
		return pl
	}
	pl = a.compile(ctx, partner, p, purpose)
	a.mu.Lock()
	if a.engine.Revision() == rev && !pl.transient {
		a.plans[key] = pl
	}
	a.mu.Unlock()
	return pl
}

// policyInput describes a partner's request for a product to the policy.
// The gateway builds the same input when a subscription opens.
func PolicyInput(p *products.Partner, prod *products.Product, purpose string) policy.Input {
	in := policy.Input{
		Partner: policy.Partner{ID: p.ID, Name: p.Name, Type: string(p.Type), Attributes: p.Attributes},
		Grant:   policy.Grant{Product: prod.ID, Purpose: purpose},
		Product: policy.Product{ID: prod.ID},
	}
	types := map[string]string{}
	if rs, ok := prod.Current().Schema.(*avro.RecordSchema); ok {
		for _, f := range rs.Fields() {
			types[f.Name()] = avroTypeName(f.Type())
		}
	}
	for _, f := range prod.Fields {
		in.Product.Fields = append(in.Product.Fields, policy.Field{
			Name:           f.Name,
			Classification: string(f.Classification),
			Type:           types[f.Name],
		})
	}
	return in
}

// avroTypeName names a field's type as policy.Field.Type documents: a
// nullable union by its other branch, a logical type by its underlying type.
func avroTypeName(s avro.Schema) string {
	if u, ok := s.(*avro.UnionSchema); ok {
		var branches []avro.Schema
		for _, t := range u.Types() {
			if t.Type() != avro.Null {
				branches = append(branches, t)
			}
		}
		if len(branches) == 1 {
			return string(branches[0].Type())
		}
		return string(avro.Union)
	}
	return string(s.Type())
}

func (a *access) compile(ctx context.Context, partner *products.Partner, p *products.Product, purpose string) *plan {
	d, err := a.engine.Decide(ctx, PolicyInput(partner, p, purpose))
	if err != nil {
		// The policy failed (fail closed). Its error names files and rules:
		// log it for the operator, tell the partner only that it failed.
		a.log.Error("policy evaluation failed; access denied", "partner", partner.ID, "product", p.ID, "purpose", purpose, "revision", d.Revision, "err", err)
		d.Allow = false
		d.Reason = "the policy could not be evaluated (revision " + d.Revision + "); access is denied and the error has been logged for the operator"
	}
	if err != nil || !d.Allow {
		return &plan{partner: partner, product: p, purpose: purpose, decision: d, err: err}
	}
	return a.compileFrom(partner, p, purpose, d)
}

// compileFrom compiles an allowing decision into a view.
func (a *access) compileFrom(partner *products.Partner, p *products.Product, purpose string, d policy.Decision) *plan {
	l := a.layouts[p.ID]
	pl := &plan{partner: partner, product: p, purpose: purpose, decision: d}
	deny := func(err error) *plan {
		pl.err = err
		pl.view = nil
		pl.decision.Allow = false
		pl.decision.Reason = "the policy's decision cannot be applied: " + err.Error()
		return pl
	}
	row, err := compileCondition(d.Row, l)
	if err != nil {
		return deny(err)
	}
	key, err := a.partnerKey(partner.ID)
	if err != nil {
		return deny(err)
	}
	vp := view.Plan{Key: partner.ID + "/" + p.ID + "/" + purpose + "/" + d.Revision, Row: row}
	if d.ConsentRequired && p.SubjectField != "" {
		if a.consent == nil {
			return deny(errors.New("consent is required but no consent topic is read"))
		}
		select {
		case <-a.consent.Ready():
		default:
			pl.transient = true
			return deny(errors.New("consent is required and the consent state is still loading; retry shortly"))
		}
		bit := a.consent.Bit(purpose)
		if bit == 0 {
			return deny(fmt.Errorf("consent is required for purpose %q, which the consent store does not track", purpose))
		}
		cs := a.consent
		vp.Consent = func(subject []byte) bool { return cs.OptedOut(subject, bit) }
		vp.Subject = p.SubjectField
	}
	for _, f := range l.Fields {
		treat, ok := d.Fields[f.Name]
		fs, _ := p.Field(f.Name)
		ft := httpapi.FieldTreatment{Name: f.Name, Classification: string(fs.Classification)}
		if !ok {
			ft.Treatment = map[string]any{"op": "drop", "why": "not mentioned by the policy"}
			pl.fields = append(pl.fields, ft)
			continue
		}
		spec, err := masking.ParseSpec(treat)
		if err != nil {
			return deny(fmt.Errorf("field %s: %w", f.Name, err))
		}
		t, err := masking.Compile(spec, key)
		if err != nil {
			return deny(fmt.Errorf("field %s: %w", f.Name, err))
		}
		ft.Treatment = spec.Map()
		pl.fields = append(pl.fields, ft)
		vp.Fields = append(vp.Fields, view.FieldPlan{Name: f.Name, Transform: t})
	}
	g, err := view.NewGoverned(l, vp)
	if err != nil {
		return deny(err)
	}
	pl.view = g
	return pl
}

// grant picks the partner's active subscription of a product: the one for
// purpose, or, without a purpose, the oldest. ok is false without one;
// states then names the states of the partner's other subscriptions of it.
func (a *access) grant(ctx context.Context, partner, product, purpose string) (sub store.Subscription, states []string, err error) {
	subs, err := a.store.Subscriptions(ctx, store.Filter{PartnerID: partner, Product: product})
	if err != nil {
		return sub, nil, err
	}
	for _, s := range subs {
		if s.State != store.StateActive {
			states = append(states, s.Purpose+": "+string(s.State))
			continue
		}
		if purpose == "" || s.Purpose == purpose {
			return s, nil, nil
		}
		states = append(states, s.Purpose+": active")
	}
	return sub, states, nil
}

// identifyCredential checks the credential, an API key from the store
// (slk_...) or a JWT, and names it for the audit trail: "key:<id>" for an API key, "token" for a JWT (never a
// secret).
func (a *access) identifyCredential(r *http.Request) (partner string, expires time.Time, credential string, f *auth.Failure) {
	h := r.Header.Get("Authorization")
	if tok, pf := auth.ParseAuthorization(h); pf == nil && strings.HasPrefix(tok, "slk_") && a.store != nil {
		k, err := a.store.VerifyKey(r.Context(), tok)
		if err != nil {
			return "", time.Time{}, "", keyFailure(err)
		}
		return k.PartnerID, k.ExpiresAt, "key:" + k.ID, nil
	}
	id, f := a.verifier.Verify(r.Context(), h)
	if f != nil {
		return "", time.Time{}, "", f
	}
	return id.Partner, id.Expires, "token", nil
}

// keyFailure maps an API key error to a 401 problem (never naming the key).
func keyFailure(err error) *auth.Failure {
	f := &auth.Failure{Type: httpapi.ProblemKeyInvalid, Status: http.StatusUnauthorized, Detail: "the API key is not valid; ask the data owner for a new one"}
	switch {
	case errors.Is(err, store.ErrKeyExpired):
		f.Type, f.Detail = httpapi.ProblemKeyExpired, "the API key has expired; ask the data owner for a new one"
	case errors.Is(err, store.ErrKeyRevoked):
		f.Type, f.Detail = httpapi.ProblemKeyRevoked, "the API key was revoked"
	case errors.Is(err, store.ErrKeyMalformed), errors.Is(err, store.ErrKeyNotFound):
	default:
		f.Detail = "the API key could not be checked; retry"
	}
	return f
}

// authorize is httpapi.Config.Authorize.
func (a *access) authorize(r *http.Request, p *products.Product, purpose string) (*httpapi.Access, *httpapi.Problem) {
	pid, expires, credential, f := a.identifyCredential(r)
	if f != nil {
		return nil, authProblem(f)
	}
	partner, f := auth.LookupPartner(a.partners, auth.Identity{Partner: pid})
	if f != nil {
		return nil, authProblem(f)
	}
	acc := &httpapi.Access{Partner: partner.ID, Expires: expires}
	if p == nil {
		return acc, nil // catalog endpoints: a valid identity suffices
	}
	g, states, err := a.grant(r.Context(), partner.ID, p.ID, purpose)
	if err != nil {
		a.log.Error("store: subscriptions lookup failed", "partner", partner.ID, "product", p.ID, "err", err)
		return nil, httpapi.NewProblem(httpapi.ProblemInternal, http.StatusServiceUnavailable, "subscriptions could not be read; retry")
	}
	if g.ID == "" {
		if pr := a.record(r, audit.Access{Partner: partner.ID, Product: p.ID, Purpose: purpose, Door: doorOf(r.URL.Path),
			Revision: a.engine.Revision(), Reason: "no-grant", Credential: credential}); pr != nil {
			return nil, pr
		}
		detail := "partner " + partner.ID + " has no active subscription of product " + p.ID
		if purpose != "" {
			detail += " for purpose " + purpose
		}
		if len(states) > 0 {
			sort.Strings(states)
			detail += fmt.Sprintf(" (its subscriptions: %s)", strings.Join(states, ", "))
		}
		return nil, httpapi.NewProblem(httpapi.ProblemNoGrant, http.StatusForbidden, detail)
	}
	acc.Purpose = g.Purpose
	if a.limits != nil {
		plan, err := a.limits.plan(r.Context(), g.PlanID)
		var q httpapi.Quota
		if err == nil {
			q, err = a.limits.quota(r.Context(), partner.ID, p.ID, g.Purpose, plan)
		}
		if err != nil {
			a.log.Error("store: plan or usage lookup failed", "partner", partner.ID, "product", p.ID, "plan", g.PlanID, "err", err)
			return nil, httpapi.NewProblem(httpapi.ProblemInternal, http.StatusServiceUnavailable, "the subscription's plan could not be read; retry")
		}
		if f := formatOf(r); f != "" && !slices.Contains(plan.Formats, f) {
			if pr := a.record(r, audit.Access{Partner: partner.ID, Product: p.ID, Purpose: g.Purpose, Door: doorOf(r.URL.Path),
				Revision: a.engine.Revision(), Reason: "format-not-in-plan", Subscription: g.ID, Credential: credential}); pr != nil {
				return nil, pr
			}
			return nil, httpapi.NewProblem(httpapi.ProblemFormatNotInPlan, http.StatusForbidden, fmt.Sprintf(
				"plan %s of the subscription %s allows %s, not %s; ask for a plan with %s, or read another way",
				plan.ID, g.ID, strings.Join(plan.Formats, ", "), f, f))
		}
		acc.Quota = q
	}
	pl := a.plan(r.Context(), partner, p, g.Purpose)
	acc.Revision = pl.decision.Revision
	acc.Explain = explain(pl)
	ev := accessEvent(pl, doorOf(r.URL.Path), credential)
	ev.Subscription = g.ID
	if pr := a.record(r, ev); pr != nil {
		return nil, pr
	}
	if pl.view == nil {
		pr := httpapi.NewProblem(httpapi.ProblemDenied, http.StatusForbidden, "policy denies "+partner.ID+" access to "+p.ID+" for "+g.Purpose+": "+pl.decision.Reason)
		if errors.Is(pl.err, policy.ErrFailed) {
			pr.Type = httpapi.ProblemPolicyError
		}
		return acc, pr
	}
	acc.View = pl.view
	return acc, nil
}

func explain(pl *plan) *httpapi.Explain {
	e := &httpapi.Explain{
		Partner: pl.partner.ID, Product: pl.product.ID, Purpose: pl.purpose,
		Allowed: pl.view != nil, Reason: pl.decision.Reason, PolicyRevision: pl.decision.Revision,
		RowCondition: pl.decision.Row.String(), ConsentRequired: pl.decision.ConsentRequired && pl.product.SubjectField != "", Fields: pl.fields,
	}
	if pl.view != nil {
		e.Schema = pl.view.Schema()
	}
	return e
}

// formatOf is the plan format a request reads records in ("" for
// requests that read none: previews, catalog).
func formatOf(r *http.Request) string {
	switch doorOf(r.URL.Path) {
	case "sse":
		return store.FormatSSE
	case "rest":
		if httpapi.WantsNDJSON(r) {
			return store.FormatNDJSON
		}
		return store.FormatJSON
	}
	return ""
}

func authProblem(f *auth.Failure) *httpapi.Problem {
	p := httpapi.NewProblem(f.Type, f.Status, f.Detail).WithTitle(f.Title())
	p.Challenge = f.Challenge()
	return p
}

// ViewSchema derives the Avro schema of the view a decision gives of a
// product, as the gateway would serve it (`sluice policy explain` prints
// it). The schema does not depend on keys, so none is needed.
func ViewSchema(p *products.Product, d policy.Decision) (json.RawMessage, error) {
	l, err := schemas.NewLayout(p.Current().Schema)
	if err != nil {
		return nil, err
	}
	vp := view.Plan{Key: "explain"}
	key := make([]byte, masking.KeyLen)
	for _, f := range l.Fields {
		treat, ok := d.Fields[f.Name]
		if !ok {
			continue
		}
		spec, err := masking.ParseSpec(treat)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		t, err := masking.Compile(spec, key)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		vp.Fields = append(vp.Fields, view.FieldPlan{Name: f.Name, Transform: t})
	}
	g, err := view.NewGoverned(l, vp)
	if err != nil {
		return nil, err
	}
	return g.Schema(), nil
}

// record puts an access decision in the audit trail; a decision the trail
// cannot take is a 503 (fail closed), whatever the decision was.
func (a *access) record(r *http.Request, ev audit.Access) *httpapi.Problem {
	if a.audit == nil {
		return nil
	}
	if err := a.audit.decision(r.Context(), ev); err != nil {
		a.log.Error("audit: access decision not persisted; refusing", "partner", ev.Partner, "product", ev.Product, "err", err)
		return httpapi.NewProblem(httpapi.ProblemAuditUnavailable, http.StatusServiceUnavailable,
			"the audit trail cannot record this access right now, so no data is served (fail closed); retry shortly")
	}
	return nil
}

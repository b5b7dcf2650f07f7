package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/products"
)

// Access is what a caller may see of a product, decided by the gateway
// (identity, grant, policy) before any record is read.
type Access struct {
	Partner  string
	Purpose  string
	View     view.View // nil when denied
	Expires  time.Time // the credential's expiry; streams end then
	Revision string    // policy revision of the plan
	Explain  *Explain  // the effective view, for /view
	// Quota is the subscription's plan (rate, streams, monthly quota,
	// metering); nil is unlimited.
	Quota Quota
}

// Explain is a caller's effective view of a product.
type Explain struct {
	Partner         string           `json:"partner"`
	Product         string           `json:"product"`
	Purpose         string           `json:"purpose"`
	Allowed         bool             `json:"allowed"`
	Reason          string           `json:"reason"`
	PolicyRevision  string           `json:"policy_revision"`
	RowCondition    string           `json:"row_condition"`
	ConsentRequired bool             `json:"consent_required"`
	Fields          []FieldTreatment `json:"fields"`
	Schema          json.RawMessage  `json:"schema,omitempty"`
}

// FieldTreatment is what the view does to one field.
type FieldTreatment struct {
	Name           string         `json:"name"`
	Classification string         `json:"classification"`
	Treatment      map[string]any `json:"treatment"`
}

// Authorizer decides a request's access to a product (nil product: catalog
// endpoints, where a valid identity suffices). purpose is the caller's
// ?purpose=, "" for its default grant. A non-nil problem refuses the
// request; Access may still be set to explain a denial.
type Authorizer func(r *http.Request, p *products.Product, purpose string) (*Access, *Problem)

// authorize runs the Authorizer and writes the refusal.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, p *products.Product) (*Access, bool) {
	purpose := r.URL.Query().Get("purpose")
	if p == nil {
		purpose = "" // identity only
	} else if purpose != "" && !products.ValidPurpose(purpose) {
		if _, ok := s.authorize(w, r, nil); ok { // identity first, then the 400
			writeProblem(w, r, newProblem(ProblemInvalidQuery, http.StatusBadRequest,
				"purpose "+quote(purpose)+" is not one of billing, fraud-prevention, network-analytics, marketing, regulatory"))
		}
		return nil, false
	}
	acc, pr := s.cfg.Authorize(r, p, purpose)
	if pr != nil {
		challenge(w, pr)
		writeProblem(w, r, pr)
		return nil, false
	}
	return acc, true
}

func (s *Server) getView(w http.ResponseWriter, r *http.Request) {
	p, _, ok := s.product(w, r)
	if !ok || !onlyParams(w, r, "purpose") {
		return
	}
	purpose := r.URL.Query().Get("purpose")
	if purpose != "" && !products.ValidPurpose(purpose) {
		s.authorize(w, r, p) // writes the 401 or 400
		return
	}
	acc, pr := s.cfg.Authorize(r, p, purpose)
	if acc == nil || acc.Explain == nil {
		if pr == nil {
			pr = newProblem(ProblemInternal, http.StatusInternalServerError, "no view was compiled")
		}
		challenge(w, pr)
		writeProblem(w, r, pr)
		return
	}
	// A denied view is still explained (200): why, and by which revision.
	writeJSON(w, http.StatusOK, acc.Explain)
}

// challenge sets WWW-Authenticate for a credential failure: the RFC 6750
// challenge the verifier gave, or a bare one for any other 401.
func challenge(w http.ResponseWriter, pr *Problem) {
	switch {
	case pr.Challenge != "":
		w.Header().Set("WWW-Authenticate", pr.Challenge)
	case pr.Status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
}

package httpapi

import (
	"encoding/json"
	"net/http"
)

// Problem is an RFC 9457 problem detail. Type is stable: clients branch on it.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Extensions.
	EarliestCursor string `json:"earliest_cursor,omitempty"`
	Example        string `json:"example,omitempty"`
	// Limit names the plan limit a 429 or 403 quota problem hit, e.g.
	// "records_per_second", "concurrent_streams", "monthly_record_quota".
	Limit string `json:"limit,omitempty"`
	// Resets is when an exhausted monthly quota resets (RFC 3339).
	Resets string `json:"resets,omitempty"`
	// Challenge, when set, is sent as WWW-Authenticate (RFC 6750).
	Challenge string `json:"-"`
}

// Problem types. Their URNs never change; titles are informative.
const (
	ProblemUnknownProduct = "urn:sluice:problem:unknown-product"
	ProblemInvalidCursor  = "urn:sluice:problem:invalid-cursor"
	ProblemInvalidFrom    = "urn:sluice:problem:invalid-from"
	ProblemInvalidLimit   = "urn:sluice:problem:invalid-limit"
	ProblemInvalidQuery   = "urn:sluice:problem:invalid-query"
	ProblemCursorExpired  = "urn:sluice:problem:cursor-expired"
	ProblemNotFound       = "urn:sluice:problem:not-found"
	ProblemMethod         = "urn:sluice:problem:method-not-allowed"
	ProblemUpstream       = "urn:sluice:problem:upstream-unavailable"
	ProblemShuttingDown   = "urn:sluice:problem:shutting-down"
	ProblemInternal       = "urn:sluice:problem:internal"
	ProblemNoGrant        = "urn:sluice:problem:no-grant"
	ProblemDenied         = "urn:sluice:problem:policy-denied"
	ProblemPolicyError    = "urn:sluice:problem:policy-error"
	ProblemKeyInvalid     = "urn:sluice:problem:key-invalid"
	ProblemKeyExpired     = "urn:sluice:problem:key-expired"
	ProblemKeyRevoked     = "urn:sluice:problem:key-revoked"

	ProblemInvalidRequest      = "urn:sluice:problem:invalid-request"
	ProblemUnknownSubscription = "urn:sluice:problem:unknown-subscription"
	ProblemConflict            = "urn:sluice:problem:conflict"
	ProblemIllegalTransition   = "urn:sluice:problem:illegal-transition"
	ProblemForbiddenAdmin      = "urn:sluice:problem:forbidden-admin"
	ProblemForbiddenAudit      = "urn:sluice:problem:forbidden-audit"

	ProblemRateLimited     = "urn:sluice:problem:rate-limited"
	ProblemStreamLimit     = "urn:sluice:problem:stream-limit"
	ProblemQuotaExhausted  = "urn:sluice:problem:quota-exhausted"
	ProblemFormatNotInPlan = "urn:sluice:problem:format-not-in-plan"

	ProblemAuditUnavailable = "urn:sluice:problem:audit-unavailable"

	ProblemUnknownKey     = "urn:sluice:problem:unknown-key"
	ProblemUnknownPartner = "urn:sluice:problem:unknown-partner"
)

var titles = map[string]string{
	ProblemUnknownProduct: "Unknown data product",
	ProblemInvalidCursor:  "Invalid cursor",
	ProblemInvalidFrom:    "Invalid start position",
	ProblemInvalidLimit:   "Invalid limit",
	ProblemInvalidQuery:   "Invalid query",
	ProblemCursorExpired:  "Cursor older than the product's retention",
	ProblemNotFound:       "Not found",
	ProblemMethod:         "Method not allowed",
	ProblemUpstream:       "Upstream Kafka unavailable",
	ProblemShuttingDown:   "Server shutting down",
	ProblemInternal:       "Internal error",
	ProblemNoGrant:        "No grant for this product",
	ProblemDenied:         "Denied by policy",
	ProblemPolicyError:    "Policy evaluation failed; access denied",
	ProblemKeyInvalid:     "API key not valid",
	ProblemKeyExpired:     "API key expired",
	ProblemKeyRevoked:     "API key revoked",

	ProblemInvalidRequest:      "Invalid request body",
	ProblemUnknownSubscription: "Unknown subscription",
	ProblemConflict:            "Conflicts with an existing subscription",
	ProblemIllegalTransition:   "Action not allowed in the subscription's state",
	ProblemForbiddenAdmin:      "Admin role required",
	ProblemForbiddenAudit:      "Regulator role required",

	ProblemRateLimited:     "Rate limit of the plan reached",
	ProblemStreamLimit:     "Concurrent stream limit of the plan reached",
	ProblemQuotaExhausted:  "Monthly record quota of the plan exhausted",
	ProblemFormatNotInPlan: "Format not in the plan",

	ProblemAuditUnavailable: "Audit trail unavailable; access refused",

	ProblemUnknownKey:     "Unknown API key",
	ProblemUnknownPartner: "Unknown partner",
}

func newProblem(typ string, status int, detail string) *Problem {
	return &Problem{Type: typ, Title: titles[typ], Status: status, Detail: detail}
}

// NewProblem builds a problem; its title comes from the type when known.
func NewProblem(typ string, status int, detail string) *Problem {
	return newProblem(typ, status, detail)
}

// WithTitle sets the title (for types defined outside this package).
func (p *Problem) WithTitle(t string) *Problem {
	if t != "" {
		p.Title = t
	}
	return p
}

func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

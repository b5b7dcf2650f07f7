package httpapi

// Checks of the OpenAPI document that need the package's internals: the
// chi router (to compare the registered routes with the documented paths),
// the table of problem types (with gateway/auth's token problems) and the
// security every /v1 operation declares. Responses of a running gateway
// are validated against the document in openapi_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/gateway/internal/metrics"
)

// oaLoadDoc parses and validates the embedded document.
func oaLoadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentValid(t *testing.T) {
	var raw map[string]any
	if err := json.Unmarshal(OpenAPI(), &raw); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	doc := oaLoadDoc(t)
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() || !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	if doc.JSONSchemaDialect != "https://spec.openapis.org/oas/3.1/dialect/base" {
		t.Errorf("jsonSchemaDialect = %q, want the OAS 3.1 base dialect", doc.JSONSchemaDialect)
	}
	if doc.Info == nil || doc.Info.Version != "1" || doc.Info.Title == "" {
		t.Errorf("info = %+v, want a title and version \"1\"", doc.Info)
	}
	for _, name := range []string{"Problem", "Product", "Field", "ProductList", "RecordsPage", "Record", "Readiness", "Cursor",
		"AvroSchema", "ViewSchema", "Explain", "FieldTreatment", "Treatment", "Purpose", "PolicyRevision",
		"StreamCursor", "StreamShutdown", "StreamReauthenticate", "JWKSet", "JWK"} {
		if doc.Components.Schemas[name] == nil {
			t.Errorf("components.schemas.%s is missing", name)
		}
	}

	// Every operation has an operationId, a summary, a 2xx answer and a
	// default; every error answer (4xx/5xx) except /readyz's 503 is a
	// problem+json Problem.
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s: needs an operationId and a summary", where)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q also used by %s", where, op.OperationID, prev)
			}
			ids[op.OperationID] = where
			ok2xx := false
			for code, ref := range op.Responses.Map() {
				if strings.HasPrefix(code, "2") {
					ok2xx = true
					continue
				}
				if path == "/readyz" && code == "503" {
					continue
				}
				if path == "/metrics" {
					continue // promhttp's own errors are text/plain
				}
				ct := ref.Value.Content
				if strings.HasPrefix(path, "/schema-registry/") {
					// The registry's clients parse its own error shape.
					if len(ct) != 1 || ct[srContentType] == nil || !oaRefersTo(ct[srContentType].Schema, "#/components/schemas/RegistryError") {
						t.Errorf("%s: response %s must be %s RegistryError only, has %v", where, code, srContentType, ct)
					}
					continue
				}
				if len(ct) != 1 || ct["application/problem+json"] == nil {
					t.Errorf("%s: response %s must be application/problem+json only, has %v", where, code, ct)
					continue
				}
				if !oaRefersTo(ct["application/problem+json"].Schema, "#/components/schemas/Problem") {
					t.Errorf("%s: response %s is not (a narrowing of) #/components/schemas/Problem", where, code)
				}
			}
			if !ok2xx {
				t.Errorf("%s: no 2xx response", where)
			}
			if path != "/metrics" && op.Responses.Default() == nil {
				t.Errorf("%s: no default (problem) response", where)
			}
		}
	}
}

// oaRefersTo reports whether s is ref or an allOf including ref.
func oaRefersTo(s *openapi3.SchemaRef, ref string) bool {
	if s == nil {
		return false
	}
	if s.Ref == ref {
		return true
	}
	if s.Value == nil {
		return false
	}
	for _, sub := range s.Value.AllOf {
		if sub.Ref == ref {
			return true
		}
	}
	return false
}

// Every problem type the package can emit is listed in the Problem schema,
// and nothing else is.
func TestOpenAPIProblemTypes(t *testing.T) {
	doc := oaLoadDoc(t)
	typ := doc.Components.Schemas["Problem"].Value.Properties["type"].Value
	var documented []string
	for _, v := range typ.Enum {
		documented = append(documented, v.(string))
	}
	// The package's own types, and the token problems gateway/auth defines
	// (the gateway passes them through).
	var emitted []string
	for k := range titles {
		emitted = append(emitted, k)
	}
	emitted = append(emitted, auth.ProblemTypes()...)
	slices.Sort(documented)
	slices.Sort(emitted)
	emitted = slices.Compact(emitted)
	if !slices.Equal(documented, emitted) {
		t.Errorf("Problem.type enum %v\n  differs from the package's problem types %v", documented, emitted)
	}
	desc := doc.Components.Schemas["Problem"].Value.Description
	for _, k := range emitted {
		if !strings.Contains(desc, "`"+k+"`") {
			t.Errorf("Problem's description table does not mention %s", k)
		}
	}
}

// oaNarrowedTypes returns the problem types a problem+json response narrows
// Problem.type to (its enum or const), nil when it does not narrow it.
func oaNarrowedTypes(r *openapi3.ResponseRef) []string {
	if r == nil || r.Value == nil || r.Value.Content["application/problem+json"] == nil {
		return nil
	}
	s := r.Value.Content["application/problem+json"].Schema
	if s == nil || s.Value == nil || s.Value.Properties["type"] == nil {
		return nil
	}
	t := s.Value.Properties["type"].Value
	var out []string
	for _, v := range t.Enum {
		out = append(out, v.(string))
	}
	if c, ok := t.Const.(string); ok {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Every /v1 operation but the document itself requires a bearer JWT and
// documents the 401 and 403 answers the gateway gives; the others require
// nothing and document neither.
func TestOpenAPISecurity(t *testing.T) {
	doc := oaLoadDoc(t)
	ref := doc.Components.SecuritySchemes["bearerAuth"]
	if ref == nil || ref.Value == nil {
		t.Fatal("components.securitySchemes.bearerAuth is missing")
	}
	if s := ref.Value; s.Type != "http" || s.Scheme != "bearer" || s.BearerFormat != "JWT" {
		t.Errorf("bearerAuth = %s %s %s, want http bearer JWT", s.Type, s.Scheme, s.BearerFormat)
	}

	// The token problems: every gateway/auth type is 401 but the unknown
	// partner, which is 403 (auth.Failure.Status).
	var unauthorized []string
	for _, typ := range auth.ProblemTypes() {
		if typ != auth.ProblemTokenUnknownPartner {
			unauthorized = append(unauthorized, typ)
		}
	}
	unauthorized = append(unauthorized, ProblemKeyInvalid, ProblemKeyExpired, ProblemKeyRevoked) // API keys
	slices.Sort(unauthorized)
	// What a 403 may say: a catalog endpoint only checks the partner; the
	// view explains policy denials with a 200; reading the schema gets all
	// four; reading records also the plan's monthly quota.
	forbidden := map[string][]string{
		"catalog": {auth.ProblemTokenUnknownPartner},
		"view":    {ProblemNoGrant, auth.ProblemTokenUnknownPartner},
		"read":    {ProblemNoGrant, ProblemDenied, ProblemPolicyError, auth.ProblemTokenUnknownPartner},
		"records": {ProblemNoGrant, ProblemDenied, ProblemPolicyError, ProblemQuotaExhausted, ProblemFormatNotInPlan, auth.ProblemTokenUnknownPartner},
		"admin":   {ProblemForbiddenAdmin, auth.ProblemTokenUnknownPartner},
		// The audit trail's events: regulators only.
		"audit": {ProblemForbiddenAudit, auth.ProblemTokenUnknownPartner},
	}
	kind := map[string]string{
		"/v1/products":              "catalog",
		"/v1/products/{id}":         "catalog",
		"/v1/products/{id}/view":    "view",
		"/v1/products/{id}/schema":  "read",
		"/v1/products/{id}/records": "records",
		"/v1/products/{id}/stream":  "records",
		// Subscriptions: the partner side needs an identity, the actions
		// the admin role.
		"/v1/plans":                       "catalog",
		"/v1/subscriptions":               "catalog",
		"/v1/subscriptions/{id}":          "catalog",
		"/v1/subscriptions/{id}/{action}": "admin",
		// Listing: another partner's (?partner=) is the admin's.
		"GET /v1/subscriptions": "admin",
		// API keys: a partner's own need an identity; another partner's,
		// the partners and other partners' usage the admin role.
		"/v1/keys":                     "catalog",
		"/v1/keys/{id}":                "catalog",
		"/v1/usage":                    "admin",
		"/v1/partners":                 "admin",
		"/v1/partners/{id}/keys":       "admin",
		"/v1/partners/{id}/keys/{key}": "admin",
		// The audit trail: its events for regulators; its public keys for
		// any partner.
		"/v1/audit":        "audit",
		"/v1/audit/stream": "audit",
		"/v1/audit/keys":   "catalog",
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			reqs := doc.Security
			if op.Security != nil {
				reqs = *op.Security
			}
			if strings.HasPrefix(path, "/schema-registry/") {
				// The registry takes a bearer token or API key, or basic
				// auth with an API key (what registry clients send), and
				// answers in its own error shape.
				want := openapi3.SecurityRequirements{{"bearerAuth": {}}, {"basicAuth": {}}}
				if fmt.Sprint(reqs) != fmt.Sprint(want) {
					t.Errorf("%s: security %v, want %v", where, reqs, want)
				}
				if r401 := op.Responses.Status(401); r401 == nil || r401.Value == nil || r401.Value.Headers["WWW-Authenticate"] == nil {
					t.Errorf("%s: no 401 with a WWW-Authenticate header", where)
				}
				continue
			}
			secured := len(reqs) > 0
			for _, r := range reqs {
				if len(r) == 0 {
					secured = false // {} makes a token optional
				} else if _, ok := r["bearerAuth"]; !ok || len(r) != 1 {
					t.Errorf("%s: security requirement %v, want bearerAuth alone", where, r)
				}
			}
			want := strings.HasPrefix(path, "/v1/") && path != "/v1/openapi.json"
			if secured != want {
				t.Errorf("%s: requires a bearer token: %v, want %v", where, secured, want)
			}
			r401, r403 := op.Responses.Status(401), op.Responses.Status(403)
			if !want {
				if r401 != nil || r403 != nil {
					t.Errorf("%s: needs no token but documents a 401 or 403", where)
				}
				continue
			}
			if got := oaNarrowedTypes(r401); !slices.Equal(got, unauthorized) {
				t.Errorf("%s: 401 types %v, want every token and API key problem but the unknown partner %v", where, got, unauthorized)
			}
			if r401 != nil && r401.Value != nil {
				h := r401.Value.Headers["WWW-Authenticate"]
				if h == nil || h.Value == nil || !h.Value.Required {
					t.Errorf("%s: 401 without a required WWW-Authenticate header", where)
				}
			}
			k, ok := kind[method+" "+path]
			if !ok {
				k, ok = kind[path]
			}
			if !ok {
				t.Errorf("%s: secured, but this test does not know what its 403 may say", where)
				continue
			}
			wantForbidden := slices.Sorted(slices.Values(forbidden[k]))
			if got := oaNarrowedTypes(r403); !slices.Equal(got, wantForbidden) {
				t.Errorf("%s: 403 types %v, want %v", where, got, wantForbidden)
			}
			if (k == "view" || k == "read" || k == "records") && !slices.ContainsFunc(op.Parameters, func(p *openapi3.ParameterRef) bool {
				return p.Value != nil && p.Value.Name == "purpose" && p.Value.In == openapi3.ParameterInQuery
			}) {
				t.Errorf("%s: no purpose query parameter", where)
			}
		}
	}
}

// The key set is published only when the gateway signs development tokens
// (Config.JWKS); otherwise the path is the documented 404 problem.
func TestOpenAPIJWKSOnlyInDevMode(t *testing.T) {
	doc := oaLoadDoc(t)
	op := doc.Paths.Find("/.well-known/jwks.json")
	if op == nil || op.Get == nil {
		t.Fatal("GET /.well-known/jwks.json is not documented")
	}
	for _, jwks := range [][]byte{nil, []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1","alg":"EdDSA","use":"sig"}]}`)} {
		s := New(Config{Metrics: metrics.New(), JWKS: jwks})
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
		r := op.Get.Responses.Status(rec.Code)
		if r == nil {
			t.Errorf("JWKS %v: status %d is not documented", jwks != nil, rec.Code)
			continue
		}
		ct := rec.Header().Get("Content-Type")
		mt := r.Value.Content.Get(ct)
		if mt == nil {
			t.Errorf("JWKS %v: %d %s is not documented", jwks != nil, rec.Code, ct)
			continue
		}
		var v any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if err := mt.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("JWKS %v: %d %s does not match the document: %v", jwks != nil, rec.Code, rec.Body, err)
		}
		if wantCode := map[bool]int{false: 404, true: 200}[jwks != nil]; rec.Code != wantCode {
			t.Errorf("JWKS %v: status %d, want %d", jwks != nil, rec.Code, wantCode)
		}
	}
}

// oaChiPath turns a chi.Walk route into the documented path form.
func oaChiPath(route string) string {
	route = strings.ReplaceAll(route, "/*/", "/")
	if len(route) > 1 {
		route = strings.TrimSuffix(route, "/")
	}
	return route
}

// Every route registered in the router is documented with the same method,
// and every documented operation is registered.
func TestOpenAPIRoutesMatchRouter(t *testing.T) {
	doc := oaLoadDoc(t)
	// With JWKS set, as in embedded mode, every route is registered.
	s := New(Config{Metrics: metrics.New(), JWKS: []byte(`{"keys":[]}`)})

	registered := map[string]bool{} // "GET /v1/products"
	err := chi.Walk(s.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		registered[method+" "+oaChiPath(route)] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(registered) == 0 {
		t.Fatal("chi.Walk found no routes")
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for r := range registered {
		method, path, _ := strings.Cut(r, " ")
		// r.Handle("/metrics", ...) registers every method; GET is the one
		// documented (see the /metrics description).
		if path == "/metrics" && method != http.MethodGet {
			continue
		}
		if !documented[r] {
			t.Errorf("route %s is registered but not documented in openapi.json", r)
		}
	}
	for d := range documented {
		if !registered[d] {
			t.Errorf("operation %s is documented but not registered in the router", d)
		}
	}
	t.Logf("%d registered routes, %d documented operations", len(registered), len(documented))
}

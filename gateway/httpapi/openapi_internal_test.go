package httpapi

// Checks of the OpenAPI document that need the package's internals: the
// chi router (to compare the registered routes with the documented paths)
// and the table of problem types. Responses of a running gateway are
// validated against the document in openapi_test.go.

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

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
	for _, name := range []string{"Problem", "Product", "Field", "ProductList", "RecordsPage", "Record", "Readiness", "Cursor"} {
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
	var emitted []string
	for k := range titles {
		emitted = append(emitted, k)
	}
	slices.Sort(documented)
	slices.Sort(emitted)
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
	s := New(Config{Metrics: metrics.New()})

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

package httpapi_test

// Responses of a real gateway (embedded broker, data generator) validated
// against openapi.json with kin-openapi: status, headers, content type and
// body of every documented operation, error cases included (every token
// check, missing grants, policy denials and policy errors), and the SSE
// events against their schemas, including the ends of a stream whose token
// expires or whose access a policy reload withdraws. Requests carry
// development tokens signed with the gateway's dev key, as `sluice token`
// issues them. The document's own validity and its match with the router
// and the package's problem types are checked in openapi_internal_test.go.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/sseclient"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/products/store"
)

func init() {
	// The document describes NDJSON and SSE bodies as strings (OpenAPI 3.1
	// has no item schema for sequential media types); read them as such.
	// Their items are validated against Record & co. by the test itself.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

type oaLogWriter struct{ t testing.TB }

func (w oaLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// oaGateway is a running gateway and the document to hold it to.
type oaGateway struct {
	t         *testing.T
	gw        *gateway.Gateway
	base      string
	doc       *openapi3.T
	router    routers.Router
	cancel    context.CancelFunc
	done      chan error
	stop      func()
	dataDir   string // holds the dev signing key the gateway trusts
	policyDir string // a copy of the shipped policy, watched by the gateway

	mu     sync.Mutex
	tokens map[string]string // partner -> dev token
}

// oaPartnerFor is the partner a request reads a path as: internal-fraud
// sees cdr and fraud-alerts in clear (fraud-prevention), internal-noc every
// product pseudonymised (network-analytics).
func oaPartnerFor(path string) string {
	if strings.Contains(path, "/products/cdr") || strings.Contains(path, "/products/fraud-alerts") {
		return "internal-fraud"
	}
	return "internal-noc"
}

// oaNeedsToken reports whether the server wants a bearer token for path:
// every /v1 endpoint but the OpenAPI document.
func oaNeedsToken(path string) bool {
	return strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/v1/openapi.json")
}

// token returns a development token for partner (valid for an hour),
// signed with the data directory's dev key as `sluice token` signs them.
func (g *oaGateway) token(partner string) string {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if tok, ok := g.tokens[partner]; ok {
		return tok
	}
	tok := g.sign(partner, time.Hour)
	if g.tokens == nil {
		g.tokens = map[string]string{}
	}
	g.tokens[partner] = tok
	return tok
}

// sign issues a new dev token for partner valid for ttl.
func (g *oaGateway) sign(partner string, ttl time.Duration) string {
	g.t.Helper()
	key, kid, err := auth.DevKey(g.dataDir)
	if err != nil {
		g.t.Fatal(err)
	}
	tok, err := auth.Sign(key, kid, auth.DevIssuer, auth.DevAudience, partner, ttl)
	if err != nil {
		g.t.Fatal(err)
	}
	return tok
}

// bearer is the header pair authenticating as partner.
func (g *oaGateway) bearer(partner string) []string {
	return []string{"Authorization", "Bearer " + g.token(partner)}
}

// oaNoToken sends a request without Authorization.
var oaNoToken = []string{"Authorization", ""}

// withAuth adds the path's default partner token to hdr unless hdr sets
// Authorization itself (to "" for none).
func (g *oaGateway) withAuth(path string, hdr []string) []string {
	for i := 0; i+1 < len(hdr); i += 2 {
		if http.CanonicalHeaderKey(hdr[i]) == "Authorization" {
			return hdr
		}
	}
	if !oaNeedsToken(path) {
		return hdr
	}
	return append(g.bearer(oaPartnerFor(path)), hdr...)
}

// oaPolicyDir copies the shipped policy (without its Rego tests) into a
// directory the gateway watches, so a test can reload it.
func oaPolicyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := fs.ReadDir(policy.DefaultPolicy, "rego")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".rego") || strings.HasSuffix(e.Name(), "_test.rego") {
			continue
		}
		data, err := fs.ReadFile(policy.DefaultPolicy, path.Join("rego", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func oaStart(t *testing.T) *oaGateway {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI())
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	router, err := legacy.NewRouter(doc) // validates the document too
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	yes := true
	// Auth is left at its embedded-mode default: the gateway trusts the data
	// directory's dev key and publishes it at /.well-known/jwks.json.
	cfg := gateway.Config{
		DataDir:           t.TempDir(),
		HTTPAddr:          "127.0.0.1:0",
		EmbeddedKafkaAddr: "127.0.0.1:0",
		Generate:          &yes,
		// Low enough that an idle stream sends heartbeats between records.
		GenerateRate:    200,
		Logger:          slog.New(slog.NewTextHandler(oaLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Stream:          gateway.StreamYAML{Heartbeat: 20 * time.Millisecond, IdleCursor: 100 * time.Millisecond},
		Hub:             gateway.HubYAML{MaxWait: 100 * time.Millisecond},
		ShutdownTimeout: 5 * time.Second,
		Policy:          gateway.PolicyConfig{Dir: oaPolicyDir(t), WatchInterval: 50 * time.Millisecond},
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("gateway.New: %v", err)
	}
	g := &oaGateway{t: t, gw: gw, base: "http://" + gw.HTTPAddr(), doc: doc, router: router, cancel: cancel, done: make(chan error, 1),
		dataDir: cfg.DataDir, policyDir: cfg.Policy.Dir}
	go func() { g.done <- gw.Run(ctx) }()
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-g.done:
				if err != nil {
					t.Errorf("gateway Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("gateway did not stop within 20s")
			}
		})
	}
	t.Cleanup(g.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(g.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway not ready within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get sends a request (header name/value pairs after the path; an empty
// value sends no such header) and reads the whole answer. /v1 requests
// carry the path's default partner token unless hdr sets Authorization.
func (g *oaGateway) get(method, path string, hdr ...string) (*http.Request, *http.Response, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(method, g.base+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	hdr = g.withAuth(path, hdr)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] != "" {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	return req, resp, body
}

// route finds the documented operation of req.
func (g *oaGateway) route(req *http.Request) (*routers.Route, map[string]string, error) {
	return g.router.FindRoute(req)
}

// validate holds one answer to the document: the status must be listed
// explicitly by the operation (not only covered by default), and the
// headers, content type and body must match what is listed for it.
func (g *oaGateway) validate(req *http.Request, resp *http.Response, body []byte) error {
	route, params, err := g.route(req)
	if err != nil {
		return err
	}
	if route.Operation.Responses.Status(resp.StatusCode) == nil {
		return errors.New("status " + resp.Status + " is not documented for " + route.Method + " " + route.Path)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

// oaAuthenticate holds a request to the document's security schemes: an
// HTTP bearer scheme wants "Authorization: Bearer <token>". The token
// itself cannot be judged from the document.
func oaAuthenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("security scheme %s: type %q scheme %q is not what the server implements (HTTP bearer)", in.SecuritySchemeName, s.Type, s.Scheme)
	}
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	if len(h) <= len("Bearer ") || !strings.EqualFold(h[:len("Bearer ")], "Bearer ") {
		return fmt.Errorf("security scheme %s: no bearer token", in.SecuritySchemeName)
	}
	return nil
}

// validateRequest reports whether the document accepts req: its
// parameters, its security requirements, and no query parameter the
// operation does not document (kin-openapi ignores those; the server
// rejects them).
func (g *oaGateway) validateRequest(req *http.Request) error {
	route, params, err := g.route(req)
	if err != nil {
		return err
	}
	err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: oaAuthenticate, MultiError: true},
	})
	documented := map[string]bool{}
	for _, ps := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range ps {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				documented[p.Value.Name] = true
			}
		}
	}
	for k := range req.URL.Query() {
		if !documented[k] {
			err = errors.Join(err, fmt.Errorf("query parameter %q is not documented for %s %s", k, route.Method, route.Path))
		}
	}
	return err
}

// security is the effective security requirement of req's operation: true
// when the document requires a bearer token.
func (g *oaGateway) security(req *http.Request) (bool, error) {
	route, _, err := g.route(req)
	if err != nil {
		return false, err
	}
	reqs := g.doc.Security
	if route.Operation.Security != nil {
		reqs = *route.Operation.Security
	}
	if len(reqs) == 0 {
		return false, nil
	}
	for _, r := range reqs {
		if len(r) == 0 {
			return false, nil // {} makes the others optional
		}
	}
	return true, nil
}

// schema validates a decoded JSON value against components.schemas[name].
func (g *oaGateway) schema(name string, v any) error {
	s := g.doc.Components.Schemas[name]
	if s == nil {
		return errors.New("no component schema " + name)
	}
	return s.Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

func (g *oaGateway) schemaJSON(name string, data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	return g.schema(name, v)
}

// oaCase is one request and what the gateway must answer.
type oaCase struct {
	name   string
	method string // default GET
	path   string
	hdr    []string
	status int
	ctype  string // the exact Content-Type; problem+json when problem is set
	// problem is the expected problem type URN for an error answer.
	problem string
	// docRejects: the document itself tells clients the request is
	// invalid (parameter schema, missing bearer token, undocumented query
	// parameter), so validateRequest must fail. Otherwise, for 2xx
	// answers, it must pass.
	docRejects bool
	check      func(t *testing.T, body []byte, resp *http.Response)
}

func (g *oaGateway) run(t *testing.T, c oaCase) []byte {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	req, resp, body := g.get(method, c.path, c.hdr...)
	if resp.StatusCode != c.status {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, c.path, resp.StatusCode, c.status, body)
	}
	want := c.ctype
	if c.problem != "" {
		want = "application/problem+json"
	}
	if ct := resp.Header.Get("Content-Type"); want != "" && ct != want {
		t.Errorf("%s %s: Content-Type %q, want %q", method, c.path, ct, want)
	}
	if err := g.validate(req, resp, body); err != nil {
		t.Errorf("%s %s: answer does not match openapi.json: %v\nbody: %.600s", method, c.path, err, body)
	}
	if c.problem != "" {
		var p struct {
			Type, Title, Detail string
			Status              int
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("%s %s: problem %s: %v", method, c.path, body, err)
		}
		if p.Type != c.problem || p.Status != c.status || p.Title == "" || p.Detail == "" {
			t.Errorf("%s %s: problem %s, want type %s, status %d, a title and a detail", method, c.path, body, c.problem, c.status)
		}
	}
	if c.status == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="sluice"`) {
		t.Errorf("%s %s: 401 with WWW-Authenticate %q", method, c.path, resp.Header.Get("WWW-Authenticate"))
	}
	reqErr := g.validateRequest(req)
	switch {
	case c.docRejects && reqErr == nil:
		t.Errorf("%s %s: the document accepts this request, but the server rejects it", method, c.path)
	case !c.docRejects && c.status < 300 && reqErr != nil:
		t.Errorf("%s %s: the document rejects a request the server serves: %v", method, c.path, reqErr)
	}
	if c.check != nil {
		c.check(t, body, resp)
	}
	return body
}

var oaCursorRE = regexp.MustCompile(`^c1[A-Za-z0-9_-]+$`)

type oaPage struct {
	Records    []json.RawMessage `json:"records"`
	NextCursor string            `json:"next_cursor"`
}

func (g *oaGateway) page(path string) oaPage {
	g.t.Helper()
	_, resp, body := g.get(http.MethodGet, path)
	if resp.StatusCode != http.StatusOK {
		g.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	var p oaPage
	if err := json.Unmarshal(body, &p); err != nil {
		g.t.Fatalf("GET %s: %v", path, err)
	}
	return p
}

// oaExplain is the body of GET /v1/products/{id}/view.
type oaExplain struct {
	Partner         string          `json:"partner"`
	Product         string          `json:"product"`
	Purpose         string          `json:"purpose"`
	Allowed         bool            `json:"allowed"`
	Reason          string          `json:"reason"`
	PolicyRevision  string          `json:"policy_revision"`
	RowCondition    string          `json:"row_condition"`
	ConsentRequired bool            `json:"consent_required"`
	Fields          []oaTreatment   `json:"fields"`
	Schema          json.RawMessage `json:"schema"`
}

type oaTreatment struct {
	Name      string         `json:"name"`
	Treatment map[string]any `json:"treatment"`
}

func oaParseExplain(t *testing.T, body []byte) oaExplain {
	t.Helper()
	var e oaExplain
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("view %s: %v", body, err)
	}
	return e
}

// oaJSONEqual reports whether a and b hold the same JSON value.
func oaJSONEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// oaBadToken is an Authorization header value that fails one token check.
type oaBadToken struct {
	name, authz string
	status      int
	typ         string
	docRejects  bool // the document's security scheme already rules it out
}

// oaBadTokens builds a request failing each check of gateway/auth, from a
// missing header to a valid token naming no registered partner.
func oaBadTokens(t *testing.T, g *oaGateway) []oaBadToken {
	t.Helper()
	key, kid, err := auth.DevKey(g.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	other, otherKID, err := auth.DevKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": "internal-fraud",
			"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(k ed25519.PrivateKey, kid string, c jwt.MapClaims) string {
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tk.Header["kid"] = kid
		s, err := tk.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	b64 := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(data)
	}
	algNone := "Bearer " + b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(claims(nil)) + "."
	return []oaBadToken{
		{"no header", "", 401, auth.ProblemTokenMissing, true},
		{"Bearer without token", "Bearer", 401, auth.ProblemTokenMissing, true},
		{"Basic", "Basic dXNlcjpwYXNz", 401, auth.ProblemTokenWrongScheme, true},
		{"garbage", "Bearer garbage", 401, auth.ProblemTokenMalformed, false},
		{"two tokens", "Bearer a.b.c d.e.f", 401, auth.ProblemTokenMalformed, false},
		{"alg none", algNone, 401, auth.ProblemTokenAlgNotAllowed, false},
		{"unknown key", sign(other, otherKID, claims(nil)), 401, auth.ProblemTokenUnknownKey, false},
		{"bad signature", sign(other, kid, claims(nil)), 401, auth.ProblemTokenBadSignature, false},
		{"expired", sign(key, kid, claims(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		})), 401, auth.ProblemTokenExpired, false},
		{"not yet valid", sign(key, kid, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), 401, auth.ProblemTokenNotYetValid, false},
		{"no expiry", sign(key, kid, claims(func(c jwt.MapClaims) { delete(c, "exp") })), 401, auth.ProblemTokenNoExpiry, false},
		{"wrong issuer", sign(key, kid, claims(func(c jwt.MapClaims) { c["iss"] = "someone-else" })), 401, auth.ProblemTokenWrongIssuer, false},
		{"wrong audience", sign(key, kid, claims(func(c jwt.MapClaims) { c["aud"] = "not-sluice" })), 401, auth.ProblemTokenWrongAudience, false},
		{"unknown partner", sign(key, kid, claims(func(c jwt.MapClaims) { c["sub"] = "nobody" })), 403, auth.ProblemTokenUnknownPartner, false},
	}
}

// TestOpenAPIResponses requests every documented operation of a running
// gateway, including its error answers, and validates each answer against
// openapi.json.
func TestOpenAPIResponses(t *testing.T) {
	g := oaStart(t)

	// Wait until the generator has written some cdr records.
	var first oaPage
	for deadline := time.Now().Add(10 * time.Second); ; {
		first = g.page("/v1/products/cdr/records?from=earliest&limit=5")
		if len(first.Records) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no cdr records within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	other := g.page("/v1/products/fraud-alerts/records?from=latest").NextCursor
	pos, err := cursor.Decode(first.NextCursor, cursor.Tag("cdr"))
	if err != nil {
		t.Fatal(err)
	}
	pos[0] = 1 << 40
	ahead := cursor.Encode(cursor.Tag("cdr"), pos)
	since := url.QueryEscape(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))

	checkPage := func(min int) func(t *testing.T, body []byte, resp *http.Response) {
		return func(t *testing.T, body []byte, resp *http.Response) {
			var p oaPage
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Records) < min {
				t.Errorf("%d records, want at least %d", len(p.Records), min)
			}
			if h := resp.Header.Get("Sluice-Next-Cursor"); h != p.NextCursor {
				t.Errorf("Sluice-Next-Cursor %q != next_cursor %q", h, p.NextCursor)
			}
		}
	}
	checkNDJSON := func(t *testing.T, body []byte, resp *http.Response) {
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if len(lines) == 0 || lines[0] == "" {
			t.Fatalf("empty NDJSON page")
		}
		for i, ln := range lines {
			if err := g.schemaJSON("Record", []byte(ln)); err != nil {
				t.Errorf("NDJSON line %d is not a Record: %v\n%s", i, err, ln)
			}
		}
		if !oaCursorRE.MatchString(resp.Header.Get("Sluice-Next-Cursor")) {
			t.Errorf("Sluice-Next-Cursor %q", resp.Header.Get("Sluice-Next-Cursor"))
		}
	}
	// The view schema (no ?version): a ViewSchema with the policy revision,
	// without the upstream version headers.
	checkViewSchema := func(t *testing.T, body []byte, resp *http.Response) {
		if err := g.schemaJSON("ViewSchema", body); err != nil {
			t.Errorf("view schema is not a ViewSchema: %v\n%.400s", err, body)
		}
		if resp.Header.Get("Sluice-Policy-Revision") == "" {
			t.Error("view schema without Sluice-Policy-Revision")
		}
		for _, h := range []string{"Sluice-Schema-Version", "Sluice-Schema-Id"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("view schema with %s %q: it is no upstream version", h, v)
			}
		}
	}
	// An upstream version (?version=N): as written, with its version headers.
	checkVersion := func(n string) func(t *testing.T, body []byte, resp *http.Response) {
		return func(t *testing.T, body []byte, resp *http.Response) {
			if v := resp.Header.Get("Sluice-Schema-Version"); v != n {
				t.Errorf("Sluice-Schema-Version %q, want %s", v, n)
			}
			if resp.Header.Get("Sluice-Schema-Id") == "" {
				t.Error("no Sluice-Schema-Id")
			}
			if v := resp.Header.Get("Sluice-Policy-Revision"); v != "" {
				t.Errorf("upstream version with Sluice-Policy-Revision %q", v)
			}
			if g.schemaJSON("ViewSchema", body) == nil {
				t.Errorf("schema version %s is a ViewSchema; want the upstream schema as written: %.300s", n, body)
			}
		}
	}
	checkView := func(partner, purpose string, clear bool) func(t *testing.T, body []byte, resp *http.Response) {
		return func(t *testing.T, body []byte, resp *http.Response) {
			e := oaParseExplain(t, body)
			if !e.Allowed || e.Partner != partner || e.Purpose != purpose || e.Reason == "" || len(e.Fields) == 0 || len(e.Schema) == 0 {
				t.Errorf("view %s: want an allowed view for %s (%s) with fields and a schema", body, partner, purpose)
			}
			masked := 0
			for _, f := range e.Fields {
				if f.Treatment["op"] != "keep" {
					masked++
				}
			}
			if clear != (masked == 0) {
				t.Errorf("view for %s (%s): %d of %d fields not kept", partner, purpose, masked, len(e.Fields))
			}
		}
	}
	checkJWKS := func(t *testing.T, body []byte, _ *http.Response) {
		key, kid, err := auth.DevKey(g.dataDir)
		if err != nil {
			t.Fatal(err)
		}
		var set struct {
			Keys []struct{ Kid, Kty, Crv, X string }
		}
		if err := json.Unmarshal(body, &set); err != nil {
			t.Fatal(err)
		}
		x := base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
		if len(set.Keys) != 1 || set.Keys[0].Kid != kid || set.Keys[0].X != x {
			t.Errorf("JWKS %s: want the dev key %s (x %s)", body, kid, x)
		}
	}

	const (
		unauthorized   = "urn:sluice:problem:token-missing"
		noGrant        = "urn:sluice:problem:no-grant"
		unknownPeer    = "urn:sluice:problem:token-unknown-partner"
		invalidQuery   = "urn:sluice:problem:invalid-query"
		unknownProduct = "urn:sluice:problem:unknown-product"
	)
	cases := []oaCase{
		// Operations.
		{name: "healthz", path: "/healthz", status: 200, ctype: "application/json"},
		{name: "readyz", path: "/readyz", status: 200, ctype: "application/json"},
		{name: "metrics", path: "/metrics", status: 200, check: func(t *testing.T, body []byte, resp *http.Response) {
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || !bytes.Contains(body, []byte("# TYPE ")) {
				t.Errorf("not Prometheus text: %s %.200s", resp.Header.Get("Content-Type"), body)
			}
		}},
		{name: "openapi", path: "/v1/openapi.json", status: 200, ctype: "application/json", check: func(t *testing.T, body []byte, _ *http.Response) {
			if !bytes.Equal(body, httpapi.OpenAPI()) {
				t.Error("GET /v1/openapi.json is not the embedded document")
			}
		}},
		{name: "jwks", path: "/.well-known/jwks.json", status: 200, ctype: "application/jwk-set+json", check: checkJWKS},

		// Catalog.
		{name: "products", path: "/v1/products", status: 200, ctype: "application/json"},
		{name: "products without token", path: "/v1/products", hdr: oaNoToken, status: 401, problem: unauthorized, docRejects: true},
		{name: "products unknown partner", path: "/v1/products", hdr: g.bearer("nobody"), status: 403, problem: unknownPeer},
		{name: "products as regulator", path: "/v1/products", hdr: g.bearer("regulator"), status: 200, ctype: "application/json"},
		{name: "products query", path: "/v1/products?purpose=billing", status: 400, problem: invalidQuery, docRejects: true},
		{name: "product", path: "/v1/products/cdr", status: 200, ctype: "application/json"},
		{name: "product as regulator", path: "/v1/products/cdr", hdr: g.bearer("regulator"), status: 200, ctype: "application/json"},
		{name: "product without token", path: "/v1/products/cdr", hdr: oaNoToken, status: 401, problem: unauthorized, docRejects: true},
		{name: "product unknown partner", path: "/v1/products/cdr", hdr: g.bearer("nobody"), status: 403, problem: unknownPeer},
		{name: "product query", path: "/v1/products/cdr?purpose=billing", status: 400, problem: invalidQuery, docRejects: true},
		{name: "unknown product", path: "/v1/products/nope", status: 404, problem: unknownProduct},
		{name: "schema", path: "/v1/products/cdr/schema", status: 200, ctype: "application/json", check: checkViewSchema},
		{name: "schema purpose", path: "/v1/products/cdr/schema?purpose=network-analytics", hdr: g.bearer("mvno-b"), status: 200, ctype: "application/json", check: checkViewSchema},
		{name: "schema v1", path: "/v1/products/cdr/schema?version=1", status: 200, ctype: "application/json", check: checkVersion("1")},
		{name: "schema v1 as regulator (no grant)", path: "/v1/products/cdr/schema?version=1", hdr: g.bearer("regulator"), status: 403, problem: "urn:sluice:problem:no-grant"},
		{name: "schema as regulator", path: "/v1/products/cdr/schema", hdr: g.bearer("regulator"), status: 403, problem: noGrant},
		{name: "schema no grant for purpose", path: "/v1/products/cdr/schema?purpose=billing", status: 403, problem: noGrant},
		{name: "schema without token", path: "/v1/products/cdr/schema", hdr: oaNoToken, status: 401, problem: unauthorized, docRejects: true},
		{name: "schema unknown version", path: "/v1/products/cdr/schema?version=99", status: 400, problem: invalidQuery},
		{name: "schema bad version", path: "/v1/products/cdr/schema?version=two", status: 400, problem: invalidQuery, docRejects: true},
		{name: "schema unknown param", path: "/v1/products/cdr/schema?colour=red", status: 400, problem: invalidQuery, docRejects: true},
		{name: "schema unknown product", path: "/v1/products/nope/schema", status: 404, problem: unknownProduct},

		// The caller's view.
		{name: "view", path: "/v1/products/cdr/view", status: 200, ctype: "application/json", check: checkView("internal-fraud", "fraud-prevention", true)},
		{name: "view purpose", path: "/v1/products/cdr/view?purpose=fraud-prevention", status: 200, ctype: "application/json", check: checkView("internal-fraud", "fraud-prevention", true)},
		{name: "view pseudonymised", path: "/v1/products/cdr/view?purpose=network-analytics", hdr: g.bearer("internal-noc"), status: 200, ctype: "application/json", check: checkView("internal-noc", "network-analytics", false)},
		{name: "view own rows", path: "/v1/products/cdr/view", hdr: g.bearer("mvno-b"), status: 200, ctype: "application/json", check: func(t *testing.T, body []byte, resp *http.Response) {
			checkView("mvno-b", "network-analytics", false)(t, body, resp)
			if e := oaParseExplain(t, body); !strings.Contains(e.RowCondition, `mvno_id == "mvno-b"`) || !e.ConsentRequired {
				t.Errorf("mvno-b's view: row_condition %q, consent_required %v; want its own subscribers, consent checked", e.RowCondition, e.ConsentRequired)
			}
		}},
		{name: "view regulator", path: "/v1/products/cdr/view", hdr: g.bearer("regulator"), status: 403, problem: noGrant},
		{name: "view no grant", path: "/v1/products/fraud-alerts/view", hdr: g.bearer("mvno-b"), status: 403, problem: noGrant},
		{name: "view no grant for purpose", path: "/v1/products/cdr/view?purpose=billing", status: 403, problem: noGrant},
		{name: "view unknown purpose", path: "/v1/products/cdr/view?purpose=profit", status: 400, problem: invalidQuery, docRejects: true},
		{name: "view unknown partner", path: "/v1/products/cdr/view", hdr: g.bearer("nobody"), status: 403, problem: unknownPeer},
		{name: "view without token", path: "/v1/products/cdr/view", hdr: oaNoToken, status: 401, problem: unauthorized, docRejects: true},
		{name: "view unknown param", path: "/v1/products/cdr/view?colour=red", status: 400, problem: invalidQuery, docRejects: true},
		{name: "view unknown product", path: "/v1/products/nope/view", status: 404, problem: unknownProduct},

		// Records.
		{name: "records", path: "/v1/products/cdr/records?from=earliest&limit=5", status: 200, ctype: "application/json", check: checkPage(3)},
		{name: "records default", path: "/v1/products/cdr/records", status: 200, ctype: "application/json", check: checkPage(1)},
		{name: "records purpose", path: "/v1/products/cdr/records?purpose=fraud-prevention&from=earliest&limit=2", status: 200, ctype: "application/json", check: checkPage(1)},
		{name: "records billing", path: "/v1/products/cdr/records?purpose=billing&limit=2", hdr: g.bearer("mvno-a"), status: 200, ctype: "application/json"},
		{name: "records next", path: "/v1/products/cdr/records?limit=2&cursor=" + first.NextCursor, status: 200, ctype: "application/json"},
		{name: "records latest", path: "/v1/products/cdr/records?from=latest", status: 200, ctype: "application/json"},
		{name: "records since", path: "/v1/products/cdr/records?limit=3&from=" + since, status: 200, ctype: "application/json"},
		{name: "records ndjson", path: "/v1/products/cdr/records?from=earliest&limit=4", hdr: []string{"Accept", "application/x-ndjson"}, status: 200, ctype: "application/x-ndjson", check: checkNDJSON},
		{name: "records no grant", path: "/v1/products/fraud-alerts/records", hdr: g.bearer("mvno-b"), status: 403, problem: noGrant},
		{name: "records no grant for purpose", path: "/v1/products/cdr/records?purpose=billing", status: 403, problem: noGrant},
		{name: "records unknown purpose", path: "/v1/products/cdr/records?purpose=profit", status: 400, problem: invalidQuery, docRejects: true},
		{name: "records regulator", path: "/v1/products/cdr/records", hdr: g.bearer("regulator"), status: 403, problem: noGrant},
		{name: "records unknown partner", path: "/v1/products/cdr/records", hdr: g.bearer("nobody"), status: 403, problem: unknownPeer},
		{name: "records unknown product", path: "/v1/products/nope/records", status: 404, problem: unknownProduct},
		{name: "records unknown product without token", path: "/v1/products/nope/records", hdr: oaNoToken, status: 401, problem: "urn:sluice:problem:token-missing", docRejects: true},
		{name: "records garbage cursor", path: "/v1/products/cdr/records?cursor=garbage", status: 400, problem: "urn:sluice:problem:invalid-cursor", docRejects: true},
		{name: "records bad base64 cursor", path: "/v1/products/cdr/records?cursor=c1%21%21", status: 400, problem: "urn:sluice:problem:invalid-cursor", docRejects: true},
		{name: "records other product's cursor", path: "/v1/products/cdr/records?cursor=" + other, status: 400, problem: "urn:sluice:problem:invalid-cursor"},
		{name: "records cursor ahead", path: "/v1/products/cdr/records?cursor=" + ahead, status: 400, problem: "urn:sluice:problem:invalid-cursor"},
		{name: "records bad from", path: "/v1/products/cdr/records?from=yesterday", status: 400, problem: "urn:sluice:problem:invalid-from", docRejects: true},
		{name: "records limit 0", path: "/v1/products/cdr/records?limit=0", status: 400, problem: "urn:sluice:problem:invalid-limit", docRejects: true},
		{name: "records limit 1001", path: "/v1/products/cdr/records?limit=1001", status: 400, problem: "urn:sluice:problem:invalid-limit", docRejects: true},
		{name: "records limit text", path: "/v1/products/cdr/records?limit=ten", status: 400, problem: "urn:sluice:problem:invalid-limit", docRejects: true},
		{name: "records unknown param", path: "/v1/products/cdr/records?colour=red", status: 400, problem: invalidQuery, docRejects: true},
		{name: "records cursor and from", path: "/v1/products/cdr/records?from=earliest&cursor=" + first.NextCursor, status: 400, problem: invalidQuery},

		// Stream errors (the 200 is checked below).
		{name: "stream without token", path: "/v1/products/cdr/stream", hdr: oaNoToken, status: 401, problem: unauthorized, docRejects: true},
		{name: "stream no grant", path: "/v1/products/fraud-alerts/stream", hdr: g.bearer("mvno-b"), status: 403, problem: noGrant},
		{name: "stream unknown purpose", path: "/v1/products/cdr/stream?purpose=profit", status: 400, problem: invalidQuery, docRejects: true},
		{name: "stream unknown partner", path: "/v1/products/cdr/stream", hdr: g.bearer("nobody"), status: 403, problem: unknownPeer},
		{name: "stream unknown product", path: "/v1/products/nope/stream", status: 404, problem: unknownProduct},
		{name: "stream bad from", path: "/v1/products/cdr/stream?from=1999", status: 400, problem: "urn:sluice:problem:invalid-from", docRejects: true},
		{name: "stream bad cursor", path: "/v1/products/cdr/stream?cursor=zzz", status: 400, problem: "urn:sluice:problem:invalid-cursor", docRejects: true},
		{name: "stream bad Last-Event-ID", path: "/v1/products/cdr/stream", hdr: []string{"Last-Event-ID", "zzz"}, status: 400, problem: "urn:sluice:problem:invalid-cursor", docRejects: true},
		{name: "stream other product's Last-Event-ID", path: "/v1/products/cdr/stream", hdr: []string{"Last-Event-ID", other}, status: 400, problem: "urn:sluice:problem:invalid-cursor"},
		{name: "stream unknown param", path: "/v1/products/cdr/stream?colour=red", status: 400, problem: invalidQuery, docRejects: true},
		{name: "stream cursor and from", path: "/v1/products/cdr/stream?from=latest&cursor=" + first.NextCursor, status: 400, problem: invalidQuery},
	}
	cases = append(cases, oaKeyCases(t, g)...)
	cases = append(cases, oaAuditCases(t, g)...)
	// Every check a bearer token can fail, each its own problem type.
	for _, b := range oaBadTokens(t, g) {
		cases = append(cases, oaCase{name: "token " + b.name, path: "/v1/products/cdr/records", hdr: []string{"Authorization", b.authz},
			status: b.status, problem: b.typ, docRejects: b.docRejects, check: func(t *testing.T, body []byte, _ *http.Response) {
				if tok := strings.TrimPrefix(b.authz, "Bearer "); len(tok) > 16 && bytes.Contains(body, []byte(tok)) {
					t.Errorf("the problem repeats the token: %s", body)
				}
			}})
	}
	// Every product of the catalog, with its fields, the caller's view and
	// its schema.
	for _, p := range g.gw.Catalog().Products {
		cases = append(cases,
			oaCase{name: "product " + p.ID, path: "/v1/products/" + p.ID, status: 200, ctype: "application/json", check: func(t *testing.T, body []byte, _ *http.Response) {
				var pj struct {
					Fields []json.RawMessage `json:"fields"`
				}
				json.Unmarshal(body, &pj) //nolint:errcheck // validated above
				if len(pj.Fields) == 0 {
					t.Error("product without fields")
				}
			}},
			oaCase{name: "schema " + p.ID, path: "/v1/products/" + p.ID + "/schema", status: 200, ctype: "application/json", check: checkViewSchema},
			oaCase{name: "view " + p.ID, path: "/v1/products/" + p.ID + "/view", status: 200, ctype: "application/json", check: func(t *testing.T, body []byte, _ *http.Response) {
				if e := oaParseExplain(t, body); !e.Allowed || e.Product != p.ID || e.Partner != oaPartnerFor("/v1/products/"+p.ID) {
					t.Errorf("view %s: want %s's allowed view of %s", body, oaPartnerFor("/v1/products/"+p.ID), p.ID)
				}
			}},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { g.run(t, c) })
	}

	// The view schema is the schema of /view, under the same revision, and
	// names exactly the fields the view does not drop.
	t.Run("view schema matches view", func(t *testing.T) {
		for _, p := range g.gw.Catalog().Products {
			for _, partner := range []string{oaPartnerFor("/v1/products/" + p.ID), "internal-noc"} {
				_, resp, schema := g.get(http.MethodGet, "/v1/products/"+p.ID+"/schema", g.bearer(partner)...)
				_, _, body := g.get(http.MethodGet, "/v1/products/"+p.ID+"/view", g.bearer(partner)...)
				e := oaParseExplain(t, body)
				if resp.StatusCode != 200 || !e.Allowed {
					t.Fatalf("%s as %s: schema %d, view %s", p.ID, partner, resp.StatusCode, body)
				}
				if !oaJSONEqual(schema, e.Schema) {
					t.Errorf("%s as %s: /schema %s\n  differs from /view's schema %s", p.ID, partner, schema, e.Schema)
				}
				if rev := resp.Header.Get("Sluice-Policy-Revision"); rev != e.PolicyRevision {
					t.Errorf("%s as %s: Sluice-Policy-Revision %q, view policy_revision %q", p.ID, partner, rev, e.PolicyRevision)
				}
				var vs struct {
					Fields []struct{ Name string }
				}
				json.Unmarshal(schema, &vs) //nolint:errcheck // validated by the cases above
				var kept, named []string
				for _, f := range e.Fields {
					if f.Treatment["op"] != "drop" {
						kept = append(kept, f.Name)
					}
				}
				for _, f := range vs.Fields {
					named = append(named, f.Name)
				}
				if !reflect.DeepEqual(kept, named) {
					t.Errorf("%s as %s: view keeps %v, its schema has %v", p.ID, partner, kept, named)
				}
			}
		}
	})

	// Answers outside any documented operation are problems too.
	t.Run("not found and method not allowed", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			status       int
			typ          string
		}{
			{http.MethodGet, "/v1/nothing-here", 404, "urn:sluice:problem:not-found"},
			{http.MethodGet, "/", 404, "urn:sluice:problem:not-found"},
			{http.MethodPost, "/v1/products", 405, "urn:sluice:problem:method-not-allowed"},
			{http.MethodDelete, "/v1/products/cdr", 405, "urn:sluice:problem:method-not-allowed"},
		} {
			req, resp, body := g.get(c.method, c.path)
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s %s: %d %s, want %d problem+json", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.status)
			}
			if err := g.schemaJSON("Problem", body); err != nil {
				t.Errorf("%s %s: not a Problem: %v\n%s", c.method, c.path, err, body)
			}
			var p struct{ Type string }
			json.Unmarshal(body, &p) //nolint:errcheck // checked above
			if p.Type != c.typ {
				t.Errorf("%s %s: type %q, want %q", c.method, c.path, p.Type, c.typ)
			}
			_, _, rerr := g.route(req)
			if rerr == nil {
				t.Errorf("%s %s: documented, but the server does not route it", c.method, c.path)
			}
		}
	})

	// Every documented path is routed by the server (never the router's
	// not-found problem), for the method it documents; and it wants a
	// bearer token exactly when the document says so: without one the
	// server answers a documented 401 if and only if the operation's
	// security requires bearerAuth.
	t.Run("documented paths are served and secured", func(t *testing.T) {
		for path, item := range g.doc.Paths.Map() {
			for method := range item.Operations() {
				p := strings.ReplaceAll(path, "{id}", "cdr")
				p = strings.ReplaceAll(p, "{action}", "approve")
				if strings.HasSuffix(p, "/stream") {
					p += "?colour=red" // a 400 from the handler; a 200 would not end
				}
				_, resp, body := g.get(method, p)
				// A handler's own 404 (an unknown subscription) is routed;
				// the router's is urn:sluice:problem:not-found.
				var routed struct{ Type string }
				json.Unmarshal(body, &routed) //nolint:errcheck // a non-problem body is no router 404
				if resp.StatusCode == http.StatusNotFound && routed.Type == "urn:sluice:problem:not-found" || resp.StatusCode == http.StatusMethodNotAllowed {
					t.Errorf("%s %s (documented as %s): %d %s", method, p, path, resp.StatusCode, body)
				}
				req, resp, body := g.get(method, p, oaNoToken...)
				secured, err := g.security(req)
				if err != nil {
					t.Fatal(err)
				}
				if got := resp.StatusCode == http.StatusUnauthorized; got != secured {
					t.Errorf("%s %s without a token: %d; the document says a token is required: %v", method, path, resp.StatusCode, secured)
				}
				if err := g.validate(req, resp, body); err != nil {
					t.Errorf("%s %s without a token: answer does not match openapi.json: %v\nbody: %.300s", method, path, err, body)
				}
			}
		}
	})

	t.Run("stream", func(t *testing.T) { oaStream(t, g) })
	t.Run("policy reload", func(t *testing.T) { oaPolicyReload(t, g) })
	t.Run("token expiry", func(t *testing.T) { oaReauthenticate(t, g) })
	t.Run("cursor expired", func(t *testing.T) { oaExpired(t, g) })
	t.Run("plan limits", func(t *testing.T) { oaPlanLimits(t, g) })
	t.Run("audit stream", func(t *testing.T) { oaAuditStream(t, g) })
	t.Run("shutdown event", func(t *testing.T) { oaShutdown(t, g) })
}

// oaKeyCases are the requests of the API key, partner and usage endpoints
// (and the subscription listing's partner filter), as internal-noc unless
// they say otherwise.
func oaKeyCases(t *testing.T, g *oaGateway) []oaCase {
	ctx := context.Background()
	st := g.gw.Store()
	newKey := func(partner string) (store.KeyInfo, string) {
		k, secret, err := st.CreateKey(ctx, partner, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return k, secret
	}
	_, live := newKey("internal-noc")
	toRevoke, _ := newKey("internal-noc")
	revoked, revokedSecret := newKey("internal-noc")
	if err := st.RevokeKey(ctx, "internal-noc", revoked.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	adminRevokes, _ := newKey("internal-noc")
	err := st.AddUsage(ctx, []store.UsageDelta{
		{PartnerID: "internal-noc", Product: "cdr", Purpose: "network-analytics", Day: time.Date(2025, 11, 3, 12, 0, 0, 0, time.UTC), Records: 10, Bytes: 1000},
		{PartnerID: "mvno-a", Product: "cdr", Purpose: "billing", Day: time.Date(2025, 11, 4, 12, 0, 0, 0, time.UTC), Records: 20, Bytes: 2000},
		{PartnerID: "internal-noc", Product: "network-quality", Purpose: "network-analytics", Day: time.Now(), Records: 5, Bytes: 500},
	})
	if err != nil {
		t.Fatal(err)
	}
	const (
		forbiddenAdmin = "urn:sluice:problem:forbidden-admin"
		unknownKey     = "urn:sluice:problem:unknown-key"
		invalidQuery   = "urn:sluice:problem:invalid-query"
		nov            = "from=2025-11-01&to=2025-12-01"
	)
	admin := g.bearer("admin")
	rows := func(n int) func(t *testing.T, body []byte, _ *http.Response) {
		return func(t *testing.T, body []byte, _ *http.Response) {
			var u struct{ Usage []json.RawMessage }
			json.Unmarshal(body, &u) //nolint:errcheck // validated before
			if len(u.Usage) != n {
				t.Errorf("%d usage rows, want %d: %s", len(u.Usage), n, body)
			}
		}
	}
	return []oaCase{
		{name: "keys", path: "/v1/keys", status: 200, ctype: "application/json"},
		{name: "keys with a key", path: "/v1/keys", hdr: []string{"Authorization", "Bearer " + live}, status: 200, ctype: "application/json"},
		{name: "keys with a revoked key", path: "/v1/keys", hdr: []string{"Authorization", "Bearer " + revokedSecret}, status: 401, problem: "urn:sluice:problem:key-revoked"},
		{name: "keys without token", path: "/v1/keys", hdr: oaNoToken, status: 401, problem: "urn:sluice:problem:token-missing", docRejects: true},
		{name: "keys unknown partner", path: "/v1/keys", hdr: g.bearer("nobody"), status: 403, problem: "urn:sluice:problem:token-unknown-partner"},
		{name: "keys query", path: "/v1/keys?all=1", status: 400, problem: invalidQuery, docRejects: true},
		{name: "create key", method: http.MethodPost, path: "/v1/keys", status: 201, ctype: "application/json"},
		{name: "create key query", method: http.MethodPost, path: "/v1/keys?ttl_days=3", status: 400, problem: invalidQuery, docRejects: true},
		{name: "revoke key", method: http.MethodDelete, path: "/v1/keys/" + toRevoke.ID, status: 204},
		{name: "revoke unknown key", method: http.MethodDelete, path: "/v1/keys/abcdefghijklmnop", status: 404, problem: unknownKey},
		{name: "revoke another partner's key", method: http.MethodDelete, path: "/v1/keys/" + adminRevokes.ID, hdr: g.bearer("mvno-a"), status: 404, problem: unknownKey},
		{name: "revoke malformed key", method: http.MethodDelete, path: "/v1/keys/nope", status: 404, problem: unknownKey, docRejects: true},

		{name: "usage", path: "/v1/usage", status: 200, ctype: "application/json", check: rows(1)},
		{name: "usage november", path: "/v1/usage?" + nov + "&product=cdr", status: 200, ctype: "application/json", check: rows(1)},
		{name: "usage csv", path: "/v1/usage?" + nov, hdr: []string{"Accept", "text/csv"}, status: 200, ctype: "text/csv; charset=utf-8"},
		{name: "usage admin", path: "/v1/usage?" + nov, hdr: admin, status: 200, ctype: "application/json", check: rows(2)},
		{name: "usage admin one partner", path: "/v1/usage?" + nov + "&partner=mvno-a", hdr: admin, status: 200, ctype: "application/json", check: rows(1)},
		{name: "usage admin csv", path: "/v1/usage?" + nov, hdr: append([]string{"Accept", "text/csv"}, admin...), status: 200, ctype: "text/csv; charset=utf-8"},
		{name: "usage another partner", path: "/v1/usage?partner=mvno-a", status: 403, problem: forbiddenAdmin},
		{name: "usage bad from", path: "/v1/usage?from=yesterday", status: 400, problem: invalidQuery, docRejects: true},
		{name: "usage backwards", path: "/v1/usage?from=2025-12-01&to=2025-11-01", status: 400, problem: invalidQuery},
		{name: "usage unknown param", path: "/v1/usage?month=11", status: 400, problem: invalidQuery, docRejects: true},
		{name: "usage without token", path: "/v1/usage", hdr: oaNoToken, status: 401, problem: "urn:sluice:problem:token-missing", docRejects: true},

		{name: "partners", path: "/v1/partners", hdr: admin, status: 200, ctype: "application/json"},
		{name: "partners as partner", path: "/v1/partners", status: 403, problem: forbiddenAdmin},
		{name: "partners query", path: "/v1/partners?type=mvno", hdr: admin, status: 400, problem: invalidQuery, docRejects: true},
		{name: "partner keys", path: "/v1/partners/internal-noc/keys", hdr: admin, status: 200, ctype: "application/json"},
		{name: "partner keys as partner", path: "/v1/partners/internal-noc/keys", status: 403, problem: forbiddenAdmin},
		{name: "partner keys unknown partner", path: "/v1/partners/nobody/keys", hdr: admin, status: 404, problem: "urn:sluice:problem:unknown-partner"},
		{name: "partner keys malformed partner", path: "/v1/partners/No_Body/keys", hdr: admin, status: 404, problem: "urn:sluice:problem:unknown-partner", docRejects: true},
		{name: "create partner key", method: http.MethodPost, path: "/v1/partners/mvno-b/keys", hdr: admin, status: 201, ctype: "application/json"},
		{name: "create partner key as partner", method: http.MethodPost, path: "/v1/partners/mvno-b/keys", status: 403, problem: forbiddenAdmin},
		{name: "create partner key unknown partner", method: http.MethodPost, path: "/v1/partners/nobody/keys", hdr: admin, status: 404, problem: "urn:sluice:problem:unknown-partner"},
		{name: "revoke partner key as partner", method: http.MethodDelete, path: "/v1/partners/internal-noc/keys/" + adminRevokes.ID, status: 403, problem: forbiddenAdmin},
		{name: "revoke partner key", method: http.MethodDelete, path: "/v1/partners/internal-noc/keys/" + adminRevokes.ID, hdr: admin, status: 204},
		{name: "revoke partner key of another", method: http.MethodDelete, path: "/v1/partners/mvno-a/keys/" + live[len("slk_"):len("slk_")+16], hdr: admin, status: 404, problem: unknownKey},
		{name: "revoke partner key malformed", method: http.MethodDelete, path: "/v1/partners/internal-noc/keys/nope", hdr: admin, status: 404, problem: unknownKey, docRejects: true},

		{name: "subscriptions", path: "/v1/subscriptions", status: 200, ctype: "application/json"},
		{name: "subscriptions own partner", path: "/v1/subscriptions?partner=internal-noc", status: 200, ctype: "application/json"},
		{name: "subscriptions admin", path: "/v1/subscriptions", hdr: admin, status: 200, ctype: "application/json"},
		{name: "subscriptions admin one partner", path: "/v1/subscriptions?partner=mvno-b", hdr: admin, status: 200, ctype: "application/json"},
		{name: "subscriptions another partner", path: "/v1/subscriptions?partner=mvno-b", status: 403, problem: forbiddenAdmin},
		{name: "subscriptions malformed partner", path: "/v1/subscriptions?partner=MVNO", hdr: admin, status: 400, problem: invalidQuery, docRejects: true},
	}
}

// oaOpenStream opens an SSE stream as the path's default partner (unless
// hdr sets Authorization); the raw bytes read are kept in raw.
func oaOpenStream(t *testing.T, g *oaGateway, ctx context.Context, path string, hdr ...string) (*http.Request, *http.Response, *sseclient.Reader, *bytes.Buffer) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	hdr = g.withAuth(path, hdr)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] != "" {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("stream %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("stream %s: %d %s", path, resp.StatusCode, b)
	}
	raw := &bytes.Buffer{}
	return req, resp, sseclient.NewReader(io.TeeReader(resp.Body, raw)), raw
}

// oaCheckEvent validates one SSE event against the document.
func oaCheckEvent(t *testing.T, g *oaGateway, ev sseclient.Event) {
	t.Helper()
	switch ev.Type {
	case "record":
		if err := g.schemaJSON("Record", ev.Data); err != nil {
			t.Errorf("record event data is not a Record: %v\n%s", err, ev.Data)
		}
		if err := g.schema("Cursor", ev.ID); err != nil {
			t.Errorf("record event id %q is not a Cursor: %v", ev.ID, err)
		}
	case "cursor":
		if err := g.schemaJSON("StreamCursor", ev.Data); err != nil {
			t.Errorf("cursor event data: %v\n%s", err, ev.Data)
		}
		var c struct{ Cursor string }
		json.Unmarshal(ev.Data, &c) //nolint:errcheck // checked above
		if c.Cursor != ev.ID {
			t.Errorf("cursor event: data cursor %q != id %q", c.Cursor, ev.ID)
		}
	case "shutdown":
		if err := g.schemaJSON("StreamShutdown", ev.Data); err != nil {
			t.Errorf("shutdown event data: %v\n%s", err, ev.Data)
		}
	case "reauthenticate":
		if err := g.schemaJSON("StreamReauthenticate", ev.Data); err != nil {
			t.Errorf("reauthenticate event data: %v\n%s", err, ev.Data)
		}
	case "error", "revoked":
		if err := g.schemaJSON("Problem", ev.Data); err != nil {
			t.Errorf("%s event data is not a Problem: %v\n%s", ev.Type, err, ev.Data)
		}
	default:
		t.Errorf("undocumented SSE event type %q: %s", ev.Type, ev.Data)
	}
}

func oaStream(t *testing.T, g *oaGateway) {
	var lastID string
	for i, hdr := range [][]string{nil, {"Last-Event-ID", ""}} {
		path := "/v1/products/cdr/stream?from=earliest&purpose=fraud-prevention"
		if i == 1 {
			path = "/v1/products/cdr/stream"
			hdr[1] = lastID // resume where the first stream stopped
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, resp, sr, raw := oaOpenStream(t, g, ctx, path, hdr...)
		records := 0
		for records < 5 {
			ev, err := sr.Next()
			if err != nil {
				t.Fatalf("stream %s: after %d records: %v", path, records, err)
			}
			oaCheckEvent(t, g, ev)
			if ev.Type == "record" {
				records++
			}
		}
		// Keep reading a little for heartbeats and idle cursors.
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			ev, err := sr.Next()
			if err != nil {
				t.Fatal(err)
			}
			oaCheckEvent(t, g, ev)
		}
		lastID = sr.LastEventID()
		cancel()
		resp.Body.Close()
		// The events read so far, cut after the last complete one.
		b := raw.Bytes()
		if i := bytes.LastIndex(b, []byte("\n\n")); i >= 0 {
			b = b[:i+2]
		}
		if !bytes.HasPrefix(b, []byte(": sluice stream of cdr\nretry: ")) {
			t.Errorf("stream does not open with its comment and retry hint: %.80q", b)
		}
		if sr.Comments < 2 {
			t.Logf("stream %s: no heartbeat seen (%d comment lines)", path, sr.Comments)
		}
		if err := g.validate(req, resp, b); err != nil {
			t.Errorf("stream %s: answer does not match openapi.json: %v", path, err)
		}
		if err := g.validateRequest(req); err != nil {
			t.Errorf("stream %s: the document rejects the request: %v", path, err)
		}
		if lastID == "" {
			t.Fatal("no event id")
		}
	}
}

// oaPolicyOverride is added to the policy directory by oaPolicyReload: it
// withdraws network-quality from internal-noc (a denial by the shipped
// policy's safety net) and gives iot-fleet's decision on it two reasons
// (an evaluation error: the policy fails closed).
const oaPolicyOverride = `package sluice

violations contains "withdrawn from internal-noc by the OpenAPI test" if {
	input.partner.id == "internal-noc"
	input.product.id == "network-quality"
}

reason := "a second reason, added by the OpenAPI test" if {
	input.partner.id == "iot-fleet"
	input.product.id == "network-quality"
}
`

// oaPolicyReload reloads the policy under an open stream: the stream ends
// with a documented revoked event, the view explains the denial (200,
// allowed false) and reading answers 403 policy-denied, or policy-error
// for a policy that fails to evaluate. The policy is then restored.
func oaPolicyReload(t *testing.T, g *oaGateway) {
	const product = "network-quality"
	view := func(partner string) oaExplain {
		t.Helper()
		_, resp, body := g.get(http.MethodGet, "/v1/products/"+product+"/view", g.bearer(partner)...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("view of %s as %s: %d %s", product, partner, resp.StatusCode, body)
		}
		return oaParseExplain(t, body)
	}
	before := view("internal-noc")
	if !before.Allowed || !view("iot-fleet").Allowed {
		t.Fatalf("%s is not allowed to internal-noc and iot-fleet before the reload", product)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, resp, sr, raw := oaOpenStream(t, g, ctx, "/v1/products/"+product+"/stream")
	defer resp.Body.Close()

	// Not *_test.rego: the engine takes those for Rego tests, not policy.
	override := filepath.Join(g.policyDir, "zz_openapi_override.rego")
	if err := os.WriteFile(override, []byte(oaPolicyOverride), 0o600); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := os.Remove(override); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Error(err)
		}
	}
	defer restore()

	for {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("stream ended without a revoked event: %v", err)
		}
		oaCheckEvent(t, g, ev)
		if ev.Type != "revoked" {
			continue
		}
		var p map[string]any
		json.Unmarshal(ev.Data, &p) //nolint:errcheck // validated above
		if p["type"] != "urn:sluice:problem:policy-denied" || p["status"] != float64(403) {
			t.Errorf("revoked event %s, want a 403 policy-denied problem", ev.Data)
		}
		if _, ok := p["instance"]; ok {
			t.Errorf("revoked event with an instance, documented as absent: %s", ev.Data)
		}
		break
	}
	if _, err := sr.Next(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("stream goes on after the revoked event: %v", err)
	}
	if err := g.validate(req, resp, raw.Bytes()); err != nil {
		t.Errorf("revoked stream: answer does not match openapi.json: %v", err)
	}

	denied := func(partner, reason string) func(t *testing.T, body []byte, _ *http.Response) {
		return func(t *testing.T, body []byte, _ *http.Response) {
			e := oaParseExplain(t, body)
			if e.Allowed || e.Partner != partner || len(e.Schema) != 0 || !strings.Contains(e.Reason, reason) || e.PolicyRevision == before.PolicyRevision {
				t.Errorf("view %s: want %s denied (%q) under a new revision, without a schema", body, partner, reason)
			}
		}
	}
	noc, iot := g.bearer("internal-noc"), g.bearer("iot-fleet")
	for _, c := range []oaCase{
		{name: "view denied", path: "/v1/products/" + product + "/view", hdr: noc, status: 200, ctype: "application/json", check: denied("internal-noc", "withdrawn from internal-noc")},
		{name: "records denied", path: "/v1/products/" + product + "/records", hdr: noc, status: 403, problem: "urn:sluice:problem:policy-denied"},
		{name: "stream denied", path: "/v1/products/" + product + "/stream", hdr: noc, status: 403, problem: "urn:sluice:problem:policy-denied"},
		{name: "schema denied", path: "/v1/products/" + product + "/schema", hdr: noc, status: 403, problem: "urn:sluice:problem:policy-denied"},
		{name: "schema version denied too", path: "/v1/products/" + product + "/schema?version=1", hdr: noc, status: 403, problem: "urn:sluice:problem:policy-denied"},
		{name: "view policy error", path: "/v1/products/" + product + "/view", hdr: iot, status: 200, ctype: "application/json", check: denied("iot-fleet", "")},
		{name: "records policy error", path: "/v1/products/" + product + "/records", hdr: iot, status: 403, problem: "urn:sluice:problem:policy-error"},
		{name: "stream policy error", path: "/v1/products/" + product + "/stream", hdr: iot, status: 403, problem: "urn:sluice:problem:policy-error"},
	} {
		t.Run(c.name, func(t *testing.T) { g.run(t, c) })
	}

	restore()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if e := view("internal-noc"); e.Allowed && e.PolicyRevision == before.PolicyRevision {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shipped policy is not back in force within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// oaReauthenticate opens a stream with a token about to expire: the stream
// ends with a documented reauthenticate event.
func oaReauthenticate(t *testing.T, g *oaGateway) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, resp, sr, raw := oaOpenStream(t, g, ctx, "/v1/products/cdr/stream", "Authorization", "Bearer "+g.sign("internal-fraud", time.Second))
	defer resp.Body.Close()
	for {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("stream ended without a reauthenticate event: %v", err)
		}
		oaCheckEvent(t, g, ev)
		if ev.Type == "reauthenticate" {
			break
		}
	}
	if _, err := sr.Next(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("stream goes on after the reauthenticate event: %v", err)
	}
	if err := g.validate(req, resp, raw.Bytes()); err != nil {
		t.Errorf("expired stream: answer does not match openapi.json: %v", err)
	}
}

// oaExpired deletes a product's records (as retention would) and checks the
// 410 answers.
func oaExpired(t *testing.T, g *oaGateway) {
	const product = "device-telemetry"
	// Enough records that deleting them all expires the cursor after the
	// first one in at least one partition.
	for deadline := time.Now().Add(10 * time.Second); len(g.page("/v1/products/"+product+"/records?from=earliest&limit=10").Records) < 10; {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 10 %s records after 10s", product)
		}
		time.Sleep(50 * time.Millisecond)
	}
	old := g.page("/v1/products/" + product + "/records?from=earliest&limit=1").NextCursor
	prod, _ := g.gw.Catalog().Get(product)
	cl, err := kgo.NewClient(kgo.SeedBrokers(g.gw.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, prod.Topic)
	if err != nil {
		t.Fatal(err)
	}
	del := kadm.Offsets{}
	ends.Each(func(o kadm.ListedOffset) { del.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset}) })
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	earliest := func(t *testing.T, body []byte, _ *http.Response) {
		var p struct {
			EarliestCursor string `json:"earliest_cursor"`
		}
		json.Unmarshal(body, &p) //nolint:errcheck // validated before
		if p.EarliestCursor == "" {
			t.Errorf("410 without earliest_cursor: %s", body)
		}
	}
	for _, c := range []oaCase{
		{name: "records", path: "/v1/products/" + product + "/records?cursor=" + old, status: 410, problem: "urn:sluice:problem:cursor-expired", check: earliest},
		{name: "stream", path: "/v1/products/" + product + "/stream", hdr: []string{"Last-Event-ID", old}, status: 410, problem: "urn:sluice:problem:cursor-expired", check: earliest},
	} {
		t.Run(c.name, func(t *testing.T) { g.run(t, c) })
	}
}

// oaShutdown stops the gateway under an open stream: the stream's last
// event is a documented shutdown event.
func oaShutdown(t *testing.T, g *oaGateway) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, resp, sr, _ := oaOpenStream(t, g, ctx, "/v1/products/cdr/stream")
	defer resp.Body.Close()
	stopped := make(chan struct{})
	go func() { g.stop(); close(stopped) }()
	for {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("stream ended without a shutdown event: %v", err)
		}
		oaCheckEvent(t, g, ev)
		if ev.Type == "shutdown" {
			if ev.Retry != 1000 {
				t.Errorf("shutdown event retry %d, want 1000 as documented", ev.Retry)
			}
			break
		}
	}
	if _, err := sr.Next(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("stream goes on after the shutdown event: %v", err)
	}
	<-stopped
}

// oaPlanLimits: the answers of the plan limits, validated like the cases.
// internal-noc's device-telemetry subscription moves to a plan of one byte
// per second and one stream: its first record drives the bucket into debt
// for minutes, so the 429s that follow are certain. mvno-a's fraud-alerts
// subscription moves to a plan of one record a month, already used.
func oaPlanLimits(t *testing.T, g *oaGateway) {
	ctx := context.Background()
	st := g.gw.Store()
	tiny := store.Plan{ID: "oa-tiny", Name: "Tiny", RecordsPerSecond: 1, BytesPerSecond: 1, ConcurrentStreams: 1,
		MonthlyRecordQuota: 1_000_000, Formats: []string{store.FormatJSON, store.FormatSSE}}
	spent := tiny
	spent.ID, spent.BytesPerSecond, spent.MonthlyRecordQuota = "oa-spent", 1_000_000, 1
	for _, p := range []store.Plan{tiny, spent} {
		if err := st.UpsertPlan(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	move := func(partner, product, plan string) {
		subs, err := st.Subscriptions(ctx, store.Filter{PartnerID: partner, Product: product, State: store.StateActive})
		if err != nil || len(subs) != 1 {
			t.Fatalf("subscriptions of %s/%s: %v %v", partner, product, subs, err)
		}
		if _, err := st.Transition(ctx, subs[0].ID, store.ActionRevoke, "admin", "plan change"); err != nil {
			t.Fatal(err)
		}
		sub, err := st.CreateSubscription(ctx, partner, product, subs[0].Purpose, plan, partner)
		if err == nil {
			_, err = st.Transition(ctx, sub.ID, store.ActionApprove, "admin", "plan change")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	move("internal-noc", "device-telemetry", "oa-tiny")
	move("mvno-a", "fraud-alerts", "oa-spent")
	if err := st.AddUsage(ctx, []store.UsageDelta{{PartnerID: "mvno-a", Product: "fraud-alerts", Purpose: "fraud-prevention", Day: time.Now(), Records: 1}}); err != nil {
		t.Fatal(err)
	}
	rateHeaders := func(t *testing.T, _ []byte, resp *http.Response) {
		if resp.Header.Get("RateLimit") == "" || resp.Header.Get("RateLimit-Policy") == "" {
			t.Errorf("no RateLimit fields: %v", resp.Header)
		}
	}
	// The first page with a record takes the bucket (and more) at once.
	first := 0
	for deadline := time.Now().Add(10 * time.Second); first == 0; {
		_, resp, body := g.get(http.MethodGet, "/v1/products/device-telemetry/records?from=earliest&limit=5")
		var pg oaPage
		if resp.StatusCode == 200 && json.Unmarshal(body, &pg) == nil {
			first = len(pg.Records)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no device-telemetry record within 10 s: %d %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if first != 1 {
		t.Fatalf("the first page under a one-byte bucket had %d records, want 1 (served into debt)", first)
	}
	ctxS, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctxS, http.MethodGet, g.base+"/v1/products/device-telemetry/stream?from=latest", nil)
	req.Header.Set("Authorization", "Bearer "+g.token("internal-noc"))
	held, err := http.DefaultClient.Do(req)
	if err != nil || held.StatusCode != 200 {
		t.Fatalf("holding a stream: %v %v", err, held)
	}
	defer held.Body.Close()
	mvnoA := g.bearer("mvno-a")
	for _, c := range []oaCase{
		{name: "records rate-limited", path: "/v1/products/device-telemetry/records?from=earliest", status: 429, problem: "urn:sluice:problem:rate-limited",
			check: func(t *testing.T, body []byte, resp *http.Response) {
				rateHeaders(t, body, resp)
				if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 60 {
					t.Errorf("Retry-After %q, want the minutes the byte debt takes", resp.Header.Get("Retry-After"))
				}
			}},
		{name: "stream over the limit", path: "/v1/products/device-telemetry/stream?from=latest", status: 429, problem: "urn:sluice:problem:stream-limit"},
		{name: "records quota exhausted", path: "/v1/products/fraud-alerts/records", hdr: mvnoA, status: 403, problem: "urn:sluice:problem:quota-exhausted"},
		{name: "stream quota exhausted", path: "/v1/products/fraud-alerts/stream", hdr: mvnoA, status: 403, problem: "urn:sluice:problem:quota-exhausted"},
		{name: "page with rate fields", path: "/v1/products/network-quality/records?from=earliest&limit=1", status: 200, ctype: "application/json", check: rateHeaders},
	} {
		t.Run(c.name, func(t *testing.T) { g.run(t, c) })
	}
}

// oaAuditCases are the requests of the audit trail's endpoints: its
// events as the regulator (every other partner gets 403 forbidden-audit),
// its keys as any partner.
func oaAuditCases(t *testing.T, g *oaGateway) []oaCase {
	const (
		forbiddenAudit = "urn:sluice:problem:forbidden-audit"
		invalidQuery   = "urn:sluice:problem:invalid-query"
		invalidCursor  = "urn:sluice:problem:invalid-cursor"
	)
	reg := g.bearer("regulator")
	_, resp, body := g.get(http.MethodGet, "/v1/audit?limit=2", reg...)
	var first struct {
		Events     []json.RawMessage `json:"events"`
		NextCursor string            `json:"next_cursor"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &first) != nil || len(first.Events) != 2 {
		t.Fatalf("GET /v1/audit?limit=2 as the regulator: %d %s", resp.StatusCode, body)
	}
	since := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	until := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	events := func(min int) func(t *testing.T, body []byte, _ *http.Response) {
		return func(t *testing.T, body []byte, _ *http.Response) {
			var p struct{ Events []json.RawMessage }
			json.Unmarshal(body, &p) //nolint:errcheck // validated before
			if len(p.Events) < min {
				t.Errorf("%d events, want at least %d", len(p.Events), min)
			}
			for _, ev := range p.Events {
				if err := g.schemaJSON("AuditEvent", ev); err != nil {
					t.Errorf("not an AuditEvent: %v\n%s", err, ev)
				}
			}
		}
	}
	ndjson := func(t *testing.T, body []byte, resp *http.Response) {
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if len(lines) == 0 || lines[0] == "" {
			t.Fatal("empty NDJSON page")
		}
		for i, ln := range lines {
			if err := g.schemaJSON("AuditEvent", []byte(ln)); err != nil {
				t.Errorf("NDJSON line %d is not an AuditEvent: %v\n%s", i, err, ln)
			}
		}
		if !oaCursorRE.MatchString(resp.Header.Get("Sluice-Next-Cursor")) || resp.Header.Get("Sluice-Caught-Up") == "" {
			t.Errorf("Sluice-Next-Cursor %q, Sluice-Caught-Up %q", resp.Header.Get("Sluice-Next-Cursor"), resp.Header.Get("Sluice-Caught-Up"))
		}
	}
	productCursor := g.page("/v1/products/cdr/records?from=latest").NextCursor
	return []oaCase{
		{name: "audit", path: "/v1/audit", hdr: reg, status: 200, ctype: "application/json", check: events(2)},
		{name: "audit next page", path: "/v1/audit?limit=3&cursor=" + first.NextCursor, hdr: reg, status: 200, ctype: "application/json", check: events(1)},
		{name: "audit filtered", path: "/v1/audit?partner=internal-fraud&product=cdr&kind=access,delivery&from=" + since + "&to=" + until + "&limit=5", hdr: reg, status: 200, ctype: "application/json", check: events(1)},
		{name: "audit from earliest", path: "/v1/audit?from=earliest&limit=1", hdr: reg, status: 200, ctype: "application/json", check: events(1)},
		{name: "audit ndjson", path: "/v1/audit?limit=4", hdr: append([]string{"Accept", "application/x-ndjson"}, reg...), status: 200, ctype: "application/x-ndjson", check: ndjson},
		{name: "audit as partner", path: "/v1/audit", status: 403, problem: forbiddenAudit},
		{name: "audit as admin", path: "/v1/audit", hdr: g.bearer("admin"), status: 403, problem: forbiddenAudit},
		{name: "audit unknown partner", path: "/v1/audit", hdr: g.bearer("nobody"), status: 403, problem: "urn:sluice:problem:token-unknown-partner"},
		{name: "audit without token", path: "/v1/audit", hdr: oaNoToken, status: 401, problem: "urn:sluice:problem:token-missing", docRejects: true},
		{name: "audit bad kind", path: "/v1/audit?kind=bogus", hdr: reg, status: 400, problem: invalidQuery, docRejects: true},
		{name: "audit bad partner", path: "/v1/audit?partner=Nobody", hdr: reg, status: 400, problem: invalidQuery, docRejects: true},
		{name: "audit unknown param", path: "/v1/audit?colour=red", hdr: reg, status: 400, problem: invalidQuery, docRejects: true},
		{name: "audit backwards", path: "/v1/audit?from=" + until + "&to=" + since, hdr: reg, status: 400, problem: invalidQuery},
		{name: "audit limit 0", path: "/v1/audit?limit=0", hdr: reg, status: 400, problem: "urn:sluice:problem:invalid-limit", docRejects: true},
		{name: "audit bad from", path: "/v1/audit?from=yesterday", hdr: reg, status: 400, problem: "urn:sluice:problem:invalid-from", docRejects: true},
		{name: "audit garbage cursor", path: "/v1/audit?cursor=garbage", hdr: reg, status: 400, problem: invalidCursor, docRejects: true},
		{name: "audit product's cursor", path: "/v1/audit?cursor=" + productCursor, hdr: reg, status: 400, problem: invalidCursor},
		{name: "audit cursor and from", path: "/v1/audit?from=latest&cursor=" + first.NextCursor, hdr: reg, status: 400, problem: invalidQuery},

		{name: "audit stream as partner", path: "/v1/audit/stream", status: 403, problem: forbiddenAudit},
		{name: "audit stream without token", path: "/v1/audit/stream", hdr: oaNoToken, status: 401, problem: "urn:sluice:problem:token-missing", docRejects: true},
		{name: "audit stream unknown param", path: "/v1/audit/stream?limit=5", hdr: reg, status: 400, problem: invalidQuery, docRejects: true},
		{name: "audit stream bad Last-Event-ID", path: "/v1/audit/stream", hdr: append([]string{"Last-Event-ID", "zzz"}, reg...), status: 400, problem: invalidCursor, docRejects: true},
		{name: "audit stream product's cursor", path: "/v1/audit/stream?cursor=" + productCursor, hdr: reg, status: 400, problem: invalidCursor},

		{name: "audit keys", path: "/v1/audit/keys", status: 200, ctype: "application/jwk-set+json"},
		{name: "audit keys as regulator", path: "/v1/audit/keys", hdr: reg, status: 200, ctype: "application/jwk-set+json"},
		{name: "audit keys without token", path: "/v1/audit/keys", hdr: oaNoToken, status: 401, problem: "urn:sluice:problem:token-missing", docRejects: true},
		{name: "audit keys unknown partner", path: "/v1/audit/keys", hdr: g.bearer("nobody"), status: 403, problem: "urn:sluice:problem:token-unknown-partner"},
		{name: "audit keys query", path: "/v1/audit/keys?kid=x", status: 400, problem: invalidQuery, docRejects: true},
	}
}

// oaAuditStream validates the audit stream's answer and events against the
// document, as the regulator.
func oaAuditStream(t *testing.T, g *oaGateway) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, resp, sr, raw := oaOpenStream(t, g, ctx, "/v1/audit/stream?from=earliest", g.bearer("regulator")...)
	events := 0
	for deadline := time.Now().Add(300 * time.Millisecond); events < 5 || time.Now().Before(deadline); {
		ev, err := sr.Next()
		if err != nil {
			t.Fatalf("audit stream after %d events: %v", events, err)
		}
		switch ev.Type {
		case "audit":
			events++
			if err := g.schemaJSON("AuditEvent", ev.Data); err != nil {
				t.Errorf("audit event data is not an AuditEvent: %v\n%s", err, ev.Data)
			}
			if err := g.schema("Cursor", ev.ID); err != nil {
				t.Errorf("audit event id %q is not a Cursor: %v", ev.ID, err)
			}
		default:
			oaCheckEvent(t, g, ev)
		}
	}
	cancel()
	resp.Body.Close()
	b := raw.Bytes()
	if i := bytes.LastIndex(b, []byte("\n\n")); i >= 0 {
		b = b[:i+2]
	}
	if !bytes.HasPrefix(b, []byte(": sluice audit stream\nretry: ")) {
		t.Errorf("audit stream does not open with its comment and retry hint: %.80q", b)
	}
	if err := g.validate(req, resp, b); err != nil {
		t.Errorf("audit stream: answer does not match openapi.json: %v", err)
	}
	if err := g.validateRequest(req); err != nil {
		t.Errorf("audit stream: the document rejects the request: %v", err)
	}
}

package httpapi_test

// Responses of a real gateway (embedded broker, data generator) validated
// against openapi.json with kin-openapi: status, headers, content type and
// body of every documented operation, error cases included, and the SSE
// events against their schemas. The document's own validity and its match
// with the router are checked in openapi_internal_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/sseclient"
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
	t      *testing.T
	gw     *gateway.Gateway
	base   string
	doc    *openapi3.T
	router routers.Router
	cancel context.CancelFunc
	done   chan error
	stop   func()
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
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("gateway.New: %v", err)
	}
	g := &oaGateway{t: t, gw: gw, base: "http://" + gw.HTTPAddr(), doc: doc, router: router, cancel: cancel, done: make(chan error, 1)}
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

// get sends a request (header name/value pairs after the path) and reads
// the whole answer.
func (g *oaGateway) get(method, path string, hdr ...string) (*http.Request, *http.Response, []byte) {
	g.t.Helper()
	req, err := http.NewRequest(method, g.base+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
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

// validateRequest reports whether the document accepts req.
func (g *oaGateway) validateRequest(req *http.Request) error {
	route, params, err := g.route(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	})
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
	// invalid (parameter schema), so ValidateRequest must fail. Otherwise,
	// for 2xx answers, it must pass.
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

		// Catalog.
		{name: "products", path: "/v1/products", status: 200, ctype: "application/json"},
		{name: "product", path: "/v1/products/cdr", status: 200, ctype: "application/json"},
		{name: "unknown product", path: "/v1/products/nope", status: 404, problem: "urn:sluice:problem:unknown-product"},
		{name: "schema", path: "/v1/products/cdr/schema", status: 200, ctype: "application/json"},
		{name: "schema v1", path: "/v1/products/cdr/schema?version=1", status: 200, ctype: "application/json", check: func(t *testing.T, _ []byte, resp *http.Response) {
			if v := resp.Header.Get("Sluice-Schema-Version"); v != "1" {
				t.Errorf("Sluice-Schema-Version %q, want 1", v)
			}
		}},
		{name: "schema unknown version", path: "/v1/products/cdr/schema?version=99", status: 400, problem: "urn:sluice:problem:invalid-query"},
		{name: "schema bad version", path: "/v1/products/cdr/schema?version=two", status: 400, problem: "urn:sluice:problem:invalid-query", docRejects: true},
		{name: "schema unknown product", path: "/v1/products/nope/schema", status: 404, problem: "urn:sluice:problem:unknown-product"},

		// Records.
		{name: "records", path: "/v1/products/cdr/records?from=earliest&limit=5", status: 200, ctype: "application/json", check: checkPage(3)},
		{name: "records default", path: "/v1/products/cdr/records", status: 200, ctype: "application/json", check: checkPage(1)},
		{name: "records next", path: "/v1/products/cdr/records?limit=2&cursor=" + first.NextCursor, status: 200, ctype: "application/json"},
		{name: "records latest", path: "/v1/products/cdr/records?from=latest", status: 200, ctype: "application/json"},
		{name: "records since", path: "/v1/products/cdr/records?limit=3&from=" + since, status: 200, ctype: "application/json"},
		{name: "records ndjson", path: "/v1/products/cdr/records?from=earliest&limit=4", hdr: []string{"Accept", "application/x-ndjson"}, status: 200, ctype: "application/x-ndjson", check: checkNDJSON},
		{name: "records unknown product", path: "/v1/products/nope/records", status: 404, problem: "urn:sluice:problem:unknown-product"},
		{name: "records garbage cursor", path: "/v1/products/cdr/records?cursor=garbage", status: 400, problem: "urn:sluice:problem:invalid-cursor", docRejects: true},
		{name: "records bad base64 cursor", path: "/v1/products/cdr/records?cursor=c1%21%21", status: 400, problem: "urn:sluice:problem:invalid-cursor", docRejects: true},
		{name: "records other product's cursor", path: "/v1/products/cdr/records?cursor=" + other, status: 400, problem: "urn:sluice:problem:invalid-cursor"},
		{name: "records cursor ahead", path: "/v1/products/cdr/records?cursor=" + ahead, status: 400, problem: "urn:sluice:problem:invalid-cursor"},
		{name: "records bad from", path: "/v1/products/cdr/records?from=yesterday", status: 400, problem: "urn:sluice:problem:invalid-from", docRejects: true},
		{name: "records limit 0", path: "/v1/products/cdr/records?limit=0", status: 400, problem: "urn:sluice:problem:invalid-limit", docRejects: true},
		{name: "records limit 1001", path: "/v1/products/cdr/records?limit=1001", status: 400, problem: "urn:sluice:problem:invalid-limit", docRejects: true},
		{name: "records limit text", path: "/v1/products/cdr/records?limit=ten", status: 400, problem: "urn:sluice:problem:invalid-limit", docRejects: true},
		{name: "records unknown param", path: "/v1/products/cdr/records?colour=red", status: 400, problem: "urn:sluice:problem:invalid-query"},
		{name: "records cursor and from", path: "/v1/products/cdr/records?from=earliest&cursor=" + first.NextCursor, status: 400, problem: "urn:sluice:problem:invalid-query"},

		// Stream errors (the 200 is checked below).
		{name: "stream unknown product", path: "/v1/products/nope/stream", status: 404, problem: "urn:sluice:problem:unknown-product"},
		{name: "stream bad from", path: "/v1/products/cdr/stream?from=1999", status: 400, problem: "urn:sluice:problem:invalid-from", docRejects: true},
		{name: "stream bad cursor", path: "/v1/products/cdr/stream?cursor=zzz", status: 400, problem: "urn:sluice:problem:invalid-cursor", docRejects: true},
		{name: "stream bad Last-Event-ID", path: "/v1/products/cdr/stream", hdr: []string{"Last-Event-ID", "zzz"}, status: 400, problem: "urn:sluice:problem:invalid-cursor", docRejects: true},
		{name: "stream other product's Last-Event-ID", path: "/v1/products/cdr/stream", hdr: []string{"Last-Event-ID", other}, status: 400, problem: "urn:sluice:problem:invalid-cursor"},
		{name: "stream unknown param", path: "/v1/products/cdr/stream?colour=red", status: 400, problem: "urn:sluice:problem:invalid-query"},
		{name: "stream cursor and from", path: "/v1/products/cdr/stream?from=latest&cursor=" + first.NextCursor, status: 400, problem: "urn:sluice:problem:invalid-query"},
	}
	// Every product of the catalog, with its fields and schema.
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
			oaCase{name: "schema " + p.ID, path: "/v1/products/" + p.ID + "/schema", status: 200, ctype: "application/json"},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { g.run(t, c) })
	}

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
	// not-found problem), for the method it documents.
	t.Run("documented paths are served", func(t *testing.T) {
		for path, item := range g.doc.Paths.Map() {
			for method := range item.Operations() {
				p := strings.ReplaceAll(path, "{id}", "cdr")
				if strings.HasSuffix(p, "/stream") {
					p += "?colour=red" // a 400 from the handler; a 200 would not end
				}
				_, resp, body := g.get(method, p)
				if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
					t.Errorf("%s %s (documented as %s): %d %s", method, p, path, resp.StatusCode, body)
				}
			}
		}
	})

	t.Run("stream", func(t *testing.T) { oaStream(t, g) })
	t.Run("cursor expired", func(t *testing.T) { oaExpired(t, g) })
	t.Run("shutdown event", func(t *testing.T) { oaShutdown(t, g) })
}

// oaOpenStream opens an SSE stream; the raw bytes read are kept in raw.
func oaOpenStream(t *testing.T, g *oaGateway, ctx context.Context, path string, hdr ...string) (*http.Request, *http.Response, *sseclient.Reader, *bytes.Buffer) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
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
	case "error":
		if err := g.schemaJSON("Problem", ev.Data); err != nil {
			t.Errorf("error event data is not a Problem: %v\n%s", err, ev.Data)
		}
	default:
		t.Errorf("undocumented SSE event type %q: %s", ev.Type, ev.Data)
	}
}

func oaStream(t *testing.T, g *oaGateway) {
	var lastID string
	for i, hdr := range [][]string{nil, {"Last-Event-ID", ""}} {
		path := "/v1/products/cdr/stream?from=earliest"
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

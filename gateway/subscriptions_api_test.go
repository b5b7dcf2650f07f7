package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/store"
)

// do sends a request as partner with an optional JSON body and decodes the
// JSON answer.
func (e *env) do(method, path, partner, body string) (int, map[string]any) {
	e.t.Helper()
	resp, raw := e.send(method, path, e.bearer(partner), body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		e.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
	}
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || v["title"] == "" || v["detail"] == "" {
			e.t.Fatalf("%s %s: %d %s %s, want a problem+json", method, path, resp.StatusCode, ct, bytes.TrimSpace(raw))
		}
	}
	return resp.StatusCode, v
}

// want checks an answer's status and, for a problem, its type.
func want(t *testing.T, what string, status int, v map[string]any, wantStatus int, typ string) {
	t.Helper()
	if status != wantStatus || (typ != "" && v["type"] != typ) {
		t.Fatalf("%s: %d %v, want %d %s", what, status, v, wantStatus, typ)
	}
}

// TestSubscriptionsAPILifecycle: mvno-b requests network-quality, the admin
// approves it (mvno-b then reads the product) and revokes it (mvno-b is
// refused); a revoked subscription cannot be approved again.
func TestSubscriptionsAPILifecycle(t *testing.T) {
	e := newEnv(t)
	e.produce("network-quality", 5)
	nq := "/v1/products/network-quality/records?from=earliest&purpose=network-analytics"
	e.problem(nq, 403, "urn:sluice:problem:no-grant", "Authorization", "Bearer "+e.token("mvno-b"))

	st, plans := e.do("GET", "/v1/plans", "mvno-b", "")
	want(t, "plans", st, plans, 200, "")
	ps, _ := plans["plans"].([]any)
	defaults := 0
	for _, p := range ps {
		if p.(map[string]any)["default"] == true {
			defaults++
		}
	}
	if len(ps) == 0 || defaults != 1 {
		t.Fatalf("plans %v: want some, one of them the default", plans)
	}

	st, sub := e.do("POST", "/v1/subscriptions", "mvno-b", `{"product":"network-quality","purpose":"network-analytics"}`)
	want(t, "request", st, sub, 201, "")
	id, _ := sub["id"].(string)
	if !strings.HasPrefix(id, "sub_") || sub["partner"] != "mvno-b" || sub["state"] != "requested" || sub["plan"] != "standard" ||
		sub["product"] != "network-quality" || sub["purpose"] != "network-analytics" || sub["created_at"] == nil || sub["updated_at"] == nil {
		t.Fatalf("requested subscription %v", sub)
	}
	e.problem(nq, 403, "urn:sluice:problem:no-grant", "Authorization", "Bearer "+e.token("mvno-b"))

	st, v := e.do("POST", "/v1/subscriptions/"+id+"/approve", "admin", `{"reason":"contract signed"}`)
	want(t, "approve", st, v, 200, "")
	if v["state"] != "active" {
		t.Fatalf("approved subscription %v, want active", v)
	}
	if resp, body := e.get(nq, "Authorization", "Bearer "+e.token("mvno-b")); resp.StatusCode != 200 || !strings.Contains(string(body), `"records"`) {
		t.Fatalf("mvno-b reads network-quality after approval: %d %s", resp.StatusCode, body)
	}

	st, v = e.do("POST", "/v1/subscriptions/"+id+"/revoke", "admin", `{"reason":"contract ended"}`)
	want(t, "revoke", st, v, 200, "")
	if v["state"] != "revoked" {
		t.Fatalf("revoked subscription %v", v)
	}
	e.problem(nq, 403, "urn:sluice:problem:no-grant", "Authorization", "Bearer "+e.token("mvno-b"))

	// Illegal: approving a revoked subscription.
	st, v = e.do("POST", "/v1/subscriptions/"+id+"/approve", "admin", `{"reason":"again"}`)
	want(t, "approve revoked", st, v, 409, "urn:sluice:problem:illegal-transition")
	if d, _ := v["detail"].(string); !strings.Contains(d, "revoked") || !strings.Contains(d, "approve") {
		t.Fatalf("illegal transition detail %q does not name the state and the action", d)
	}
	// The history records who did what, and why.
	h, err := e.gw.Store().History(t.Context(), id)
	if err != nil || len(h) != 4 || h[3].Actor != "admin" || h[3].Reason != "contract ended" || h[0].Actor != "mvno-b" {
		t.Fatalf("history %+v %v", h, err)
	}
	// A revoked subscription is closed: mvno-b may request it again.
	st, v = e.do("POST", "/v1/subscriptions", "mvno-b", `{"product":"network-quality","purpose":"network-analytics","plan":"trial"}`)
	want(t, "request again", st, v, 201, "")
	if v["plan"] != "trial" {
		t.Fatalf("re-requested subscription %v, want plan trial", v)
	}
}

// TestSubscriptionsAPIErrors: the refusals of the subscriptions API.
func TestSubscriptionsAPIErrors(t *testing.T) {
	e := newEnv(t)
	st, sub := e.do("POST", "/v1/subscriptions", "mvno-b", `{"product":"network-quality","purpose":"network-analytics","plan":"standard"}`)
	want(t, "request", st, sub, 201, "")
	id := sub["id"].(string)

	for _, c := range []struct{ name, body string }{
		{"unknown plan", `{"product":"network-quality","purpose":"network-analytics","plan":"platinum"}`},
		{"unknown product", `{"product":"nope","purpose":"network-analytics"}`},
		{"unknown purpose", `{"product":"network-quality","purpose":"profit"}`},
		{"bad JSON", `{"product":`},
		{"unknown field", `{"product":"network-quality","purpose":"network-analytics","colour":"red"}`},
	} {
		st, v := e.do("POST", "/v1/subscriptions", "mvno-b", c.body)
		want(t, c.name, st, v, 400, "urn:sluice:problem:invalid-request")
	}
	st, v := e.do("POST", "/v1/subscriptions", "mvno-b", `{"product":"network-quality","purpose":"network-analytics"}`)
	want(t, "duplicate", st, v, 409, "urn:sluice:problem:conflict")
	// Seeded and active: also a duplicate.
	st, v = e.do("POST", "/v1/subscriptions", "mvno-b", `{"product":"cdr","purpose":"network-analytics"}`)
	want(t, "duplicate of a seeded subscription", st, v, 409, "urn:sluice:problem:conflict")

	// Only the admin acts on subscriptions.
	for _, who := range []string{"mvno-b", "internal-noc"} {
		st, v = e.do("POST", "/v1/subscriptions/"+id+"/approve", who, `{"reason":"self-service"}`)
		want(t, who+" approves", st, v, 403, "urn:sluice:problem:forbidden-admin")
	}
	st, v = e.do("POST", "/v1/subscriptions/"+id+"/approve", "admin", `{}`)
	want(t, "no reason", st, v, 400, "urn:sluice:problem:invalid-request")
	st, v = e.do("POST", "/v1/subscriptions/sub_AAAAAAAAAAAAAAAA/approve", "admin", `{"reason":"x"}`)
	want(t, "unknown subscription", st, v, 404, "urn:sluice:problem:unknown-subscription")
	st, v = e.do("POST", "/v1/subscriptions/"+id+"/resume", "admin", `{"reason":"x"}`)
	want(t, "resume requested", st, v, 409, "urn:sluice:problem:illegal-transition")
	st, v = e.do("POST", "/v1/subscriptions/"+id+"/reject", "admin", `{"reason":"no contract"}`)
	want(t, "reject", st, v, 200, "")
	st, v = e.do("POST", "/v1/subscriptions/"+id+"/suspend", "admin", `{"reason":"x"}`)
	want(t, "suspend rejected", st, v, 409, "urn:sluice:problem:illegal-transition")

	// Listing and reading: the caller's own only.
	st, v = e.do("GET", "/v1/subscriptions", "mvno-b", "")
	want(t, "list", st, v, 200, "")
	subs := v["subscriptions"].([]any)
	found := false
	for _, s := range subs {
		m := s.(map[string]any)
		if m["partner"] != "mvno-b" {
			t.Fatalf("mvno-b's list holds %v", m)
		}
		found = found || m["id"] == id
	}
	if !found || len(subs) < 2 {
		t.Fatalf("mvno-b's list %v: want its seeded cdr subscription and %s", subs, id)
	}
	st, v = e.do("GET", "/v1/subscriptions/"+id, "mvno-b", "")
	want(t, "get own", st, v, 200, "")
	if v["id"] != id || v["state"] != "rejected" {
		t.Fatalf("get own: %v", v)
	}
	st, v = e.do("GET", "/v1/subscriptions/"+id, "mvno-a", "")
	want(t, "get another's", st, v, 404, "urn:sluice:problem:unknown-subscription")
	st, v = e.do("GET", "/v1/subscriptions", "mvno-a", "")
	want(t, "list mvno-a", st, v, 200, "")
	for _, s := range v["subscriptions"].([]any) {
		if s.(map[string]any)["id"] == id {
			t.Fatalf("mvno-a lists mvno-b's subscription: %v", v)
		}
	}
	st, v = e.do("GET", "/v1/subscriptions/sub_nope", "mvno-b", "")
	want(t, "get unknown", st, v, 404, "urn:sluice:problem:unknown-subscription")
}

// TestConfigPlans: plans in the config file are what GET /v1/plans lists
// and what a request without a plan gets (the config's default); a config
// with a plan listed twice, two defaults or a value the store refuses does
// not start.
func TestConfigPlans(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sluice.yaml")
	yml := `plans:
  - id: gold
    name: Gold
    records_per_second: 500
    bytes_per_second: 5000000
    concurrent_streams: 4
    monthly_record_quota: 90000000
    replay_window: 720h
    formats: [json, sse, kafka]
    default: true
  - id: silver
    name: Silver
    records_per_second: 50
    bytes_per_second: 500000
    concurrent_streams: 1
    monthly_record_quota: 1000000
    replay_window: 0s
    formats: [sse]
`
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	fc, err := gateway.LoadConfigFile(file)
	if err != nil {
		t.Fatal(err)
	}
	no := false
	e := newEnv(t, func(c *gateway.Config) { c.Plans, c.SeedDemo = fc.Plans, &no })
	st, v := e.do("GET", "/v1/plans", "mvno-b", "")
	want(t, "plans", st, v, 200, "")
	got, _ := json.Marshal(v["plans"])
	wantPlans := `[{"bytes_per_second":5000000,"concurrent_streams":4,"default":true,"formats":["json","sse","kafka"],"id":"gold","monthly_record_quota":90000000,"name":"Gold","records_per_second":500,"replay_window":2592000},` +
		`{"bytes_per_second":500000,"concurrent_streams":1,"default":false,"formats":["sse"],"id":"silver","monthly_record_quota":1000000,"name":"Silver","records_per_second":50,"replay_window":0}]`
	if string(got) != wantPlans {
		t.Errorf("GET /v1/plans = %s\nwant %s", got, wantPlans)
	}
	// Without the demo seed the store knows no partner yet.
	if err := e.gw.Store().UpsertPartner(context.Background(), store.Partner{ID: "mvno-b", Name: "MVNO B", Type: products.PartnerMVNO}); err != nil {
		t.Fatal(err)
	}
	st, sub := e.do("POST", "/v1/subscriptions", "mvno-b", `{"product":"network-quality","purpose":"network-analytics"}`)
	want(t, "request", st, sub, 201, "")
	if sub["plan"] != "gold" {
		t.Errorf("a request without a plan got plan %v, want the config's default gold", sub["plan"])
	}

	for _, c := range []struct {
		name  string
		plans []gateway.PlanYAML
		want  string
	}{
		{"twice", []gateway.PlanYAML{fc.Plans[1], fc.Plans[1]}, `config: plans: id "silver" is listed twice`},
		{"two defaults", []gateway.PlanYAML{fc.Plans[0], {ID: "x", Default: true}}, "config: plans: 2 plans are marked default"},
		{"refused", []gateway.PlanYAML{{ID: "bronze", Name: "Bronze", BytesPerSecond: 1, ConcurrentStreams: 1, MonthlyRecordQuota: 1, Formats: []string{"sse"}}},
			"config: plans: store: invalid argument: plan bronze: records_per_second 0 must be > 0"},
	} {
		_, err := gateway.New(context.Background(), gateway.Config{DataDir: t.TempDir(), EmbeddedKafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			Generate: &no, Plans: c.plans})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: gateway.New: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

package gateway_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/products/store"
)

// bearer is the Authorization value of a partner's dev token.
func (e *env) bearer(partner string) string { return "Bearer " + e.token(partner) }

// apiKey is a key as GET /v1/keys lists it.
type apiKey struct {
	ID        string     `json:"id"`
	Prefix    string     `json:"prefix"`
	Secret    string     `json:"secret"` // only when just created
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	RevokedBy string     `json:"revoked_by"`
	State     string     `json:"state"`
}

var secretPattern = regexp.MustCompile(`^slk_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$`)

// createKey creates a key through the API and checks the answer.
func createKey(t *testing.T, e *env, path, authz, body string, days int) apiKey {
	t.Helper()
	resp, raw := e.send("POST", path, authz, body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s %s: %d %s", path, body, resp.StatusCode, raw)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("POST %s: Cache-Control %q, want no-store", path, cc)
	}
	var k apiKey
	if err := json.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	if !secretPattern.MatchString(k.Secret) || k.Prefix != "slk_"+k.ID || !strings.HasPrefix(k.Secret, k.Prefix+"_") {
		t.Fatalf("created key %s: want id, prefix slk_<id> and secret slk_<id>_<secret>", raw)
	}
	if ttl := k.ExpiresAt.Sub(k.CreatedAt); ttl != time.Duration(days)*24*time.Hour {
		t.Errorf("created key lives %v, want %d days", ttl, days)
	}
	return k
}

// listKeys lists keys through the API; the listing never holds a secret.
func listKeys(t *testing.T, e *env, path, authz string, secrets ...string) map[string]apiKey {
	t.Helper()
	resp, raw := e.send("GET", path, authz, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	for _, s := range secrets {
		if strings.Contains(string(raw), s[len("slk_")+16+1:]) {
			t.Fatalf("GET %s shows a secret: %s", path, raw)
		}
	}
	if strings.Contains(string(raw), `"secret"`) {
		t.Fatalf("GET %s has a secret field: %s", path, raw)
	}
	var v struct{ Keys []apiKey }
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]apiKey{}
	for _, k := range v.Keys {
		out[k.ID] = k
	}
	return out
}

// wantProblem checks a problem+json answer's status and type.
func wantProblem(t *testing.T, what string, resp *http.Response, raw []byte, status int, typ string) map[string]any {
	t.Helper()
	var p map[string]any
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(raw, &p) != nil || p["type"] != typ || p["detail"] == "" {
		t.Fatalf("%s: %d %s %s, want a %d %s problem", what, resp.StatusCode, resp.Header.Get("Content-Type"), raw, status, typ)
	}
	return p
}

// TestKeysAPILifecycle: a partner creates a key, reads with it, lists it
// (never seeing the secret again), revokes it, and the key is refused; a
// key past its expiry is refused as expired.
func TestKeysAPILifecycle(t *testing.T) {
	e := newEnv(t)
	k := createKey(t, e, "/v1/keys", e.bearer("mvno-b"), `{"ttl_days": 30}`, 30)
	key := "Bearer " + k.Secret

	if resp, raw := e.send("GET", "/v1/products", key, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/products with the key: %d %s", resp.StatusCode, raw)
	}
	// The key acts as mvno-b: it lists mvno-b's keys, itself included.
	for _, authz := range []string{e.bearer("mvno-b"), key} {
		got := listKeys(t, e, "/v1/keys", authz, k.Secret)
		if l, ok := got[k.ID]; !ok || l.State != "active" || l.Prefix != k.Prefix || l.RevokedAt != nil || !l.ExpiresAt.Equal(k.ExpiresAt) {
			t.Fatalf("listing %v: want %s active", got, k.ID)
		}
	}
	// A second key, with the default lifetime and no body at all.
	k2 := createKey(t, e, "/v1/keys", e.bearer("mvno-b"), "", 90)

	resp, raw := e.send("DELETE", "/v1/keys/"+k.ID, e.bearer("mvno-b"), "")
	if resp.StatusCode != http.StatusNoContent || len(raw) != 0 {
		t.Fatalf("DELETE /v1/keys/%s: %d %s", k.ID, resp.StatusCode, raw)
	}
	resp, raw = e.send("GET", "/v1/products", key, "")
	p := wantProblem(t, "the revoked key", resp, raw, http.StatusUnauthorized, "urn:sluice:problem:key-revoked")
	if strings.Contains(string(raw), k.Secret) || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("revoked key: %v, WWW-Authenticate %q", p, resp.Header.Get("WWW-Authenticate"))
	}
	got := listKeys(t, e, "/v1/keys", "Bearer "+k2.Secret, k.Secret, k2.Secret)
	if l := got[k.ID]; l.State != "revoked" || l.RevokedBy != "mvno-b" || l.RevokedAt == nil {
		t.Fatalf("revoked key listed as %+v; want revoked by mvno-b", l)
	}
	if got[k2.ID].State != "active" || len(got) != 2 {
		t.Fatalf("listing %v: want the revoked key and the active one", got)
	}
	// Revoking again changes nothing: the first revocation stays.
	if resp, raw := e.send("DELETE", "/v1/keys/"+k.ID, "Bearer "+k2.Secret, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoking again: %d %s", resp.StatusCode, raw)
	}
	ks, err := e.gw.Store().Keys(t.Context(), "mvno-b")
	if err != nil || len(ks) != 2 || ks[0].RevokedBy != "mvno-b" || !ks[0].RevokedAt.Equal(*got[k.ID].RevokedAt) {
		t.Fatalf("store keys %+v %v: want the first revocation, by mvno-b", ks, err)
	}

	// Expiry.
	info, secret, err := e.gw.Store().CreateKey(t.Context(), "mvno-b", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		resp, raw = e.send("GET", "/v1/products", "Bearer "+secret, "")
		if resp.StatusCode != http.StatusOK || time.Now().After(deadline) {
			break
		}
	}
	wantProblem(t, "the expired key", resp, raw, http.StatusUnauthorized, "urn:sluice:problem:key-expired")
	if l := listKeys(t, e, "/v1/keys", e.bearer("mvno-b"), secret)[info.ID]; l.State != "expired" {
		t.Fatalf("expired key listed as %+v", l)
	}
}

// TestKeysAPIErrors: the refusals of the key endpoints, none repeating
// what may be a secret.
func TestKeysAPIErrors(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ name, body string }{
		{"zero days", `{"ttl_days": 0}`},
		{"negative", `{"ttl_days": -1}`},
		{"over a year", `{"ttl_days": 366}`},
		{"fraction", `{"ttl_days": 1.5}`},
		{"text", `{"ttl_days": "30"}`},
		{"unknown field", `{"ttl_days": 30, "partner": "mvno-a"}`},
		{"bad JSON", `{"ttl_days":`},
		{"trailing data", `{} {}`},
	} {
		resp, raw := e.send("POST", "/v1/keys", e.bearer("mvno-b"), c.body)
		wantProblem(t, c.name, resp, raw, http.StatusBadRequest, "urn:sluice:problem:invalid-request")
	}
	createKey(t, e, "/v1/keys", e.bearer("mvno-b"), `{"ttl_days": 365}`, 365)
	createKey(t, e, "/v1/keys", e.bearer("mvno-b"), `{}`, 90)

	resp, raw := e.send("GET", "/v1/keys?all=1", e.bearer("mvno-b"), "")
	wantProblem(t, "unknown parameter", resp, raw, http.StatusBadRequest, "urn:sluice:problem:invalid-query")
	resp, raw = e.send("DELETE", "/v1/keys/abcdefghijklmnop", e.bearer("mvno-b"), "")
	p := wantProblem(t, "unknown key", resp, raw, http.StatusNotFound, "urn:sluice:problem:unknown-key")
	if !strings.Contains(p["detail"].(string), "abcdefghijklmnop") {
		t.Errorf("unknown key: %v does not name the id", p)
	}
	// A whole key where its id belongs: refused by its shape, and neither
	// the detail nor the instance repeats it.
	_, secret, err := e.gw.Store().CreateKey(t.Context(), "mvno-b", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{secret, "ABCDEFGHIJKLMNOP", "abc", "abcdefghijklmnop1"} {
		resp, raw = e.send("DELETE", "/v1/keys/"+id, e.bearer("mvno-b"), "")
		wantProblem(t, "malformed id "+id, resp, raw, http.StatusNotFound, "urn:sluice:problem:unknown-key")
		if strings.Contains(string(raw), id) {
			t.Errorf("malformed id %s: the problem repeats it: %s", id, raw)
		}
	}
	// Nor does any other refusal of such a path.
	for _, c := range []struct{ path, authz string }{
		{"/v1/keys/" + secret, ""},
		{"/v1/keys/" + secret + "?x=1", e.bearer("mvno-b")},
		{"/v1/partners/mvno-b/keys/" + secret, e.bearer("mvno-b")},
		{"/v1/partners/mvno-b/keys/" + secret, "Bearer slk_bad"},
	} {
		resp, raw = e.send("DELETE", c.path, c.authz, "")
		if resp.StatusCode < 400 || strings.Contains(string(raw), secret[len("slk_")+16:]) {
			t.Errorf("DELETE %s: %d %s repeats the key", c.path, resp.StatusCode, raw)
		}
	}
	if resp, raw := e.send("GET", "/v1/products", "Bearer "+secret, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("the key still works: %d %s", resp.StatusCode, raw)
	}
	resp, raw = e.send("GET", "/v1/keys", "", "")
	wantProblem(t, "no credential", resp, raw, http.StatusUnauthorized, "urn:sluice:problem:token-missing")
}

// TestKeysAPIAdmin: a partner sees and revokes only its own keys; the admin
// lists partners and manages any partner's keys.
func TestKeysAPIAdmin(t *testing.T) {
	e := newEnv(t)
	a := createKey(t, e, "/v1/keys", e.bearer("mvno-a"), "", 90)

	// mvno-b neither sees nor revokes mvno-a's key.
	if got := listKeys(t, e, "/v1/keys", e.bearer("mvno-b")); len(got) != 0 {
		t.Fatalf("mvno-b lists %v", got)
	}
	resp, raw := e.send("DELETE", "/v1/keys/"+a.ID, e.bearer("mvno-b"), "")
	wantProblem(t, "mvno-b revokes mvno-a's key", resp, raw, http.StatusNotFound, "urn:sluice:problem:unknown-key")
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/partners"},
		{"GET", "/v1/partners/mvno-a/keys"},
		{"POST", "/v1/partners/mvno-a/keys"},
		{"DELETE", "/v1/partners/mvno-a/keys/" + a.ID},
	} {
		for _, who := range []string{"mvno-b", "internal-noc"} {
			resp, raw := e.send(c.method, c.path, e.bearer(who), "")
			wantProblem(t, who+" "+c.method+" "+c.path, resp, raw, http.StatusForbidden, "urn:sluice:problem:forbidden-admin")
		}
	}
	if resp, raw := e.send("GET", "/v1/products", "Bearer "+a.Secret, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("mvno-a's key after mvno-b's attempts: %d %s", resp.StatusCode, raw)
	}

	// The admin.
	admin := e.bearer("admin")
	resp, raw = e.send("GET", "/v1/partners", admin, "")
	var ps struct {
		Partners []struct {
			ID, Name, Type string
			Attributes     map[string]any
		}
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &ps) != nil {
		t.Fatalf("GET /v1/partners: %d %s", resp.StatusCode, raw)
	}
	var ids []string
	for _, p := range ps.Partners {
		ids = append(ids, p.ID)
		if p.ID == "mvno-a" && (p.Type != "mvno" || p.Name == "" || p.Attributes["mvno_id"] != "mvno-a") {
			t.Errorf("partner mvno-a listed as %+v", p)
		}
	}
	if !slices.IsSorted(ids) || !slices.Contains(ids, "admin") || !slices.Contains(ids, "mvno-a") || !slices.Contains(ids, "mvno-b") {
		t.Fatalf("partners %v: want every demo partner, sorted", ids)
	}
	if got := listKeys(t, e, "/v1/partners/mvno-a/keys", admin, a.Secret); got[a.ID].State != "active" || len(got) != 1 {
		t.Fatalf("admin lists mvno-a's keys: %v", got)
	}
	// A key the admin creates for mvno-b acts as mvno-b.
	b := createKey(t, e, "/v1/partners/mvno-b/keys", admin, `{"ttl_days": 7}`, 7)
	if got := listKeys(t, e, "/v1/keys", "Bearer "+b.Secret, b.Secret); len(got) != 1 || got[b.ID].State != "active" {
		t.Fatalf("mvno-b's key made by the admin lists %v", got)
	}
	resp, raw = e.send("DELETE", "/v1/partners/mvno-b/keys/"+a.ID, admin, "")
	wantProblem(t, "mvno-a's key under mvno-b", resp, raw, http.StatusNotFound, "urn:sluice:problem:unknown-key")
	if resp, raw := e.send("DELETE", "/v1/partners/mvno-a/keys/"+a.ID, admin, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("admin revokes mvno-a's key: %d %s", resp.StatusCode, raw)
	}
	resp, raw = e.send("GET", "/v1/products", "Bearer "+a.Secret, "")
	wantProblem(t, "mvno-a's revoked key", resp, raw, http.StatusUnauthorized, "urn:sluice:problem:key-revoked")
	if l := listKeys(t, e, "/v1/keys", e.bearer("mvno-a"))[a.ID]; l.State != "revoked" || l.RevokedBy != "admin" {
		t.Fatalf("mvno-a sees its key as %+v; want revoked by admin", l)
	}

	for _, c := range []struct{ method, path, typ string }{
		{"GET", "/v1/partners/nobody/keys", "urn:sluice:problem:unknown-partner"},
		{"POST", "/v1/partners/nobody/keys", "urn:sluice:problem:unknown-partner"},
		{"GET", "/v1/partners/Not_A_Partner/keys", "urn:sluice:problem:unknown-partner"},
		{"DELETE", "/v1/partners/Not_A_Partner/keys/" + a.ID, "urn:sluice:problem:unknown-partner"},
		{"DELETE", "/v1/partners/nobody/keys/" + a.ID, "urn:sluice:problem:unknown-key"},
		{"DELETE", "/v1/partners/mvno-a/keys/nope", "urn:sluice:problem:unknown-key"},
	} {
		resp, raw := e.send(c.method, c.path, admin, "")
		wantProblem(t, "admin "+c.method+" "+c.path, resp, raw, http.StatusNotFound, c.typ)
	}
}

// usageDoc is the body of GET /v1/usage.
type usageDoc struct {
	From, To string
	Usage    []usageRow
	Total    struct{ Records, Bytes int64 }
}

type usageRow struct {
	Day, Partner, Product, Purpose string
	Records, Bytes                 int64
}

// TestUsageAPI: usage by day range, product and partner, as JSON and CSV;
// a partner reads only its own, the admin everyone's.
func TestUsageAPI(t *testing.T) {
	e := newEnv(t)
	day := func(s string) time.Time {
		d, err := time.Parse("2006-01-02", s)
		if err != nil {
			t.Fatal(err)
		}
		return d.Add(13 * time.Hour) // any time of the day
	}
	now := time.Now().UTC()
	today := now.Format("2006-01-02")
	deltas := []store.UsageDelta{
		{PartnerID: "mvno-b", Product: "cdr", Purpose: "network-analytics", Day: day("2025-10-31"), Records: 1, Bytes: 10},
		{PartnerID: "mvno-b", Product: "cdr", Purpose: "network-analytics", Day: day("2025-11-01"), Records: 100, Bytes: 1000},
		{PartnerID: "mvno-b", Product: "network-quality", Purpose: "network-analytics", Day: day("2025-11-15"), Records: 20, Bytes: 200},
		{PartnerID: "mvno-a", Product: "cdr", Purpose: "billing", Day: day("2025-11-15"), Records: 300, Bytes: 3000},
		{PartnerID: "mvno-b", Product: "cdr", Purpose: "network-analytics", Day: day("2025-11-30"), Records: 4, Bytes: 40},
		{PartnerID: "mvno-b", Product: "cdr", Purpose: "network-analytics", Day: day("2025-12-01"), Records: 5000, Bytes: 50000},
		{PartnerID: "mvno-b", Product: "cdr", Purpose: "network-analytics", Day: now, Records: 7, Bytes: 70},
		{PartnerID: "mvno-a", Product: "cdr", Purpose: "billing", Day: now, Records: 8, Bytes: 80},
	}
	if err := e.gw.Store().AddUsage(t.Context(), deltas); err != nil {
		t.Fatal(err)
	}
	get := func(path, partner string) usageDoc {
		t.Helper()
		resp, raw := e.send("GET", path, e.bearer(partner), "")
		var u usageDoc
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(raw, &u) != nil {
			t.Fatalf("GET %s as %s: %d %s", path, partner, resp.StatusCode, raw)
		}
		var total struct{ Records, Bytes int64 }
		for _, r := range u.Usage {
			total.Records += r.Records
			total.Bytes += r.Bytes
		}
		if total != u.Total {
			t.Fatalf("GET %s as %s: total %+v, the rows sum to %+v", path, partner, u.Total, total)
		}
		return u
	}
	bNov1 := usageRow{"2025-11-01", "mvno-b", "cdr", "network-analytics", 100, 1000}
	bNov15 := usageRow{"2025-11-15", "mvno-b", "network-quality", "network-analytics", 20, 200}
	aNov15 := usageRow{"2025-11-15", "mvno-a", "cdr", "billing", 300, 3000}
	bNov30 := usageRow{"2025-11-30", "mvno-b", "cdr", "network-analytics", 4, 40}

	for _, c := range []struct {
		note, path, partner string
		from, to            string
		want                []usageRow
	}{
		{"November, own rows only", "/v1/usage?from=2025-11-01&to=2025-12-01", "mvno-b", "2025-11-01", "2025-12-01", []usageRow{bNov1, bNov15, bNov30}},
		{"naming itself", "/v1/usage?from=2025-11-01&to=2025-12-01&partner=mvno-b", "mvno-b", "2025-11-01", "2025-12-01", []usageRow{bNov1, bNov15, bNov30}},
		{"one product", "/v1/usage?from=2025-11-01&to=2025-12-01&product=network-quality", "mvno-b", "2025-11-01", "2025-12-01", []usageRow{bNov15}},
		{"one day", "/v1/usage?from=2025-11-15&to=2025-11-16", "mvno-a", "2025-11-15", "2025-11-16", []usageRow{aNov15}},
		{"to alone: its month", "/v1/usage?to=2025-12-01", "mvno-b", "2025-11-01", "2025-12-01", []usageRow{bNov1, bNov15, bNov30}},
		{"admin: every partner", "/v1/usage?from=2025-11-01&to=2025-12-01", "admin", "2025-11-01", "2025-12-01", []usageRow{bNov1, aNov15, bNov15, bNov30}},
		{"admin: one partner", "/v1/usage?from=2025-11-01&to=2025-12-01&partner=mvno-a", "admin", "2025-11-01", "2025-12-01", []usageRow{aNov15}},
		{"admin: nobody's", "/v1/usage?from=2025-11-01&to=2025-12-01&partner=nobody", "admin", "2025-11-01", "2025-12-01", nil},
		{"default: this month so far", "/v1/usage", "mvno-b",
			now.Format("2006-01") + "-01", now.AddDate(0, 0, 1).Format("2006-01-02"),
			[]usageRow{{today, "mvno-b", "cdr", "network-analytics", 7, 70}}},
	} {
		u := get(c.path, c.partner)
		if u.From != c.from || u.To != c.to || !slices.Equal(u.Usage, c.want) {
			t.Errorf("%s: GET %s as %s:\n got %s..%s %+v\nwant %s..%s %+v", c.note, c.path, c.partner, u.From, u.To, u.Usage, c.from, c.to, c.want)
		}
	}

	for _, c := range []struct{ note, path, partner string }{
		{"bad from", "/v1/usage?from=2025-13-01", "mvno-b"},
		{"time, not date", "/v1/usage?from=2025-11-01T00:00:00Z", "mvno-b"},
		{"bad to", "/v1/usage?to=tomorrow", "mvno-b"},
		{"empty range", "/v1/usage?from=2025-11-02&to=2025-11-02", "mvno-b"},
		{"backwards", "/v1/usage?from=2025-12-01&to=2025-11-01", "admin"},
		{"bad product", "/v1/usage?product=CDR", "mvno-b"},
		{"bad partner", "/v1/usage?partner=", "admin"},
		{"unknown parameter", "/v1/usage?month=2025-11", "mvno-b"},
	} {
		resp, raw := e.send("GET", c.path, e.bearer(c.partner), "")
		wantProblem(t, c.note, resp, raw, http.StatusBadRequest, "urn:sluice:problem:invalid-query")
	}
	resp, raw := e.send("GET", "/v1/usage?partner=mvno-a", e.bearer("mvno-b"), "")
	wantProblem(t, "mvno-b reads mvno-a's usage", resp, raw, http.StatusForbidden, "urn:sluice:problem:forbidden-admin")

	// CSV, for billing.
	csvOf := func(path, partner string) [][]string {
		t.Helper()
		resp, raw := e.send("GET", path, e.bearer(partner), "", "Accept", "text/csv")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("CSV %s as %s: %d %s %s", path, partner, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="sluice-usage-2025-11-01-2025-12-01.csv"` {
			t.Errorf("CSV %s: Content-Disposition %q", path, cd)
		}
		if !strings.Contains(string(raw), "\r\n") {
			t.Errorf("CSV %s: lines do not end in CRLF (RFC 4180): %q", path, raw)
		}
		recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
		if err != nil {
			t.Fatalf("CSV %s: %v\n%s", path, err, raw)
		}
		return recs
	}
	header := []string{"day", "partner", "product", "purpose", "records", "bytes"}
	for _, c := range []struct {
		partner string
		want    [][]string
	}{
		{"admin", [][]string{header,
			{"2025-11-01", "mvno-b", "cdr", "network-analytics", "100", "1000"},
			{"2025-11-15", "mvno-a", "cdr", "billing", "300", "3000"},
			{"2025-11-15", "mvno-b", "network-quality", "network-analytics", "20", "200"},
			{"2025-11-30", "mvno-b", "cdr", "network-analytics", "4", "40"}}},
		{"mvno-a", [][]string{header, {"2025-11-15", "mvno-a", "cdr", "billing", "300", "3000"}}},
		{"regulator", [][]string{header}},
	} {
		got := csvOf("/v1/usage?from=2025-11-01&to=2025-12-01", c.partner)
		if !slices.EqualFunc(got, c.want, slices.Equal) {
			t.Errorf("CSV as %s:\n got %q\nwant %q", c.partner, got, c.want)
		}
	}
}

// TestSubscriptionsAPIAdminList: the admin lists every partner's
// subscriptions, or one partner's; a partner only its own.
func TestSubscriptionsAPIAdminList(t *testing.T) {
	e := newEnv(t)
	list := func(path, partner string) map[string]int {
		t.Helper()
		st, v := e.do("GET", path, partner, "")
		want(t, "GET "+path+" as "+partner, st, v, 200, "")
		per := map[string]int{}
		for _, s := range v["subscriptions"].([]any) {
			per[s.(map[string]any)["partner"].(string)]++
		}
		return per
	}
	all := list("/v1/subscriptions", "admin")
	if all["mvno-a"] == 0 || all["mvno-b"] == 0 || all["internal-fraud"] == 0 {
		t.Fatalf("admin's listing %v: want the seeded subscriptions of every partner", all)
	}
	if got := list("/v1/subscriptions?partner=mvno-b", "admin"); len(got) != 1 || got["mvno-b"] != all["mvno-b"] {
		t.Fatalf("admin's listing of mvno-b %v; want mvno-b's %d", got, all["mvno-b"])
	}
	for _, path := range []string{"/v1/subscriptions", "/v1/subscriptions?partner=mvno-b"} {
		if got := list(path, "mvno-b"); len(got) != 1 || got["mvno-b"] != all["mvno-b"] {
			t.Fatalf("mvno-b's listing %s: %v", path, got)
		}
	}
	st, v := e.do("GET", "/v1/subscriptions?partner=mvno-a", "mvno-b", "")
	want(t, "mvno-b lists mvno-a's", st, v, 403, "urn:sluice:problem:forbidden-admin")
	st, v = e.do("GET", "/v1/subscriptions?partner=MVNO", "admin", "")
	want(t, "malformed partner", st, v, 400, "urn:sluice:problem:invalid-query")
	st, v = e.do("GET", "/v1/subscriptions?state=active", "admin", "")
	want(t, "unknown parameter", st, v, 400, "urn:sluice:problem:invalid-query")
}

package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/products"
)

const (
	testIssuer   = "https://idp.test/realms/sluice"
	testAudience = "sluice"
)

type testKeys struct {
	rsa             *rsa.PrivateKey
	ec              *ecdsa.PrivateKey
	ed              ed25519.PrivateKey
	rsaKID, ecKID   string
	edKID           string
	other           ed25519.PrivateKey // not published anywhere
	otherKID        string
	hs256Secret     []byte
	rsaPublicKeyPEM []byte
}

// keys are generated once: RSA generation is slow under -race.
var keys = sync.OnceValue(func() *testKeys {
	k := &testKeys{hs256Secret: []byte("0123456789abcdef0123456789abcdef-test")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	if _, k.other, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	kid := func(pub crypto.PublicKey) string {
		id, err := auth.KeyID(pub)
		if err != nil {
			panic(err)
		}
		return id
	}
	k.rsaKID, k.ecKID, k.edKID, k.otherKID = kid(&k.rsa.PublicKey), kid(&k.ec.PublicKey), kid(k.ed.Public()), kid(k.other.Public())
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		panic(err)
	}
	k.rsaPublicKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return k
})

func (k *testKeys) published() []auth.PublicKey {
	return []auth.PublicKey{{KID: k.rsaKID, Key: &k.rsa.PublicKey}, {KID: k.ecKID, Key: &k.ec.PublicKey}, {KID: k.edKID, Key: k.ed.Public()}}
}

// jwksServer serves a JWKS over real HTTP and counts fetches.
type jwksServer struct {
	*httptest.Server
	body atomic.Pointer[[]byte]
	hits atomic.Int64
}

func newJWKSServer(t testing.TB, pub ...auth.PublicKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, pub...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t testing.TB, pub ...auth.PublicKey) {
	t.Helper()
	b, err := auth.JWKS(pub...)
	if err != nil {
		t.Fatal(err)
	}
	s.body.Store(&b)
}

func newVerifier(t testing.TB, cfg auth.Config) *auth.Verifier {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	v, err := auth.NewVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func claims(partner string, edit ...func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "sub": partner, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for _, e := range edit {
		e(c)
	}
	return c
}

func mint(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds a token by hand: any header, no signature.
func unsigned(t testing.TB, header map[string]any, c jwt.MapClaims) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(p) + "."
}

func checkFailure(t *testing.T, f *auth.Failure, wantType, token string) {
	t.Helper()
	if f == nil {
		t.Fatalf("verified; want %s", wantType)
	}
	t.Logf("%s: %s", f.Type, f.Detail)
	if f.Type != wantType {
		t.Errorf("type %s (%s), want %s", f.Type, f.Detail, wantType)
	}
	wantStatus := http.StatusUnauthorized
	if wantType == auth.ProblemTokenUnknownPartner {
		wantStatus = http.StatusForbidden
	}
	if f.Status != wantStatus || f.Detail == "" || f.Title() == "" {
		t.Errorf("status %d detail %q title %q", f.Status, f.Detail, f.Title())
	}
	if token != "" && (strings.Contains(f.Detail, token) || strings.Contains(f.Error(), token) || strings.Contains(f.Challenge(), token)) {
		t.Errorf("failure echoes the token: %q", f.Detail)
	}
}

func TestVerifyJWKS(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, k.published()...)
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL})
	for _, tc := range []struct {
		note   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"RS256", jwt.SigningMethodRS256, k.rsa, k.rsaKID},
		{"ES256", jwt.SigningMethodES256, k.ec, k.ecKID},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed, k.edKID},
		{"EdDSA without kid", jwt.SigningMethodEdDSA, k.ed, ""},
	} {
		t.Run(tc.note, func(t *testing.T) {
			exp := time.Now().Add(time.Hour).Truncate(time.Second)
			tok := mint(t, tc.method, tc.key, tc.kid, claims("mvno-a", func(c jwt.MapClaims) { c["exp"] = exp.Unix() }))
			id, f := v.Verify(context.Background(), "Bearer "+tok)
			if f != nil {
				t.Fatalf("%s: %s", f.Type, f.Detail)
			}
			wantKID := tc.kid
			if wantKID == "" {
				wantKID = k.edKID
			}
			if id.Partner != "mvno-a" || id.Subject != "mvno-a" || !id.Expires.Equal(exp) || id.KeyID != wantKID {
				t.Errorf("identity %+v, want partner mvno-a, expires %s, kid %s", id, exp, wantKID)
			}
		})
	}
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times; want once (cached)", n)
	}
	// Scheme is case-insensitive.
	if _, f := v.Verify(context.Background(), "bEaReR "+mint(t, jwt.SigningMethodEdDSA, k.ed, k.edKID, claims("x-1"))); f != nil {
		t.Errorf("lower-case scheme: %s", f.Detail)
	}
}

func TestVerifyRejects(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, k.published()...)
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, JWKSUnknownKIDInterval: 50 * time.Millisecond})
	ed := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodEdDSA, k.ed, k.edKID, c) }
	hour := time.Hour
	now := time.Now()
	tampered := func() string {
		parts := strings.Split(ed(claims("mvno-a")), ".")
		p, _ := json.Marshal(claims("mvno-b"))
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
	}
	for _, tc := range []struct {
		note   string
		header string // whole Authorization header; "Bearer "+token when token is set
		token  string
		want   string
	}{
		{note: "missing header", header: "", want: auth.ProblemTokenMissing},
		{note: "bearer without token", header: "Bearer", want: auth.ProblemTokenMissing},
		{note: "bearer and a space", header: "Bearer ", want: auth.ProblemTokenMissing},
		{note: "wrong scheme", header: "Basic dXNlcjpwYXNz", want: auth.ProblemTokenWrongScheme},
		{note: "token without scheme", header: ed(claims("mvno-a")), want: auth.ProblemTokenWrongScheme},
		{note: "two tokens", header: "Bearer abc def", want: auth.ProblemTokenMalformed},
		{note: "two spaces", header: "Bearer  abc", want: auth.ProblemTokenMalformed},
		{note: "oversized header", header: "Bearer " + strings.Repeat("a", auth.MaxAuthorizationLen), want: auth.ProblemTokenMalformed},
		{note: "garbage", token: "garbage", want: auth.ProblemTokenMalformed},
		{note: "garbage in three parts", token: "not.a.jwt", want: auth.ProblemTokenMalformed},
		{note: "claims not JSON", token: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA"}`)) + ".e30x.c2ln", want: auth.ProblemTokenMalformed},
		{note: "exp of the wrong type", token: ed(claims("mvno-a", func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), want: auth.ProblemTokenMalformed},
		{note: "crit header", token: func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims("mvno-a"))
			tok.Header["kid"], tok.Header["crit"] = k.edKID, []string{"exp"}
			s, _ := tok.SignedString(k.ed)
			return s
		}(), want: auth.ProblemTokenMalformed},
		{note: "expired", token: ed(claims("mvno-a", func(c jwt.MapClaims) { c["exp"] = now.Add(-hour).Unix(); c["iat"] = now.Add(-2 * hour).Unix() })), want: auth.ProblemTokenExpired},
		{note: "not yet valid", token: ed(claims("mvno-a", func(c jwt.MapClaims) { c["nbf"] = now.Add(hour).Unix() })), want: auth.ProblemTokenNotYetValid},
		{note: "issued in the future", token: ed(claims("mvno-a", func(c jwt.MapClaims) { c["iat"] = now.Add(hour).Unix() })), want: auth.ProblemTokenNotYetValid},
		{note: "wrong issuer", token: ed(claims("mvno-a", func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), want: auth.ProblemTokenWrongIssuer},
		{note: "no issuer", token: ed(claims("mvno-a", func(c jwt.MapClaims) { delete(c, "iss") })), want: auth.ProblemTokenWrongIssuer},
		{note: "wrong audience", token: ed(claims("mvno-a", func(c jwt.MapClaims) { c["aud"] = []string{"billing-api", "portal"} })), want: auth.ProblemTokenWrongAudience},
		{note: "no audience", token: ed(claims("mvno-a", func(c jwt.MapClaims) { delete(c, "aud") })), want: auth.ProblemTokenWrongAudience},
		{note: "no expiry", token: ed(claims("mvno-a", func(c jwt.MapClaims) { delete(c, "exp") })), want: auth.ProblemTokenNoExpiry},
		{note: "wrong issuer beats expired", token: ed(claims("mvno-a", func(c jwt.MapClaims) { c["iss"] = "x"; c["exp"] = now.Add(-hour).Unix() })), want: auth.ProblemTokenWrongIssuer},
		{note: "alg none", token: unsigned(t, map[string]any{"alg": "none", "typ": "JWT"}, claims("mvno-a")), want: auth.ProblemTokenAlgNotAllowed},
		{note: "alg none via golang-jwt", token: mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims("mvno-a")), want: auth.ProblemTokenAlgNotAllowed},
		{note: "alg None capitalised", token: unsigned(t, map[string]any{"alg": "None"}, claims("mvno-a")), want: auth.ProblemTokenAlgNotAllowed},
		{note: "unknown alg", token: unsigned(t, map[string]any{"alg": "XS999", "kid": k.edKID}, claims("mvno-a")), want: auth.ProblemTokenAlgNotAllowed},
		{note: "no alg", token: unsigned(t, map[string]any{"kid": k.edKID}, claims("mvno-a")), want: auth.ProblemTokenMalformed},
		{note: "HS256 signed with the RSA public key (algorithm confusion)",
			token: mint(t, jwt.SigningMethodHS256, k.rsaPublicKeyPEM, k.rsaKID, claims("mvno-a")), want: auth.ProblemTokenAlgNotAllowed},
		{note: "HS256 not enabled", token: mint(t, jwt.SigningMethodHS256, k.hs256Secret, "", claims("mvno-a")), want: auth.ProblemTokenAlgNotAllowed},
		{note: "RS384 not accepted", token: mint(t, jwt.SigningMethodRS384, k.rsa, k.rsaKID, claims("mvno-a")), want: auth.ProblemTokenAlgNotAllowed},
		{note: "ES256 token naming the RSA key", token: mint(t, jwt.SigningMethodES256, k.ec, k.rsaKID, claims("mvno-a")), want: auth.ProblemTokenAlgNotAllowed},
		{note: "unknown kid", token: mint(t, jwt.SigningMethodEdDSA, k.other, k.otherKID, claims("mvno-a")), want: auth.ProblemTokenUnknownKey},
		{note: "kid not a string", token: func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims("mvno-a"))
			tok.Header["kid"] = 7
			s, _ := tok.SignedString(k.ed)
			return s
		}(), want: auth.ProblemTokenMalformed},
		{note: "signed by another key under a known kid", token: mint(t, jwt.SigningMethodEdDSA, k.other, k.edKID, claims("mvno-a")), want: auth.ProblemTokenBadSignature},
		{note: "tampered claims", token: tampered(), want: auth.ProblemTokenBadSignature},
		{note: "bad signature beats expired", token: mint(t, jwt.SigningMethodEdDSA, k.other, k.edKID, claims("mvno-a", func(c jwt.MapClaims) { c["exp"] = now.Add(-hour).Unix() })), want: auth.ProblemTokenBadSignature},
		{note: "no partner claim", token: ed(claims("", func(c jwt.MapClaims) { delete(c, "sub") })), want: auth.ProblemTokenUnknownPartner},
	} {
		t.Run(tc.note, func(t *testing.T) {
			h := tc.header
			if tc.token != "" {
				h = "Bearer " + tc.token
			}
			id, f := v.Verify(context.Background(), h)
			if f != nil && id != (auth.Identity{}) {
				t.Errorf("failure with an identity %+v", id)
			}
			secret := tc.token
			if secret == "" && len(h) > 20 {
				secret = strings.TrimPrefix(h, "Bearer ")
			}
			checkFailure(t, f, tc.want, secret)
		})
	}
}

func TestVerifySkew(t *testing.T) {
	k := keys()
	pub := []crypto.PublicKey{k.ed.Public()}
	now := time.Now()
	expired20s := mint(t, jwt.SigningMethodEdDSA, k.ed, k.edKID, claims("mvno-a", func(c jwt.MapClaims) {
		c["exp"], c["iat"] = now.Add(-20*time.Second).Unix(), now.Add(-time.Hour).Unix()
	}))
	early20s := mint(t, jwt.SigningMethodEdDSA, k.ed, k.edKID, claims("mvno-a", func(c jwt.MapClaims) {
		c["nbf"], c["iat"] = now.Add(20*time.Second).Unix(), now.Add(20*time.Second).Unix()
	}))
	def := newVerifier(t, auth.Config{StaticKeys: pub}) // 30s
	for _, tok := range []string{expired20s, early20s} {
		if _, f := def.Verify(context.Background(), "Bearer "+tok); f != nil {
			t.Errorf("default skew: %s: %s", f.Type, f.Detail)
		}
	}
	tight := newVerifier(t, auth.Config{StaticKeys: pub, Skew: 5 * time.Second})
	_, f := tight.Verify(context.Background(), "Bearer "+expired20s)
	checkFailure(t, f, auth.ProblemTokenExpired, expired20s)
	if f != nil && !strings.Contains(f.Detail, "5s clock skew") {
		t.Errorf("detail %q does not name the skew", f.Detail)
	}
	_, f = tight.Verify(context.Background(), "Bearer "+early20s)
	checkFailure(t, f, auth.ProblemTokenNotYetValid, early20s)
}

func TestVerifyHS256(t *testing.T) {
	k := keys()
	hs := mint(t, jwt.SigningMethodHS256, k.hs256Secret, "", claims("internal-noc"))
	confused := mint(t, jwt.SigningMethodHS256, k.rsaPublicKeyPEM, k.rsaKID, claims("internal-noc"))

	off := newVerifier(t, auth.Config{StaticKeys: []crypto.PublicKey{&k.rsa.PublicKey}})
	_, f := off.Verify(context.Background(), "Bearer "+hs)
	checkFailure(t, f, auth.ProblemTokenAlgNotAllowed, hs)

	on := newVerifier(t, auth.Config{StaticKeys: []crypto.PublicKey{&k.rsa.PublicKey}, AllowHS256: true, HS256Secret: k.hs256Secret})
	id, f := on.Verify(context.Background(), "Bearer "+hs)
	if f != nil {
		t.Fatalf("HS256 with AllowHS256: %s: %s", f.Type, f.Detail)
	}
	if id.Partner != "internal-noc" || id.KeyID != "" {
		t.Errorf("identity %+v", id)
	}
	// Even with HS256 on, a token MACed with the public key never verifies:
	// the HMAC key is always the configured secret.
	_, f = on.Verify(context.Background(), "Bearer "+confused)
	checkFailure(t, f, auth.ProblemTokenBadSignature, confused)
	// RS256 still works alongside.
	if _, f := on.Verify(context.Background(), "Bearer "+mint(t, jwt.SigningMethodRS256, k.rsa, k.rsaKID, claims("x-1"))); f != nil {
		t.Errorf("RS256 with HS256 on: %s", f.Detail)
	}
}

func TestVerifyKeyRotation(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, auth.PublicKey{KID: k.edKID, Key: k.ed.Public()})
	// No periodic refresh during the test: only the unknown-kid refetch
	// can pick the new key up.
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, JWKSUnknownKIDInterval: time.Second, JWKSRefreshInterval: time.Hour})
	old := mint(t, jwt.SigningMethodEdDSA, k.ed, k.edKID, claims("mvno-a"))
	rotated := mint(t, jwt.SigningMethodEdDSA, k.other, k.otherKID, claims("mvno-a"))
	if _, f := v.Verify(context.Background(), "Bearer "+old); f != nil {
		t.Fatalf("old key: %s", f.Detail)
	}
	// Before the identity provider publishes the new key, its tokens fail
	// (and this refetch uses up the rate limit).
	_, f := v.Verify(context.Background(), "Bearer "+rotated)
	checkFailure(t, f, auth.ProblemTokenUnknownKey, rotated)

	srv.set(t, auth.PublicKey{KID: k.edKID, Key: k.ed.Public()}, auth.PublicKey{KID: k.otherKID, Key: k.other.Public()})
	start := time.Now()
	waitFor(t, 5*time.Second, "the rotated-in key to verify", func() bool {
		_, f := v.Verify(context.Background(), "Bearer "+rotated)
		return f == nil
	})
	t.Logf("new kid picked up after %s", time.Since(start).Round(time.Millisecond))
	if _, f := v.Verify(context.Background(), "Bearer "+old); f != nil {
		t.Errorf("old key after rotation: %s", f.Detail)
	}
}

// TestVerifyKeyWithdrawn: the periodic refresh drops a key the identity
// provider no longer publishes.
func TestVerifyKeyWithdrawn(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, auth.PublicKey{KID: k.edKID, Key: k.ed.Public()}, auth.PublicKey{KID: k.otherKID, Key: k.other.Public()})
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, JWKSRefreshInterval: 100 * time.Millisecond, JWKSUnknownKIDInterval: time.Hour})
	withdrawn := mint(t, jwt.SigningMethodEdDSA, k.ed, k.edKID, claims("mvno-a"))
	if _, f := v.Verify(context.Background(), "Bearer "+withdrawn); f != nil {
		t.Fatalf("before withdrawal: %s", f.Detail)
	}
	srv.set(t, auth.PublicKey{KID: k.otherKID, Key: k.other.Public()})
	waitFor(t, 5*time.Second, "the withdrawn key to be refused", func() bool {
		_, f := v.Verify(context.Background(), "Bearer "+withdrawn)
		return f != nil && f.Type == auth.ProblemTokenUnknownKey
	})
	// A failed refresh keeps the cached set.
	srv.body.Store(&[]byte{'x'})
	hits := srv.hits.Load()
	waitFor(t, 5*time.Second, "two failed refreshes", func() bool { return srv.hits.Load() >= hits+2 })
	if _, f := v.Verify(context.Background(), "Bearer "+mint(t, jwt.SigningMethodEdDSA, k.other, k.otherKID, claims("mvno-a"))); f != nil {
		t.Errorf("after failed refreshes: %s", f.Detail)
	}
}

// TestVerifyJWKAlgPinned: a JWK that names its alg is used for that alg
// only, even when the key type would fit another.
func TestVerifyJWKAlgPinned(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, auth.PublicKey{KID: k.rsaKID, Key: &k.rsa.PublicKey})
	pinned := strings.Replace(string(*srv.body.Load()), `"alg":"RS256"`, `"alg":"PS256"`, 1)
	if !strings.Contains(pinned, "PS256") {
		t.Fatalf("JWKS %s has no RS256 alg to replace", pinned)
	}
	b := []byte(pinned)
	srv.body.Store(&b)
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL})
	tok := mint(t, jwt.SigningMethodRS256, k.rsa, k.rsaKID, claims("mvno-a"))
	_, f := v.Verify(context.Background(), "Bearer "+tok)
	checkFailure(t, f, auth.ProblemTokenAlgNotAllowed, tok)
}

// TestVerifyUnknownKIDRateLimited checks that a burst of tokens with
// unknown kids refetches the key set once, and fails fast.
func TestVerifyUnknownKIDRateLimited(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, k.published()...)
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, JWKSUnknownKIDInterval: time.Minute})
	start := time.Now()
	for i := range 20 {
		tok := mint(t, jwt.SigningMethodEdDSA, k.other, "rogue-"+string(rune('a'+i)), claims("mvno-a"))
		_, f := v.Verify(context.Background(), "Bearer "+tok)
		checkFailure(t, f, auth.ProblemTokenUnknownKey, tok)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("20 unknown kids took %s; want them refused fast", d)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("JWKS fetched %d times; want 2 (start + one unknown-kid refresh)", n)
	}
}

func TestVerifyPartnerClaim(t *testing.T) {
	k := keys()
	v := newVerifier(t, auth.Config{StaticKeys: []crypto.PublicKey{&k.ec.PublicKey}, PartnerClaim: "partner_id"})
	tok := mint(t, jwt.SigningMethodES256, k.ec, "", claims("svc-account-7", func(c jwt.MapClaims) { c["partner_id"] = "iot-fleet" }))
	id, f := v.Verify(context.Background(), "Bearer "+tok)
	if f != nil {
		t.Fatal(f.Detail)
	}
	if id.Partner != "iot-fleet" || id.Subject != "svc-account-7" || id.KeyID != k.ecKID {
		t.Errorf("identity %+v", id)
	}
	tok = mint(t, jwt.SigningMethodES256, k.ec, "", claims("iot-fleet"))
	_, f = v.Verify(context.Background(), "Bearer "+tok)
	checkFailure(t, f, auth.ProblemTokenUnknownPartner, tok)
}

func TestLookupPartner(t *testing.T) {
	reg, err := products.LoadDefaultPartners()
	if err != nil {
		t.Fatal(err)
	}
	p, f := auth.LookupPartner(reg, auth.Identity{Partner: "mvno-a"})
	if f != nil || p.ID != "mvno-a" {
		t.Fatalf("mvno-a: %v %v", p, f)
	}
	_, f = auth.LookupPartner(reg, auth.Identity{Partner: "mvno-z"})
	checkFailure(t, f, auth.ProblemTokenUnknownPartner, "")
	if !strings.Contains(f.Challenge(), `error="insufficient_scope"`) {
		t.Errorf("challenge %q", f.Challenge())
	}
	_, f = auth.LookupPartner(nil, auth.Identity{Partner: "mvno-a"})
	checkFailure(t, f, auth.ProblemTokenUnknownPartner, "")
}

func TestStaticKeyFiles(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	der, err := x509.MarshalPKIXPublicKey(&k.ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "idp.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), k.rsaPublicKeyPEM...)
	if err := os.WriteFile(pubFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, auth.Config{StaticKeyFiles: []string{pubFile}})
	for _, tok := range []string{
		mint(t, jwt.SigningMethodES256, k.ec, "", claims("mvno-a")),
		mint(t, jwt.SigningMethodRS256, k.rsa, k.rsaKID, claims("mvno-a")),
	} {
		if _, f := v.Verify(context.Background(), "Bearer "+tok); f != nil {
			t.Errorf("%s: %s", f.Type, f.Detail)
		}
	}

	privDER, err := x509.MarshalPKCS8PrivateKey(k.ed)
	if err != nil {
		t.Fatal(err)
	}
	privFile := filepath.Join(dir, "private.pem")
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = auth.NewVerifier(context.Background(), auth.Config{Issuer: "i", Audience: "a", StaticKeyFiles: []string{privFile}})
	if err == nil || !strings.Contains(err.Error(), "public key only") {
		t.Errorf("private key file: %v", err)
	}
}

func TestNewVerifierConfig(t *testing.T) {
	k := keys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := []crypto.PublicKey{k.ed.Public()}
	for _, tc := range []struct {
		note string
		cfg  auth.Config
		want string
	}{
		{"no issuer", auth.Config{Audience: "a", StaticKeys: pub}, "issuer is required"},
		{"no audience", auth.Config{Issuer: "i", StaticKeys: pub}, "audience is required"},
		{"no keys", auth.Config{Issuer: "i", Audience: "a"}, "no keys"},
		{"negative skew", auth.Config{Issuer: "i", Audience: "a", StaticKeys: pub, Skew: -time.Second}, "skew -1s out of range"},
		{"huge skew", auth.Config{Issuer: "i", Audience: "a", StaticKeys: pub, Skew: time.Hour}, "skew 1h0m0s out of range"},
		{"secret without AllowHS256", auth.Config{Issuer: "i", Audience: "a", HS256Secret: k.hs256Secret}, "not allowed"},
		{"short secret", auth.Config{Issuer: "i", Audience: "a", AllowHS256: true, HS256Secret: []byte("short")}, "want 32 or more"},
		{"weak RSA key", auth.Config{Issuer: "i", Audience: "a", StaticKeys: []crypto.PublicKey{&small.PublicKey}}, "1024-bit RSA key"},
		{"P-384 key", auth.Config{Issuer: "i", Audience: "a", StaticKeys: []crypto.PublicKey{&p384.PublicKey}}, "want P-256"},
		{"bad JWKS URL", auth.Config{Issuer: "i", Audience: "a", JWKSURL: "ftp://x"}, "absolute http(s) URL"},
		{"missing key file", auth.Config{Issuer: "i", Audience: "a", StaticKeyFiles: []string{"/nonexistent/k.pem"}}, "static key file"},
	} {
		t.Run(tc.note, func(t *testing.T) {
			v, err := auth.NewVerifier(context.Background(), tc.cfg)
			if err == nil {
				v.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// TestJWKSUnreachableAtStart: the verifier starts, refuses tokens, and
// recovers on an unknown kid once the key set is reachable.
func TestJWKSUnreachableAtStart(t *testing.T) {
	k := keys()
	var up atomic.Bool
	body, err := auth.JWKS(auth.PublicKey{KID: k.edKID, Key: k.ed.Public()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, JWKSUnknownKIDInterval: 200 * time.Millisecond, Logger: discardLogger()})
	tok := mint(t, jwt.SigningMethodEdDSA, k.ed, k.edKID, claims("mvno-a"))
	_, f := v.Verify(context.Background(), "Bearer "+tok)
	checkFailure(t, f, auth.ProblemTokenUnknownKey, tok)
	up.Store(true)
	waitFor(t, 5*time.Second, "the key set to be fetched", func() bool {
		_, f := v.Verify(context.Background(), "Bearer "+tok)
		return f == nil
	})
}

func TestJWKSTooLarge(t *testing.T) {
	k := keys()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[],"pad":"`))
		w.Write([]byte(strings.Repeat("x", 2<<20)))
		w.Write([]byte(`"}`))
	}))
	t.Cleanup(srv.Close)
	v := newVerifier(t, auth.Config{JWKSURL: srv.URL, Logger: discardLogger()})
	tok := mint(t, jwt.SigningMethodEdDSA, k.ed, k.edKID, claims("mvno-a"))
	_, f := v.Verify(context.Background(), "Bearer "+tok)
	checkFailure(t, f, auth.ProblemTokenUnknownKey, tok)
}

func TestCloseStopsRefresh(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, k.published()...)
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: "i", Audience: "a", JWKSURL: srv.URL, JWKSRefreshInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a periodic refresh", func() bool { return srv.hits.Load() >= 3 })
	v.Close()
	v.Close()                         // idempotent
	time.Sleep(50 * time.Millisecond) // let a handler of a cancelled fetch finish
	n := srv.hits.Load()
	time.Sleep(200 * time.Millisecond) // would see ~10 refreshes if the goroutine still ran
	if m := srv.hits.Load(); m != n {
		t.Errorf("%d fetches after Close", m-n)
	}
}

func TestParseAuthorization(t *testing.T) {
	for _, tc := range []struct {
		h, token, typ string
	}{
		{"Bearer abc.def.ghi", "abc.def.ghi", ""},
		{"bearer abc", "abc", ""},
		{"BEARER a-b_c~d+e/f==", "a-b_c~d+e/f==", ""},
		{"", "", auth.ProblemTokenMissing},
		{"Bearer", "", auth.ProblemTokenMissing},
		{"Bearer ", "", auth.ProblemTokenMissing},
		{"Basic abc", "", auth.ProblemTokenWrongScheme},
		{"Bearerabc", "", auth.ProblemTokenMalformed},
		{"Bearer\tabc", "", auth.ProblemTokenMalformed},
		{"Bear abc", "", auth.ProblemTokenWrongScheme},
		{"DPoP abc", "", auth.ProblemTokenWrongScheme},
		{"Bearer abc ", "", auth.ProblemTokenMalformed},
		{"Bearer  abc", "", auth.ProblemTokenMalformed},
		{"Bearer a b", "", auth.ProblemTokenMalformed},
		{"Bearer a=b", "", auth.ProblemTokenMalformed},
		{"Bearer =", "", auth.ProblemTokenMalformed},
		{"Bearer ab\"c", "", auth.ProblemTokenMalformed},
		{"Bearer " + strings.Repeat("a", auth.MaxAuthorizationLen-7), strings.Repeat("a", auth.MaxAuthorizationLen-7), ""},
		{"Bearer " + strings.Repeat("a", auth.MaxAuthorizationLen-6), "", auth.ProblemTokenMalformed},
	} {
		tok, f := auth.ParseAuthorization(tc.h)
		switch {
		case tc.typ == "" && f != nil:
			t.Errorf("%.40q: %s", tc.h, f.Detail)
		case tc.typ == "" && tok != tc.token:
			t.Errorf("%.40q: token %.40q", tc.h, tok)
		case tc.typ != "" && (f == nil || f.Type != tc.typ || tok != ""):
			t.Errorf("%.40q: token %q failure %+v, want %s", tc.h, tok, f, tc.typ)
		}
	}
}

func TestFailureChallenge(t *testing.T) {
	_, f := auth.ParseAuthorization("")
	if got := f.Challenge(); got != `Bearer realm="sluice"` {
		t.Errorf("missing: %q", got)
	}
	f = &auth.Failure{Type: auth.ProblemTokenWrongIssuer, Status: 401, Detail: "token issuer \"x\\y\" is not é"}
	if got, want := f.Challenge(), `Bearer realm="sluice", error="invalid_token", error_description="token issuer 'x'y' is not ?"`; got != want {
		t.Errorf("challenge %q, want %q", got, want)
	}
	types := auth.ProblemTypes()
	if len(types) != 12 || len(slices.Compact(slices.Sorted(slices.Values(types)))) != 12 {
		t.Errorf("problem types %v", types)
	}
	for _, typ := range types {
		if !strings.HasPrefix(typ, "urn:sluice:problem:token-") {
			t.Errorf("type %s", typ)
		}
		if (&auth.Failure{Type: typ}).Title() == "" {
			t.Errorf("%s has no title", typ)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package auth_test

import (
	"context"
	"crypto"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluicehq/sluice/gateway/auth"
)

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"", "Bearer", "Bearer ", "Bearer abc.def.ghi", "bearer a==", "Basic dXNlcjpwYXNz", "Bearer  x", "Bearer a b", "Bearer \x00", "Bearer é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, fail := auth.ParseAuthorization(h)
		if fail != nil {
			if tok != "" || fail.Type == "" || fail.Status != http.StatusUnauthorized || fail.Detail == "" {
				t.Fatalf("token %q failure %+v", tok, fail)
			}
			if len(h) > 20 && strings.Contains(fail.Detail, h) {
				t.Fatalf("detail echoes the header: %q", fail.Detail)
			}
			return
		}
		if tok == "" || len(h) > auth.MaxAuthorizationLen || !strings.EqualFold(h[:7], "Bearer ") || h[7:] != tok {
			t.Fatalf("accepted %q as token %q", h, tok)
		}
	})
}

func FuzzVerify(f *testing.F) {
	k := keys()
	v, err := auth.NewVerifier(context.Background(), auth.Config{
		Issuer: testIssuer, Audience: testAudience,
		StaticKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.ec.PublicKey, k.ed.Public()},
		AllowHS256: true, HS256Secret: k.hs256Secret,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.Close)
	now := time.Now()
	for _, s := range []string{
		"Bearer " + mint(f, jwt.SigningMethodEdDSA, k.ed, k.edKID, claims("mvno-a")),
		"Bearer " + mint(f, jwt.SigningMethodES256, k.ec, "", claims("mvno-a")),
		"Bearer " + mint(f, jwt.SigningMethodRS256, k.rsa, k.rsaKID, claims("mvno-a", func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"Bearer " + mint(f, jwt.SigningMethodHS256, k.hs256Secret, "", claims("mvno-a")),
		"Bearer " + mint(f, jwt.SigningMethodHS256, k.rsaPublicKeyPEM, k.rsaKID, claims("mvno-a")),
		"Bearer " + unsigned(f, map[string]any{"alg": "none"}, claims("mvno-a")),
		"Bearer " + unsigned(f, map[string]any{"alg": "EdDSA", "kid": 5, "crit": []string{"b64"}}, claims("mvno-a")),
		"Bearer eyJhbGciOiJFZERTQSJ9.e30.",
		"Bearer garbage", "", "Basic x",
	} {
		f.Add(s)
	}
	types := auth.ProblemTypes()
	f.Fuzz(func(t *testing.T, h string) {
		id, fail := v.Verify(context.Background(), h)
		if fail == nil {
			if id.Partner == "" {
				t.Fatalf("verified without a partner: %+v", id)
			}
			return
		}
		if !slices.Contains(types, fail.Type) || (fail.Status != http.StatusUnauthorized && fail.Status != http.StatusForbidden) || fail.Detail == "" {
			t.Fatalf("failure %+v", fail)
		}
		if id != (auth.Identity{}) {
			t.Fatalf("failure with identity %+v", id)
		}
		if tok := strings.TrimSpace(h[min(len(h), 7):]); len(tok) >= 16 && strings.Contains(fail.Detail, tok) {
			t.Fatalf("detail echoes the token: %q", fail.Detail)
		}
	})
}

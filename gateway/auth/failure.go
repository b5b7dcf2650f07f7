package auth

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/products"
)

// Problem types of a Failure. The URNs never change: clients and the audit
// trail branch on them. Titles are informative (Failure.Title).
const (
	// ProblemTokenMissing: no Authorization header, or "Bearer" with no
	// token.
	ProblemTokenMissing = "urn:sluice:problem:token-missing"
	// ProblemTokenWrongScheme: an Authorization scheme other than Bearer.
	ProblemTokenWrongScheme = "urn:sluice:problem:token-wrong-scheme"
	// ProblemTokenMalformed: not a JWS compact JWT, an oversized header,
	// more than one token, claims of the wrong JSON type, crit headers.
	ProblemTokenMalformed = "urn:sluice:problem:token-malformed"
	// ProblemTokenAlgNotAllowed: alg none, an unknown alg, HS256 when it is
	// not enabled (including HS256 "signed" with a public key: algorithm
	// confusion), or an alg that does not match the key's type or its
	// JWK alg.
	ProblemTokenAlgNotAllowed = "urn:sluice:problem:token-alg-not-allowed"
	// ProblemTokenUnknownKey: no configured or published key has the
	// token's kid (or, without a kid, fits its alg).
	ProblemTokenUnknownKey = "urn:sluice:problem:token-unknown-key"
	// ProblemTokenBadSignature: the signature does not verify with the key.
	ProblemTokenBadSignature = "urn:sluice:problem:token-bad-signature"
	// ProblemTokenExpired: exp is in the past (beyond the allowed skew).
	ProblemTokenExpired = "urn:sluice:problem:token-expired"
	// ProblemTokenNotYetValid: nbf or iat is in the future (beyond the
	// allowed skew).
	ProblemTokenNotYetValid = "urn:sluice:problem:token-not-yet-valid"
	// ProblemTokenNoExpiry: the token has no exp claim.
	ProblemTokenNoExpiry = "urn:sluice:problem:token-no-expiry"
	// ProblemTokenWrongIssuer: iss is missing or not the configured issuer.
	ProblemTokenWrongIssuer = "urn:sluice:problem:token-wrong-issuer"
	// ProblemTokenWrongAudience: aud is missing or does not include the
	// configured audience.
	ProblemTokenWrongAudience = "urn:sluice:problem:token-wrong-audience"
	// ProblemTokenUnknownPartner (403): the token is valid but names no
	// registered partner (or has no partner claim at all).
	ProblemTokenUnknownPartner = "urn:sluice:problem:token-unknown-partner"
)

var titles = map[string]string{
	ProblemTokenMissing:        "Bearer token required",
	ProblemTokenWrongScheme:    "Authorization scheme must be Bearer",
	ProblemTokenMalformed:      "Malformed bearer token",
	ProblemTokenAlgNotAllowed:  "Token signing algorithm not allowed",
	ProblemTokenUnknownKey:     "Token signed with an unknown key",
	ProblemTokenBadSignature:   "Token signature invalid",
	ProblemTokenExpired:        "Token expired",
	ProblemTokenNotYetValid:    "Token not yet valid",
	ProblemTokenNoExpiry:       "Token has no expiry",
	ProblemTokenWrongIssuer:    "Token from an untrusted issuer",
	ProblemTokenWrongAudience:  "Token not meant for sluice",
	ProblemTokenUnknownPartner: "Unknown partner",
}

// ProblemTypes lists every problem type a Failure can carry, for OpenAPI
// documents and tests.
func ProblemTypes() []string {
	return []string{
		ProblemTokenMissing, ProblemTokenWrongScheme, ProblemTokenMalformed, ProblemTokenAlgNotAllowed,
		ProblemTokenUnknownKey, ProblemTokenBadSignature, ProblemTokenExpired, ProblemTokenNotYetValid,
		ProblemTokenNoExpiry, ProblemTokenWrongIssuer, ProblemTokenWrongAudience, ProblemTokenUnknownPartner,
	}
}

// Failure is a rejected request. It is also an error, so a keyfunc can
// return one through golang-jwt.
type Failure struct {
	// Type is a stable problem type URN, one of the Problem* constants.
	Type string
	// Status is the HTTP status: 401, or 403 for ProblemTokenUnknownPartner.
	Status int
	// Detail says which check failed and what to do. It never contains the
	// token; values taken from a token (kid, iss, aud, the partner claim)
	// are quoted and cut to 64 bytes.
	Detail string
}

func (f *Failure) Error() string {
	return "auth: " + f.Detail + " (" + f.Type + ")"
}

// Title is the problem type's short human-readable summary.
func (f *Failure) Title() string {
	if t, ok := titles[f.Type]; ok {
		return t
	}
	return http.StatusText(f.Status)
}

// Challenge is the WWW-Authenticate header value for the failure (RFC 6750
// section 3): error="invalid_token" for a bad token, "insufficient_scope"
// for an unknown partner, no error code when no token was sent.
func (f *Failure) Challenge() string {
	var b strings.Builder
	b.WriteString(`Bearer realm="sluice"`)
	code := "invalid_token"
	switch f.Type {
	case ProblemTokenMissing, ProblemTokenWrongScheme:
		return b.String()
	case ProblemTokenUnknownPartner:
		code = "insufficient_scope"
	}
	b.WriteString(`, error="` + code + `", error_description="`)
	for _, r := range f.Detail { // RFC 6750: %x20-21 / %x23-5B / %x5D-7E
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\'')
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
	}
	b.WriteByte('"')
	return b.String()
}

func failf(typ string, format string, args ...any) *Failure {
	status := http.StatusUnauthorized
	if typ == ProblemTokenUnknownPartner {
		status = http.StatusForbidden
	}
	return &Failure{Type: typ, Status: status, Detail: fmt.Sprintf(format, args...)}
}

// quote quotes a value taken from a token for a Detail, cut to 64 bytes.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// MaxAuthorizationLen bounds the Authorization header ParseAuthorization
// accepts: 8 KiB.
const MaxAuthorizationLen = 8 << 10

// ParseAuthorization returns the bearer token of an Authorization header
// value: the scheme "Bearer" (any case), one space, one token68 (RFC 7235:
// letters, digits and -._~+/ with trailing =). Anything else, or a header
// longer than MaxAuthorizationLen, is a Failure that never repeats the
// header.
func ParseAuthorization(h string) (token string, f *Failure) {
	if h == "" {
		return "", failf(ProblemTokenMissing, "no Authorization header; send Authorization: Bearer <token>")
	}
	if len(h) > MaxAuthorizationLen {
		return "", failf(ProblemTokenMalformed, "Authorization header is %d bytes; at most %d are accepted", len(h), MaxAuthorizationLen)
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if len(scheme) > 6 && strings.EqualFold(scheme[:6], "Bearer") { // "Bearer\t...", "Bearerxyz"
			return "", failf(ProblemTokenMalformed, "Authorization header must be exactly \"Bearer <token>\", with one space after Bearer")
		}
		return "", failf(ProblemTokenWrongScheme, "Authorization scheme is not Bearer; send Authorization: Bearer <token>")
	}
	if rest == "" {
		return "", failf(ProblemTokenMissing, "Authorization: Bearer carries no token; send Authorization: Bearer <token>")
	}
	if !token68(rest) {
		return "", failf(ProblemTokenMalformed, "Authorization header must be exactly \"Bearer <token>\": one space, then one token of letters, digits and -._~+/ (a JWT)")
	}
	return rest, nil
}

// token68 reports whether s is an RFC 7235 token68.
func token68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// LookupPartner returns the registered partner a verified identity names,
// or a 403 ProblemTokenUnknownPartner failure. Front doors call it after
// Verify, with the registry in force at the time of the request.
func LookupPartner(reg *products.Partners, id Identity) (*products.Partner, *Failure) {
	if reg != nil {
		if p, ok := reg.Get(id.Partner); ok {
			return p, nil
		}
	}
	return nil, failf(ProblemTokenUnknownPartner, "token names partner %s, which is not registered; ask the data owner to register the partner", quote(id.Partner))
}

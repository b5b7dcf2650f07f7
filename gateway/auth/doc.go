// Package auth owns partner identity on the wire: it parses the
// Authorization header, verifies bearer JWTs (signature, algorithm, issuer,
// audience, expiry) against keys from a JWKS endpoint, static public keys or
// an explicitly enabled HS256 secret, and says which partner a valid token
// names. Every rejection is a *Failure carrying a stable problem type URN
// (the Problem* constants), the HTTP status (401, or 403 for a partner the
// registry does not know) and a detail that says which check failed.
//
// It also holds the embedded mode's development signing key (DevKey), its
// JSON Web Key Set (JWKS) and a token signer (Sign), which `sluice token`
// uses.
//
// Security rules the package keeps: a token is never logged and never
// echoed in a Failure; only RS256, ES256 and EdDSA are accepted (HS256 only
// when Config.AllowHS256 is set, and then only with the configured secret,
// never with a public key); the key's type and, when the JWK pins one, its
// alg must match the token's alg; keys are looked up by kid, never fetched
// from URLs a token names (jku, x5u and jwk headers are ignored); tokens
// with crit headers are refused; every token must expire.
//
// Package auth does not decide what a partner may read (package policy
// does, with the grants of products.Partners), does not write HTTP
// responses (the front doors turn a Failure into problem+json and a
// WWW-Authenticate challenge) and does not issue tokens for production:
// partners get those from the operator's identity provider.
package auth

package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Defaults and bounds of Config.
const (
	DefaultSkew                   = 30 * time.Second
	MaxSkew                       = 5 * time.Minute
	DefaultPartnerClaim           = "sub"
	DefaultJWKSRefreshInterval    = time.Hour
	DefaultJWKSUnknownKIDInterval = 15 * time.Second
	// jwksTimeout bounds one JWKS fetch; jwksMaxBytes its response.
	jwksTimeout  = 10 * time.Second
	jwksMaxBytes = 1 << 20
	// unknownKIDWait is how long a request with an unknown kid may wait for
	// the refresh rate limiter (and the fetch) before it is refused.
	unknownKIDWait = 5 * time.Second
	minHS256Secret = 32
	maxKIDLen      = 256
)

// Config configures a Verifier. Issuer, Audience and at least one key
// source (JWKSURL, StaticKeys, StaticKeyFiles, or AllowHS256 with
// HS256Secret) are required; the zero value of every other field means its
// default.
type Config struct {
	// Issuer is the iss every token must carry, e.g.
	// "https://idp.example/realms/sluice"; DevIssuer in embedded mode.
	Issuer string
	// Audience must be in every token's aud; DevAudience in embedded mode.
	Audience string

	// JWKSURL is the identity provider's JSON Web Key Set. It is fetched
	// by NewVerifier (a failure is logged and retried, not fatal), again
	// every JWKSRefreshInterval, and when a token names a kid the cached
	// set lacks, at most once per JWKSUnknownKIDInterval, so a rotated-in
	// key is picked up within that interval.
	JWKSURL string
	// JWKSRefreshInterval: default 1h.
	JWKSRefreshInterval time.Duration
	// JWKSUnknownKIDInterval: default 15s.
	JWKSUnknownKIDInterval time.Duration
	// HTTPClient fetches the JWKS; default a client with a 10 s timeout.
	// Responses over 1 MiB are refused.
	HTTPClient *http.Client

	// StaticKeys are trusted public keys (*rsa.PublicKey of 2048 bits or
	// more, *ecdsa.PublicKey on P-256, ed25519.PublicKey), each known by
	// kid KeyID(key). A token without a kid is tried against every key
	// that fits its alg.
	StaticKeys []crypto.PublicKey
	// StaticKeyFiles are PEM files of further static public keys
	// (ParsePublicKeysPEM).
	StaticKeyFiles []string

	// AllowHS256 accepts HS256 tokens signed with HS256Secret (at least 32
	// bytes). Off by default: a shared secret lets its every holder mint
	// tokens for any partner.
	AllowHS256  bool
	HS256Secret []byte

	// Skew is the clock skew allowed on exp, nbf and iat: default 30s, at
	// most 5m.
	Skew time.Duration
	// PartnerClaim is the claim naming the partner: default "sub".
	PartnerClaim string

	// Logger receives JWKS fetch failures (never tokens); default
	// slog.Default().
	Logger *slog.Logger
}

// Identity is who a verified token speaks for.
type Identity struct {
	Partner string    // the PartnerClaim value: a partner id, still to be looked up (LookupPartner)
	Subject string    // sub; equal to Partner with the default PartnerClaim
	Expires time.Time // exp
	// KeyID is the kid of the key that verified the token (for a static
	// key without a kid in the token, KeyID of that key); empty for HS256.
	KeyID string
}

// Verifier verifies bearer tokens. It is safe for concurrent use. With a
// JWKSURL it owns one goroutine, which refreshes the key set; Close stops
// it and waits for it.
type Verifier struct {
	issuer, audience string
	partnerClaim     string
	skew             time.Duration
	parser           *jwt.Parser
	methods          []string
	hmac             []byte
	static           map[string]crypto.PublicKey // by kid
	staticKIDs       []string                    // in configuration order
	log              *slog.Logger

	jwksURL    string
	client     *http.Client
	limiter    *rate.Limiter
	unknownKID time.Duration
	jwks       atomic.Pointer[jwksStore] // nil without a JWKSURL

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// jwksStore is one fetched generation of the remote key set.
type jwksStore struct{ s jwkset.Storage }

// NewVerifier validates cfg, loads static keys and fetches the JWKS. ctx
// bounds the first fetch; the refresh goroutine runs until Close or until
// ctx is done.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	v := &Verifier{
		issuer:       cfg.Issuer,
		audience:     cfg.Audience,
		partnerClaim: cfg.PartnerClaim,
		skew:         cfg.Skew,
		static:       map[string]crypto.PublicKey{},
		log:          cfg.Logger,
		jwksURL:      cfg.JWKSURL,
		client:       cfg.HTTPClient,
		unknownKID:   cfg.JWKSUnknownKIDInterval,
	}
	switch {
	case v.issuer == "":
		return nil, errors.New("auth: issuer is required: the iss every token must carry, e.g. https://idp.example/realms/sluice")
	case v.audience == "":
		return nil, errors.New("auth: audience is required: the aud every token must include, e.g. sluice")
	case v.skew < 0 || v.skew > MaxSkew:
		return nil, fmt.Errorf("auth: skew %s out of range (want 0 for the default %s, up to %s)", v.skew, DefaultSkew, MaxSkew)
	case cfg.JWKSRefreshInterval < 0:
		return nil, fmt.Errorf("auth: jwks refresh interval %s must not be negative", cfg.JWKSRefreshInterval)
	case v.unknownKID < 0:
		return nil, fmt.Errorf("auth: jwks unknown-kid interval %s must not be negative", v.unknownKID)
	case len(cfg.HS256Secret) > 0 && !cfg.AllowHS256:
		return nil, errors.New("auth: an HS256 secret is set but HS256 is not allowed; set AllowHS256 to accept HS256 tokens, or drop the secret")
	case cfg.AllowHS256 && len(cfg.HS256Secret) < minHS256Secret:
		return nil, fmt.Errorf("auth: HS256 secret is %d bytes; want %d or more (RFC 7518 3.2)", len(cfg.HS256Secret), minHS256Secret)
	}
	if v.skew == 0 {
		v.skew = DefaultSkew
	}
	if v.partnerClaim == "" {
		v.partnerClaim = DefaultPartnerClaim
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	v.log = v.log.With("component", "auth")
	if v.unknownKID == 0 {
		v.unknownKID = DefaultJWKSUnknownKIDInterval
	}
	refresh := cfg.JWKSRefreshInterval
	if refresh == 0 {
		refresh = DefaultJWKSRefreshInterval
	}

	keys := append([]crypto.PublicKey(nil), cfg.StaticKeys...)
	for i, k := range keys {
		if _, err := algFor(k); err != nil {
			return nil, fmt.Errorf("auth: static key %d: %v", i, err)
		}
	}
	for _, f := range cfg.StaticKeyFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("auth: static key file: %w", err)
		}
		ks, err := ParsePublicKeysPEM(data)
		if err != nil {
			return nil, fmt.Errorf("auth: static key file %s: %w", f, err)
		}
		keys = append(keys, ks...)
	}
	for _, k := range keys {
		k = publicOf(k)
		kid, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		if _, dup := v.static[kid]; !dup {
			v.static[kid] = k
			v.staticKIDs = append(v.staticKIDs, kid)
		}
	}

	v.methods = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg(), jwt.SigningMethodEdDSA.Alg()}
	if cfg.AllowHS256 {
		v.hmac = append([]byte(nil), cfg.HS256Secret...)
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if v.jwksURL == "" && len(v.static) == 0 && v.hmac == nil {
		return nil, errors.New("auth: no keys: set a JWKS URL, static keys or key files, or allow HS256 with a secret")
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(v.methods),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audience),
		jwt.WithLeeway(v.skew),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)

	if v.jwksURL == "" {
		return v, nil
	}
	u, err := url.Parse(v.jwksURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("auth: JWKS URL %q: want an absolute http(s) URL", v.jwksURL)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		v.log.Warn("JWKS fetched over plain HTTP; anyone on the path can substitute keys", "url", v.jwksURL)
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: jwksTimeout}
	}
	c := *v.client
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	c.Transport = limitedTransport{c.Transport}
	v.client = &c
	v.limiter = rate.NewLimiter(rate.Every(v.unknownKID), 1)

	s, err := v.fetch(ctx, true)
	if err != nil {
		return nil, err
	}
	v.jwks.Store(s)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	v.cancel = func() { stop(); cancel() }
	v.wg.Add(1)
	go v.refreshLoop(rctx, refresh)
	return v, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fetch builds a new generation of the remote key set, fetching it once.
// With tolerant set, a failed fetch is logged and yields an empty set that
// the next unknown kid refetches; otherwise it is an error.
func (v *Verifier) fetch(ctx context.Context, tolerant bool) (*jwksStore, error) {
	store, err := jwkset.NewStorageFromHTTP(v.jwksURL, jwkset.HTTPClientStorageOptions{
		Client:                    v.client,
		Ctx:                       ctx,
		HTTPTimeout:               jwksTimeout,
		NoErrorReturnFirstHTTPReq: tolerant,
		RefreshErrorHandler: func(_ context.Context, err error) {
			v.log.Error("JWKS fetch failed; tokens signed with keys not yet cached are refused", "url", v.jwksURL, "error", err)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %s: %w", v.jwksURL, err)
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{v.jwksURL: store},
		RateLimitWaitMax:  unknownKIDWait,
		RefreshUnknownKID: v.limiter,
	})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %s: %w", v.jwksURL, err)
	}
	return &jwksStore{client}, nil
}

// refreshLoop refetches the key set every interval, replacing it only when
// the fetch succeeds (a key revoked upstream disappears at the next
// refresh).
func (v *Verifier) refreshLoop(ctx context.Context, every time.Duration) {
	defer v.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, jwksTimeout)
			s, err := v.fetch(fctx, false)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					v.log.Error("JWKS refresh failed; keeping the cached key set", "url", v.jwksURL, "error", err)
				}
				continue
			}
			v.jwks.Store(s)
		}
	}
}

// Close stops the JWKS refresh goroutine and waits for it. Verify must not
// be called after Close.
func (v *Verifier) Close() {
	v.once.Do(func() {
		if v.cancel != nil {
			v.cancel()
		}
		v.wg.Wait()
	})
}

// Verify checks the Authorization header value: a Bearer JWT with an
// allowed alg, a signature by a known key, the configured iss and aud, an
// exp in the future and nbf and iat not in the future (all within Skew),
// and a partner claim. The partner is not looked up: call LookupPartner.
// ctx bounds a JWKS refetch for an unknown kid.
func (v *Verifier) Verify(ctx context.Context, authorization string) (Identity, *Failure) {
	tok, f := ParseAuthorization(authorization)
	if f != nil {
		return Identity{}, f
	}
	claims := jwt.MapClaims{}
	var kid string
	t, err := v.parser.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		return v.key(ctx, t, &kid)
	})
	if err != nil {
		return Identity{}, v.classify(t, claims, err)
	}
	partner, _ := claims[v.partnerClaim].(string)
	if partner == "" {
		return Identity{}, failf(ProblemTokenUnknownPartner, "token has no %s claim naming a partner", quote(v.partnerClaim))
	}
	id := Identity{Partner: partner, KeyID: kid}
	id.Subject, _ = claims["sub"].(string)
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		id.Expires = exp.Time
	}
	return id, nil
}

// key is the jwt.Keyfunc: it finds the key for the token's kid and alg and
// records its kid. Its errors are *Failure.
func (v *Verifier) key(ctx context.Context, t *jwt.Token, used *string) (any, error) {
	alg := t.Method.Alg()
	if _, ok := t.Header["crit"]; ok {
		return nil, failf(ProblemTokenMalformed, "token header has crit extensions; sluice understands none")
	}
	var kid string
	if raw, ok := t.Header["kid"]; ok {
		s, ok := raw.(string)
		if !ok || len(s) > maxKIDLen {
			return nil, failf(ProblemTokenMalformed, "token header kid must be a string of at most %d bytes", maxKIDLen)
		}
		kid = s
	}
	if alg == jwt.SigningMethodHS256.Alg() { // only in v.methods with AllowHS256
		return v.hmac, nil
	}
	if kid == "" {
		return v.keyWithoutKID(ctx, t, alg, used)
	}
	if k, ok := v.static[kid]; ok {
		if f := fits(alg, k, kid); f != nil {
			return nil, f
		}
		*used = kid
		return k, nil
	}
	s := v.jwks.Load()
	if s == nil {
		return nil, failf(ProblemTokenUnknownKey, "no key with kid %s is configured", quote(kid))
	}
	jwk, err := s.s.KeyRead(ctx, kid)
	if err != nil {
		if ctx.Err() != nil {
			return nil, failf(ProblemTokenUnknownKey, "key lookup for kid %s abandoned: %v", quote(kid), ctx.Err())
		}
		return nil, failf(ProblemTokenUnknownKey, "no key with kid %s in the identity provider's key set (refetched on an unknown kid at most every %s); request a new token", quote(kid), v.unknownKID)
	}
	m := jwk.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, failf(ProblemTokenUnknownKey, "key %s is published for use %q, not for signatures", quote(kid), string(m.USE))
	}
	if m.ALG != "" && string(m.ALG) != alg {
		return nil, failf(ProblemTokenAlgNotAllowed, "token alg %s does not match key %s, which is for %s", alg, quote(kid), string(m.ALG))
	}
	k := publicOf(jwk.Key())
	if f := fits(alg, k, kid); f != nil {
		return nil, f
	}
	*used = kid
	return k, nil
}

// keyWithoutKID tries every known key that fits alg and returns the one the
// signature verifies with, or any fitting key (so the parser reports a bad
// signature).
func (v *Verifier) keyWithoutKID(ctx context.Context, t *jwt.Token, alg string, used *string) (any, error) {
	type cand struct {
		kid string
		key any
	}
	var cands []cand
	for _, kid := range v.staticKIDs {
		if fits(alg, v.static[kid], kid) == nil {
			cands = append(cands, cand{kid, v.static[kid]})
		}
	}
	if s := v.jwks.Load(); s != nil {
		all, _ := s.s.KeyReadAll(ctx)
		for _, jwk := range all {
			m := jwk.Marshal()
			k := publicOf(jwk.Key())
			if (m.USE == "" || m.USE == jwkset.UseSig) && (m.ALG == "" || string(m.ALG) == alg) && fits(alg, k, m.KID) == nil {
				cands = append(cands, cand{m.KID, k})
			}
		}
	}
	if len(cands) == 0 {
		return nil, failf(ProblemTokenUnknownKey, "token has no kid and no configured key fits alg %s", alg)
	}
	signed := t.Raw[:strings.LastIndexByte(t.Raw, '.')]
	for _, c := range cands {
		if t.Method.Verify(signed, t.Signature, c.key) == nil {
			*used = c.kid
			return c.key, nil
		}
	}
	return cands[0].key, nil
}

// fits checks that key k can verify alg, refusing algorithm confusion and
// weak keys.
func fits(alg string, k any, kid string) *Failure {
	want := ""
	switch k := k.(type) {
	case *rsa.PublicKey:
		if alg == jwt.SigningMethodRS256.Alg() {
			if k.N.BitLen() < minRSABits {
				return failf(ProblemTokenUnknownKey, "key %s is a %d-bit RSA key; sluice accepts %d bits or more", quote(kid), k.N.BitLen(), minRSABits)
			}
			return nil
		}
		want = "RS256 (an RSA key)"
	case *ecdsa.PublicKey:
		if alg == jwt.SigningMethodES256.Alg() && k.Curve.Params().Name == "P-256" {
			return nil
		}
		want = "ES256 (an ECDSA P-256 key)"
	case ed25519.PublicKey:
		if alg == jwt.SigningMethodEdDSA.Alg() && len(k) == ed25519.PublicKeySize {
			return nil
		}
		want = "EdDSA (an Ed25519 key)"
	default:
		return failf(ProblemTokenUnknownKey, "key %s is of a type sluice does not accept", quote(kid))
	}
	return failf(ProblemTokenAlgNotAllowed, "token alg %s does not match key %s, which is for %s", alg, quote(kid), want)
}

// classify maps a golang-jwt error to a Failure. Claim problems are checked
// in order: issuer, audience, expiry present, expired, not yet valid.
func (v *Verifier) classify(t *jwt.Token, claims jwt.MapClaims, err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	const notJWT = "token is not a JWT: want base64url header.payload.signature with a JSON header and JSON claims"
	if t == nil || errors.Is(err, jwt.ErrTokenMalformed) {
		return failf(ProblemTokenMalformed, notJWT)
	}
	alg, hasAlg := t.Header["alg"].(string)
	switch {
	case !hasAlg:
		return failf(ProblemTokenMalformed, "token header has no alg")
	case t.Method == nil || !v.allowed(alg):
		return failf(ProblemTokenAlgNotAllowed, "token alg %s is not accepted; sluice accepts %s", quote(alg), strings.Join(v.methods, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && alg == jwt.SigningMethodHS256.Alg():
		return failf(ProblemTokenBadSignature, "token signature does not verify with the shared HS256 secret; request a new token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return failf(ProblemTokenBadSignature, "token signature does not verify with key %s (%s); request a new token from the identity provider", quote(kidOf(t)), alg)
	case errors.Is(err, jwt.ErrInvalidType):
		return failf(ProblemTokenMalformed, "token claims have the wrong JSON type: exp, nbf and iat must be numbers, iss and sub strings, aud a string or list of strings")
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return failf(ProblemTokenMalformed, notJWT)
	}
	missing := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
	iss, _ := claims.GetIssuer()
	aud, _ := claims.GetAudience()
	exp, _ := claims.GetExpirationTime()
	switch {
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return failf(ProblemTokenWrongIssuer, "token issuer %s is not the trusted issuer %s (iss)", quote(iss), quote(v.issuer))
	case missing && iss == "":
		return failf(ProblemTokenWrongIssuer, "token has no iss claim; want %s", quote(v.issuer))
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return failf(ProblemTokenWrongAudience, "token audience %s does not include %s (aud)", quote(strings.Join(aud, ",")), quote(v.audience))
	case missing && len(aud) == 0:
		return failf(ProblemTokenWrongAudience, "token has no aud claim; want %s", quote(v.audience))
	case missing && exp == nil:
		return failf(ProblemTokenNoExpiry, "token has no exp claim; sluice accepts only tokens that expire")
	case errors.Is(err, jwt.ErrTokenExpired):
		return failf(ProblemTokenExpired, "token expired at %s (exp; %s clock skew allowed); request a new token", exp.UTC().Format(time.RFC3339), v.skew)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		nbf, _ := claims.GetNotBefore()
		return failf(ProblemTokenNotYetValid, "token not valid before %s (nbf; %s clock skew allowed); check the clocks", nbf.UTC().Format(time.RFC3339), v.skew)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		iat, _ := claims.GetIssuedAt()
		return failf(ProblemTokenNotYetValid, "token issued in the future at %s (iat; %s clock skew allowed); check the clocks", iat.UTC().Format(time.RFC3339), v.skew)
	}
	return failf(ProblemTokenMalformed, "token claims are invalid")
}

func (v *Verifier) allowed(alg string) bool {
	for _, m := range v.methods {
		if m == alg {
			return true
		}
	}
	return false
}

func kidOf(t *jwt.Token) string {
	kid, _ := t.Header["kid"].(string)
	return kid
}

// limitedTransport refuses JWKS responses larger than jwksMaxBytes.
type limitedTransport struct{ rt http.RoundTripper }

func (l limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: jwksMaxBytes}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

var errJWKSTooLarge = fmt.Errorf("JWKS response larger than %d bytes", jwksMaxBytes)

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errJWKSTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

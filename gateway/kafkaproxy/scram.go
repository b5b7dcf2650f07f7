package kafkaproxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SASL/SCRAM-SHA-512 (RFC 5802, RFC 7677; Kafka's KIP-84), server side.
// Two rounds: the client's first message names the user and a nonce, the
// server answers with the user's salt, iteration count and a longer
// nonce; the client's final message proves it knows the password
// (ClientProof), and the server's final message proves it knows the
// credential (ServerSignature). The password never crosses the wire.
// Channel binding is not offered (the GS2 header must be "n" or "y"), nor
// Kafka's delegation tokens (the tokenauth extension).

// MechanismScramSHA512 is SASL/SCRAM-SHA-512.
const MechanismScramSHA512 = "SCRAM-SHA-512"

// ScramCredential is what a SCRAM-SHA-512 server keeps of a password
// (RFC 5802 section 3): Salt and Iterations of SaltedPassword =
// PBKDF2-HMAC-SHA-512(password, Salt, Iterations), StoredKey =
// SHA-512(HMAC(SaltedPassword, "Client Key")) and ServerKey =
// HMAC(SaltedPassword, "Server Key").
type ScramCredential struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// ScramBackend is a Backend that also logs in with SCRAM-SHA-512; the
// Server offers the mechanism only when its Backend is one.
type ScramBackend interface {
	Backend
	// ScramLookup returns the credential of username and, in Complete, how
	// to finish the login once the client has proven it knows the
	// password: Complete judges the account (revoked, expired) and returns
	// the session; its error text reaches the client. An unknown user is
	// ErrUnknownUser: the exchange then goes on with a made-up credential
	// and fails at the proof, like a wrong password, so the answer does
	// not tell whether the user exists.
	ScramLookup(ctx context.Context, username string) (ScramLogin, error)
}

// ScramLogin is a user's credential and the completion of its login.
type ScramLogin struct {
	Credential ScramCredential
	Complete   func(ctx context.Context) (Session, error)
}

// ErrUnknownUser: ScramLookup found no such user.
var ErrUnknownUser = errors.New("kafkaproxy: unknown user")

// scramNonceBytes is the entropy the server adds to the client's nonce.
const scramNonceBytes = 24

// scramServer is one connection's SCRAM exchange.
type scramServer struct {
	gs2             string // the client's GS2 header, echoed base64 in c=
	clientFirstBare string
	serverFirst     string
	nonce           string
	login           ScramLogin
	known           bool // the user exists: a proof can succeed
}

var errScram = errors.New("kafkaproxy: sasl SCRAM-SHA-512")

func scramErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errScram, fmt.Sprintf(format, args...))
}

// first handles client-first-message = gs2-header client-first-bare, with
// client-first-bare = [reserved-mext ","] "n=" saslname ",r=" nonce
// ["," extensions], and returns server-first-message.
func (s *scramServer) first(ctx context.Context, b ScramBackend, pepper []byte, msg []byte) ([]byte, error) {
	m := string(msg)
	var gs2, authz string
	switch {
	case strings.HasPrefix(m, "n,"), strings.HasPrefix(m, "y,"):
		rest := m[2:]
		var ok bool
		if authz, rest, ok = strings.Cut(rest, ","); !ok {
			return nil, scramErr("malformed GS2 header")
		}
		gs2 = m[:len(m)-len(rest)]
		m = rest
	case strings.HasPrefix(m, "p="):
		return nil, scramErr("channel binding is not supported")
	default:
		return nil, scramErr("message does not start with a GS2 header (n,,)")
	}
	if strings.HasPrefix(m, "m=") {
		return nil, scramErr("mandatory extensions are not supported")
	}
	attrs := strings.Split(m, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, scramErr("client-first message is not n=<user>,r=<nonce>")
	}
	for _, a := range attrs[2:] {
		if strings.HasPrefix(a, "tokenauth=") {
			return nil, scramErr("delegation tokens are not supported")
		}
	}
	user, err := scramName(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	if authz != "" {
		if !strings.HasPrefix(authz, "a=") {
			return nil, scramErr("malformed GS2 authorization identity")
		}
		if a, err := scramName(authz[2:]); err != nil || a != user {
			return nil, scramErr("the authorization identity must be empty or equal the username")
		}
	}
	cnonce := attrs[1][2:]
	if cnonce == "" || !printable(cnonce) {
		return nil, scramErr("client nonce is empty or not printable")
	}
	login, err := b.ScramLookup(ctx, user)
	switch {
	case errors.Is(err, ErrUnknownUser):
		login = fakeScramLogin(pepper, user)
	case err != nil:
		return nil, err
	default:
		s.known = true
		c := login.Credential
		if len(c.Salt) == 0 || c.Iterations < 1 || len(c.StoredKey) != sha512.Size || len(c.ServerKey) != sha512.Size || login.Complete == nil {
			return nil, errors.New("kafkaproxy: the backend returned an unusable SCRAM credential")
		}
	}
	var nb [scramNonceBytes]byte
	rand.Read(nb[:])
	s.gs2, s.clientFirstBare, s.login = gs2, m, login
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(nb[:])
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(login.Credential.Salt) +
		",i=" + strconv.Itoa(login.Credential.Iterations)
	return []byte(s.serverFirst), nil
}

// final handles client-final-message = "c=" base64(gs2-header) ",r=" nonce
// ["," extensions] ",p=" base64(ClientProof), and returns the session and
// server-final-message.
func (s *scramServer) final(ctx context.Context, msg []byte) (Session, []byte, error) {
	m := string(msg)
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return nil, nil, scramErr("client-final message has no proof")
	}
	withoutProof, proofB64 := m[:i], m[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, nil, scramErr("client-final message is not c=...,r=...,p=...")
	}
	if cb, err := base64.StdEncoding.DecodeString(attrs[0][2:]); err != nil || string(cb) != s.gs2 {
		return nil, nil, scramErr("channel binding data does not match the GS2 header")
	}
	// The nonce must end with the server's (client + server part), as
	// Kafka checks it: librdkafka sends its own nonce again in front.
	if !strings.HasSuffix(attrs[1][2:], s.nonce) {
		return nil, nil, scramErr("nonce does not match")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != sha512.Size {
		return nil, nil, scramErr("malformed proof")
	}
	c := s.login.Credential
	authMessage := []byte(s.clientFirstBare + "," + s.serverFirst + "," + withoutProof)
	clientKey := hmacSHA512(c.StoredKey, authMessage)
	for i := range clientKey {
		clientKey[i] ^= proof[i]
	}
	stored := sha512.Sum512(clientKey)
	if subtle.ConstantTimeCompare(stored[:], c.StoredKey) != 1 || !s.known {
		return nil, nil, fmt.Errorf("%w: unknown user or wrong password", ErrAuthentication)
	}
	sess, err := s.login.Complete(ctx)
	if err != nil {
		return nil, nil, err
	}
	return sess, []byte("v=" + base64.StdEncoding.EncodeToString(hmacSHA512(c.ServerKey, authMessage))), nil
}

func hmacSHA512(key, msg []byte) []byte {
	h := hmac.New(sha512.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// fakeScramLogin is the credential an unknown user is answered with: its
// salt is the same at every attempt (a keyed hash of the name), so a
// client cannot tell it from a real one by asking twice.
func fakeScramLogin(pepper []byte, user string) ScramLogin {
	salt := hmacSHA512(pepper, []byte("salt\x00"+user))[:32]
	return ScramLogin{Credential: ScramCredential{Salt: salt, Iterations: 4096,
		StoredKey: make([]byte, sha512.Size), ServerKey: make([]byte, sha512.Size)}}
}

// scramName decodes a saslname ("=2C" is ",", "=3D" is "=").
func scramName(s string) (string, error) {
	if s == "" {
		return "", scramErr("empty username")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '=' && strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case c == '=' && strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		case c == '=' || c == ',':
			return "", scramErr("malformed username")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// printable: RFC 5802's printable, ASCII 0x21-0x7e except ",".
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

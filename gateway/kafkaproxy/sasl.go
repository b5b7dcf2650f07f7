package kafkaproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// parseSASL parses the client's first (and, for PLAIN and OAUTHBEARER,
// only) SASL message of mech into credentials.
func parseSASL(mech string, msg []byte) (Credentials, error) {
	switch mech {
	case MechanismPlain:
		return parsePlain(msg)
	case MechanismOAuthBearer:
		return parseOAuthBearer(msg)
	}
	return Credentials{}, fmt.Errorf("kafkaproxy: sasl mechanism %q is not supported", mech)
}

// parsePlain parses RFC 4616: [authzid] NUL authcid NUL passwd.
func parsePlain(msg []byte) (Credentials, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return Credentials{}, errors.New("kafkaproxy: sasl PLAIN message is not authzid NUL username NUL password")
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if user == "" || pass == "" {
		return Credentials{}, errors.New("kafkaproxy: sasl PLAIN username and password must not be empty")
	}
	if authz != "" && authz != user {
		return Credentials{}, errors.New("kafkaproxy: sasl PLAIN authorization identity must be empty or equal the username")
	}
	return Credentials{Mechanism: MechanismPlain, Username: user, Secret: pass}, nil
}

// parseOAuthBearer parses the RFC 7628 client-first message:
// gs2-header kvsep *(key "=" value kvsep) kvsep, with kvsep = 0x01 and
// gs2-header = "n," ["a=" authzid] ",".
func parseOAuthBearer(msg []byte) (Credentials, error) {
	s := string(msg)
	bad := func(what string) (Credentials, error) {
		return Credentials{}, fmt.Errorf("kafkaproxy: sasl OAUTHBEARER message: %s", what)
	}
	var gs2 string
	var ok bool
	if gs2, s, ok = strings.Cut(s, "\x01"); !ok {
		return bad("no 0x01 after the GS2 header")
	}
	if !strings.HasPrefix(gs2, "n,") && !strings.HasPrefix(gs2, "y,") {
		return bad("GS2 header must start with n, or y, (channel binding is not supported)")
	}
	authz, rest, ok := strings.Cut(gs2[2:], ",")
	if !ok || rest != "" {
		return bad("malformed GS2 header")
	}
	if authz != "" {
		if !strings.HasPrefix(authz, "a=") {
			return bad("malformed GS2 authorization identity")
		}
		authz = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(authz[2:])
	}
	if !strings.HasSuffix(s, "\x01") {
		return bad("not terminated by 0x01 0x01")
	}
	c := Credentials{Mechanism: MechanismOAuthBearer, Username: authz}
	for _, kv := range strings.Split(strings.TrimSuffix(s, "\x01"), "\x01") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return bad("key without value")
		}
		if k == "auth" {
			scheme, tok, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
				return bad(`auth must be "Bearer <token>"`)
			}
			c.Secret = strings.TrimSpace(tok)
			continue
		}
		if c.Extensions == nil {
			c.Extensions = map[string]string{}
		}
		c.Extensions[k] = v
	}
	if c.Secret == "" {
		return bad("no auth=Bearer token")
	}
	return c, nil
}

// saslStep handles one SASL message of the chosen mechanism and returns
// the server's answer (empty for PLAIN and OAUTHBEARER, which log in in one
// message; SCRAM's server-first, then server-final) and, once the login is
// complete, its Session (nil after SCRAM's first step).
func (c *conn) saslStep(msg []byte) ([]byte, Session, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.AuthTimeout)
	defer cancel()
	if c.mech == MechanismScramSHA512 {
		b, ok := c.s.cfg.Backend.(ScramBackend)
		if !ok {
			return nil, nil, fmt.Errorf("kafkaproxy: sasl mechanism %q is not supported", c.mech)
		}
		if c.scram == nil {
			c.scram = &scramServer{}
			out, err := c.scram.first(ctx, b, c.s.pepper, msg)
			return out, nil, err
		}
		sess, out, err := c.scram.final(ctx, msg)
		c.scram = nil
		if err != nil {
			return nil, nil, err
		}
		if sess == nil {
			return nil, nil, errors.New("kafkaproxy: backend returned no session")
		}
		return out, sess, nil
	}
	creds, err := parseSASL(c.mech, msg)
	if err != nil {
		return nil, nil, err
	}
	creds.Remote = c.nc.RemoteAddr()
	sess, err := c.s.cfg.Backend.Authenticate(ctx, creds)
	if err != nil {
		return nil, nil, err
	}
	if sess == nil {
		return nil, nil, errors.New("kafkaproxy: backend returned no session")
	}
	return []byte{}, sess, nil
}

// reauth hands a re-authentication's login to the connection's session
// (KIP-368): same partner required; the connection stays logged in.
func (c *conn) reauth(next Session) error {
	ra, ok := c.sess.(Reauthenticator)
	if !ok {
		next.Close()
		return errors.New("kafkaproxy: this session cannot re-authenticate")
	}
	if next.Partner() != c.sess.Partner() {
		next.Close()
		return fmt.Errorf("%w: re-authentication as partner %s on a connection of %s", ErrAuthentication, next.Partner(), c.sess.Partner())
	}
	if err := ra.Reauthenticate(next); err != nil {
		return err
	}
	c.sasl = saslDone
	c.log.Info("kafkaproxy: partner re-authenticated", "mechanism", c.mech, "expires_at", ra.Expires().UTC().Format(time.RFC3339))
	return nil
}

// install makes sess the connection's session: it is logged in.
func (c *conn) install(sess Session) error {
	c.sess = sess
	c.sasl = saslDone
	c.log = c.log.With("partner", sess.Partner())
	close(c.authed)
	c.log.Info("kafkaproxy: partner logged in", "mechanism", c.mech)
	return nil
}

// handleRawSASL handles the frame after a v0 SaslHandshake: raw SASL bytes
// with no Kafka header, answered by a raw frame (empty on success). On
// failure the connection is closed, as Kafka does for v0 clients.
func (c *conn) handleRawSASL(frame []byte) error {
	out, sess, err := c.saslStep(frame)
	if err == nil && sess != nil {
		err = c.install(sess)
	}
	if err != nil || sess != nil {
		c.s.cfg.Observer.Login(c.mech, false, err == nil)
	}
	if err != nil {
		return protoErr("sasl %s login failed (v0 handshake): %v", c.mech, err)
	}
	b := binary.BigEndian.AppendUint32(c.wbuf[:0], uint32(len(out)))
	return c.writeRaw(append(b, out...))
}

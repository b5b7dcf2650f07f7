package kafkaproxy

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate: v0-v2.
//
// Carries a client SASL message (PLAIN: authzid NUL user NUL password;
// OAUTHBEARER: the RFC 7628 client-first message with the JWT; SCRAM:
// client-first, then client-final, answered by server-first and
// server-final in SASLAuthBytes). Success answers (v1+)
// SessionLifetimeMillis, the time left until the credential expires when
// the Session is a Reauthenticator with an expiry, else 0: clients then
// re-authenticate on the connection before it (KIP-368), and a
// re-authentication's login is handed to the Session it renews.
// Revocation still closes the connection. Failure answers
// SASL_AUTHENTICATION_FAILED with the reason and closes the connection
// after the response.
//
// Allowed after a v1 SaslHandshake.

func init() { register(saslAuthenticateKey, 0, 2, true, (*conn).handleSaslAuthenticate) }

func (c *conn) handleSaslAuthenticate(req *kmsg.SASLAuthenticateRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	reauth := c.sasl == saslReauth
	out, sess, err := c.saslStep(req.SASLAuthBytes)
	if err == nil && sess != nil {
		if reauth {
			err = c.reauth(sess)
		} else {
			err = c.install(sess)
		}
	}
	if err != nil || sess != nil { // not SCRAM's first step
		c.s.cfg.Observer.Login(c.mech, reauth, err == nil)
	}
	if err == nil && c.sasl == saslDone && req.Version >= 1 {
		if ra, ok := c.sess.(Reauthenticator); ok {
			if exp := ra.Expires(); !exp.IsZero() {
				resp.SessionLifetimeMillis = max(time.Until(exp).Milliseconds(), 1)
			}
		}
	}
	resp.SASLAuthBytes = out
	if resp.SASLAuthBytes == nil {
		resp.SASLAuthBytes = []byte{}
	}
	if err != nil {
		c.log.Warn("kafkaproxy: sasl login failed", "mechanism", c.mech, "err", err)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "authentication failed: " + err.Error()
		resp.ErrorMessage = &msg
		c.closeAfter = true
	}
	return resp, nil
}

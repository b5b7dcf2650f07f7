package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate: v0-v2.
//
// Carries the client's single SASL message (PLAIN: authzid NUL user NUL
// password; OAUTHBEARER: the RFC 7628 client-first message with the JWT).
// Success answers empty server bytes and SessionLifetimeMillis 0 (v1+: no
// re-authentication; revocation closes the connection instead). Failure
// answers SASL_AUTHENTICATION_FAILED with the reason and closes the
// connection after the response.
//
// Allowed after a v1 SaslHandshake.

func init() { register(saslAuthenticateKey, 0, 2, true, (*conn).handleSaslAuthenticate) }

func (c *conn) handleSaslAuthenticate(req *kmsg.SASLAuthenticateRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	resp.SASLAuthBytes = []byte{}
	if err := c.login(req.SASLAuthBytes); err != nil {
		c.log.Warn("kafkaproxy: sasl login failed", "mechanism", c.mech, "err", err)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "authentication failed: " + err.Error()
		resp.ErrorMessage = &msg
		c.closeAfter = true
	}
	return resp, nil
}

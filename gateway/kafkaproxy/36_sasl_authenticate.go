package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate: v0-v2.
//
// Carries a client SASL message (PLAIN: authzid NUL user NUL password;
// OAUTHBEARER: the RFC 7628 client-first message with the JWT; SCRAM:
// client-first, then client-final, answered by server-first and
// server-final in SASLAuthBytes). Success answers SessionLifetimeMillis 0
// (v1+: no re-authentication; revocation closes the connection instead). Failure
// answers SASL_AUTHENTICATION_FAILED with the reason and closes the
// connection after the response.
//
// Allowed after a v1 SaslHandshake.

func init() { register(saslAuthenticateKey, 0, 2, true, (*conn).handleSaslAuthenticate) }

func (c *conn) handleSaslAuthenticate(req *kmsg.SASLAuthenticateRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	out, err := c.saslStep(req.SASLAuthBytes)
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

package kafkaproxy

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslHandshake: v0-v1.
//
// Picks the mechanism: PLAIN, OAUTHBEARER, or SCRAM-SHA-512 (offered when
// the Backend is a ScramBackend). After v1 (librdkafka, franz-go,
// current Java) the client sends SaslAuthenticate; after v0 (old Java) the
// next frame is the raw SASL token with no Kafka header, answered by a raw
// frame (see handleRawSASL). A v1 handshake on a logged-in connection with
// the login's mechanism starts a re-authentication (KIP-368, offered when
// SaslAuthenticate reported a session lifetime); any other second
// handshake is ILLEGAL_SASL_STATE and closes the connection.
//
// Allowed before login.

func init() { register(saslHandshakeKey, 0, 1, true, (*conn).handleSaslHandshake) }

func (c *conn) handleSaslHandshake(req *kmsg.SASLHandshakeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = c.s.mechanisms
	if c.sasl == saslDone && req.Version >= 1 && req.Mechanism == c.mech {
		if _, ok := c.sess.(Reauthenticator); ok {
			c.sasl = saslReauth
			return resp, nil
		}
	}
	if c.sasl != saslBegin {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		c.closeAfter = true
		return resp, nil
	}
	switch {
	case slices.Contains(c.s.mechanisms, req.Mechanism):
		c.mech = req.Mechanism
		if req.Version == 0 {
			c.sasl = saslRaw
		} else {
			c.sasl = saslHandshook
		}
	default:
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
	}
	return resp, nil
}

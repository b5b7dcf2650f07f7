package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn: v0-v3, handled but not advertised. Refused:
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.

func init() { register(26, 0, 3, false, (*conn).handleEndTxn) }

func (c *conn) handleEndTxn(req *kmsg.EndTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	return resp, nil
}

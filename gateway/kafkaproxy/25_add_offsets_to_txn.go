package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddOffsetsToTxn: v0-v3, handled but not advertised. Refused:
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED.

func init() { register(25, 0, 3, false, (*conn).handleAddOffsetsToTxn) }

func (c *conn) handleAddOffsetsToTxn(req *kmsg.AddOffsetsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	return resp, nil
}

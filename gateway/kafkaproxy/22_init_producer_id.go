package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId: v0-v5, handled but not advertised (see 00_produce.go).
// Refused: TRANSACTIONAL_ID_AUTHORIZATION_FAILED for a transactional id,
// else CLUSTER_AUTHORIZATION_FAILED (no idempotent writes).

func init() { register(22, 0, 5, false, (*conn).handleInitProducerID) }

func (c *conn) handleInitProducerID(req *kmsg.InitProducerIDRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	}
	return resp, nil
}

package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddPartitionsToTxn: v0-v3, handled but not advertised. Refused: every
// partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED. (v4+, the
// broker-to-broker batch form, closes the connection.)

func init() { register(24, 0, 3, false, (*conn).handleAddPartitionsToTxn) }

func (c *conn) handleAddPartitionsToTxn(req *kmsg.AddPartitionsToTxnRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewAddPartitionsToTxnResponseTopic()
		t.Topic = rt.Topic
		for _, p := range rt.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, kerr.TransactionalIDAuthorizationFailed.Code
			t.Partitions = append(t.Partitions, rp)
		}
		t.Partitions = nonNil(t.Partitions)
		resp.Topics = append(resp.Topics, t)
	}
	resp.Topics = nonNil(resp.Topics)
	return resp, nil
}

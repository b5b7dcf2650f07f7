package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit: v0-v3, handled but not advertised. Refused: every
// partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED.

func init() { register(28, 0, 3, false, (*conn).handleTxnOffsetCommit) }

func (c *conn) handleTxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewTxnOffsetCommitResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			p.Partition, p.ErrorCode = rp.Partition, kerr.TransactionalIDAuthorizationFailed.Code
			t.Partitions = append(t.Partitions, p)
		}
		t.Partitions = nonNil(t.Partitions)
		resp.Topics = append(resp.Topics, t)
	}
	resp.Topics = nonNil(resp.Topics)
	return resp, nil
}

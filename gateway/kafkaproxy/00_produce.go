package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Produce: v3-v9.
//
// sluice topics are read-only views: every partition is answered
// TOPIC_AUTHORIZATION_FAILED (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for a
// transactional produce), with an error message at v8+. The records are
// not looked at. A produce with acks=0 expects no response, so, as Kafka
// does for a failed acks=0 produce, the connection is closed.
//
// InitProducerId is deliberately not advertised: franz-go then produces
// without idempotence and gets this clear per-partition error instead of a
// cluster-level one.

func init() { register(0, 3, 9, true, (*conn).handleProduce) }

// readOnly is the error message of every refused write.
const readOnly = "sluice topics are read-only governed views; partners cannot write"

func (c *conn) handleProduce(req *kmsg.ProduceRequest) (kmsg.Response, error) {
	if req.Acks == 0 {
		return nil, protoErr("produce with acks=0 refused: %s", readOnly)
	}
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	code := kerr.TopicAuthorizationFailed.Code
	if req.TransactionID != nil {
		code = kerr.TransactionalIDAuthorizationFailed.Code
	}
	msg := readOnly
	for _, rt := range req.Topics {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewProduceResponseTopicPartition()
			p.Partition, p.ErrorCode = rp.Partition, code
			p.BaseOffset, p.LogAppendTime, p.LogStartOffset = -1, -1, -1
			p.ErrorRecords = []kmsg.ProduceResponseTopicPartitionErrorRecord{}
			p.ErrorMessage = &msg
			t.Partitions = append(t.Partitions, p)
		}
		t.Partitions = nonNil(t.Partitions)
		resp.Topics = append(resp.Topics, t)
	}
	resp.Topics = nonNil(resp.Topics)
	c.log.Info("kafkaproxy: produce refused", "topics", len(req.Topics))
	return resp, nil
}

package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteRecords: v0-v2. Refused: every partition is
// TOPIC_AUTHORIZATION_FAILED.

func init() { register(21, 0, 2, true, (*conn).handleDeleteRecords) }

func (c *conn) handleDeleteRecords(req *kmsg.DeleteRecordsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewDeleteRecordsResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewDeleteRecordsResponseTopicPartition()
			p.Partition, p.LowWatermark, p.ErrorCode = rp.Partition, -1, kerr.TopicAuthorizationFailed.Code
			t.Partitions = append(t.Partitions, p)
		}
		t.Partitions = nonNil(t.Partitions)
		resp.Topics = append(resp.Topics, t)
	}
	resp.Topics = nonNil(resp.Topics)
	return resp, nil
}

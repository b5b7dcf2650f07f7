package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions: v0-v3. Refused: every topic is
// TOPIC_AUTHORIZATION_FAILED.

func init() { register(37, 0, 3, true, (*conn).handleCreatePartitions) }

func (c *conn) handleCreatePartitions(req *kmsg.CreatePartitionsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	msg := readOnly
	for _, rt := range req.Topics {
		t := kmsg.NewCreatePartitionsResponseTopic()
		t.Topic, t.ErrorCode, t.ErrorMessage = rt.Topic, kerr.TopicAuthorizationFailed.Code, &msg
		resp.Topics = append(resp.Topics, t)
	}
	resp.Topics = nonNil(resp.Topics)
	return resp, nil
}

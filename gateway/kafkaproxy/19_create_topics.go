package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics: v2-v7. Refused: every topic is TOPIC_AUTHORIZATION_FAILED.

func init() { register(19, 2, 7, true, (*conn).handleCreateTopics) }

func (c *conn) handleCreateTopics(req *kmsg.CreateTopicsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	msg := readOnly
	for _, rt := range req.Topics {
		t := kmsg.NewCreateTopicsResponseTopic()
		t.Topic, t.ErrorCode, t.ErrorMessage = rt.Topic, kerr.TopicAuthorizationFailed.Code, &msg
		t.NumPartitions, t.ReplicationFactor = -1, -1
		resp.Topics = append(resp.Topics, t)
	}
	resp.Topics = nonNil(resp.Topics)
	return resp, nil
}

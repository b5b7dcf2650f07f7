package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics: v1-v5. Refused: every topic is TOPIC_AUTHORIZATION_FAILED.

func init() { register(20, 1, 5, true, (*conn).handleDeleteTopics) }

func (c *conn) handleDeleteTopics(req *kmsg.DeleteTopicsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	msg := readOnly
	for _, name := range req.TopicNames {
		t := kmsg.NewDeleteTopicsResponseTopic()
		t.Topic, t.ErrorCode = &name, kerr.TopicAuthorizationFailed.Code
		if req.Version >= 5 {
			t.ErrorMessage = &msg
		}
		resp.Topics = append(resp.Topics, t)
	}
	resp.Topics = nonNil(resp.Topics)
	return resp, nil
}

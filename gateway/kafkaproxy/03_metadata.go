package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metadata: v1-v12.
//
// The brokers are the front door's nodes (the proxy alone, or every live
// replica with Config.Cluster); the node answering leads every partition
// and is the controller (coordinators: FindCoordinator). Topics
// are the partner's entitled virtual topics only: a request for all topics
// (null list) lists exactly those; a named topic the partner may not read
// is TOPIC_AUTHORIZATION_FAILED, whether or not it exists, so existence
// does not leak. Topic IDs are all zero (clients then fetch by name, which
// is why Fetch stops at v12); a topic asked for by ID alone is
// UNKNOWN_TOPIC_ID. Leader epochs are -1, so clients skip
// OffsetForLeaderEpoch validation. Auto-creation is never done.
// v8+: authorized operations are reported when asked (READ and DESCRIBE).

func init() { register(3, 1, 12, true, (*conn).handleMetadata) }

// Bits of Kafka's ACL operations (READ=3, DESCRIBE=8) for authorized
// operations fields, of topics and of groups.
const readDescribe = 1<<3 | 1<<8

func (c *conn) handleMetadata(req *kmsg.MetadataRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	for _, n := range c.s.nodes() {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = n.ID, n.Host, n.Port
		resp.Brokers = append(resp.Brokers, b)
	}
	resp.ClusterID = &c.s.cfg.ClusterID
	resp.ControllerID = c.s.cfg.NodeID

	topics, err := c.sess.Topics(c.ctx)
	if err != nil {
		c.log.Warn("kafkaproxy: listing topics failed", "err", err)
		// Every requested topic is reported with a retriable error.
		for _, rt := range req.Topics {
			t := kmsg.NewMetadataResponseTopic()
			t.Topic, t.TopicID = rt.Topic, rt.TopicID
			t.ErrorCode = kerr.LeaderNotAvailable.Code
			t.Partitions = []kmsg.MetadataResponseTopicPartition{}
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil
	}
	add := func(tp Topic) {
		t := kmsg.NewMetadataResponseTopic()
		name := tp.Name
		t.Topic = &name
		if req.IncludeTopicAuthorizedOperations {
			t.AuthorizedOperations = readDescribe
		}
		t.Partitions = make([]kmsg.MetadataResponseTopicPartition, tp.Partitions)
		for i := range t.Partitions {
			p := kmsg.NewMetadataResponseTopicPartition()
			p.Partition = int32(i)
			p.Leader = c.s.cfg.NodeID
			p.LeaderEpoch = -1
			p.Replicas = []int32{c.s.cfg.NodeID}
			p.ISR = []int32{c.s.cfg.NodeID}
			p.OfflineReplicas = []int32{}
			t.Partitions[i] = p
		}
		resp.Topics = append(resp.Topics, t)
	}
	if req.Topics == nil {
		for _, tp := range topics {
			add(tp)
		}
		resp.Topics = nonNil(resp.Topics)
		return resp, nil
	}
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			t := kmsg.NewMetadataResponseTopic()
			t.TopicID = rt.TopicID
			t.ErrorCode = kerr.UnknownTopicID.Code
			t.Partitions = []kmsg.MetadataResponseTopicPartition{}
			resp.Topics = append(resp.Topics, t)
			continue
		}
		if tp, ok := findTopic(topics, *rt.Topic); ok {
			add(tp)
			continue
		}
		t := kmsg.NewMetadataResponseTopic()
		t.Topic = rt.Topic
		t.ErrorCode = kerr.TopicAuthorizationFailed.Code
		t.Partitions = []kmsg.MetadataResponseTopicPartition{}
		resp.Topics = append(resp.Topics, t)
	}
	resp.Topics = nonNil(resp.Topics)
	return resp, nil
}

func findTopic(topics []Topic, name string) (Topic, bool) {
	for _, t := range topics {
		if t.Name == name {
			return t, true
		}
	}
	return Topic{}, false
}

// nonNil returns s, or an empty slice for nil: nullable arrays encode nil
// as null, which some clients reject where the protocol expects a list.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

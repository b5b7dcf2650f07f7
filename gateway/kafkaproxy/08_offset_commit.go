package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit: v2-v8.
//
// Stores a partner group's offsets through the OffsetStore, all partitions
// of a request in one Commit. A member of the current generation may
// commit in Stable and PreparingRebalance (so consumers commit what they
// consumed before rejoining), not in CompletingRebalance
// (REBALANCE_IN_PROGRESS); a commit with generation -1 and no member id
// (manual assignment, admin tools) only when the group has no members.
// Topics the partner may not read are TOPIC_AUTHORIZATION_FAILED; a
// store failure is logged and answered UNKNOWN_SERVER_ERROR (the commit
// did not happen; clients report it and commit again later). Retention
// times (v2-v4) and leader epochs are ignored.
//
// A node of a cluster that does not coordinate the group (cluster.go)
// answers NOT_COORDINATOR; the client looks the coordinator up again.

func init() { register(8, 2, 8, true, (*conn).handleOffsetCommit) }

func (c *conn) handleOffsetCommit(req *kmsg.OffsetCommitRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	partner := c.partner()
	groupCode := c.s.groups.checkCommit(partner, req.Group, req.MemberID, req.Generation)
	switch {
	case req.Group == "":
		groupCode = kerr.InvalidGroupID.Code
	case !c.s.owns(partner, req.Group):
		groupCode = kerr.NotCoordinator.Code
	}
	topics, terr := c.sess.Topics(c.ctx)
	if terr != nil {
		c.log.Warn("kafkaproxy: listing topics failed", "err", terr)
	}
	codes := make([][]int16, len(req.Topics))
	offsets := map[TopicPartition]Committed{}
	for i, rt := range req.Topics {
		codes[i] = make([]int16, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			code := groupCode
			if code == 0 {
				if terr != nil {
					code = kerr.CoordinatorLoadInProgress.Code
				} else {
					code = partitionCode(topics, rt.Topic, rp.Partition)
				}
			}
			if code == 0 {
				var md string
				if rp.Metadata != nil {
					md = *rp.Metadata
				}
				offsets[TopicPartition{rt.Topic, rp.Partition}] = Committed{Offset: rp.Offset, Metadata: md}
			}
			codes[i][j] = code
		}
	}
	if len(offsets) > 0 {
		if err := c.s.cfg.Offsets.Commit(c.ctx, partner, req.Group, offsets); err != nil {
			c.log.Warn("kafkaproxy: committing offsets failed", "group", req.Group, "err", err)
			for i, rt := range req.Topics {
				for j, rp := range rt.Partitions {
					if _, ok := offsets[TopicPartition{rt.Topic, rp.Partition}]; ok {
						codes[i][j] = kerr.UnknownServerError.Code
					}
				}
			}
		}
	}
	resp.Topics = make([]kmsg.OffsetCommitResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		t := kmsg.NewOffsetCommitResponseTopic()
		t.Topic = rt.Topic
		t.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(rt.Partitions))
		for j, rp := range rt.Partitions {
			p := kmsg.NewOffsetCommitResponseTopicPartition()
			p.Partition, p.ErrorCode = rp.Partition, codes[i][j]
			t.Partitions[j] = p
		}
		resp.Topics[i] = t
	}
	return resp, nil
}

package kafkaproxy

import (
	"cmp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch: v1-v8.
//
// Reads a partner group's committed offsets from the OffsetStore. A
// partition with no commit is offset -1. A null topic list (v2+) returns
// every committed partition of topics the partner may still read; a named
// topic it may not read is TOPIC_AUTHORIZATION_FAILED. v8 batches groups.
// RequireStable (v7+) needs nothing: there are no transactional commits.
// A store failure is COORDINATOR_LOAD_IN_PROGRESS (retriable) at group
// level (v2+) and on every partition.

func init() { register(9, 1, 8, true, (*conn).handleOffsetFetch) }

type fetchedPartition struct {
	partition int32
	offset    int64
	metadata  string
	code      int16
}

type fetchedTopic struct {
	topic      string
	partitions []fetchedPartition
}

func (c *conn) handleOffsetFetch(req *kmsg.OffsetFetchRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version < 8 {
		asked := make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(req.Topics))
		for _, t := range req.Topics {
			asked = append(asked, kmsg.OffsetFetchRequestGroupTopic{Topic: t.Topic, Partitions: t.Partitions})
		}
		if req.Topics == nil {
			asked = nil
		}
		code, topics := c.fetchOffsets(req.Group, asked)
		resp.ErrorCode = code
		resp.Topics = make([]kmsg.OffsetFetchResponseTopic, 0, len(topics))
		for _, ft := range topics {
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = ft.topic
			for _, fp := range ft.partitions {
				p := kmsg.NewOffsetFetchResponseTopicPartition()
				md := fp.metadata
				p.Partition, p.Offset, p.Metadata, p.ErrorCode = fp.partition, fp.offset, &md, fp.code
				t.Partitions = append(t.Partitions, p)
			}
			t.Partitions = nonNil(t.Partitions)
			resp.Topics = append(resp.Topics, t)
		}
		return resp, nil
	}
	resp.Groups = make([]kmsg.OffsetFetchResponseGroup, 0, len(req.Groups))
	for _, rg := range req.Groups {
		g := kmsg.NewOffsetFetchResponseGroup()
		g.Group = rg.Group
		code, topics := c.fetchOffsets(rg.Group, rg.Topics)
		g.ErrorCode = code
		g.Topics = make([]kmsg.OffsetFetchResponseGroupTopic, 0, len(topics))
		for _, ft := range topics {
			t := kmsg.NewOffsetFetchResponseGroupTopic()
			t.Topic = ft.topic
			for _, fp := range ft.partitions {
				p := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				md := fp.metadata
				p.Partition, p.Offset, p.Metadata, p.ErrorCode = fp.partition, fp.offset, &md, fp.code
				t.Partitions = append(t.Partitions, p)
			}
			t.Partitions = nonNil(t.Partitions)
			g.Topics = append(g.Topics, t)
		}
		resp.Groups = append(resp.Groups, g)
	}
	return resp, nil
}

// fetchOffsets answers one group: asked nil means every committed
// partition of the partner's entitled topics.
func (c *conn) fetchOffsets(group string, asked []kmsg.OffsetFetchRequestGroupTopic) (int16, []fetchedTopic) {
	topics, terr := c.sess.Topics(c.ctx)
	var stored map[TopicPartition]Committed
	var serr error
	if terr == nil {
		stored, serr = c.s.cfg.Offsets.Fetch(c.ctx, c.partner(), group)
	}
	if terr != nil || serr != nil {
		c.log.Warn("kafkaproxy: fetching offsets failed", "group", group, "topics_err", terr, "store_err", serr)
		code := kerr.CoordinatorLoadInProgress.Code
		var out []fetchedTopic
		for _, t := range asked {
			ft := fetchedTopic{topic: t.Topic}
			for _, p := range t.Partitions {
				ft.partitions = append(ft.partitions, fetchedPartition{partition: p, offset: -1, code: code})
			}
			out = append(out, ft)
		}
		return code, out
	}
	if asked == nil {
		byTopic := map[string][]fetchedPartition{}
		for tp, cm := range stored {
			if _, ok := findTopic(topics, tp.Topic); !ok {
				continue
			}
			byTopic[tp.Topic] = append(byTopic[tp.Topic], fetchedPartition{partition: tp.Partition, offset: cm.Offset, metadata: cm.Metadata})
		}
		out := make([]fetchedTopic, 0, len(byTopic))
		for t, ps := range byTopic {
			slices.SortFunc(ps, func(a, b fetchedPartition) int { return cmp.Compare(a.partition, b.partition) })
			out = append(out, fetchedTopic{topic: t, partitions: ps})
		}
		slices.SortFunc(out, func(a, b fetchedTopic) int { return cmp.Compare(a.topic, b.topic) })
		return 0, out
	}
	out := make([]fetchedTopic, 0, len(asked))
	for _, t := range asked {
		ft := fetchedTopic{topic: t.Topic}
		_, entitled := findTopic(topics, t.Topic)
		for _, p := range t.Partitions {
			fp := fetchedPartition{partition: p, offset: -1}
			if !entitled {
				fp.code = kerr.TopicAuthorizationFailed.Code
			} else if cm, ok := stored[TopicPartition{t.Topic, p}]; ok {
				fp.offset, fp.metadata = cm.Offset, cm.Metadata
			}
			ft.partitions = append(ft.partitions, fp)
		}
		out = append(out, ft)
	}
	return 0, out
}

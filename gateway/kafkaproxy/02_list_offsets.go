package kafkaproxy

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets: v1-v6.
//
// Timestamp -2 is the log start, -1 the high watermark (both isolation
// levels: the view has no transactions), any other non-negative value the
// first offset at or after that time (Session.OffsetForTime). Other
// negative values (-3 max timestamp, v7+) are not served.
// Returned timestamps are -1 and leader epochs -1.

func init() { register(2, 1, 6, true, (*conn).handleListOffsets) }

func (c *conn) handleListOffsets(req *kmsg.ListOffsetsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	topics, err := c.sess.Topics(c.ctx)
	if err != nil {
		c.log.Warn("kafkaproxy: listing topics failed", "err", err)
	}
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, 0, len(req.Topics))
	for _, rt := range req.Topics {
		t := kmsg.NewListOffsetsResponseTopic()
		t.Topic = rt.Topic
		t.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, 0, len(rt.Partitions))
		for _, rp := range rt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			p.Timestamp, p.Offset, p.LeaderEpoch = -1, -1, -1
			switch {
			case err != nil:
				p.ErrorCode = kerr.LeaderNotAvailable.Code
			default:
				p.ErrorCode = partitionCode(topics, rt.Topic, rp.Partition)
			}
			if p.ErrorCode == 0 {
				var off int64
				var lerr error
				switch ts := rp.Timestamp; {
				case ts == -2:
					off, _, lerr = c.sess.Offsets(c.ctx, rt.Topic, rp.Partition)
				case ts == -1:
					_, off, lerr = c.sess.Offsets(c.ctx, rt.Topic, rp.Partition)
				case ts >= 0:
					off, lerr = c.sess.OffsetForTime(c.ctx, rt.Topic, rp.Partition, time.UnixMilli(ts))
				default:
					p.ErrorCode = kerr.UnsupportedVersion.Code
				}
				if lerr != nil {
					p.ErrorCode = c.code(lerr, "list offsets", rt.Topic, rp.Partition)
				} else if p.ErrorCode == 0 {
					p.Offset = off
				}
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups: v0-v5.
//
// Describes the partner's groups, as lag monitors and
// kafka-consumer-groups --describe read them: state, protocol, and each
// member's client id, host, subscription metadata and assignment. A group
// this node holds no members of is Empty when it has committed offsets
// and Dead otherwise, as in Kafka. At a node of a cluster that does not
// coordinate the group (cluster.go): NOT_COORDINATOR for that group.
// Another partner's group of the same id is never seen. v3+ authorized
// operations are reported when asked (DESCRIBE and READ).

func init() { register(15, 0, 5, true, (*conn).handleDescribeGroups) }

func (c *conn) handleDescribeGroups(req *kmsg.DescribeGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	partner := c.partner()
	held := c.s.groups.summaries(partner, req.Groups...)
	for _, id := range req.Groups {
		g := kmsg.NewDescribeGroupsResponseGroup()
		g.Group = id
		g.Members = []kmsg.DescribeGroupsResponseGroupMember{}
		if req.IncludeAuthorizedOperations {
			g.AuthorizedOperations = readDescribe
		}
		switch s, ok := held[id]; {
		case id == "":
			g.ErrorCode = kerr.InvalidGroupID.Code
		case !c.s.owns(partner, id):
			g.ErrorCode = kerr.NotCoordinator.Code
		case ok:
			g.State, g.ProtocolType, g.Protocol = s.state, s.protocolType, s.protocol
			g.Members = nonNil(s.members)
		default:
			g.State = "Dead"
			if offs, err := c.s.cfg.Offsets.Fetch(c.ctx, partner, id); err != nil {
				c.log.Warn("kafkaproxy: reading a group's offsets failed", "group", id, "err", err)
				g.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			} else if len(offs) > 0 {
				g.State = "Empty"
			}
		}
		resp.Groups = append(resp.Groups, g)
	}
	resp.Groups = nonNil(resp.Groups)
	return resp, nil
}

package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat: v0-v4.
//
// Keeps a member's session alive. REBALANCE_IN_PROGRESS tells it to rejoin;
// UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION that it was dropped or is
// behind. v3+ instance ids are ignored.
//
// A node of a cluster that does not coordinate the group (cluster.go)
// answers NOT_COORDINATOR; the client looks the coordinator up again.

func init() { register(12, 0, 4, true, (*conn).handleHeartbeat) }

func (c *conn) handleHeartbeat(req *kmsg.HeartbeatRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if !c.s.owns(c.partner(), req.Group) {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp, nil
	}
	resp.ErrorCode = c.s.groups.heartbeat(c.partner(), req.Group, req.MemberID, req.Generation)
	return resp, nil
}

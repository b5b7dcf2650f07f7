package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup: v0-v5.
//
// Removes members at once (no waiting for their session timeout) and
// rebalances the rest. v0-v2 name one member; v3+ a batch, each answered
// on its own (an instance id without member id is UNKNOWN_MEMBER_ID: static
// membership is not implemented).
//
// A node of a cluster that does not coordinate the group (cluster.go)
// answers NOT_COORDINATOR; the client looks the coordinator up again.

func init() { register(13, 0, 5, true, (*conn).handleLeaveGroup) }

func (c *conn) handleLeaveGroup(req *kmsg.LeaveGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if !c.s.owns(c.partner(), req.Group) {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return resp, nil
	}
	if req.Version < 3 {
		resp.ErrorCode = c.s.groups.leave(c.partner(), req.Group, []string{req.MemberID})[0]
		return resp, nil
	}
	ids := make([]string, len(req.Members))
	for i, m := range req.Members {
		ids[i] = m.MemberID
	}
	codes := c.s.groups.leave(c.partner(), req.Group, ids)
	resp.Members = make([]kmsg.LeaveGroupResponseMember, len(req.Members))
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, codes[i]
		resp.Members[i] = rm
	}
	return resp, nil
}

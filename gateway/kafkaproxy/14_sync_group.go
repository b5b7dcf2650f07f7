package kafkaproxy

import (
	"bytes"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup: v0-v5.
//
// The leader sends every member's assignment and moves the group to
// Stable; followers wait for theirs. v3+ instance ids are ignored; v5+
// protocol type and name are checked against the group's
// (INCONSISTENT_GROUP_PROTOCOL) and echoed.
//
// A node of a cluster that does not coordinate the group (cluster.go)
// answers NOT_COORDINATOR; the client looks the coordinator up again.

func init() { register(14, 0, 5, true, (*conn).handleSyncGroup) }

func (c *conn) handleSyncGroup(req *kmsg.SyncGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if !c.s.owns(c.partner(), req.Group) {
		resp.ErrorCode = kerr.NotCoordinator.Code
		resp.MemberAssignment = []byte{}
		return resp, nil
	}
	r := syncRequest{
		partner:      c.partner(),
		group:        req.Group,
		memberID:     req.MemberID,
		generation:   req.Generation,
		protocolType: req.ProtocolType,
		protocol:     req.Protocol,
	}
	if len(req.GroupAssignment) > 0 {
		r.assignments = make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			r.assignments[a.MemberID] = bytes.Clone(a.MemberAssignment) // the frame buffer is reused
		}
	}
	res := c.s.groups.sync(c.ctx, r)
	resp.ErrorCode = res.code
	if res.code == 0 {
		resp.ProtocolType = &res.protocolType
		resp.Protocol = &res.protocol
	}
	resp.MemberAssignment = nonNil(res.assignment)
	return resp, nil
}

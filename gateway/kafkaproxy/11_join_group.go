package kafkaproxy

import (
	"bytes"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup: v0-v9.
//
// Joins the partner's group (see group.go for the state machine) and waits
// until the rebalance round completes. v0 has no rebalance timeout (the
// session timeout is used). v4+: a first join without a member id gets
// MEMBER_ID_REQUIRED with the id to rejoin with (KIP-394). v5+ group
// instance ids are echoed but not given static-membership semantics. v7+
// returns the protocol type; v8's reason is ignored; v9's SkipAssignment is
// always false (the leader assigns).
//
// A node of a cluster that does not coordinate the group (cluster.go)
// answers NOT_COORDINATOR; the client looks the coordinator up again.

func init() { register(11, 0, 9, true, (*conn).handleJoinGroup) }

func (c *conn) handleJoinGroup(req *kmsg.JoinGroupRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	if !c.s.owns(c.partner(), req.Group) {
		resp.ErrorCode, resp.Generation, resp.MemberID = kerr.NotCoordinator.Code, -1, req.MemberID
		pt, proto := req.ProtocolType, ""
		resp.ProtocolType, resp.Protocol = &pt, &proto
		resp.Members = []kmsg.JoinGroupResponseMember{}
		return resp, nil
	}
	r := joinRequest{
		partner:          c.partner(),
		clientID:         c.clientID,
		group:            req.Group,
		memberID:         req.MemberID,
		instanceID:       req.InstanceID,
		protocolType:     req.ProtocolType,
		sessionTimeout:   time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		rebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		requireKnownID:   req.Version >= 4,
	}
	if req.Version == 0 {
		r.rebalanceTimeout = r.sessionTimeout
	}
	if host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String()); err == nil {
		r.host = "/" + host
	}
	for _, p := range req.Protocols {
		p.Metadata = bytes.Clone(p.Metadata) // the frame buffer is reused
		r.protocols = append(r.protocols, p)
	}
	res := c.s.groups.join(c.ctx, r)
	resp.ErrorCode = res.code
	resp.Generation = res.generation
	if res.code != 0 && res.generation == 0 {
		resp.Generation = -1
	}
	pt, proto := res.protocolType, res.protocol
	resp.ProtocolType = &pt
	resp.Protocol = &proto
	resp.LeaderID = res.leader
	resp.MemberID = res.memberID
	resp.Members = nonNil(res.members)
	return resp, nil
}

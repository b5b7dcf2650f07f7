package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator: v0-v4.
//
// A consumer group's coordinator is the proxy itself, or with
// Config.Cluster the node its (partner, group id) hashes to (cluster.go);
// groups are namespaced by partner.
// Transaction coordinators (key type 1) are
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED: partners cannot write. v4 batches
// keys (CoordinatorKeys); v0-v3 carry one key.

func init() { register(10, 0, 4, true, (*conn).handleFindCoordinator) }

func (c *conn) handleFindCoordinator(req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	answer := func(key string) (code int16, msg *string) {
		if req.CoordinatorType != 0 {
			m := "partners cannot use transactions"
			return kerr.TransactionalIDAuthorizationFailed.Code, &m
		}
		if key == "" {
			m := "group id must not be empty"
			return kerr.InvalidGroupID.Code, &m
		}
		return 0, nil
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key = key
			co.ErrorCode, co.ErrorMessage = answer(key)
			co.NodeID, co.Host, co.Port = -1, "", -1
			if co.ErrorCode == 0 {
				n := c.s.coordinatorOf(c.partner(), key)
				co.NodeID, co.Host, co.Port = n.ID, n.Host, n.Port
			}
			resp.Coordinators = append(resp.Coordinators, co)
		}
		resp.Coordinators = nonNil(resp.Coordinators)
		return resp, nil
	}
	resp.ErrorCode, resp.ErrorMessage = answer(req.CoordinatorKey)
	resp.NodeID, resp.Host, resp.Port = -1, "", -1
	if resp.ErrorCode == 0 {
		n := c.s.coordinatorOf(c.partner(), req.CoordinatorKey)
		resp.NodeID, resp.Host, resp.Port = n.ID, n.Host, n.Port
	}
	return resp, nil
}

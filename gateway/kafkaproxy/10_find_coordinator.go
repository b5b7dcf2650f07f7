package kafkaproxy

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator: v0-v4.
//
// Every consumer group's coordinator is the proxy itself (NodeID at the
// advertised address); groups are namespaced by partner inside it.
// Transaction coordinators (key type 1) are
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED: partners cannot write. v4 batches
// keys (CoordinatorKeys); v0-v3 carry one key.

func init() { register(10, 0, 4, true, (*conn).handleFindCoordinator) }

func (c *conn) handleFindCoordinator(req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	host, port := c.s.advertised()
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
				co.NodeID, co.Host, co.Port = c.s.cfg.NodeID, host, port
			}
			resp.Coordinators = append(resp.Coordinators, co)
		}
		resp.Coordinators = nonNil(resp.Coordinators)
		return resp, nil
	}
	resp.ErrorCode, resp.ErrorMessage = answer(req.CoordinatorKey)
	resp.NodeID, resp.Host, resp.Port = -1, "", -1
	if resp.ErrorCode == 0 {
		resp.NodeID, resp.Host, resp.Port = c.s.cfg.NodeID, host, port
	}
	return resp, nil
}

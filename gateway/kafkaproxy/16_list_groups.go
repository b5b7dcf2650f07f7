package kafkaproxy

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups: v0-v4.
//
// Lists the partner's groups this node holds members of (in a cluster,
// clients ask every node and merge, as with Kafka's brokers), sorted by
// id; v4 filters by state. Groups with committed offsets and no members
// are not listed (their offsets stay readable with OffsetFetch and
// DescribeGroups shows them Empty).

func init() { register(16, 0, 4, true, (*conn).handleListGroups) }

func (c *conn) handleListGroups(req *kmsg.ListGroupsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	held := c.s.groups.summaries(c.partner())
	for _, s := range held {
		if len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(f string) bool { return strings.EqualFold(f, s.state) }) {
			continue
		}
		g := kmsg.NewListGroupsResponseGroup()
		g.Group, g.ProtocolType, g.GroupState = s.id, s.protocolType, s.state
		resp.Groups = append(resp.Groups, g)
	}
	slices.SortFunc(resp.Groups, func(a, b kmsg.ListGroupsResponseGroup) int { return strings.Compare(a.Group, b.Group) })
	resp.Groups = nonNil(resp.Groups)
	return resp, nil
}

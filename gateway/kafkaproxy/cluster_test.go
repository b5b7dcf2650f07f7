package kafkaproxy

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listCluster is a Cluster whose nodes the test sets (the gateway's comes
// from the store).
type listCluster struct {
	mu    sync.Mutex
	nodes []Node
}

func (c *listCluster) Nodes() []Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

func (c *listCluster) set(ns ...Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = ns
}

func nodeOf(t *testing.T, id int32, ts *testServer) Node {
	host, port, err := splitHostPort(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	return Node{ID: id, Host: host, Port: port}
}

// assignments tracks which partitions each member holds now.
type assignments struct {
	mu  sync.Mutex
	now map[string]map[int32]bool
}

func (a *assignments) opts(member string) []kgo.Opt {
	set := func(on bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.now[member] == nil {
				a.now[member] = map[int32]bool{}
			}
			for _, p := range m["cdr"] {
				if on {
					a.now[member][p] = true
				} else {
					delete(a.now[member], p)
				}
			}
		}
	}
	return []kgo.Opt{kgo.OnPartitionsAssigned(set(true)), kgo.OnPartitionsRevoked(set(false)), kgo.OnPartitionsLost(set(false))}
}

// split reports whether the members hold disjoint partition sets that
// together are exactly partitions 0..n-1 (one group), and describes them.
func (a *assignments) split(n int32) (bool, map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	desc := map[string][]int32{}
	count := map[int32]int{}
	for m, ps := range a.now {
		desc[m] = slices.Sorted(maps.Keys(ps))
		for p := range ps {
			count[p]++
		}
	}
	if len(count) != int(n) {
		return false, desc
	}
	for p := range n {
		if count[p] != 1 {
			return false, desc
		}
	}
	return true, desc
}

// TestClusterOneGroup: two front-door nodes of one cluster. Members of a
// group that bootstrap from different nodes form one group at the node the
// group hashes to (both nodes answer FindCoordinator with it, the other
// answers group requests with NOT_COORDINATOR), split the partitions and
// consume everything. When the coordinator's node leaves, the group moves
// to the other node and the remaining member takes every partition and
// resumes from the commits: nothing is lost.
func TestClusterOneGroup(t *testing.T) {
	b, want := standardBackend()
	offsets := &MemoryOffsets{}
	cluster := &listCluster{}
	n1 := startServer(t, Config{Backend: b, Offsets: offsets, NodeID: 1, Cluster: cluster})
	n2 := startServer(t, Config{Backend: b, Offsets: offsets, NodeID: 2, Cluster: cluster})
	cluster.set(nodeOf(t, 1, n1), nodeOf(t, 2, n2))

	// Find a group id that n2 coordinates, so the member bootstrapped at
	// n1 must go to the other node.
	group := ""
	for i := 0; group == "" && i < 26; i++ {
		if g := "billing-" + string(rune('a'+i)); n1.coordinatorOf("mvno-a", g).ID == 2 {
			group = g
		}
	}
	if group == "" {
		t.Fatal("node 1 maps none of 26 group ids to node 2")
	}
	for _, ts := range []*testServer{n1, n2} {
		r := dialRaw(t, ts.addr)
		if code := r.login("key-a", "secret-a"); code != 0 {
			t.Fatalf("login: %d", code)
		}
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.Version, fc.CoordinatorKey = 3, group
		resp := r.roundTrip(fc).(*kmsg.FindCoordinatorResponse)
		if resp.ErrorCode != 0 || resp.NodeID != 2 || resp.Port != nodeOf(t, 2, n2).Port {
			t.Fatalf("node at %s: FindCoordinator(%s) = node %d port %d (error %d), want node 2 at %s", ts.addr, group, resp.NodeID, resp.Port, resp.ErrorCode, n2.addr)
		}
		md := kmsg.NewPtrMetadataRequest()
		md.Version = 9
		if m := r.roundTrip(md).(*kmsg.MetadataResponse); len(m.Brokers) != 2 || m.Brokers[0].NodeID != 1 || m.Brokers[1].NodeID != 2 {
			t.Fatalf("node at %s lists brokers %+v, want nodes 1 and 2", ts.addr, m.Brokers)
		}
	}
	r := dialRaw(t, n1.addr)
	r.login("key-a", "secret-a")
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation = 3, group, "m", 1
	if code := r.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.NotCoordinator.Code {
		t.Fatalf("heartbeat at the node that does not coordinate %s: error %d, want NOT_COORDINATOR", group, code)
	}

	log := newGroupLog()
	var as assignments
	as.now = map[string]map[int32]bool{}
	m1 := startMember(t, n1.addr, "key-a", "secret-a", group, "m1", log, as.opts("m1")...)
	m2 := startMember(t, n2.addr, "key-a", "secret-a", group, "m2", log, as.opts("m2")...)
	defer m1.close()
	waitFor(t, 20*time.Second, "one group: the members split the partitions", func() bool {
		ok, _ := as.split(3)
		as.mu.Lock()
		defer as.mu.Unlock()
		return ok && len(as.now["m1"]) > 0 && len(as.now["m2"]) > 0
	})
	waitFor(t, 20*time.Second, "everything consumed", func() bool { return log.distinct() >= len(want["cdr"]) })

	// The coordinator's node leaves: the other is the cluster now.
	m2.close()
	cluster.set(nodeOf(t, 1, n1))
	n2.stop(t)
	waitFor(t, 20*time.Second, "m1 to hold every partition", func() bool {
		ok, desc := as.split(3)
		return ok && len(desc["m1"]) == 3
	})
	more := b.produce("cdr", 1, 30, nil)
	waitFor(t, 20*time.Second, "the new records consumed", func() bool { return log.distinct() >= len(want["cdr"])+len(more) })
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, w := range append(want["cdr"], more...) {
		if log.seen[tpo{"cdr", recordPartition(w), w.Offset}] == 0 {
			t.Errorf("record cdr/%d@%d lost", recordPartition(w), w.Offset)
		}
	}
}

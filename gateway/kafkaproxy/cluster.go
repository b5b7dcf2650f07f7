package kafkaproxy

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"slices"
)

// Several front-door replicas form one Kafka cluster, as brokers do: each
// is a node (its NodeID at its advertised address), Metadata lists every
// live node, and each consumer group has one coordinator among them,
// chosen by rendezvous hashing of (partner, group id) over the live nodes.
// Every replica computes the same choice from the same node list, so the
// members of a group reach one coordinator whichever replica they
// bootstrapped from; a replica asked to coordinate a group it does not own
// answers NOT_COORDINATOR and the client looks the coordinator up again.
// When a node joins or leaves, only the groups it owns (or now owns) move:
// their members rejoin at the new coordinator and resume from the
// committed offsets, which every replica reads from the shared store.
// Partitions are led by the node a client asked (every node serves every
// partition), so fetches stay on the connection the client already has.

// Node is one node of the front door's cluster.
type Node struct {
	ID   int32
	Host string
	Port int32
}

// Cluster lists the front door's live nodes.
type Cluster interface {
	// Nodes returns the live nodes in ID order; the proxy adds itself
	// when missing (its own row not yet written or expired).
	Nodes() []Node
}

// nodes returns the cluster's live nodes, this one included, in ID order,
// one per ID (the first listed wins: the cluster reports a duplicate ID).
func (s *Server) nodes() []Node {
	host, port := s.advertised()
	self := Node{ID: s.cfg.NodeID, Host: host, Port: port}
	if s.cfg.Cluster == nil {
		return []Node{self}
	}
	ns := s.cfg.Cluster.Nodes()
	out := make([]Node, 0, len(ns)+1)
	out = append(out, self)
	for _, n := range ns {
		if !slices.ContainsFunc(out, func(o Node) bool { return o.ID == n.ID }) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// coordinatorOf returns the node that coordinates partner's group: the
// live node with the highest rendezvous weight for the key.
func (s *Server) coordinatorOf(partner, group string) Node {
	ns := s.nodes()
	best, bestW := ns[0], uint64(0)
	for i, n := range ns {
		if w := rendezvousWeight(partner, group, n.ID); i == 0 || w > bestW {
			best, bestW = n, w
		}
	}
	return best
}

// owns reports whether this node coordinates partner's group.
func (s *Server) owns(partner, group string) bool {
	return s.cfg.Cluster == nil || s.coordinatorOf(partner, group).ID == s.cfg.NodeID
}

// rendezvousWeight is FNV-1a 64 of (partner, group, node id), mixed by
// SplitMix64's finalizer: the same on every replica and every platform.
func rendezvousWeight(partner, group string, node int32) uint64 {
	h := fnv.New64a()
	h.Write([]byte(partner))
	h.Write([]byte{0})
	h.Write([]byte(group))
	h.Write([]byte{0})
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], uint32(node))
	h.Write(id[:])
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// NodeIDOf derives a node id from an advertised address: stable across
// restarts, distinct for distinct addresses (up to a 31-bit hash), so
// replicas need no id allocation.
func NodeIDOf(advertised string) int32 {
	h := fnv.New32a()
	h.Write([]byte(advertised))
	return int32(h.Sum32() & 0x7fffffff)
}

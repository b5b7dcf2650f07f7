package gateway

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/gateway/kafkaproxy"
	"github.com/sluicehq/sluice/products/store"
)

// Replicas sharing a PostgreSQL store form one Kafka cluster at the front
// door (kafkaproxy/cluster.go): each writes its node (id derived from its
// advertised address, the address itself) to the store every second and
// lists every node written in the last kafkaNodeFresh as a broker. Consumer
// groups then have one coordinator among the replicas, whichever replica
// their members connect to. A replica that stops cleanly removes its node
// before closing its listener; one that dies drops out after
// kafkaNodeFresh. With SQLite (one replica) there is no cluster.

const (
	kafkaNodeEvery = time.Second
	kafkaNodeFresh = 5 * time.Second
)

type kafkaNodes struct {
	st  store.Store
	me  store.KafkaNode
	log *slog.Logger

	mu     sync.Mutex
	nodes  []kafkaproxy.Node // replaced whole, never modified
	failed bool              // the last refresh failed (logged once per streak)
}

func newKafkaNodes(st store.Store, replica, advertised string, log *slog.Logger) (*kafkaNodes, error) {
	host, portText, err := net.SplitHostPort(advertised)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseInt(portText, 10, 32)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		log.Warn("kafka front door: the advertised address is unspecified; other replicas' clients cannot reach this one (set kafka_advertised)", "advertised", advertised)
	}
	me := store.KafkaNode{Replica: replica, NodeID: kafkaproxy.NodeIDOf(advertised), Host: host, Port: int32(port)}
	return &kafkaNodes{st: st, me: me, log: log, nodes: []kafkaproxy.Node{{ID: me.NodeID, Host: host, Port: me.Port}}}, nil
}

// Nodes implements kafkaproxy.Cluster.
func (k *kafkaNodes) Nodes() []kafkaproxy.Node {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.nodes
}

// refresh writes this node and takes the live list. On a store error the
// last list stays (every replica then keeps its view until the store
// answers again).
func (k *kafkaNodes) refresh(ctx context.Context) {
	rows, err := k.st.ShareKafkaNode(ctx, k.me, kafkaNodeFresh)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		if !k.failed && ctx.Err() == nil {
			k.log.Warn("kafka front door: sharing this node with the other replicas failed; keeping the last list", "err", err)
		}
		k.failed = true
		return
	}
	k.failed = false
	nodes := make([]kafkaproxy.Node, 0, len(rows))
	for i, r := range rows {
		if i > 0 && rows[i-1].NodeID == r.NodeID {
			k.log.Warn("kafka front door: two replicas advertise the same node; give each its own kafka_advertised",
				"node", r.NodeID, "replicas", rows[i-1].Replica+","+r.Replica, "addr", net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port))))
			continue
		}
		nodes = append(nodes, kafkaproxy.Node{ID: r.NodeID, Host: r.Host, Port: r.Port})
	}
	k.nodes = nodes
}

// run refreshes every kafkaNodeEvery until ctx ends, then removes this
// node from the store.
func (k *kafkaNodes) run(ctx context.Context) {
	t := time.NewTicker(kafkaNodeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := k.st.DropKafkaNode(dctx, k.me.Replica); err != nil {
				k.log.Warn("kafka front door: removing this node failed; the others drop it within "+kafkaNodeFresh.String(), "err", err)
			}
			return
		case <-t.C:
			k.refresh(ctx)
		}
	}
}

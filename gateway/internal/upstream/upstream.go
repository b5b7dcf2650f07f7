// Package upstream reads product topics from the upstream Kafka cluster.
//
// It owns the gateway's Kafka clients and offers two things: offset lookups
// (start, end, first offset at a time) and stateless partition reads
// ([Fetcher.Fetch]): one Fetch request per partition leader, at exact offsets,
// with no consumer group and no client-side fetch state. The per-product
// reader in package hub long-polls through its own Fetcher; laggards and
// REST pages that fall outside the hub's window read through a shared,
// non-blocking one. Partners never see this package's addresses or errors
// verbatim.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrUnknownTopic is returned when the upstream cluster has no such topic.
var ErrUnknownTopic = errors.New("upstream: unknown topic")

// OutOfRangeError says a requested offset is no longer (or not yet) in the log.
type OutOfRangeError struct {
	Partition int32
	Offset    int64
	LogStart  int64 // earliest offset still in the log, -1 if unknown
}

func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("upstream: partition %d offset %d is out of range (log starts at %d)", e.Partition, e.Offset, e.LogStart)
}

// Cluster is a connection to the upstream cluster: metadata and offsets.
type Cluster struct {
	cl   *kgo.Client
	adm  *kadm.Client
	opts []kgo.Opt

	mu   sync.Mutex
	meta map[string]*topicMeta
}

type topicMeta struct {
	id      [16]byte
	leaders []int32 // by partition
	loaded  time.Time
}

// metaTTL bounds how long a topic's metadata is trusted without a refresh.
const metaTTL = 10 * time.Second

// Dial creates the cluster connection with the given client options (seed
// brokers, TLS, SASL). It does not block on the network.
func Dial(opts ...kgo.Opt) (*Cluster, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return &Cluster{cl: cl, adm: kadm.NewClient(cl), opts: opts, meta: map[string]*topicMeta{}}, nil
}

// Client is the shared client, for admin calls (topic creation) and producing.
func (c *Cluster) Client() *kgo.Client { return c.cl }

// Admin is a kadm client over the shared client.
func (c *Cluster) Admin() *kadm.Client { return c.adm }

// Close closes the shared client.
func (c *Cluster) Close() { c.cl.Close() }

// Ping checks that the cluster answers a metadata request.
func (c *Cluster) Ping(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	_, err := req.RequestWith(ctx, c.cl)
	return err
}

// Partitions returns the number of partitions of topic.
func (c *Cluster) Partitions(ctx context.Context, topic string) (int, error) {
	m, err := c.topic(ctx, topic, false)
	if err != nil {
		return 0, err
	}
	return len(m.leaders), nil
}

func (c *Cluster) topic(ctx context.Context, topic string, refresh bool) (*topicMeta, error) {
	c.mu.Lock()
	m := c.meta[topic]
	c.mu.Unlock()
	if m != nil && !refresh && time.Since(m.loaded) < metaTTL {
		return m, nil
	}
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		if m != nil {
			return m, nil // keep serving from the last good metadata
		}
		return nil, fmt.Errorf("upstream: metadata for %q: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
			}
			return nil, fmt.Errorf("upstream: metadata for %q: %w", topic, err)
		}
		nm := &topicMeta{id: t.TopicID, loaded: time.Now()}
		sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Partition < t.Partitions[j].Partition })
		for i, p := range t.Partitions {
			if int(p.Partition) != i {
				return nil, fmt.Errorf("upstream: metadata for %q: partitions are not contiguous", topic)
			}
			nm.leaders = append(nm.leaders, p.Leader)
		}
		c.mu.Lock()
		c.meta[topic] = nm
		c.mu.Unlock()
		return nm, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
}

// Which selects an offset lookup.
type Which int

const (
	Start Which = iota // log start offset
	End                // last stable offset (read_committed end)
)

// Offsets returns one offset per partition: the log start or end.
func (c *Cluster) Offsets(ctx context.Context, topic string, which Which) ([]int64, error) {
	var lo kadm.ListedOffsets
	var err error
	if which == Start {
		lo, err = c.adm.ListStartOffsets(ctx, topic)
	} else {
		lo, err = c.adm.ListCommittedOffsets(ctx, topic)
	}
	return c.collect(ctx, topic, lo, err)
}

// OffsetsAfter returns per partition the first offset whose timestamp is at or
// after ms, or the end offset where there is none.
func (c *Cluster) OffsetsAfter(ctx context.Context, topic string, ms int64) ([]int64, error) {
	lo, err := c.adm.ListOffsetsAfterMilli(ctx, ms, topic)
	return c.collect(ctx, topic, lo, err)
}

func (c *Cluster) collect(ctx context.Context, topic string, lo kadm.ListedOffsets, err error) ([]int64, error) {
	if err != nil {
		return nil, fmt.Errorf("upstream: list offsets of %q: %w", topic, err)
	}
	if err := lo.Error(); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
		}
		return nil, fmt.Errorf("upstream: list offsets of %q: %w", topic, err)
	}
	ps := lo[topic]
	n, err := c.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	for p := range out {
		o, ok := ps[int32(p)]
		if !ok {
			return nil, fmt.Errorf("upstream: list offsets of %q: partition %d missing", topic, p)
		}
		out[p] = o.Offset
	}
	return out, nil
}

// Fetcher issues stateless Fetch requests over its own client. A Fetcher that
// long-polls (maxWait > 0) should not share its client with latency-sensitive
// readers: Kafka answers one request per connection at a time.
type Fetcher struct {
	c     *Cluster
	cl    *kgo.Client
	owned bool
}

// NewFetcher returns a Fetcher with a client of its own.
func (c *Cluster) NewFetcher() (*Fetcher, error) {
	cl, err := kgo.NewClient(c.opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return &Fetcher{c: c, cl: cl, owned: true}, nil
}

// SharedFetcher returns a Fetcher over the cluster's shared client; use it
// only for non-blocking reads (maxWait 0).
func (c *Cluster) SharedFetcher() *Fetcher { return &Fetcher{c: c, cl: c.cl} }

// Close closes the Fetcher's own client.
func (f *Fetcher) Close() {
	if f.owned {
		f.cl.Close()
	}
}

// Partition is the result of reading one partition.
type Partition struct {
	Partition     int32
	Records       []*kgo.Record
	Next          int64 // the offset to read next (past control records too)
	HighWatermark int64
	LogStart      int64
	Err           error // *OutOfRangeError or a Kafka error; nil on success
}

// Fetch reads from each partition at positions[p] (only for p in parts), at
// most maxBytes per partition, waiting at most maxWait for data. Partitions
// are grouped by leader; one request goes to each leader concurrently.
func (f *Fetcher) Fetch(ctx context.Context, topic string, positions []int64, parts []int32, maxWait time.Duration, maxBytes int32) ([]Partition, error) {
	m, err := f.c.topic(ctx, topic, false)
	if err != nil {
		return nil, err
	}
	byLeader := map[int32][]int32{}
	for _, p := range parts {
		if int(p) >= len(m.leaders) || int(p) >= len(positions) {
			continue
		}
		byLeader[m.leaders[p]] = append(byLeader[m.leaders[p]], p)
	}
	type res struct {
		ps  []Partition
		err error
	}
	out := make(chan res, len(byLeader))
	for leader, ps := range byLeader {
		go func() {
			r, err := f.fetchFrom(ctx, leader, m, topic, positions, ps, maxWait, maxBytes)
			out <- res{r, err}
		}()
	}
	var all []Partition
	var firstErr error
	for range byLeader {
		r := <-out
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		all = append(all, r.ps...)
	}
	if firstErr != nil && len(all) == 0 {
		return nil, firstErr
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Partition < all[j].Partition })
	return all, nil
}

func (f *Fetcher) fetchFrom(ctx context.Context, leader int32, m *topicMeta, topic string, positions []int64, parts []int32, maxWait time.Duration, maxBytes int32) ([]Partition, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = maxBytes * int32(len(parts))
	if req.MaxBytes < maxBytes {
		req.MaxBytes = maxBytes
	}
	req.IsolationLevel = 1
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rt.TopicID = m.id
	for _, p := range parts {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		rp.FetchOffset = positions[p]
		rp.PartitionMaxBytes = maxBytes
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	kresp, err := f.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		f.c.topic(ctx, topic, true) //nolint:errcheck // best-effort refresh after a broker error
		return nil, fmt.Errorf("upstream: fetch %q from broker %d: %w", topic, leader, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("upstream: fetch %q: %w", topic, err)
	}
	var out []Partition
	refresh := false
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			if int(rp.Partition) >= len(positions) {
				continue
			}
			at := positions[rp.Partition]
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				Offset:         at,
				IsolationLevel: kgo.ReadCommitted(),
				Topic:          topic,
				Partition:      rp.Partition,
			}, rp, kgo.DefaultDecompressor(), nil)
			p := Partition{
				Partition:     rp.Partition,
				Records:       fp.Records,
				Next:          max(next, at),
				HighWatermark: fp.HighWatermark,
				LogStart:      fp.LogStartOffset,
			}
			switch {
			case fp.Err == nil:
			case errors.Is(fp.Err, kerr.OffsetOutOfRange):
				p.Err = &OutOfRangeError{Partition: rp.Partition, Offset: at, LogStart: fp.LogStartOffset}
			default:
				p.Err = fmt.Errorf("upstream: fetch %q partition %d: %w", topic, rp.Partition, fp.Err)
				var ke *kerr.Error
				if errors.As(fp.Err, &ke) && (errors.Is(fp.Err, kerr.NotLeaderForPartition) || errors.Is(fp.Err, kerr.UnknownTopicOrPartition) || errors.Is(fp.Err, kerr.FencedLeaderEpoch) || errors.Is(fp.Err, kerr.UnknownTopicID)) {
					refresh = true
				}
			}
			out = append(out, p)
		}
	}
	if refresh {
		f.c.topic(ctx, topic, true) //nolint:errcheck // best-effort refresh
	}
	return out, nil
}

package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ensureTopic creates the audit topic if missing (unlimited retention: a
// regulator's record must not age out silently) and returns its partition
// count.
func ensureTopic(ctx context.Context, adm *kadm.Client, cfg Config) (int32, error) {
	unlimited, del := "-1", "delete"
	resp, err := adm.CreateTopic(ctx, cfg.Partitions, cfg.ReplicationFactor, map[string]*string{
		"retention.ms": &unlimited, "retention.bytes": &unlimited, "cleanup.policy": &del,
	}, cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		// Maybe we may not create topics but it exists: use it.
		if n, lerr := partitionCount(ctx, adm, cfg.Topic); lerr == nil {
			return n, nil
		}
		return 0, fmt.Errorf("audit: create topic %s: %w", cfg.Topic, err)
	}
	return partitionCount(ctx, adm, cfg.Topic)
}

func partitionCount(ctx context.Context, adm *kadm.Client, topic string) (int32, error) {
	var last error
	for range 20 {
		td, err := adm.ListTopics(ctx, topic)
		if err == nil {
			err = td[topic].Err
		}
		if err == nil && len(td[topic].Partitions) > 0 {
			return int32(len(td[topic].Partitions)), nil
		}
		if err == nil {
			err = kerr.UnknownTopicOrPartition
		}
		last = err
		if !kerr.IsRetriable(err) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("audit: topic %s: %w", topic, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("audit: topic %s: %w", topic, last)
}

// ReadOptions says which audit topic to read and how to connect.
type ReadOptions struct {
	Brokers   []string
	KafkaOpts []kgo.Opt
	Topic     string // default DefaultTopic
}

func (o ReadOptions) opts() []kgo.Opt {
	opts := slices.Clone(o.KafkaOpts)
	if len(o.Brokers) > 0 {
		opts = append(opts, kgo.SeedBrokers(o.Brokers...))
	}
	return opts
}

// ReadTopic calls fn with every record of the audit topic that exists when
// it starts, partition by partition, each in offset order: the order a
// chain was written in. It stops at the first error fn returns.
func ReadTopic(ctx context.Context, o ReadOptions, fn func(Position, *kgo.Record) error) error {
	if o.Topic == "" {
		o.Topic = DefaultTopic
	}
	bounds, err := topicBounds(ctx, o.opts(), o.Topic)
	if err != nil {
		return err
	}
	for _, b := range bounds {
		err := readPartition(ctx, o.opts(), o.Topic, b.partition, b.start, b.end, func(r *kgo.Record) error {
			return fn(Position{Partition: r.Partition, Offset: r.Offset}, r)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// VerifyTopic verifies every chain in the audit topic.
func VerifyTopic(ctx context.Context, o ReadOptions, opts VerifyOptions) (Report, error) {
	v := NewVerifier(opts)
	err := ReadTopic(ctx, o, func(pos Position, r *kgo.Record) error {
		v.Add(pos, r.Value)
		return nil
	})
	return v.Report(), err
}

type bound struct {
	partition  int32
	start, end int64
}

// topicBounds lists each partition's [start, end) offsets, sorted by
// partition.
func topicBounds(ctx context.Context, opts []kgo.Opt, topic string) ([]bound, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("audit: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := partitionCount(ctx, adm, topic); err != nil {
		return nil, err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("audit: topic %s start offsets: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("audit: topic %s end offsets: %w", topic, err)
	}
	var out []bound
	ends.Each(func(e kadm.ListedOffset) {
		s, _ := starts.Lookup(topic, e.Partition)
		out = append(out, bound{partition: e.Partition, start: s.Offset, end: e.Offset})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].partition < out[j].partition })
	return out, nil
}

// readPartition reads [from, to) of one partition.
func readPartition(ctx context.Context, opts []kgo.Opt, topic string, p int32, from, to int64, fn func(*kgo.Record) error) error {
	if from >= to {
		return nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("audit: kafka client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("audit: read %s partition %d: %w", topic, p, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return fmt.Errorf("audit: read %s partition %d: %w", topic, p, errs[0].Err)
		}
		var ferr error
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if done || ferr != nil {
				return
			}
			if r.Offset >= to {
				done = true
				return
			}
			ferr = fn(r)
			done = r.Offset >= to-1
		})
		if ferr != nil {
			return ferr
		}
		if done {
			return nil
		}
	}
}

// findPredecessor returns the newest event of instance among the last scan
// records of each partition, or nil.
func findPredecessor(ctx context.Context, opts []kgo.Opt, topic, instance string, scan int) (*Link, error) {
	bounds, err := topicBounds(ctx, opts, topic)
	if err != nil {
		return nil, err
	}
	var best *Link
	var bestTime time.Time
	for _, b := range bounds {
		from := max(b.start, b.end-int64(scan))
		err := readPartition(ctx, opts, topic, b.partition, from, b.end, func(r *kgo.Record) error {
			var h struct {
				Chain    string    `json:"chain"`
				Seq      uint64    `json:"seq"`
				Instance string    `json:"instance"`
				Time     time.Time `json:"time"`
			}
			if json.Unmarshal(r.Value, &h) != nil || h.Instance != instance || h.Chain == "" {
				return nil
			}
			if best == nil || !h.Time.Before(bestTime) {
				sum := sha256.Sum256(r.Value)
				best = &Link{Chain: h.Chain, Seq: h.Seq, Hash: hex.EncodeToString(sum[:])}
				bestTime = h.Time
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("audit: find the previous chain of %s: %w", instance, err)
		}
	}
	return best, nil
}

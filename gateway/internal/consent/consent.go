// Package consent keeps the gateway's view of subscriber consent: which
// subscribers opted out of which purposes. It reads a compacted Kafka topic
// (key: subscriber id, value: JSON {"opt_outs": [...]}) from its start,
// is ready once it has caught up with the end it saw at start, and then
// follows new records, so an opt-out reaches every view in well under a
// second. Lookups are a read-locked map access with no allocation, cheap
// enough for the per-record path.
package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/gateway/internal/upstream"
)

// Store is the in-memory consent state. Create with New, run with Run.
type Store struct {
	cluster *upstream.Cluster
	topic   string
	log     *slog.Logger

	mu      sync.RWMutex
	optOuts map[string]uint64 // subscriber -> purpose bits
	bits    map[string]uint64 // purpose -> bit; fixed at New
	applied atomic.Uint64     // consent records applied

	ready chan struct{}
	errMu sync.Mutex
	err   error

	// OnChange, when set before Run, is called after each change applied
	// once the store is ready (live changes, not the replay at start),
	// with the subject and the tracked purposes it now opts out of. It
	// runs on the reader's goroutine: it must not block.
	OnChange func(subject []byte, optOuts []string)
}

// New creates a store reading topic. Only the given purposes (the ones
// grants can name) are tracked; opt-outs of other purpose strings are
// ignored, so a consent platform's own purposes cannot exhaust the bits.
func New(cluster *upstream.Cluster, topic string, log *slog.Logger, purposes ...string) *Store {
	s := &Store{cluster: cluster, topic: topic, log: log.With("consent_topic", topic),
		optOuts: map[string]uint64{}, bits: map[string]uint64{}, ready: make(chan struct{})}
	for i, p := range purposes {
		if i < 64 {
			s.bits[p] = uint64(1) << i
		}
	}
	return s
}

// Topic is the consent topic.
func (s *Store) Topic() string { return s.topic }

// Ready is closed once the store has read the topic up to the end it saw
// when it started. Before that, views that need consent must not serve.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Err is the last read error; nil when healthy and ready.
func (s *Store) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err != nil {
		return s.err
	}
	select {
	case <-s.ready:
		return nil
	default:
		return errors.New("consent: still loading " + s.topic)
	}
}

func (s *Store) setErr(err error) {
	s.errMu.Lock()
	s.err = err
	s.errMu.Unlock()
}

// Applied counts consent records applied so far.
func (s *Store) Applied() uint64 { return s.applied.Load() }

// Bit returns the bit of a tracked purpose, or 0 for a purpose the store
// does not track (callers must then fail closed).
func (s *Store) Bit(purpose string) uint64 {
	return s.bits[purpose] // immutable after New
}

// OptedOut reports whether subject opted out of the purpose with bit.
func (s *Store) OptedOut(subject []byte, bit uint64) bool {
	s.mu.RLock()
	v := s.optOuts[string(subject)]
	s.mu.RUnlock()
	return v&bit != 0
}

// value is a consent record's value.
type value struct {
	OptOuts []string `json:"opt_outs"`
}

func (s *Store) apply(key, val []byte) error {
	if len(key) == 0 {
		return errors.New("consent record without a key")
	}
	var bits uint64
	if val != nil {
		var v value
		if err := json.Unmarshal(val, &v); err != nil {
			return fmt.Errorf("consent record value: %w", err)
		}
		for _, p := range v.OptOuts {
			bits |= s.bits[p] // untracked purposes are no grant's purpose
		}
	}
	s.mu.Lock()
	if bits == 0 {
		delete(s.optOuts, string(key))
	} else {
		s.optOuts[string(key)] = bits
	}
	s.mu.Unlock()
	s.applied.Add(1)
	if s.OnChange != nil {
		select {
		case <-s.ready:
			var outs []string
			for p, b := range s.bits {
				if bits&b != 0 {
					outs = append(outs, p)
				}
			}
			sort.Strings(outs)
			s.OnChange(key, outs)
		default:
		}
	}
	return nil
}

// Run reads the topic until ctx is done.
func (s *Store) Run(ctx context.Context) {
	f, err := s.cluster.NewFetcher()
	if err != nil {
		s.setErr(err)
		return
	}
	defer f.Close()
	var pos, end []int64
	for pos == nil {
		var err error
		if pos, err = s.cluster.Offsets(ctx, s.topic, upstream.Start); err == nil {
			end, err = s.cluster.Offsets(ctx, s.topic, upstream.End)
		}
		if err != nil {
			pos = nil
			s.setErr(fmt.Errorf("consent: %w", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
	s.setErr(nil)
	parts := make([]int32, len(pos))
	for i := range parts {
		parts[i] = int32(i)
	}
	caughtUp := func() bool {
		for i := range pos {
			if pos[i] < end[i] {
				return false
			}
		}
		return true
	}
	if caughtUp() {
		close(s.ready)
	}
	for ctx.Err() == nil {
		wait := 200 * time.Millisecond
		res, err := f.Fetch(ctx, s.topic, pos, parts, wait, 1<<20)
		if err != nil {
			if ctx.Err() == nil {
				s.setErr(fmt.Errorf("consent: %w", err))
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		s.setErr(nil)
		for _, fp := range res {
			if fp.Err != nil {
				var oor *upstream.OutOfRangeError
				if errors.As(fp.Err, &oor) && oor.LogStart >= 0 && oor.Offset < oor.LogStart {
					pos[fp.Partition] = oor.LogStart
				}
				continue
			}
			for _, r := range fp.Records {
				if err := s.apply(r.Key, r.Value); err != nil {
					s.log.Warn("consent record skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
				}
			}
			pos[fp.Partition] = max(pos[fp.Partition], fp.Next)
		}
		select {
		case <-s.ready:
		default:
			if caughtUp() {
				close(s.ready)
			}
		}
	}
}

// Loaded returns a store that is ready and holds no opt-outs, for
// benchmarks and tests of plans without Kafka; Run must not be called on it.
func Loaded(topic string, purposes ...string) *Store {
	s := New(nil, topic, slog.New(slog.DiscardHandler), purposes...)
	close(s.ready)
	return s
}

package gateway

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/sluicehq/sluice/gateway/internal/hub"
)

// Read-ahead of the Kafka front door. A consumer that is behind (replaying
// history, or catching up) asks for one partition after another, and each
// answer is a hub read: an upstream fetch, then decode, consent check,
// masking and encoding of every record. Done on demand, that work is the
// Fetch's latency, and the client waits for it while the gateway waits
// for the client. So each partition a session reads keeps what it has
// encoded beyond the last response (the tail of a hub read that did not
// fit the client's byte limit) and, while the consumer is behind, a read
// ahead from where that tail ends, which encodes kafkaAheadChunk events at
// a time and stops once a response's worth is ready. The next Fetch of the
// partition at the offset the last one ended takes what is ready, so the
// encoding runs while the client decodes the previous response (on all
// cores but one, which stays free to answer: aheadSlots). A Fetch that
// does not wait (the
// first pass over a request's partitions) starts such a read instead of
// reading history itself, and the request answers with the first chunk
// any partition has ready. Memory is bounded per partition (a response's
// worth, and the raw tail of one upstream fetch in the hub reader) and
// over the gateway (kafkaAheadBudget).

const (
	// kafkaAheadTTL bounds how long encoded records wait for the next
	// Fetch: short, so a policy change since they were encoded applies
	// well within a second (an opt-out is checked again when they are
	// sent).
	kafkaAheadTTL = 300 * time.Millisecond
	// kafkaAheadBudget bounds the encoded bytes all sessions keep read
	// ahead; past it, reads ahead are not started (Fetch reads on demand).
	kafkaAheadBudget = 256 << 20
	// kafkaAheadChunk is how many events a read ahead encodes before it
	// makes them available: a few milliseconds of work, the latency a
	// Fetch waiting for a cold partition sees.
	kafkaAheadChunk = 1024
)

// kafkaAhead is what a session has read of one partition and not sent.
type kafkaAhead struct {
	key        string        // the view it was encoded by (Key)
	from       int64         // where the client's next Fetch must start to use it
	events     []hub.Event   // ready, from `from` on
	next, high int64         // after events (valid when events is not empty)
	bytes      int           // of events' data, counted in the gateway's budget
	at         time.Time     // when events last grew
	fill       *kafkaFill    // the read ahead running from next (or from), nil if none
	wake       chan struct{} // closed (and replaced) when events grow or the fill ends
}

// kafkaFill is one read ahead running; target and limit say when it stops
// (bytes and events ready).
type kafkaFill struct {
	target, limit int
}

func eventBytes(evs []hub.Event) int {
	n := 0
	for i := range evs {
		n += len(evs[i].Data)
	}
	return n
}

// signal wakes Fetches waiting for a (s.mu held).
func (a *kafkaAhead) signal() {
	if a.wake != nil {
		close(a.wake)
		a.wake = nil
	}
}

// dropAhead forgets what t keeps for partition (all partitions if
// partition < 0), giving its bytes back to the budget; a fill running
// stops at its next chunk (s.mu held).
func (s *kafkaSession) dropAhead(t *kafkaTopic, partition int32) {
	for p, a := range t.ahead {
		if partition < 0 || p == partition {
			s.g.kafkaAhead.Add(-int64(a.bytes))
			a.fill = nil
			a.signal()
			delete(t.ahead, p)
		}
	}
}

// takeAhead returns what t keeps ready for partition from offset, read by
// the view key. When nothing is ready but a fill is running, it waits for
// its next chunk if wait, and otherwise reports pending. ok is false when
// nothing usable is kept: the caller reads on demand.
func (s *kafkaSession) takeAhead(ctx context.Context, t *kafkaTopic, partition int32, offset int64, key string, wait bool) (res hub.PartitionRead, ok, pending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		a := t.ahead[partition]
		if a == nil {
			return res, false, false
		}
		if a.key != key || a.from != offset || (len(a.events) > 0 && time.Since(a.at) > kafkaAheadTTL) {
			s.dropAhead(t, partition)
			return res, false, false
		}
		if len(a.events) > 0 {
			res = hub.PartitionRead{Events: a.events, Next: a.next, High: a.high}
			s.g.kafkaAhead.Add(-int64(a.bytes))
			a.events, a.bytes, a.from = nil, 0, a.next
			return res, true, false
		}
		if a.fill == nil {
			s.dropAhead(t, partition) // the read ended with nothing (or failed): read on demand
			return res, false, false
		}
		if !wait {
			return res, false, true
		}
		if a.wake == nil {
			a.wake = make(chan struct{})
		}
		wake := a.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
		}
		s.mu.Lock()
		if ctx.Err() != nil {
			return res, false, true
		}
	}
}

// keepAhead keeps the unsent tail of res (events from the first one not
// sent; empty when all went) for the partition's next Fetch, which starts
// at next, and starts a read ahead when the consumer is behind and less
// than a response (byteLimit bytes or limit records, the plan's batch) is
// ready.
func (s *kafkaSession) keepAhead(t *kafkaTopic, partition int32, key string, res hub.PartitionRead, tail []hub.Event, next int64, byteLimit, limit int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.stopping {
		return
	}
	if t.ahead == nil {
		t.ahead = map[int32]*kafkaAhead{}
	}
	a := t.ahead[partition]
	if a == nil || a.key != key || a.from != res.Next {
		// Not the continuation of what was taken (a read on demand, or a
		// fill that was dropped meanwhile): start afresh after res.
		s.dropAhead(t, partition)
		a = &kafkaAhead{key: key, from: res.Next, next: res.Next, high: res.High}
		t.ahead[partition] = a
	}
	if len(tail) > 0 {
		// What a fill added since the take follows the tail.
		a.events = append(tail[:len(tail):len(tail)], a.events...)
		add := eventBytes(tail)
		a.bytes += add
		s.g.kafkaAhead.Add(int64(add))
		a.from = next
		if a.next < res.Next || len(a.events) == len(tail) {
			a.next, a.high = res.Next, max(a.high, res.High)
		}
		a.at = time.Now()
	}
	if a.fill == nil && a.next < max(a.high, res.High) {
		s.fill(t, partition, a, byteLimit, limit)
	}
}

// fill starts a's read ahead from a.next unless enough is ready or the
// gateway's budget is spent (s.mu held, not stopping).
func (s *kafkaSession) fill(t *kafkaTopic, partition int32, a *kafkaAhead, target, limit int) {
	if a.bytes >= target || len(a.events) >= limit || s.g.kafkaAhead.Load() >= kafkaAheadBudget {
		return
	}
	f := &kafkaFill{target: target, limit: limit}
	a.fill = f
	from := a.next
	s.wg.Go(func() { s.readAhead(t, partition, a, f, from) })
}

// readInBackground starts a read of partition from offset, for a Fetch
// that does not wait: it returns false when the session is stopping.
func (s *kafkaSession) readInBackground(t *kafkaTopic, partition int32, key string, offset int64, byteLimit, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.stopping {
		return false
	}
	if t.ahead == nil {
		t.ahead = map[int32]*kafkaAhead{}
	}
	s.dropAhead(t, partition)
	a := &kafkaAhead{key: key, from: offset, next: offset}
	t.ahead[partition] = a
	s.fill(t, partition, a, byteLimit, limit)
	return a.fill != nil
}

// readAhead reads partition into a from offset, kafkaAheadChunk events at
// a time, until f's target is ready, the consumer is caught up, the budget
// is spent, or a no longer runs f (dropped, or the session ends).
func (s *kafkaSession) readAhead(t *kafkaTopic, partition int32, a *kafkaAhead, f *kafkaFill, offset int64) {
	r, err := s.acquireReader(s.ctx, t)
	if err == nil {
		defer s.releaseReader(r)
	}
	for {
		var res hub.PartitionRead
		if err == nil && r.key != a.key {
			err = errAheadStale
		}
		if err == nil {
			select {
			case aheadSlots <- struct{}{}:
				res, err = r.r.Read(s.ctx, partition, offset, min(kafkaAheadChunk, f.limit), 0)
				<-aheadSlots
			case <-s.ctx.Done():
				err = s.ctx.Err()
			}
		}
		s.mu.Lock()
		if t.ahead[partition] != a || a.fill != f {
			s.mu.Unlock()
			return // dropped meanwhile
		}
		if err == nil && len(res.Events) > 0 && res.Events[0].Offset >= offset {
			add := eventBytes(res.Events)
			if len(a.events) == 0 {
				a.events = res.Events
			} else {
				a.events = append(a.events, res.Events...)
			}
			a.bytes += add
			s.g.kafkaAhead.Add(int64(add))
			a.at = time.Now()
		}
		if err == nil {
			a.next, a.high = max(a.next, res.Next), max(a.high, res.High)
			offset = res.Next
		}
		done := err != nil || res.Next >= res.High || len(res.Events) == 0 ||
			a.bytes >= f.target || len(a.events) >= f.limit || s.g.kafkaAhead.Load() >= kafkaAheadBudget
		if done {
			a.fill = nil
		}
		a.signal()
		s.mu.Unlock()
		if done {
			return
		}
	}
}

// aheadSlots bounds the chunks being encoded ahead at once, process-wide,
// to one less than the cores: one is left to answer Fetches (and the rest
// of the gateway), so reads ahead raise throughput without making a Fetch
// wait for a CPU.
var aheadSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))

var errAheadStale = errors.New("view changed during the read ahead")

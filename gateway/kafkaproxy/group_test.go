package kafkaproxy

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupLog records what members of a group consumed.
type groupLog struct {
	mu        sync.Mutex
	seen      map[tpo]int // deliveries per record
	assigned  atomic.Int32
	firstSeen map[string]map[int32]int64 // per member, first offset per partition
}

func newGroupLog() *groupLog {
	return &groupLog{seen: map[tpo]int{}, firstSeen: map[string]map[int32]int64{}}
}

func (l *groupLog) add(member string, rs []*kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstSeen[member] == nil {
		l.firstSeen[member] = map[int32]int64{}
	}
	for _, r := range rs {
		l.seen[tpo{r.Topic, r.Partition, r.Offset}]++
		if _, ok := l.firstSeen[member][r.Partition]; !ok {
			l.firstSeen[member][r.Partition] = r.Offset
		}
	}
}

func (l *groupLog) distinct() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// member is one franz-go group member polling in its own goroutine.
type testMember struct {
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}
}

func startMember(t *testing.T, addr, key, secret, group, name string, log *groupLog, extra ...kgo.Opt) *testMember {
	t.Helper()
	opts := append([]kgo.Opt{
		kgo.ClientID(name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics("cdr"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.AutoCommitInterval(100 * time.Millisecond),
		kgo.FetchMaxPartitionBytes(1500),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { log.assigned.Add(1) }),
	}, extra...)
	m := &testMember{cl: client(t, addr, key, secret, opts...), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			select {
			case <-m.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			fs := m.cl.PollRecords(ctx, 15)
			cancel()
			log.add(name, fs.Records())
			time.Sleep(5 * time.Millisecond) // a slow consumer, so rebalances land mid-stream
		}
	}()
	return m
}

// close stops polling and closes the client, which commits what was
// polled and leaves the group.
func (m *testMember) close() {
	close(m.stop)
	<-m.done
	m.cl.Close()
}

// TestConsumerGroupRebalanceAndResume: three franz-go members of one group
// join and leave while consuming (rebalances with commits); the Server is
// then closed and re-created with the same OffsetStore, and a fresh member
// resumes from the committed offsets. Nothing is lost; a record may come
// twice (at-least-once) but the fresh member does not start over.
func TestConsumerGroupRebalanceAndResume(t *testing.T) {
	b := newTestBackend()
	b.addTopic("cdr", 3)
	b.addPartner("mvno-a", "key-a", "secret-a", "token-a", "cdr")
	var want []Record
	for p := range int32(3) {
		want = append(want, b.produce("cdr", p, 900, func(off int64) bool { return off%3 != 1 })...)
	}
	offsets := &MemoryOffsets{}
	ts := startServer(t, Config{Backend: b, Offsets: offsets})
	log := newGroupLog()

	m1 := startMember(t, ts.addr, "key-a", "secret-a", "billing", "m1", log)
	waitFor(t, 20*time.Second, "m1 to consume", func() bool { return log.distinct() >= 100 })
	m2 := startMember(t, ts.addr, "key-a", "secret-a", "billing", "m2", log)
	m3 := startMember(t, ts.addr, "key-a", "secret-a", "billing", "m3", log)
	waitFor(t, 20*time.Second, "three members to be assigned", func() bool { return log.assigned.Load() >= 3 })
	at := log.distinct()
	waitFor(t, 20*time.Second, "the three members to consume", func() bool { return log.distinct() >= at+150 })
	m1.close() // leaves: m2 and m3 take over its partitions
	at = log.distinct()
	waitFor(t, 20*time.Second, "m2 and m3 to consume", func() bool { return log.distinct() >= at+150 })
	m2.close()
	m3.close()
	if log.distinct() >= len(want) {
		t.Fatalf("the first phase consumed everything (%d records); the test needs a remainder", log.distinct())
	}

	committed, err := offsets.Fetch(context.Background(), "mvno-a", "billing")
	if err != nil {
		t.Fatal(err)
	}
	if len(committed) != 3 {
		t.Fatalf("committed offsets %v, want 3 partitions", committed)
	}
	ts.stop(t)

	// A new Server, the same OffsetStore; more records arrive.
	for p := range int32(3) {
		want = append(want, b.produce("cdr", p, 30, nil)...)
	}
	ts2 := startServer(t, Config{Backend: b, Offsets: offsets})
	m4 := startMember(t, ts2.addr, "key-a", "secret-a", "billing", "m4", log)
	waitFor(t, 30*time.Second, "m4 to consume the rest", func() bool { return log.distinct() >= len(want) })
	m4.close()

	log.mu.Lock()
	defer log.mu.Unlock()
	dups := 0
	for _, w := range want {
		var found bool
		for p := range int32(3) {
			if n := log.seen[tpo{"cdr", p, w.Offset}]; n > 0 && recordPartition(w) == p {
				found = true
				dups += n - 1
			}
		}
		if !found {
			t.Errorf("record cdr/%d@%d lost", recordPartition(w), w.Offset)
		}
	}
	for p, first := range log.firstSeen["m4"] {
		c := committed[TopicPartition{"cdr", p}].Offset
		if first < c {
			t.Errorf("m4 started partition %d at %d, before the committed offset %d", p, first, c)
		}
		if first > c+2 { // the next kept record after c (every third offset is filtered)
			t.Errorf("m4 started partition %d at %d, after the committed offset %d: records skipped", p, first, c)
		}
	}
	t.Logf("%d records, %d duplicate deliveries, %d assignments, committed before restart %v", len(want), dups, log.assigned.Load(), committed)
}

func recordPartition(r Record) int32 {
	var p int32
	for i := range len(r.Value) - 12 {
		if string(r.Value[i:i+12]) == `"partition":` {
			p = int32(r.Value[i+12] - '0')
			break
		}
	}
	return p
}

// TestGroupsNamespacedByPartner: two partners using the same group id get
// separate groups: each sole member is assigned every partition, and one
// partner's commits are invisible to the other.
func TestGroupsNamespacedByPartner(t *testing.T) {
	b, want := standardBackend()
	offsets := &MemoryOffsets{}
	ts := startServer(t, Config{Backend: b, Offsets: offsets})
	type partner struct{ key, secret string }
	var mu sync.Mutex
	assigned := map[string]int{}
	logs := map[string]*groupLog{}
	var members []*testMember
	for _, p := range []partner{{"key-a", "secret-a"}, {"key-b", "secret-b"}} {
		log := newGroupLog()
		logs[p.key] = log
		extra := []kgo.Opt{kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			mu.Lock()
			assigned[p.key] += len(m["cdr"])
			mu.Unlock()
		})}
		if p.key == "key-b" {
			extra = append(extra, kgo.DisableAutoCommit())
		}
		members = append(members, startMember(t, ts.addr, p.key, p.secret, "billing", p.key, log, extra...))
	}
	for key, log := range logs {
		waitFor(t, 20*time.Second, key+" to consume everything", func() bool { return log.distinct() >= len(want["cdr"]) })
	}
	mu.Lock()
	if assigned["key-a"] != 3 || assigned["key-b"] != 3 {
		t.Errorf("partitions assigned per partner: %v, want 3 each (groups must not be shared)", assigned)
	}
	mu.Unlock()
	for key, log := range logs {
		if log.firstSeen[key][0] != 0 {
			t.Errorf("%s started partition 0 at %d, want 0", key, log.firstSeen[key][0])
		}
	}
	members[0].close() // commits
	adm := func(key, secret string) kadm.OffsetResponses {
		r, err := kadm.NewClient(client(t, ts.addr, key, secret)).FetchOffsets(context.Background(), "billing")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if a := adm("key-a", "secret-a"); len(a["cdr"]) != 3 {
		t.Errorf("partner a's offsets: %v, want 3 partitions", a)
	}
	if b := adm("key-b", "secret-b"); len(b) != 0 {
		t.Errorf("partner b sees offsets %v of partner a's group", b)
	}
	members[1].close()
	if c, _ := offsets.Fetch(context.Background(), "mvno-b", "billing"); len(c) != 0 {
		t.Errorf("partner b committed %v with autocommit disabled", c)
	}
}

// TestGroupsDescribed: the tools partners monitor groups with work on
// their own groups: ListGroups and DescribeGroups show a running group of
// two members with their client ids and assignments (together every
// partition, once), and kadm's Lag (DescribeGroups, OffsetFetch,
// ListOffsets) reports 0 once they consumed and committed everything.
// Another partner sees no group, and the same id is Dead for it.
func TestGroupsDescribed(t *testing.T) {
	b, want := standardBackend()
	// The last offset of each partition kept: a consumer commits the
	// offset after the last record it polled, so a filtered last row
	// would show as a lag of 1 (as a transaction marker does on Kafka).
	for p := range int32(3) {
		want["cdr"] = append(want["cdr"], b.produce("cdr", p, 1, nil)...)
	}
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	log := newGroupLog()
	m1 := startMember(t, ts.addr, "key-a", "secret-a", "billing", "m1", log)
	m2 := startMember(t, ts.addr, "key-a", "secret-a", "billing", "m2", log)
	defer m1.close()
	defer m2.close()
	waitFor(t, 20*time.Second, "everything consumed", func() bool { return log.distinct() >= len(want["cdr"]) })
	adm := kadm.NewClient(client(t, ts.addr, "key-a", "secret-a"))
	ctx := context.Background()

	waitFor(t, 10*time.Second, "lag 0 with both members holding partitions", func() bool {
		lags, err := adm.Lag(ctx, "billing")
		if err != nil {
			return false
		}
		l := lags["billing"]
		return l.Error() == nil && l.State == "Stable" && len(l.Members) == 2 && l.Lag.Total() == 0 && len(l.Lag["cdr"]) == 3
	})
	listed, err := adm.ListGroups(ctx)
	if err != nil || len(listed) != 1 || listed["billing"].State != "Stable" || listed["billing"].ProtocolType != "consumer" {
		t.Fatalf("ListGroups: %+v %v, want billing, Stable, consumer", listed, err)
	}
	described, err := adm.DescribeGroups(ctx, "billing")
	if err != nil || described.Error() != nil {
		t.Fatalf("DescribeGroups: %v %v", err, described.Error())
	}
	d := described["billing"]
	clients := map[string]bool{}
	held := map[int32]int{}
	for _, m := range d.Members {
		clients[m.ClientID] = true
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			t.Fatalf("member %s: assignment is not a consumer assignment", m.MemberID)
		}
		for _, tp := range a.Topics {
			for _, p := range tp.Partitions {
				held[p]++
			}
		}
	}
	if !clients["m1"] || !clients["m2"] || len(held) != 3 || held[0] != 1 || held[1] != 1 || held[2] != 1 {
		t.Errorf("members %v hold partitions %v, want m1 and m2 holding 0, 1 and 2 once each", clients, held)
	}

	other := kadm.NewClient(client(t, ts.addr, "key-b", "secret-b"))
	if l, err := other.ListGroups(ctx); err != nil || len(l) != 0 {
		t.Errorf("partner b lists %v (%v), want no group", l, err)
	}
	if dg, err := other.DescribeGroups(ctx, "billing"); err != nil || dg["billing"].State != "Dead" || len(dg["billing"].Members) != 0 {
		t.Errorf("partner b describes billing as %+v (%v), want Dead without members", dg["billing"], err)
	}
}

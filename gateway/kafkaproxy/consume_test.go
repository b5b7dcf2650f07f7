package kafkaproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type tpo struct {
	topic     string
	partition int32
	offset    int64
}

// consumeAll polls cl until it has n records or the deadline passes, then
// polls a little longer to catch extras.
func consumeAll(t *testing.T, cl *kgo.Client, n int, within time.Duration) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(got), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Errorf("fetch error on %s/%d: %v", topic, p, err) })
		got = append(got, fs.Records()...)
	}
	extra, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	got = append(got, cl.PollFetches(extra).Records()...)
	return got
}

// checkExactlyOnce compares consumed records with want: each once, keys and
// values byte-equal, offsets as the view had them.
func checkExactlyOnce(t *testing.T, topic string, got []*kgo.Record, want []Record) {
	t.Helper()
	seen := map[tpo]*kgo.Record{}
	for _, r := range got {
		k := tpo{r.Topic, r.Partition, r.Offset}
		if seen[k] != nil {
			t.Errorf("record %v delivered twice", k)
		}
		seen[k] = r
	}
	if len(seen) != len(want) {
		t.Errorf("got %d distinct records, want %d", len(seen), len(want))
	}
	for _, w := range want {
		var p int32
		fmt.Sscanf(string(w.Value[bytes.Index(w.Value, []byte(`"partition":`))+len(`"partition":`):]), "%d", &p)
		r := seen[tpo{topic, p, w.Offset}]
		if r == nil {
			t.Errorf("record %s/%d@%d missing", topic, p, w.Offset)
			continue
		}
		if !bytes.Equal(r.Value, w.Value) || !bytes.Equal(r.Key, w.Key) {
			t.Errorf("record %s/%d@%d: key %q value %q, want %q %q", topic, p, w.Offset, r.Key, r.Value, w.Key, w.Value)
		}
		if r.Timestamp.UnixMilli() != w.Timestamp {
			t.Errorf("record %s/%d@%d: timestamp %d, want %d", topic, p, w.Offset, r.Timestamp.UnixMilli(), w.Timestamp)
		}
	}
}

// TestFranzConsumePlain: a franz-go consumer logged in with SASL/PLAIN
// reads every record of a 3-partition topic whose offsets have gaps
// (filtered rows, also at the end of a partition) exactly once, byte-equal.
func TestFranzConsumePlain(t *testing.T) {
	b, want := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	cl := client(t, ts.addr, "key-a", "secret-a",
		kgo.ConsumeTopics("cdr", "fraud-alerts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(2000)) // several fetches per partition
	got := consumeAll(t, cl, len(want["cdr"])+len(want["fraud-alerts"]), 20*time.Second)
	var cdr, fraud []*kgo.Record
	for _, r := range got {
		if r.Topic == "cdr" {
			cdr = append(cdr, r)
		} else {
			fraud = append(fraud, r)
		}
	}
	checkExactlyOnce(t, "cdr", cdr, want["cdr"])
	checkExactlyOnce(t, "fraud-alerts", fraud, want["fraud-alerts"])
}

// TestFranzConsumeOAuthBearer: the same with SASL/OAUTHBEARER, and records
// produced while the consumer long-polls arrive.
func TestFranzConsumeOAuthBearer(t *testing.T) {
	b, want := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	cl := oauthClient(t, ts.addr, "token-b",
		kgo.ConsumeTopics("cdr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(2*time.Second))
	got := consumeAll(t, cl, len(want["cdr"]), 20*time.Second)
	checkExactlyOnce(t, "cdr", got, want["cdr"])

	// Long poll: new records reach the waiting fetch well before MaxWait.
	start := time.Now()
	go func() {
		time.Sleep(200 * time.Millisecond)
		b.produce("cdr", 1, 3, nil)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var late []*kgo.Record
	for len(late) < 3 && ctx.Err() == nil {
		late = append(late, cl.PollFetches(ctx).Records()...)
	}
	if len(late) != 3 {
		t.Fatalf("got %d records produced later, want 3", len(late))
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("long-polled records arrived after %s; the fetch should answer when data arrives", d)
	}
}

// TestMetadataEntitledOnly: a partner's metadata lists only its topics;
// asking for another topic is TOPIC_AUTHORIZATION_FAILED.
func TestMetadataEntitledOnly(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	for _, tc := range []struct {
		key, secret string
		want        []string
	}{
		{"key-a", "secret-a", []string{"cdr", "fraud-alerts"}},
		{"key-b", "secret-b", []string{"cdr"}},
	} {
		adm := kadm.NewClient(client(t, ts.addr, tc.key, tc.secret))
		td, err := adm.ListTopics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		names := td.Names()
		slices.Sort(names)
		if !slices.Equal(names, tc.want) {
			t.Errorf("%s sees topics %v, want %v", tc.key, names, tc.want)
		}
		for _, name := range names {
			if n := len(td[name].Partitions); name == "cdr" && n != 3 {
				t.Errorf("cdr has %d partitions, want 3", n)
			}
		}
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr("network-quality")
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(context.Background(), client(t, ts.addr, tc.key, tc.secret))
		if err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("metadata of an unentitled topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
	}
}

// TestProduceRefused: producing is TOPIC_AUTHORIZATION_FAILED, and admin
// writes are refused too.
func TestProduceRefused(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	cl := client(t, ts.addr, "key-a", "secret-a", kgo.RecordRetries(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "cdr", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	adm := kadm.NewClient(cl)
	cr, err := adm.CreateTopics(ctx, 1, 1, nil, "new-topic")
	if err != nil {
		t.Fatal(err)
	}
	if err := cr["new-topic"].Err; !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("create topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	dr, err := adm.DeleteTopics(ctx, "cdr")
	if err != nil {
		t.Fatal(err)
	}
	if err := dr["cdr"].Err; !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("delete topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
}

// TestListOffsets: earliest, latest and by time.
func TestListOffsets(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	adm := kadm.NewClient(client(t, ts.addr, "key-a", "secret-a"))
	ctx := context.Background()
	start, err := adm.ListStartOffsets(ctx, "cdr")
	if err != nil || start.Error() != nil {
		t.Fatal(err, start.Error())
	}
	end, err := adm.ListEndOffsets(ctx, "cdr")
	if err != nil || end.Error() != nil {
		t.Fatal(err, end.Error())
	}
	for p := range int32(3) {
		if o, _ := start.Lookup("cdr", p); o.Offset != 0 {
			t.Errorf("start of cdr/%d = %d, want 0", p, o.Offset)
		}
		if o, _ := end.Lookup("cdr", p); o.Offset != 200 {
			t.Errorf("end of cdr/%d = %d, want 200", p, o.Offset)
		}
	}
	future, err := adm.ListOffsetsAfterMilli(ctx, time.Now().Add(time.Hour).UnixMilli(), "cdr")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := future.Lookup("cdr", 0); o.Offset != 200 {
		t.Errorf("offset after a future time = %d, want the end 200", o.Offset)
	}
	other, err := adm.ListEndOffsets(ctx, "network-quality")
	if err == nil {
		err = other.Error()
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("list offsets of an unentitled topic: %v, want an authorization error", err)
	}
}

package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/products/generate"
)

// TestIntegrationKafkaReadAhead: a consumer whose responses hold a few
// records each (a small partition byte limit) is served from what the
// front door read ahead: every record exactly once, identical to REST,
// with far fewer upstream reads than Fetch requests.
func TestIntegrationKafkaReadAhead(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 1500)
	for _, partner := range []string{"internal-noc", "mvno-b"} { // every row kept; rows filtered out
		t.Run(partner, func(t *testing.T) {
			rest := restRecords(t, e, partner, "cdr")
			reads := metric(t, e, `sluice_direct_reads_total{product="cdr",reason="catch_up"}`)
			fetches := 0
			cl := e.kafkaClient(kafkaOAuth(e.token(partner)), kgo.ConsumeTopics("cdr"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(600),
				kgo.WithHooks(fetchCounter(func() { fetches++ })))
			recs := readKafka(t, cl, len(rest), 60*time.Second)
			if v := metric(t, e, "sluice_kafka_read_ahead_bytes"); v < 0 {
				t.Errorf("read-ahead bytes %v < 0", v)
			}
			cl.Close()
			// The sessions end with the connections: nothing stays read ahead.
			deadline := time.Now().Add(5 * time.Second)
			for metric(t, e, "sluice_kafka_read_ahead_bytes") != 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if v := metric(t, e, "sluice_kafka_read_ahead_bytes"); v != 0 {
				t.Errorf("%v bytes still counted read ahead after the consumer closed", v)
			}
			sameRecords(t, "kafka vs rest", kafkaByPos(t, partner, recs), rest)
			reads = metric(t, e, `sluice_direct_reads_total{product="cdr",reason="catch_up"}`) - reads
			t.Logf("%s: %d records in %d Fetch requests, %v upstream reads", partner, len(recs), fetches, reads)
			if fetches < 20 || reads*4 > float64(fetches) {
				t.Errorf("%v upstream reads for %d Fetch requests: the front door does not serve from what it read ahead", reads, fetches)
			}
		})
	}
}

// fetchCounter is a kgo hook calling f for every Fetch response read.
type fetchCounter func()

func (f fetchCounter) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.Fetch) && err == nil {
		f()
	}
}

// TestIntegrationKafkaReadAheadConsent: records the front door encoded
// ahead of the client are checked against consent again when they are
// sent: after an opt-out, the next Fetch carries none of that subscriber's
// records, whether it comes while they wait read ahead or after.
func TestIntegrationKafkaReadAheadConsent(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	const x, y = "4915100000005", "4915100000006" // mvno-b subscribers
	var recs []*kgo.Record
	for i := range 300 {
		recs = append(recs, cdrFor(t, e, "mvno-b", x, 1, i), cdrFor(t, e, "mvno-b", y, 2, i))
	}
	e.produceRaw(recs...)
	cl := e.kafkaClient(kafkaOAuth(e.token("mvno-b")))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	f := newRawFetcher(t, ctx, cl, "cdr")
	// fetch sends one Fetch of every partition and returns the durations
	// of the records it carries.
	fetch := func(partitionBytes int32) []int {
		var durations []int
		for _, r := range f.fetch(partitionBytes) {
			var v struct {
				Duration int `json:"duration_s"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("record %d/%d: %v", r.Partition, r.Offset, err)
			}
			durations = append(durations, v.Duration)
		}
		return durations
	}
	count := func(ds []int, d int) (n int) {
		for _, v := range ds {
			if v == d {
				n++
			}
		}
		return n
	}
	restXs := func() int {
		resp, body := e.get("/v1/products/cdr/records?limit=1000&from=earliest", "Authorization", "Bearer "+e.token("mvno-b"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("REST: %d %s", resp.StatusCode, body)
		}
		var page struct {
			Records []struct {
				Duration int `json:"duration_s"`
			} `json:"records"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		xs := 0
		for _, r := range page.Records {
			if r.Duration == 1 {
				xs++
			}
		}
		return xs
	}
	if n := restXs(); n != 300 {
		t.Fatalf("REST shows %d records of x before the opt-out, want 300", n)
	}
	// A few records per partition: the rest is encoded ahead (retry until
	// the background reads have something).
	var first []int
	for len(first) == 0 && ctx.Err() == nil {
		first = fetch(300)
	}
	if count(first, 1) == 0 && count(first, 2) == 0 {
		t.Fatalf("first responses carried neither subscriber: %v", first)
	}
	served := time.Now()
	time.Sleep(50 * time.Millisecond) // the reads ahead finish (encoded before the opt-out)

	// x opts out; wait until REST (which reads and checks anew) no longer
	// shows x, then fetch the rest.
	c := generate.ConsentFor(x, []string{"network-analytics"}, time.Now())
	e.produceRaw(&kgo.Record{Topic: e.gw.ConsentTopic(), Key: c.Key, Value: c.Value})
	for restXs() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	applied := time.Since(served)
	var rest []int
	for range 50 {
		got := fetch(1 << 20)
		rest = append(rest, got...)
		if count(rest, 2)+count(first, 2) >= 300 {
			break
		}
	}
	t.Logf("opt-out applied %s after the first response (records wait read ahead up to 300 ms); then %d records of x, %d of y",
		applied, count(rest, 1), count(rest, 2))
	if n := count(rest, 1); n > 0 {
		t.Errorf("%d records of the opted-out subscriber were sent after the opt-out", n)
	}
	if n := count(rest, 2) + count(first, 2); n != 300 {
		t.Errorf("%d records of the other subscriber, want 300", n)
	}
}

// rawFetcher sends Fetch requests of every partition of a topic over one
// connection (one session), as a consumer's fetches go to the partition
// leader, from the offsets the previous responses ended at.
type rawFetcher struct {
	t       *testing.T
	ctx     context.Context
	topic   string
	broker  *kgo.Broker
	offsets map[int32]int64
}

func newRawFetcher(t *testing.T, ctx context.Context, cl *kgo.Client, topic string) *rawFetcher {
	t.Helper()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 || len(mresp.Brokers) != 1 {
		t.Fatalf("metadata: %+v, %v", mresp, err)
	}
	f := &rawFetcher{t: t, ctx: ctx, topic: topic, broker: cl.Broker(int(mresp.Brokers[0].NodeID)), offsets: map[int32]int64{}}
	for _, p := range mresp.Topics[0].Partitions {
		f.offsets[p.Partition] = 0
	}
	return f
}

// fetch sends one Fetch (partitionBytes per partition, up to 2 s of wait)
// and returns its records; the offsets move past them.
func (f *rawFetcher) fetch(partitionBytes int32) []*kgo.Record {
	t := f.t
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 2000, 1, 50<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = f.topic
	for p, o := range f.offsets {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.LogStartOffset, rp.CurrentLeaderEpoch = p, o, partitionBytes, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	kr, err := f.broker.Request(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var out []*kgo.Record
	for _, tp := range kr.(*kmsg.FetchResponse).Topics {
		for i := range tp.Partitions {
			rp := &tp.Partitions[i]
			if rp.ErrorCode != 0 {
				t.Fatalf("partition %d: error %d", rp.Partition, rp.ErrorCode)
			}
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: f.offsets[rp.Partition], Topic: f.topic, Partition: rp.Partition}, rp, kgo.DefaultDecompressor(), nil)
			out = append(out, fp.Records...)
			f.offsets[rp.Partition] = max(f.offsets[rp.Partition], next)
		}
	}
	return out
}

// TestIntegrationKafkaReadAheadViewChange: a subscription switched from
// JSON to Avro while its consumer replays, with records encoded ahead by
// the JSON view: once a response carries the new encoding, no record of
// the old one follows, and no offset is lost or repeated.
func TestIntegrationKafkaReadAheadViewChange(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 900)
	rest := restRecords(t, e, "mvno-a", "cdr")
	sub := ""
	_, list := e.do(http.MethodGet, "/v1/subscriptions", "mvno-a", "")
	for _, s := range list["subscriptions"].([]any) {
		if m := s.(map[string]any); m["product"] == "cdr" {
			sub = m["id"].(string)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newRawFetcher(t, ctx, e.kafkaClient(kafkaOAuth(e.token("mvno-a"))), "cdr")
	seen := map[pos]bool{}
	var avroAt, jsonAfter int
	total := 0
	take := func(recs []*kgo.Record) {
		for _, r := range recs {
			p := pos{r.Partition, r.Offset}
			if seen[p] {
				t.Fatalf("record %v delivered twice", p)
			}
			seen[p] = true
			total++
			isAvro := len(r.Value) > 5 && r.Value[0] == 0
			switch {
			case isAvro && avroAt == 0:
				avroAt = total
			case !isAvro && avroAt > 0:
				jsonAfter++
			}
		}
	}
	for total == 0 && ctx.Err() == nil {
		take(f.fetch(400)) // a record or so per partition; the rest is read ahead as JSON
	}
	if status, v := e.do(http.MethodPatch, "/v1/subscriptions/"+sub, "mvno-a", `{"kafka_format":"avro"}`); status != http.StatusOK {
		t.Fatalf("PATCH: %d %v", status, v)
	}
	for len(seen) < len(rest) && ctx.Err() == nil {
		take(f.fetch(400))
	}
	t.Logf("%d records, the first Avro one was #%d; %d JSON records after it", total, avroAt, jsonAfter)
	if avroAt == 0 {
		t.Fatal("no Avro record after the switch")
	}
	if jsonAfter > 0 {
		t.Errorf("%d records encoded by the old view were sent after the new view's first", jsonAfter)
	}
	for p := range rest {
		if !seen[p] {
			t.Errorf("record %v (REST) never delivered", p)
		}
	}
}

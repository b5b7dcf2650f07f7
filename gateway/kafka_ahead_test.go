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
			cl.Close()
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

	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("cdr")
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil || len(mresp.Topics) != 1 || mresp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata: %+v, %v", mresp, err)
	}
	// Every Fetch over one connection (one session), as a consumer's
	// fetches go to the partition leader.
	broker := cl.Broker(int(mresp.Brokers[0].NodeID))
	offsets := map[int32]int64{}
	for _, p := range mresp.Topics[0].Partitions {
		offsets[p.Partition] = 0
	}
	// fetch sends one Fetch of every partition from offsets and returns
	// the durations of the records it carries; offsets move on.
	fetch := func(partitionBytes int32) []int {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 2000, 1, 50<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = "cdr"
		for p, o := range offsets {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.LogStartOffset, rp.CurrentLeaderEpoch = p, o, partitionBytes, -1, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		kr, err := broker.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		resp := kr.(*kmsg.FetchResponse)
		var durations []int
		for _, tp := range resp.Topics {
			for i := range tp.Partitions {
				rp := &tp.Partitions[i]
				if rp.ErrorCode != 0 {
					t.Fatalf("partition %d: error %d", rp.Partition, rp.ErrorCode)
				}
				fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: offsets[rp.Partition], Topic: "cdr", Partition: rp.Partition}, rp, kgo.DefaultDecompressor(), nil)
				for _, r := range fp.Records {
					var v struct {
						Duration int `json:"duration_s"`
					}
					if err := json.Unmarshal(r.Value, &v); err != nil {
						t.Fatalf("record %d/%d: %v", r.Partition, r.Offset, err)
					}
					durations = append(durations, v.Duration)
				}
				offsets[rp.Partition] = max(offsets[rp.Partition], next)
			}
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

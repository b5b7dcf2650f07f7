package main

// The wire phase: the same franz-go consumer reads the product twice, once
// from the upstream broker (raw bytes, no gateway) and once through the
// gateway's Kafka front door as a partner (SASL, TLS by default, the
// partner's governed view: rows filtered, fields masked, JSON). Both reads
// use one client each with the same fetch options, start at the same
// offsets and report throughput and per-Fetch-request latency (kgo hooks).
// An optional live round produces at a fixed rate while both consumers
// tail the end and measures produce-to-receive latency for both.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/products/store"
	"github.com/sluicehq/sluice/schemas"
)

// wireReport is the wire phase's result.
type wireReport struct {
	Partner   string `json:"partner"`
	Format    string `json:"format"` // of the front door's values: json or avro
	SASL      string `json:"sasl"`
	TLS       bool   `json:"tls"`
	FrontDoor string `json:"front_door_addr"`
	Upstream  string `json:"upstream"`
	// FrontTopic is the product's topic on the front door (the product
	// id); the upstream topic is the report's topic.
	FrontTopic        string `json:"front_topic"`
	FetchMaxBytes     int32  `json:"fetch_max_bytes"`
	PartitionMaxBytes int32  `json:"fetch_partition_max_bytes"`
	FetchMaxWaitMS    int64  `json:"fetch_max_wait_ms"`
	// UpstreamFields are the fields of the product's records; FrontFields
	// the keys of the first record the front door delivered (the view's
	// fields and the _partition/_offset/_timestamp meta), or for Avro
	// values "schema id N".
	UpstreamFields []string `json:"upstream_fields"`
	FrontFields    []string `json:"front_fields"`

	Direct     *wireReadResult  `json:"direct,omitempty"`     // median run by records/s
	Front      *wireReadResult  `json:"front_door,omitempty"` // median run by records/s
	DirectRuns []wireReadResult `json:"direct_runs,omitempty"`
	FrontRuns  []wireReadResult `json:"front_door_runs,omitempty"`
	// Ratio is the median of the per-run ratios of front door to direct
	// records/s; AddedP99ms the median of the per-run differences of
	// fetch p99 (front door minus direct).
	Ratio      float64   `json:"front_to_direct,omitempty"`
	Ratios     []float64 `json:"front_to_direct_runs,omitempty"`
	AddedP99ms float64   `json:"added_fetch_p99_ms"`
	AddedP99s  []float64 `json:"added_fetch_p99_ms_runs,omitempty"`
	// DirectView is the reference of the same work done in the client: a
	// direct consumer that decodes every upstream record and encodes it by
	// the partner's view (in-process gateway, JSON only). ViewRatio is the
	// median per-run ratio of front door to it.
	DirectView     *wireReadResult  `json:"direct_view,omitempty"`
	DirectViewRuns []wireReadResult `json:"direct_view_runs,omitempty"`
	ViewRatio      float64          `json:"front_to_direct_view,omitempty"`
	ViewRatios     []float64        `json:"front_to_direct_view_runs,omitempty"`
	// Live is the live round with the median added p99 of LiveRuns.
	Live     *wireLive  `json:"live,omitempty"`
	LiveRuns []wireLive `json:"live_runs,omitempty"`
}

// wireReadResult is one consumer reading the product from the start.
type wireReadResult struct {
	Path    string `json:"path"` // direct or front door
	Records int64  `json:"records"`
	// ValueBytes are the record values delivered: raw upstream (Avro,
	// framed) for direct, the view's JSON for the front door.
	ValueBytes int64 `json:"value_bytes"`
	// WireBytes are the Fetch response bytes the client read (after TLS).
	WireBytes int64 `json:"fetch_response_bytes"`
	// Seconds is the wall time from the first Fetch request to the poll
	// that returned the last record; SetupMS the time from creating the
	// client to the first Fetch (connect, TLS, SASL, metadata).
	Seconds     float64 `json:"seconds"`
	SetupMS     float64 `json:"setup_ms"`
	RecordsPerS float64 `json:"records_per_s"`
	MBPerS      float64 `json:"value_mb_per_s"`
	// Fetch requests: all of them, and those whose response carried
	// records; the latency quantiles are of the latter (a request's write,
	// the broker's work and the response's read: kgo's BrokerE2E), so
	// long polls at the end of the data do not count.
	Fetches            int64   `json:"fetches"`
	FetchesWithRecords int64   `json:"fetches_with_records"`
	RecordsPerFetch    float64 `json:"records_per_fetch"`
	FetchP50ms         float64 `json:"fetch_p50_ms"`
	FetchP90ms         float64 `json:"fetch_p90_ms"`
	FetchP99ms         float64 `json:"fetch_p99_ms"`
	FetchMaxMs         float64 `json:"fetch_max_ms"`
	Throttled          int64   `json:"throttled_responses"`
	OrderErrors        int64   `json:"out_of_order"`
	JSONParsed         int64   `json:"json_parsed,omitempty"`
	// HubReads (front door) are the hub's direct reads from the upstream
	// broker during the read (sluice_direct_reads_total): one per partition
	// and Fetch that is not served from the view's ring, each reading and
	// encoding up to the hub's FetchBytes (1 MiB) of upstream records.
	HubReads   int64   `json:"hub_direct_reads,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Complete   bool    `json:"complete"`
}

// wireLive is the live round: both consumers tail the end while a producer
// writes at a fixed rate.
type wireLive struct {
	Rate       float64      `json:"rate"`
	Duration   string       `json:"duration"`
	Produced   int64        `json:"produced"`
	Acked      int64        `json:"acked"`
	Direct     wireLiveSide `json:"direct"`
	Front      wireLiveSide `json:"front_door"`
	AddedP50ms float64      `json:"added_p50_ms"`
	AddedP99ms float64      `json:"added_p99_ms"`
}

// wireLiveSide is one consumer's produce-to-receive latency: receive time
// minus the moment the record was handed to the producer client, joined by
// partition and offset (exact, not the millisecond Kafka timestamp).
type wireLiveSide struct {
	Received int64   `json:"received"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p999_ms"`
	MaxMs    float64 `json:"max_ms"`
}

// wireEnv is what the wire phase needs from the run.
type wireEnv struct {
	gw      *gateway.Gateway // in-process gateway, nil with --target
	target  httpTarget
	mode    string
	brokers []string
	topic   string // upstream topic
	product *products.Product
	codec   *schemas.Codec
	rng     topicRange
	keyDir  string
	gen     *generate.Generator
}

// wireClient builds the two consumers' options.
type wireClient struct {
	common  []kgo.Opt
	direct  []kgo.Opt
	front   []kgo.Opt
	upTopic string
	frTopic string
	maxWait time.Duration
	sample  int
	verify  bool
	avro    bool // the front door's values are Schema Registry framed Avro
	stall   time.Duration
	quiet   time.Duration
}

func (w *wireClient) opts(front bool, parts map[int32]kgo.Offset, m *fetchMeter) []kgo.Opt {
	topic, o := w.upTopic, w.direct
	if front {
		topic, o = w.frTopic, w.front
	}
	all := append([]kgo.Opt{}, w.common...)
	all = append(all, o...)
	return append(all, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.WithHooks(m))
}

// runWire runs the wire phase: --repeat alternating reads, then the live
// round.
func runWire(ctx context.Context, o *benchOptions, env wireEnv, logf func(string, ...any)) (*wireReport, error) {
	rep := &wireReport{Partner: o.wirePartner, Format: o.wireFormat, SASL: o.wireSASL, TLS: o.frontDoorTLS, Upstream: strings.Join(env.brokers, ","),
		FrontTopic: env.product.ID, FetchMaxBytes: o.fetchMaxBytes, PartitionMaxBytes: o.fetchPartitionMaxBytes}
	for _, f := range env.codec.Layout().Fields {
		rep.UpstreamFields = append(rep.UpstreamFields, f.Name)
	}
	wc, err := newWireClient(ctx, o, env, rep)
	if err != nil {
		return rep, err
	}
	rep.FetchMaxWaitMS = wc.maxWait.Milliseconds()
	n := env.rng.total()
	var cv *clientView
	if env.gw != nil && o.wireFormat == "json" {
		v, err := env.gw.KafkaView(ctx, o.wirePartner, env.product.ID)
		if err != nil {
			return rep, fmt.Errorf("the partner's view for the direct + view reference: %w", err)
		}
		cv = &clientView{v: v, codec: env.codec, rec: env.codec.Layout().NewRecord()}
	}
	var ratios, added, viewRatios []float64
	for run := 1; run <= o.repeat && ctx.Err() == nil; run++ {
		logf("wire %d/%d: direct franz-go consumer reading %d records from %s", run, o.repeat, n, rep.Upstream)
		cpu0, srv0 := processCPU(), env.target.cpu(ctx, env.mode)
		d, err := wc.read(ctx, false, env.rng, n, nil, nil)
		d.CPUSeconds = processCPU() - cpu0 + env.target.cpu(ctx, env.mode) - srv0
		rep.DirectRuns = append(rep.DirectRuns, d)
		if err != nil {
			return rep, fmt.Errorf("direct read: %w", err)
		}
		logf("wire %d/%d: direct: %d records in %.3fs: %.0f records/s, fetch p99 %.2f ms", run, o.repeat, d.Records, d.Seconds, d.RecordsPerS, d.FetchP99ms)

		logf("wire %d/%d: front door %s as %s reading its view of %s", run, o.repeat, rep.FrontDoor, o.wirePartner, env.product.ID)
		cpu0, srv0 = processCPU(), env.target.cpu(ctx, env.mode)
		var fields []string
		hr0 := hubReads(ctx, env.target)
		f, err := wc.read(ctx, true, env.rng, n, &fields, nil)
		f.CPUSeconds = processCPU() - cpu0 + env.target.cpu(ctx, env.mode) - srv0
		f.HubReads = hubReads(ctx, env.target) - hr0
		rep.FrontRuns = append(rep.FrontRuns, f)
		if rep.FrontFields == nil {
			rep.FrontFields = fields
		}
		if err != nil {
			return rep, fmt.Errorf("front door read: %w", err)
		}
		logf("wire %d/%d: front door: %d records in %.3fs: %.0f records/s, fetch p99 %.2f ms", run, o.repeat, f.Records, f.Seconds, f.RecordsPerS, f.FetchP99ms)
		if d.RecordsPerS > 0 {
			ratios = append(ratios, f.RecordsPerS/d.RecordsPerS)
		}
		added = append(added, f.FetchP99ms-d.FetchP99ms)

		if cv != nil {
			logf("wire %d/%d: direct consumer decoding and encoding by %s's view itself", run, o.repeat, o.wirePartner)
			cpu0, srv0 = processCPU(), env.target.cpu(ctx, env.mode)
			dv, err := wc.read(ctx, false, env.rng, n, nil, cv)
			dv.CPUSeconds = processCPU() - cpu0 + env.target.cpu(ctx, env.mode) - srv0
			rep.DirectViewRuns = append(rep.DirectViewRuns, dv)
			if err != nil {
				return rep, fmt.Errorf("direct + view read: %w", err)
			}
			logf("wire %d/%d: direct + view: %d records in %.3fs: %.0f records/s", run, o.repeat, dv.Records, dv.Seconds, dv.RecordsPerS)
			if dv.RecordsPerS > 0 {
				viewRatios = append(viewRatios, f.RecordsPerS/dv.RecordsPerS)
			}
		}
	}
	recordsPerS := func(r wireReadResult) float64 { return r.RecordsPerS }
	rep.DirectView = medianRun(rep.DirectViewRuns, recordsPerS)
	rep.Direct = medianRun(rep.DirectRuns, recordsPerS)
	rep.Front = medianRun(rep.FrontRuns, recordsPerS)
	if len(viewRatios) > 0 {
		rep.ViewRatio, rep.ViewRatios = median(viewRatios), viewRatios
	}
	if len(ratios) > 0 {
		rep.Ratio, rep.Ratios = median(ratios), ratios
	}
	if len(added) > 0 {
		rep.AddedP99ms, rep.AddedP99s = median(added), added
	}
	for run := 1; o.wireLive && run <= o.repeat && ctx.Err() == nil; run++ {
		logf("wire live %d/%d: producing %.0f records/s for %s while both consumers tail the end", run, o.repeat, o.rate, o.duration)
		lv, err := wc.live(ctx, env, o.rate, o.duration, o.drain)
		rep.LiveRuns = append(rep.LiveRuns, lv)
		rep.Live = medianRun(rep.LiveRuns, func(l wireLive) float64 { return l.AddedP99ms })
		if err != nil {
			return rep, fmt.Errorf("live round %d: %w", run, err)
		}
		logf("wire live %d/%d: direct p50 %.2f ms p99 %.2f ms, front door p50 %.2f ms p99 %.2f ms (%d / %d of %d received)",
			run, o.repeat, lv.Direct.P50ms, lv.Direct.P99ms, lv.Front.P50ms, lv.Front.P99ms, lv.Direct.Received, lv.Front.Received, lv.Acked)
	}
	return rep, nil
}

func newWireClient(ctx context.Context, o *benchOptions, env wireEnv, rep *wireReport) (*wireClient, error) {
	wc := &wireClient{upTopic: env.topic, frTopic: env.product.ID, maxWait: 500 * time.Millisecond,
		sample: o.sample, verify: o.verify, stall: o.stall, quiet: o.wireQuiet, avro: o.wireFormat == "avro"}
	if wc.avro && env.gw != nil {
		subs, err := env.gw.Store().Subscriptions(ctx, store.Filter{PartnerID: o.wirePartner, Product: env.product.ID})
		if err != nil {
			return nil, fmt.Errorf("subscriptions of %s: %w", o.wirePartner, err)
		}
		for _, sub := range subs {
			if _, err := env.gw.Store().SetKafkaFormat(ctx, sub.ID, store.KafkaFormatAvro, "bench"); err != nil {
				return nil, fmt.Errorf("kafka_format avro for %s: %w", sub.ID, err)
			}
		}
	}
	wc.common = []kgo.Opt{
		kgo.ClientID("sluice-bench"),
		kgo.FetchMaxBytes(o.fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(o.fetchPartitionMaxBytes),
		kgo.FetchMaxWait(wc.maxWait),
	}
	wc.direct = []kgo.Opt{kgo.SeedBrokers(env.brokers...)}

	addr, ca := o.frontDoor, o.frontDoorCA
	if env.gw != nil {
		if addr == "" {
			addr = env.gw.KafkaProxyAddr()
		}
		if ca == "" {
			ca = env.gw.KafkaProxyCert()
		}
	} else if ca == "" && env.keyDir != "" {
		if c := filepath.Join(env.keyDir, "kafka-tls", "cert.pem"); fileExists(c) {
			ca = c
		}
	}
	if addr == "" {
		return nil, errors.New("the Kafka front door is off (in-process) or unknown: give --front-door host:port")
	}
	rep.FrontDoor = addr
	wc.front = []kgo.Opt{kgo.SeedBrokers(addr)}
	if o.frontDoorTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("--front-door-ca: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--front-door-ca %s: no PEM certificate in it", ca)
			}
		}
		wc.front = append(wc.front, kgo.DialTLSConfig(cfg))
	}
	var mech sasl.Mechanism
	switch o.wireSASL {
	case "oauthbearer":
		tok := o.wireToken
		if tok == "" {
			if env.keyDir == "" {
				return nil, errors.New("with --target, give --wire-token, or --data-dir of the target so the bench can sign a dev token")
			}
			var err error
			if tok, err = devToken(env.keyDir, o.wirePartner); err != nil {
				return nil, err
			}
		}
		mech = oauth.Auth{Token: tok}.AsMechanism()
	case "plain":
		if env.gw == nil {
			return nil, errors.New("--wire-sasl plain needs the in-process gateway (the bench creates the API key in its store); use oauthbearer with --target")
		}
		info, key, err := env.gw.Store().CreateKey(ctx, o.wirePartner, 24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("API key for %s: %w", o.wirePartner, err)
		}
		mech = plain.Auth{User: info.ID, Pass: strings.TrimPrefix(key, "slk_"+info.ID+"_")}.AsMechanism()
	}
	wc.front = append(wc.front, kgo.SASL(mech))
	return wc, nil
}

// hubReads is the gateway's count of the hub's direct reads of the
// product (0 when /metrics cannot be read).
func hubReads(ctx context.Context, t httpTarget) int64 {
	b, code, err := t.get(ctx, "/metrics")
	if err != nil || code != 200 {
		return 0
	}
	v, _ := metricValue(b, "sluice_direct_reads_total", `product="`+t.product+`"`)
	return int64(v)
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// fetchMeter is a kgo hook measuring Fetch requests: their count, the
// response bytes, the start of the first one, and the latency of those
// whose response held records. kgo keeps one Fetch in flight per broker
// and decodes its response (OnFetchBatchRead) before sending the next, so
// a request's latency is kept when the next request of the same broker
// arrives (or at flush), once its batches are known.
type fetchMeter struct {
	mu         sync.Mutex
	first      time.Time
	fetches    int64
	withRecs   int64
	bytes      int64
	throttled  int64
	pending    map[int32]time.Duration // broker -> last Fetch's latency
	hasRecords map[int32]bool
	hist       latencyHist // µs
}

var (
	_ kgo.HookBrokerE2E      = (*fetchMeter)(nil)
	_ kgo.HookFetchBatchRead = (*fetchMeter)(nil)
	_ kgo.HookBrokerThrottle = (*fetchMeter)(nil)
)

func newFetchMeter() *fetchMeter {
	return &fetchMeter{pending: map[int32]time.Duration{}, hasRecords: map[int32]bool{}}
}

func (m *fetchMeter) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	if key != int16(kmsg.Fetch) || e2e.Err() != nil {
		return
	}
	now := time.Now()
	d := e2e.DurationE2E()
	m.mu.Lock()
	defer m.mu.Unlock()
	if start := now.Add(-d); m.first.IsZero() || start.Before(m.first) {
		m.first = start
	}
	m.settle(meta.NodeID)
	m.fetches++
	m.bytes += int64(e2e.BytesRead)
	m.pending[meta.NodeID] = d
}

func (m *fetchMeter) OnFetchBatchRead(meta kgo.BrokerMetadata, _ string, _ int32, b kgo.FetchBatchMetrics) {
	if b.NumRecords == 0 {
		return
	}
	m.mu.Lock()
	m.hasRecords[meta.NodeID] = true
	m.mu.Unlock()
}

func (m *fetchMeter) OnBrokerThrottle(kgo.BrokerMetadata, time.Duration, bool) {
	m.mu.Lock()
	m.throttled++
	m.mu.Unlock()
}

// settle records broker node's pending request if it held records (m.mu
// held).
func (m *fetchMeter) settle(node int32) {
	if d, ok := m.pending[node]; ok && m.hasRecords[node] {
		m.hist.Record(d.Microseconds())
		m.withRecs++
	}
	delete(m.pending, node)
	m.hasRecords[node] = false
}

// flush settles every pending request (the client is closed).
func (m *fetchMeter) flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for node := range m.pending {
		m.settle(node)
	}
}

// stuckAfter is how long without a Fetch response means the front door is
// stuck, not slow: it answers within FetchMaxWait even with no data.
func (w *wireClient) stuckAfter() time.Duration { return max(3*time.Second, 6*w.maxWait) }

// count is the number of Fetch responses read.
func (m *fetchMeter) count() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fetches
}

func (m *fetchMeter) firstFetch() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.first
}

// read consumes the topic range from its start with one client: want
// records (direct), or for the front door until want came or no record
// came for the quiet time (a view that filters rows delivers fewer).
// fields, when not nil, receives the JSON keys of the first record.
// clientView is a partner's view applied in the client: decode, then
// encode by the view, as the gateway does for every record it serves.
type clientView struct {
	v     view.View
	codec *schemas.Codec
	rec   *schemas.Record
	buf   []byte
}

// apply returns the bytes of r's value as the view encodes it, and
// whether the view keeps it.
func (c *clientView) apply(ctx context.Context, r *kgo.Record) (int, bool) {
	if err := c.codec.Decode(ctx, r.Value, c.rec); err != nil {
		return 0, false
	}
	var keep bool
	c.buf, keep = c.v.Append(c.buf[:0], c.rec, view.Meta{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()})
	return len(c.buf), keep
}

// read consumes the range once: from the upstream broker (front false), or
// from the front door. With cv (direct only), every record is decoded and
// encoded by the view in the client, and only the records it keeps count.
func (w *wireClient) read(ctx context.Context, front bool, rng topicRange, want int64, fields *[]string, cv *clientView) (res wireReadResult, err error) {
	res.Path = "direct"
	switch {
	case front:
		res.Path = "front door"
	case cv != nil:
		res.Path = "direct + view in the client"
	}
	parts := make(map[int32]kgo.Offset, len(rng.start))
	next := make([]int64, len(rng.start))
	for p, s := range rng.start {
		parts[int32(p)] = kgo.NewOffset().At(s)
		next[p] = s
	}
	m := newFetchMeter()
	created := time.Now()
	cl, err := kgo.NewClient(w.opts(front, parts, m)...)
	if err != nil {
		return res, err
	}
	var last time.Time
	defer func() {
		cl.Close()
		m.flush()
		first := m.firstFetch()
		res.Fetches, res.FetchesWithRecords, res.WireBytes, res.Throttled = m.fetches, m.withRecs, m.bytes, m.throttled
		if !first.IsZero() {
			res.SetupMS = float64(first.Sub(created).Microseconds()) / 1000
		}
		if res.Records > 0 && !first.IsZero() {
			res.Seconds = last.Sub(first).Seconds()
			res.RecordsPerS = float64(res.Records) / res.Seconds
			res.MBPerS = float64(res.ValueBytes) / 1e6 / res.Seconds
		}
		if res.FetchesWithRecords > 0 {
			res.RecordsPerFetch = float64(res.Records) / float64(res.FetchesWithRecords)
		}
		res.FetchP50ms = float64(m.hist.Quantile(0.5)) / 1000
		res.FetchP90ms = float64(m.hist.Quantile(0.9)) / 1000
		res.FetchP99ms = float64(m.hist.Quantile(0.99)) / 1000
		res.FetchMaxMs = float64(m.hist.Max()) / 1000
	}()

	var js map[string]any
	lastProgress, fetchAt := created, created
	var fetches, scanned int64 // scanned: upstream records read (with cv, not all count)
	for {
		if cv == nil {
			scanned = res.Records
		}
		if scanned >= want {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
				return res, fmt.Errorf("%s/%d after %d records: %w", fe.Topic, fe.Partition, res.Records, fe.Err)
			}
		}
		got := int64(0)
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if cv != nil {
				scanned++
				if n, keep := cv.apply(ctx, r); keep {
					res.Records++
					res.ValueBytes += int64(n)
				}
			} else {
				res.Records++
				res.ValueBytes += int64(len(r.Value))
			}
			if int(r.Partition) < len(next) {
				if r.Offset < next[r.Partition] {
					res.OrderErrors++
				}
				next[r.Partition] = r.Offset + 1
			}
			if !front || bad != nil {
				return
			}
			if w.avro {
				// Schema Registry wire format: magic byte 0, schema id.
				if len(r.Value) < 5 || r.Value[0] != 0 {
					bad = fmt.Errorf("record %d/%d is not Schema Registry framed: % x", r.Partition, r.Offset, r.Value[:min(len(r.Value), 8)])
				} else if fields != nil && *fields == nil {
					*fields = []string{fmt.Sprintf("schema id %d", binary.BigEndian.Uint32(r.Value[1:5]))}
				}
				return
			}
			if fields != nil && *fields == nil {
				keys, err := jsonKeys(r.Value)
				if err != nil {
					bad = fmt.Errorf("record %d/%d is not a JSON object: %v: %.200s", r.Partition, r.Offset, err, r.Value)
					return
				}
				*fields = keys
			}
			if w.verify || (w.sample > 0 && res.Records%int64(w.sample) == 0) {
				clear(js)
				if err := json.Unmarshal(r.Value, &js); err != nil {
					bad = fmt.Errorf("record %d/%d is not JSON: %v: %.200s", r.Partition, r.Offset, err, r.Value)
					return
				}
				res.JSONParsed++
			}
		})
		if bad != nil {
			return res, bad
		}
		now := time.Now()
		if got > 0 {
			last, lastProgress = now, now
			continue
		}
		if c := m.count(); c != fetches {
			fetches, fetchAt = c, now
		}
		switch quiet := now.Sub(lastProgress); {
		case front && res.Records > 0 && quiet > w.quiet && now.Sub(fetchAt) < 2*w.maxWait:
			res.Complete = true // the view filtered the rest: Fetches are answered, records do not come
			return res, nil
		case now.Sub(fetchAt) > w.stuckAfter():
			return res, fmt.Errorf("no Fetch response for %s (the broker answers within FetchMaxWait %s even with no data) after %d of %d records",
				now.Sub(fetchAt).Round(time.Millisecond), w.maxWait, res.Records, want)
		case quiet > w.stall:
			return res, fmt.Errorf("stalled after %d of %d records (none for %s)", res.Records, want, w.stall)
		}
	}
	res.Complete = true
	return res, nil
}

// jsonKeys returns the keys of a JSON object, in order.
func jsonKeys(b []byte) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not an object (%v)", err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// liveRecv is one record received in the live round.
type liveRecv struct {
	part int32
	off  int64
	at   int64 // unix ns
}

type liveKey struct {
	part int32
	off  int64
}

// live runs the live round: both consumers start at the end of every
// partition, a producer writes rate records/s for d once both have sent
// their first Fetch, and each side's produce-to-receive latency is
// measured; it waits up to drain for the records to arrive.
func (w *wireClient) live(ctx context.Context, env wireEnv, rate float64, d, drain time.Duration) (wireLive, error) {
	res := wireLive{Rate: rate, Duration: d.String()}
	admin, err := kgo.NewClient(kgo.SeedBrokers(env.brokers...))
	if err != nil {
		return res, err
	}
	defer admin.Close()
	rng, err := listRange(ctx, admin, env.topic)
	if err != nil {
		return res, err
	}
	parts := make(map[int32]kgo.Offset, len(rng.end))
	for p, e := range rng.end {
		parts[int32(p)] = kgo.NewOffset().At(e)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type side struct {
		m     *fetchMeter
		cl    *kgo.Client
		recvs []liveRecv
		n     atomic.Int64
		err   error
	}
	sides := [2]*side{{m: newFetchMeter()}, {m: newFetchMeter()}}
	for i, s := range sides {
		if s.cl, err = kgo.NewClient(w.opts(i == 1, parts, s.m)...); err != nil {
			return res, err
		}
		defer s.cl.Close()
	}
	var wg sync.WaitGroup
	for _, s := range sides {
		wg.Go(func() {
			for cctx.Err() == nil {
				fs := s.cl.PollFetches(cctx)
				now := time.Now().UnixNano() // records of one poll arrived together
				for _, fe := range fs.Errors() {
					if !errors.Is(fe.Err, context.Canceled) && s.err == nil {
						s.err = fmt.Errorf("%s/%d: %w", fe.Topic, fe.Partition, fe.Err)
					}
				}
				fs.EachRecord(func(r *kgo.Record) {
					s.recvs = append(s.recvs, liveRecv{r.Partition, r.Offset, now})
				})
				s.n.Store(int64(len(s.recvs)))
			}
		})
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Both consumers are positioned once each has sent a Fetch.
	deadline := time.Now().Add(30 * time.Second)
	for sides[0].m.firstFetch().IsZero() || sides[1].m.firstFetch().IsZero() {
		if time.Now().After(deadline) {
			return res, errors.New("the consumers sent no Fetch within 30s")
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}

	pool := make([]generate.Record, 0, 1024)
	for range cap(pool) {
		r, err := env.gen.Next(env.product.ID)
		if err != nil {
			return res, err
		}
		pool = append(pool, r)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(env.brokers...), kgo.ProducerLinger(0), kgo.DefaultProduceTopic(env.topic))
	if err != nil {
		return res, err
	}
	defer prod.Close()
	var mu sync.Mutex
	sent := map[liveKey]int64{}
	var perr error
	start := time.Now()
	total := int64(rate * d.Seconds())
	for res.Produced < total && ctx.Err() == nil {
		due := min(int64(time.Since(start).Seconds()*rate)+1, total)
		for ; res.Produced < due; res.Produced++ {
			r := pool[res.Produced%int64(len(pool))]
			prod.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: time.Now()}, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if perr == nil {
						perr = err
					}
					return
				}
				sent[liveKey{r.Partition, r.Offset}] = r.Timestamp.UnixNano()
			})
		}
		if res.Produced < total {
			if wt := time.Until(start.Add(time.Duration(float64(res.Produced) / rate * float64(time.Second)))); wt > 0 {
				time.Sleep(wt)
			}
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, drain)
	err = prod.Flush(fctx)
	fcancel()
	mu.Lock()
	res.Acked = int64(len(sent))
	if perr != nil && err == nil {
		err = perr
	}
	mu.Unlock()
	if err != nil {
		return res, fmt.Errorf("produce: %w", err)
	}
	// Wait for both to receive everything (the front door: until its count
	// stops growing, when its view filters rows).
	// A front door that answers no Fetch for a while (it answers within
	// FetchMaxWait even when it has nothing) is stuck, not slow.
	end := time.Now().Add(drain)
	var frontLast, frontFetches int64
	frontAt, fetchAt := time.Now(), time.Now()
	var stuck time.Duration
	for time.Now().Before(end) && ctx.Err() == nil {
		dn, fn, ff := sides[0].n.Load(), sides[1].n.Load(), sides[1].m.count()
		if fn != frontLast {
			frontLast, frontAt = fn, time.Now()
		}
		if ff != frontFetches {
			frontFetches, fetchAt = ff, time.Now()
		}
		if s := time.Since(fetchAt); s > w.stuckAfter() {
			stuck = s
			break
		}
		if dn >= res.Acked && (fn >= res.Acked || time.Since(frontAt) > w.quiet && time.Since(fetchAt) < 2*w.maxWait) {
			break // everything, or the view filtered the rest (Fetches are answered, records do not come)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for i, s := range sides {
		if s.err != nil {
			return res, fmt.Errorf("%s consumer: %w", [2]string{"direct", "front door"}[i], s.err)
		}
	}
	out := [2]*wireLiveSide{&res.Direct, &res.Front}
	for i, s := range sides {
		var h latencyHist
		for _, r := range s.recvs {
			if t, ok := sent[liveKey{r.part, r.off}]; ok {
				h.Record((r.at - t) / 1000)
			}
		}
		o := out[i]
		o.Received = int64(h.Count())
		o.P50ms = float64(h.Quantile(0.5)) / 1000
		o.P90ms = float64(h.Quantile(0.9)) / 1000
		o.P99ms = float64(h.Quantile(0.99)) / 1000
		o.P999ms = float64(h.Quantile(0.999)) / 1000
		o.MaxMs = float64(h.Max()) / 1000
	}
	res.AddedP50ms = res.Front.P50ms - res.Direct.P50ms
	res.AddedP99ms = res.Front.P99ms - res.Direct.P99ms
	if stuck > 0 {
		return res, fmt.Errorf("the front door stopped answering: no Fetch response for %s (it answers within FetchMaxWait %s even with no data) after %d of %d records",
			stuck.Round(time.Millisecond), w.maxWait, res.Front.Received, res.Acked)
	}
	if res.Direct.Received < res.Acked {
		return res, fmt.Errorf("the direct consumer received %d of %d records within %s", res.Direct.Received, res.Acked, drain)
	}
	if res.Front.Received == 0 {
		return res, fmt.Errorf("the front door delivered none of %d records within %s", res.Acked, drain)
	}
	return res, nil
}

// writeWireMarkdown renders the wire phase.
func writeWireMarkdown(w io.Writer, r *benchReport) {
	wr := r.Wire
	if wr == nil {
		return
	}
	runs := ""
	if n := max(len(wr.DirectRuns), len(wr.FrontRuns)); n > 1 {
		runs = fmt.Sprintf(", median of %d alternating runs", n)
	}
	tlsNote := "SASL_SSL (TLS)"
	if !wr.TLS {
		tlsNote = "SASL_PLAINTEXT"
	}
	fmt.Fprintf(w, "\n### Kafka front door (wire): one franz-go consumer, direct vs front door%s\n\n", runs)
	fmt.Fprintf(w, "- direct: the upstream broker %s, topic %s, raw record values (no decode)\n", wr.Upstream, r.Topic)
	enc := "JSON"
	if wr.Format == "avro" {
		enc = "Avro in Schema Registry wire format"
	}
	fmt.Fprintf(w, "- front door: %s, %s %s, as %s, topic %s: the partner's governed view (decode, row filter, masking, %s)\n",
		wr.FrontDoor, tlsNote, strings.ToUpper(wr.SASL), wr.Partner, wr.FrontTopic, enc)
	fmt.Fprintf(w, "- both: one client, no group, from the start offsets, FetchMaxBytes %d, FetchMaxPartitionBytes %d, FetchMaxWait %d ms; value MB: record values delivered; response MB: Fetch response bytes read (upstream batches as produced, possibly compressed; the front door's are uncompressed)\n",
		wr.FetchMaxBytes, wr.PartitionMaxBytes, wr.FetchMaxWaitMS)
	if len(wr.FrontFields) > 0 {
		fmt.Fprintf(w, "- fields: upstream %s; front door %s\n", strings.Join(wr.UpstreamFields, ","), strings.Join(wr.FrontFields, ","))
	}
	cpuWho := "bench + gateway processes"
	if r.Mode == "in-process" {
		cpuWho = "whole process"
	}
	fmt.Fprintf(w, "\n| path | records | value MB | response MB | seconds | records/s | value MB/s | vs direct | fetches with records | records per fetch | fetch p50 ms | fetch p90 ms | fetch p99 ms | fetch max ms | setup ms | CPU s (%s) |\n", cpuWho)
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range []*wireReadResult{wr.Direct, wr.Front, wr.DirectView} {
		if x == nil {
			continue
		}
		ratio := "1.00"
		switch {
		case x == wr.Front:
			ratio = "-"
			if wr.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f", wr.Ratio)
			}
		case x == wr.DirectView && wr.Direct != nil && wr.Direct.RecordsPerS > 0:
			ratio = fmt.Sprintf("%.2f", x.RecordsPerS/wr.Direct.RecordsPerS)
		}
		recs := strconv.FormatInt(x.Records, 10)
		if !x.Complete {
			recs += " (incomplete)"
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.3f | %.0f | %.1f | %s | %d | %.0f | %s | %s | %s | %s | %.1f | %.2f |\n",
			x.Path, recs, float64(x.ValueBytes)/1e6, float64(x.WireBytes)/1e6, x.Seconds, x.RecordsPerS, x.MBPerS, ratio, x.FetchesWithRecords, x.RecordsPerFetch,
			fmtMs(x.FetchP50ms), fmtMs(x.FetchP90ms), fmtMs(x.FetchP99ms), fmtMs(x.FetchMaxMs), x.SetupMS, x.CPUSeconds)
	}
	fmt.Fprintf(w, "\nFront door / direct records/s: %.2f (target >= 0.85: %s). Added fetch p99 (front door - direct): %s ms (target <= 2 ms: %s).",
		wr.Ratio, verdict(wr.Ratio >= 0.85), fmtMs(wr.AddedP99ms), verdict(wr.AddedP99ms <= 2))
	if len(wr.Ratios) > 1 {
		fmt.Fprint(w, " Per run, direct / front door records/s (ratio; added p99 ms):")
		for i := range wr.Ratios {
			fmt.Fprintf(w, " %.0f / %.0f (%.2f; %s);", wr.DirectRuns[i].RecordsPerS, wr.FrontRuns[i].RecordsPerS, wr.Ratios[i], fmtMs(wr.AddedP99s[i]))
		}
	}
	if f := wr.Front; f != nil {
		fmt.Fprintf(w, " Front door: %d hub reads from the upstream broker, %d throttled responses, %d out of order, %d records JSON-parsed.", f.HubReads, f.Throttled, f.OrderErrors, f.JSONParsed)
	}
	fmt.Fprintln(w)
	if wr.DirectView != nil {
		fmt.Fprintf(w, "\nReference, the same work in the client (%s: the direct consumer decodes every upstream record and encodes it by %s's view, as the gateway does, and counts the records the view keeps): front door / direct + view records/s %.2f.",
			wr.DirectView.Path, wr.Partner, wr.ViewRatio)
		if len(wr.ViewRatios) > 1 {
			fmt.Fprint(w, " Per run, direct + view / front door records/s (ratio):")
			for i := range wr.ViewRatios {
				fmt.Fprintf(w, " %.0f / %.0f (%.2f);", wr.DirectViewRuns[i].RecordsPerS, wr.FrontRuns[i].RecordsPerS, wr.ViewRatios[i])
			}
		}
		fmt.Fprintln(w)
	}
	if lv := wr.Live; lv != nil {
		runs := ""
		if len(wr.LiveRuns) > 1 {
			runs = fmt.Sprintf(" (the run with the median added p99 of %d)", len(wr.LiveRuns))
		}
		fmt.Fprintf(w, "\nLive%s: %.0f records/s for %s, %d produced, %d acknowledged; both consumers at once from the end; latency = receive - produce call\n\n", runs, lv.Rate, lv.Duration, lv.Produced, lv.Acked)
		fmt.Fprintf(w, "| path | received | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for i, s := range []wireLiveSide{lv.Direct, lv.Front} {
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s |\n", [2]string{"direct", "front door"}[i], s.Received,
				fmtMs(s.P50ms), fmtMs(s.P90ms), fmtMs(s.P99ms), fmtMs(s.P999ms), fmtMs(s.MaxMs))
		}
		fmt.Fprintf(w, "\nLive added latency (front door - direct): p50 %s ms, p99 %s ms (target <= 2 ms: %s).", fmtMs(lv.AddedP50ms), fmtMs(lv.AddedP99ms), verdict(lv.AddedP99ms <= 2))
		if len(wr.LiveRuns) > 1 {
			fmt.Fprint(w, " Per run, p99 direct / front door (added):")
			for _, l := range wr.LiveRuns {
				fmt.Fprintf(w, " %s / %s (%s);", fmtMs(l.Direct.P99ms), fmtMs(l.Front.P99ms), fmtMs(l.AddedP99ms))
			}
		}
		fmt.Fprintln(w)
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway"
	"github.com/sluicehq/sluice/gateway/auth"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/products/store"
)

const benchUsage = `usage: sluice bench [flags]

Measures sluice end to end, in one run:

  1. baseline: a plain franz-go consumer (no group, from the start) reads the
     product topic and does sluice's per-record work (Avro decode with schema
     resolution, identity JSON encoding into a reused buffer): records/s;
  2. SSE replay: one subscriber streams the same records with
     GET /v1/products/<product>/stream?from=earliest, parsed as SSE:
     records/s and its ratio to the baseline;
  3. live fan-out: for each --subscribers count, that many streams connect
     with from=latest, a producer writes --rate records/s for --duration with
     the Kafka timestamp set to the produce time, and every subscriber
     measures receive time minus the record's _timestamp: delivered
     records/s and p50/p90/p99/p99.9/max latency;
  4. wire (not in the default --phases): the Kafka front door against the
     upstream broker. One franz-go consumer (same fetch options, one client,
     no group, from the start) reads the N records twice, --repeat times
     alternating: direct from the upstream broker (raw values, no decode),
     and through the front door as --wire-partner (SASL, TLS by default)
     receiving that partner's governed view (rows filtered, fields masked,
     JSON, or Avro with --wire-format avro). Records/s and MB/s from the
     first Fetch to the last record, their ratio, and per-Fetch latency
     p50/p99 of requests that returned records (kgo hooks). Then
     (--wire-live) --repeat live rounds: both consumers tail the end while a
     producer writes --rate records/s for --duration; produce-to-receive
     p50/p99 of both and the latency the front door adds.

By default it starts a gateway in-process (embedded broker and HTTP on
127.0.0.1:0, generator off, temporary data directory) and preloads --records
generated records. With --target and --brokers it measures an already running
"sluice serve --generate=false" instead and only produces and consumes.
Results are a markdown table on stdout (--json for machine output); progress
goes to stderr.

Flags:
`

type benchOptions struct {
	target         string
	brokers        stringList
	topicPrefix    string
	product        string
	records        int
	subscribers    []int
	rate           float64
	duration       time.Duration
	drain          time.Duration
	connectTimeout time.Duration
	stall          time.Duration
	phases         map[string]bool
	verify         bool
	sample         int
	sourceAddrs    int
	fanoutParser   string
	replayParser   string
	jsonOut        bool
	jsonFile       string
	cpuProfile     string
	memProfile     string
	dataDir        string
	seed           int64
	repeat         int
	token          string
	partner        string
	purpose        string

	// The wire phase.
	wirePartner            string
	wireSASL               string
	wireFormat             string
	wireToken              string
	wireLive               bool
	wireQuiet              time.Duration
	frontDoor              string
	frontDoorCA            string
	frontDoorTLS           bool
	fetchMaxBytes          int32
	fetchPartitionMaxBytes int32
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchOptions, error) {
	o := &benchOptions{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.target, "target", "", "base URL of a running sluice, e.g. http://127.0.0.1:8080 (default: start one in-process)")
	fs.Var(&o.brokers, "brokers", "Kafka seed brokers host:port,... of the --target's cluster (required with --target)")
	fs.StringVar(&o.topicPrefix, "topic-prefix", "", "the --target's topic_prefix, if it has one")
	fs.StringVar(&o.product, "product", "cdr", "product to measure")
	fs.StringVar(&o.partner, "partner", "internal-fraud", "partner the streams read as; its grant must show every field and row for the comparison with the baseline to hold (internal-fraud's fraud-prevention grant of cdr does)")
	fs.StringVar(&o.purpose, "purpose", "fraud-prevention", "purpose of the partner's grant (empty: the partner's first grant of the product)")
	fs.StringVar(&o.token, "token", "", "bearer token for the streams (default: a dev token for --partner signed with the dev key in the gateway's data directory, see --data-dir)")
	fs.IntVar(&o.records, "records", 200_000, "records to preload before measuring (0: measure what the topic holds)")
	subs := fs.String("subscribers", "1,100,1000", "comma-separated subscriber counts for the live fan-out rounds")
	fs.Float64Var(&o.rate, "rate", 2000, "records/s the live producer writes during each fan-out round")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long the live producer writes per fan-out round")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "after producing, how long to wait for subscribers to receive everything")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 60*time.Second, "how long subscribers of a round may take to connect")
	fs.DurationVar(&o.stall, "stall", 30*time.Second, "replay gives up after this long without a record")
	phases := fs.String("phases", "baseline,replay,fanout", "phases to run: any of baseline, replay, fanout, wire (the Kafka front door against the upstream broker)")
	fs.BoolVar(&o.verify, "verify", false, "parse every replayed record's JSON, check offsets are contiguous per partition and each record equals the baseline's encoding")
	fs.IntVar(&o.sample, "sample", 1000, "without --verify, parse the JSON of every n-th replayed record")
	fs.IntVar(&o.sourceAddrs, "source-addrs", 1, "spread client connections over 127.0.0.1..127.0.0.n (loopback targets; ~28k connections per source address and server port)")
	fs.StringVar(&o.replayParser, "replay-parser", "sseclient", "SSE parser of the replay subscriber: sseclient (gateway/sseclient) or lean (this tool's allocation-free scanner, to leave more CPU to the gateway)")
	fs.StringVar(&o.fanoutParser, "fanout-parser", "lean", "SSE parser of the fan-out subscribers: lean (allocation-free, this tool's) or sseclient (gateway/sseclient, about 12 allocations per event)")
	fs.BoolVar(&o.jsonOut, "json", false, "print results as JSON instead of markdown")
	fs.StringVar(&o.jsonFile, "json-file", "", "also write the JSON results to this file")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phases (this process) to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "after each fan-out round, while its subscribers are connected, write a heap profile of this process to FILE.<subscribers>")
	fs.StringVar(&o.dataDir, "data-dir", "", "in-process: the gateway's data directory (default: a temporary one, removed afterwards); with --target: the target's data directory, whose dev signing key mints the token when --token is not given")
	fs.Int64Var(&o.seed, "seed", 1, "generator seed")
	fs.IntVar(&o.repeat, "repeat", 1, "run baseline and replay this many times, alternating, and the wire phase's two reads as often; the report shows medians")
	fs.StringVar(&o.wirePartner, "wire-partner", "internal-noc", "wire: partner whose governed view the front door serves (its first grant of --product); internal-noc's network-analytics grant of cdr keeps every row and pseudonymises identifiers, mvno-b's also keeps only its own rows")
	fs.StringVar(&o.wireSASL, "wire-sasl", "oauthbearer", "wire: SASL mechanism of the front-door consumer: oauthbearer (a dev token, or --wire-token) or plain (an API key the bench creates in the in-process gateway's store)")
	fs.StringVar(&o.wireFormat, "wire-format", "json", "wire: the front door's value format for --wire-partner: json (the view's JSON, as SSE) or avro (Schema Registry wire format; the bench sets the partner's subscriptions of --product to kafka_format avro in the in-process gateway; with --target, set it there)")
	fs.StringVar(&o.wireToken, "wire-token", "", "wire: OAUTHBEARER token (default: a dev token for --wire-partner signed with the dev key in the gateway's data directory)")
	fs.BoolVar(&o.wireLive, "wire-live", true, "wire: after the reads, --repeat live rounds at --rate for --duration measuring produce-to-receive latency direct and through the front door")
	fs.DurationVar(&o.wireQuiet, "wire-quiet", 2*time.Second, "wire: the front-door read ends after this long without a record when it got fewer than N (a view that filters rows)")
	fs.StringVar(&o.frontDoor, "front-door", "", "wire: the Kafka front door host:port (default: the in-process gateway's; required with --target)")
	fs.StringVar(&o.frontDoorCA, "front-door-ca", "", "wire: PEM CA the front door's certificate is checked against (default: the in-process gateway's certificate; with --target, <data-dir>/kafka-tls/cert.pem if present, else the system roots)")
	fs.BoolVar(&o.frontDoorTLS, "front-door-tls", true, "wire: connect to the front door with TLS (SASL_SSL, the default listener); false: SASL_PLAINTEXT, and the in-process gateway's listener runs without TLS (kafka_listen_tls.enabled: false)")
	fetchMax := fs.Int("fetch-max-bytes", 50<<20, "wire: FetchMaxBytes of both consumers (franz-go's default)")
	fetchPartMax := fs.Int("fetch-partition-max-bytes", 1<<20, "wire: FetchMaxPartitionBytes of both consumers (franz-go's default)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	if (o.target == "") != (len(o.brokers) == 0) {
		return nil, errors.New("bench: --target and --brokers go together")
	}
	o.target = strings.TrimRight(o.target, "/")
	if o.target != "" && !strings.HasPrefix(o.target, "http://") && !strings.HasPrefix(o.target, "https://") {
		return nil, fmt.Errorf("bench: --target %q: want http://host:port", o.target)
	}
	var err error
	if o.subscribers, err = parseCounts(*subs); err != nil {
		return nil, err
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "baseline", "replay", "fanout", "wire":
			o.phases[p] = true
		case "":
		default:
			return nil, fmt.Errorf("bench: --phases: unknown phase %q (baseline, replay, fanout, wire)", p)
		}
	}
	switch {
	case o.records < 0:
		return nil, errors.New("bench: --records must be >= 0")
	case o.rate <= 0 || o.rate > 1e6:
		return nil, errors.New("bench: --rate must be in (0, 1000000]")
	case o.duration <= 0:
		return nil, errors.New("bench: --duration must be > 0")
	case o.sourceAddrs < 1 || o.sourceAddrs > 254:
		return nil, errors.New("bench: --source-addrs must be 1..254")
	case o.fanoutParser != "lean" && o.fanoutParser != "sseclient":
		return nil, errors.New("bench: --fanout-parser must be lean or sseclient")
	case o.replayParser != "lean" && o.replayParser != "sseclient":
		return nil, errors.New("bench: --replay-parser must be lean or sseclient")
	case o.repeat < 1 || o.repeat > 100:
		return nil, errors.New("bench: --repeat must be 1..100")
	case o.stall <= 0:
		return nil, errors.New("bench: --stall must be > 0")
	case o.wireSASL != "oauthbearer" && o.wireSASL != "plain":
		return nil, fmt.Errorf("bench: --wire-sasl %q must be oauthbearer or plain", o.wireSASL)
	case o.wireFormat != "json" && o.wireFormat != "avro":
		return nil, fmt.Errorf("bench: --wire-format %q must be json or avro", o.wireFormat)
	case o.wireQuiet <= 0:
		return nil, errors.New("bench: --wire-quiet must be > 0")
	case *fetchMax < 1024 || *fetchMax > 1<<30:
		return nil, fmt.Errorf("bench: --fetch-max-bytes %d must be in [1024, %d]", *fetchMax, 1<<30)
	case *fetchPartMax < 1024 || *fetchPartMax > *fetchMax:
		return nil, fmt.Errorf("bench: --fetch-partition-max-bytes %d must be in [1024, --fetch-max-bytes %d]", *fetchPartMax, *fetchMax)
	case o.phases["wire"] && o.target != "" && o.frontDoor == "":
		return nil, errors.New("bench: the wire phase with --target needs --front-door host:port")
	}
	o.fetchMaxBytes, o.fetchPartitionMaxBytes = int32(*fetchMax), int32(*fetchPartMax)
	return o, nil
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100_000 {
			return nil, fmt.Errorf("bench: --subscribers: %q is not a count in 1..100000", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchReport is everything one run measured.
type benchReport struct {
	Command      string           `json:"command"`
	GoVersion    string           `json:"go_version"`
	OSArch       string           `json:"os_arch"`
	GOMAXPROCS   int              `json:"gomaxprocs"`
	NumCPU       int              `json:"num_cpu"`
	MemTotalMB   int64            `json:"mem_total_mb"`
	NoFile       uint64           `json:"rlimit_nofile"`
	Mode         string           `json:"mode"` // in-process or target
	Target       string           `json:"target"`
	Brokers      []string         `json:"brokers"`
	Product      string           `json:"product"`
	Partner      string           `json:"partner,omitempty"` // when the bench signed the token
	Purpose      string           `json:"purpose"`
	Topic        string           `json:"topic"`
	Partitions   int              `json:"partitions"`
	N            int64            `json:"records_in_topic"`
	Rate         float64          `json:"rate"`
	Duration     string           `json:"duration"`
	Preload      *preloadResult   `json:"preload,omitempty"`
	Baseline     *baselineResult  `json:"baseline,omitempty"`
	Replay       *replayResult    `json:"sse_replay,omitempty"`
	Ratio        float64          `json:"sse_to_baseline,omitempty"` // median of per-run ratios
	Ratios       []float64        `json:"sse_to_baseline_runs,omitempty"`
	BaselineRuns []baselineResult `json:"baseline_runs,omitempty"`
	ReplayRuns   []replayResult   `json:"sse_replay_runs,omitempty"`
	Fanout       []fanoutResult   `json:"fanout,omitempty"`
	Wire         *wireReport      `json:"wire,omitempty"`
	Errors       []string         `json:"errors,omitempty"`
	Interrupted  bool             `json:"interrupted,omitempty"`
	LoadStart    string           `json:"loadavg_start"`
	LoadEnd      string           `json:"loadavg_end"`
	StartedAt    time.Time        `json:"started_at"`
}

func bench(args []string, stdout, stderr io.Writer) error {
	o, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
	}
	rep := &benchReport{
		Command:    commandLine(args),
		GoVersion:  runtime.Version(),
		OSArch:     runtime.GOOS + "/" + runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		MemTotalMB: memTotalMB(),
		NoFile:     raiseNoFile(),
		Product:    o.product,
		Rate:       o.rate,
		Duration:   o.duration.String(),
		StartedAt:  time.Now().UTC(),
		LoadStart:  loadAvg(),
	}
	for _, n := range o.subscribers {
		// In-process, every stream holds a client and a server socket.
		need := uint64(n) + 100
		if o.target == "" {
			need += uint64(n)
		}
		if o.phases["fanout"] && need > rep.NoFile {
			logf("warning: %d subscribers need about %d file descriptors; the limit is %d", n, need, rep.NoFile)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cat, err := products.LoadDefault()
	if err != nil {
		return err
	}
	p, ok := cat.Get(o.product)
	if !ok {
		return fmt.Errorf("bench: no product %q in the built-in catalog", o.product)
	}
	codec, err := newCodec(p)
	if err != nil {
		return err
	}
	rep.Topic = o.topicPrefix + p.Topic

	// The gateway under test.
	target := httpTarget{base: o.target, product: o.product, sourceAddrs: o.sourceAddrs, token: o.token, purpose: o.purpose}
	brokers := []string(o.brokers)
	keyDir := o.dataDir
	var gw *gateway.Gateway // the in-process gateway
	if o.target == "" {
		rep.Mode = "in-process"
		g, dir, stopGateway, err := startBenchGateway(ctx, o, stderr)
		if err != nil {
			return err
		}
		defer stopGateway()
		gw = g
		target.base = "http://" + g.HTTPAddr()
		brokers = []string{g.KafkaAddr()}
		rep.Topic = p.Topic
		keyDir = dir
	} else {
		rep.Mode = "target"
	}
	if target.token == "" {
		if keyDir == "" {
			return errors.New("bench: with --target, give --token, or --data-dir of the target so the bench can sign a dev token")
		}
		if target.token, err = devToken(keyDir, o.partner); err != nil {
			return err
		}
		rep.Partner = o.partner
	}
	rep.Purpose = o.purpose
	rep.Target, rep.Brokers = target.base, brokers
	logf("%s gateway at %s, brokers %s, topic %s", rep.Mode, target.base, strings.Join(brokers, ","), rep.Topic)
	if err := target.waitReady(ctx, 60*time.Second); err != nil {
		return err
	}

	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer admin.Close()

	fail := func(phase string, err error) {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			rep.Interrupted = true
			return
		}
		rep.Errors = append(rep.Errors, phase+": "+err.Error())
		logf("%s: %v", phase, err)
	}

	gen, err := generate.New(cat, generate.Options{Seed: o.seed})
	if err != nil {
		return err
	}
	if o.records > 0 {
		logf("preloading %d %s records", o.records, o.product)
		pr, err := preload(ctx, brokers, gen, p, rep.Topic, o.records)
		if err != nil {
			fail("preload", err)
			return finishBench(rep, o, stdout)
		}
		rep.Preload = &pr
		logf("preloaded %d records in %.2fs (%.0f records/s)", pr.Produced, pr.Seconds, pr.RecordsPerS)
	}
	rng, err := listRange(ctx, admin, rep.Topic)
	if err != nil {
		fail("offsets", err)
		return finishBench(rep, o, stdout)
	}
	rep.Partitions = len(rng.end)
	rep.N = rng.total()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	var hashes *recordHashes
	if o.verify {
		hashes = newRecordHashes(rng)
	}
	want := rep.N
	// Baseline and replay alternate --repeat times; the report shows the
	// median run of each and the median of the per-pair ratios, which is
	// robust to other load on the machine drifting between runs.
	var ratios []float64
	for run := 1; run <= o.repeat && ctx.Err() == nil; run++ {
		var b *baselineResult
		if o.phases["baseline"] {
			logf("baseline %d/%d: franz-go consumer reading %d records", run, o.repeat, rep.N)
			cpu0, srv0 := processCPU(), target.cpu(ctx, rep.Mode)
			r, err := baseline(ctx, brokers, rep.Topic, rng, codec, hashes, 5*time.Minute)
			if err != nil {
				fail("baseline", err)
				break
			}
			r.CPUSeconds = processCPU() - cpu0 + target.cpu(ctx, rep.Mode) - srv0
			r.RecordsPerCPUS = float64(r.Records) / r.CPUSeconds
			b = &r
			rep.BaselineRuns = append(rep.BaselineRuns, r)
			want = r.Records
			logf("baseline %d/%d: %d records in %.3fs: %.0f records/s, %.2f CPU s", run, o.repeat, r.Records, r.Seconds, r.RecordsPerS, r.CPUSeconds)
		}
		if o.phases["replay"] && ctx.Err() == nil {
			logf("SSE replay %d/%d: 1 subscriber reading %d records from=earliest", run, o.repeat, want)
			cpu0, srv0 := processCPU(), target.cpu(ctx, rep.Mode)
			r, err := replay(ctx, target, rng, want, o.sample, o.verify, hashes, o.stall, o.replayParser)
			r.CPUSeconds = processCPU() - cpu0 + target.cpu(ctx, rep.Mode) - srv0
			if r.Complete {
				r.RecordsPerCPUS = float64(r.Records) / r.CPUSeconds
			}
			rep.ReplayRuns = append(rep.ReplayRuns, r)
			if err != nil {
				fail("sse replay", err)
				break
			}
			logf("SSE replay %d/%d: %d records in %.3fs: %.0f records/s, %.2f CPU s", run, o.repeat, r.Records, r.Seconds, r.RecordsPerS, r.CPUSeconds)
			if b != nil && b.RecordsPerS > 0 {
				ratios = append(ratios, r.RecordsPerS/b.RecordsPerS)
			}
			if o.verify && (r.Mismatches > 0 || r.OrderErrors > 0) {
				fail("verify", fmt.Errorf("%d records differ from the baseline encoding, %d gaps or duplicates", r.Mismatches, r.OrderErrors))
			}
		}
	}
	rep.Baseline = medianRun(rep.BaselineRuns, func(r baselineResult) float64 { return r.RecordsPerS })
	rep.Replay = medianRun(rep.ReplayRuns, func(r replayResult) float64 { return r.RecordsPerS })
	if len(ratios) > 0 {
		rep.Ratio = median(ratios)
		rep.Ratios = ratios
	}
	if o.phases["wire"] && ctx.Err() == nil {
		w, err := runWire(ctx, o, wireEnv{gw: gw, target: target, mode: rep.Mode, brokers: brokers, topic: rep.Topic,
			product: p, codec: codec, rng: rng, keyDir: keyDir, gen: gen}, logf)
		rep.Wire = w
		if err != nil {
			fail("wire", err)
		}
	}
	if o.phases["fanout"] && ctx.Err() == nil && len(o.subscribers) > 0 {
		pool := make([]generate.Record, 0, 4096)
		for range cap(pool) {
			r, err := gen.Next(p.ID)
			if err != nil {
				return err
			}
			pool = append(pool, r)
		}
		lp, err := newLiveProducer(brokers, rep.Topic, pool)
		if err != nil {
			return err
		}
		defer lp.Close()
		for _, n := range o.subscribers {
			if ctx.Err() != nil {
				break
			}
			runtime.GC() // start each round from a collected heap
			fr, err := fanout(ctx, target, lp, n, o.rate, o.duration, o.drain, o.connectTimeout, o.fanoutParser, o.memProfile, logf)
			if err != nil {
				fail(fmt.Sprintf("fan-out %d", n), err)
			}
			if fr.Connected > 0 {
				rep.Fanout = append(rep.Fanout, fr)
				logf("fan-out %d: delivered %d of %d, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d errors",
					n, fr.Delivered, fr.Expected, fr.P50ms, fr.P99ms, fr.MaxMs, fr.Errors)
			}
		}
	}
	if ctx.Err() != nil {
		rep.Interrupted = true
	}
	return finishBench(rep, o, stdout)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianRun returns a copy of the run with the median key (the lower
// middle one for an even count), nil when there are no runs.
func medianRun[T any](runs []T, key func(T) float64) *T {
	if len(runs) == 0 {
		return nil
	}
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return &s[(len(s)-1)/2]
}

func finishBench(rep *benchReport, o *benchOptions, stdout io.Writer) error {
	rep.LoadEnd = loadAvg()
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	if o.jsonFile != "" {
		if err := os.WriteFile(o.jsonFile, js, 0o644); err != nil {
			return err
		}
	}
	if o.jsonOut {
		if _, err := stdout.Write(js); err != nil {
			return err
		}
	} else {
		writeMarkdown(stdout, rep)
	}
	switch {
	case rep.Interrupted:
		return errors.New("bench: interrupted")
	case len(rep.Errors) > 0:
		return fmt.Errorf("bench: %d phase(s) failed", len(rep.Errors))
	}
	return nil
}

// startBenchGateway runs a gateway in this process; stop shuts it down in
// its documented order and removes a temporary data directory.
// devToken signs a development token for partner with the dev key kept in
// a gateway's data directory (as `sluice token` does).
func devToken(dataDir, partner string) (string, error) {
	key, kid, err := auth.DevKey(dataDir)
	if err != nil {
		return "", fmt.Errorf("bench: dev token: %w", err)
	}
	tok, err := auth.Sign(key, kid, auth.DevIssuer, auth.DevAudience, partner, 24*time.Hour)
	if err != nil {
		return "", fmt.Errorf("bench: dev token: %w", err)
	}
	return tok, nil
}

func startBenchGateway(ctx context.Context, o *benchOptions, stderr io.Writer) (*gateway.Gateway, string, func(), error) {
	dir := o.dataDir
	tmp := false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "sluice-bench-"); err != nil {
			return nil, "", nil, err
		}
		tmp = true
	}
	no := false
	cfg := gateway.Config{
		DataDir:           dir,
		HTTPAddr:          "127.0.0.1:0",
		EmbeddedKafkaAddr: "127.0.0.1:0",
		Generate:          &no,
		Logger:            slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if !o.frontDoorTLS {
		cfg.KafkaListenTLS.Enabled = &no // the front door in plaintext (the wire phase's --front-door-tls=false)
	}
	gctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg)
	if err != nil {
		cancel()
		if tmp {
			os.RemoveAll(dir)
		}
		return nil, "", nil, err
	}
	// The bench measures the gateway, not a plan: its own gateway's demo
	// plans get limits it cannot reach, and every format (the wire phase
	// reads through the Kafka front door as partners on any plan).
	for _, p := range store.UnlimitedDemoPlans() {
		if err := g.Store().UpsertPlan(ctx, p); err != nil {
			cancel()
			g.Close()
			return nil, "", nil, fmt.Errorf("bench plans: %w", err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(gctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				fmt.Fprintln(stderr, "bench: gateway:", err)
			}
		case <-time.After(30 * time.Second):
			fmt.Fprintln(stderr, "bench: gateway did not stop within 30s")
		}
		if tmp {
			os.RemoveAll(dir)
		}
	}
	return g, dir, stop, nil
}

// raiseNoFile lifts the open-file soft limit to the hard limit and returns it.
func raiseNoFile() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl) != nil {
			_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
		}
	}
	return rl.Cur
}

func memTotalMB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb / 1024
		}
	}
	return 0
}

// loadAvg is the 1, 5 and 15 minute load average: other work on the machine
// competes with the bench for the same CPUs.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func commandLine(args []string) string {
	parts := []string{"sluice", "bench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\*?;&|<>()") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func writeMarkdown(w io.Writer, r *benchReport) {
	fmt.Fprintf(w, "## sluice bench\n\n")
	fmt.Fprintf(w, "- command: `%s`\n", r.Command)
	fmt.Fprintf(w, "- %s %s, GOMAXPROCS=%d, NumCPU=%d, memory %d MiB, open-file limit %d\n", r.GoVersion, r.OSArch, r.GOMAXPROCS, r.NumCPU, r.MemTotalMB, r.NoFile)
	if r.Mode == "in-process" {
		fmt.Fprintf(w, "- gateway: in-process (HTTP %s, embedded broker %s); broker, gateway and clients share this process and its CPUs\n", r.Target, strings.Join(r.Brokers, ","))
	} else {
		fmt.Fprintf(w, "- gateway: --target %s, brokers %s (another process)\n", r.Target, strings.Join(r.Brokers, ","))
	}
	who := r.Partner
	if who == "" {
		who = "the --token's partner"
	}
	fmt.Fprintf(w, "- streams read as %s, purpose %q\n", who, r.Purpose)
	fmt.Fprintf(w, "- product %s, topic %s, %d partitions, N = %d records in the topic", r.Product, r.Topic, r.Partitions, r.N)
	if r.Preload != nil {
		fmt.Fprintf(w, " (%d preloaded in %.2f s, %.0f records/s, mean Avro value %.0f B)", r.Preload.Produced, r.Preload.Seconds, r.Preload.RecordsPerS, r.Preload.AvgValueSize)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- started %s; load average (1/5/15 min) %s at start, %s at end\n", r.StartedAt.Format(time.RFC3339), r.LoadStart, r.LoadEnd)

	if r.Baseline != nil || r.Replay != nil {
		runs := ""
		if n := max(len(r.BaselineRuns), len(r.ReplayRuns)); n > 1 {
			runs = fmt.Sprintf(", median of %d alternating runs", n)
		}
		fmt.Fprintf(w, "\n### Replay throughput (N records, one reader%s)\n\n", runs)
		cpuWho := "bench + gateway processes"
		if r.Mode == "in-process" {
			cpuWho = "whole process: broker, gateway, client"
		}
		fmt.Fprintf(w, "| path | records | seconds | records/s | vs baseline | CPU s (%s) | cores busy | records per CPU s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n", cpuWho)
		if b := r.Baseline; b != nil {
			fmt.Fprintf(w, "| franz-go consumer + decode + identity JSON (baseline) | %d | %.3f | %.0f | 1.00 | %.2f | %.2f | %.0f |\n", b.Records, b.Seconds, b.RecordsPerS, b.CPUSeconds, b.CPUSeconds/b.Seconds, b.RecordsPerCPUS)
		}
		if s := r.Replay; s != nil {
			ratio := "-"
			if r.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f", r.Ratio)
			}
			if s.Complete {
				fmt.Fprintf(w, "| SSE stream from=earliest, 1 subscriber (%s parser) | %d | %.3f | %.0f | %s | %.2f | %.2f | %.0f |\n", s.Parser, s.Records, s.Seconds, s.RecordsPerS, ratio, s.CPUSeconds, s.CPUSeconds/s.Seconds, s.RecordsPerCPUS)
			} else {
				fmt.Fprintf(w, "| SSE stream from=earliest, 1 subscriber | %d (incomplete) | - | - | - | - | - | - |\n", s.Records)
			}
		}
		if len(r.Ratios) > 1 {
			fmt.Fprint(w, "\nPer-run records/s, baseline / SSE (ratio):")
			for i := range r.Ratios {
				fmt.Fprintf(w, " %.0f / %.0f (%.2f);", r.BaselineRuns[i].RecordsPerS, r.ReplayRuns[i].RecordsPerS, r.Ratios[i])
			}
			fmt.Fprintln(w)
		}
		if b := r.Baseline; b != nil {
			fmt.Fprintf(w, "\nBaseline: mean JSON record %.0f B, %d decode errors.", b.AvgJSONSize, b.DecodeErrors)
		}
		if s := r.Replay; s != nil {
			fmt.Fprintf(w, " SSE: first record after %.1f ms, %.1f MB of stream, %d records JSON-parsed, gateway peak RSS %.0f MiB", s.FirstRecordMS, float64(s.StreamBytes)/1e6, s.JSONParsed, s.PeakRSSMB)
			if s.Verified > 0 || s.Mismatches > 0 || s.OrderErrors > 0 {
				fmt.Fprintf(w, ", %d byte-equal to the baseline encoding, %d differ, %d gaps/duplicates", s.Verified, s.Mismatches, s.OrderErrors)
			}
			fmt.Fprint(w, ".")
		}
		fmt.Fprintln(w)
	}
	if len(r.Fanout) > 0 {
		fmt.Fprintf(w, "\n### Live fan-out (from=latest, %.0f records/s for %s, latency = receive time - Kafka timestamp, %s SSE parser)\n\n", r.Rate, r.Duration, r.Fanout[0].Parser)
		cpu := "CPU s (gateway process / bench process)"
		if r.Mode == "in-process" {
			cpu = "CPU s (whole process)"
		}
		fmt.Fprintf(w, "| subscribers | produced | delivered / expected | aggregate records/s | per-subscriber records/s min / median / max | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | catch-up reads | gateway RSS MiB idle / connected | %s |\n", cpu)
		fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, f := range r.Fanout {
			errs := strconv.Itoa(f.Errors)
			if f.ProduceErrors > 0 {
				errs += fmt.Sprintf(" (+%d produce)", f.ProduceErrors)
			}
			if f.Connected < f.Subscribers {
				errs += fmt.Sprintf(" (%d of %d connected)", f.Connected, f.Subscribers)
			}
			cpuCell := fmt.Sprintf("%.1f / %.1f", f.ServerCPU, f.BenchCPU)
			if r.Mode == "in-process" {
				cpuCell = fmt.Sprintf("%.1f", f.BenchCPU)
			}
			fmt.Fprintf(w, "| %d | %d | %d / %d | %.0f | %.0f / %.0f / %.0f | %s | %s | %s | %s | %s | %s | %.0f | %.0f / %.0f | %s |\n",
				f.Subscribers, f.Produced, f.Delivered, f.Expected, f.AggregatePerS,
				f.PerSubMinPerS, f.PerSubMedPerS, f.PerSubMaxPerS,
				fmtMs(f.P50ms), fmtMs(f.P90ms), fmtMs(f.P99ms), fmtMs(f.P999ms), fmtMs(f.MaxMs),
				errs, f.CatchUpReads, f.ServerRSSIdleMB, f.ServerRSSMB, cpuCell)
		}
		for _, f := range r.Fanout {
			if f.ErrorSample != "" {
				fmt.Fprintf(w, "\nfan-out %d, first error: %s\n", f.Subscribers, f.ErrorSample)
			}
		}
	}
	writeWireMarkdown(w, r)
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "\n### Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
	if r.Interrupted {
		fmt.Fprintf(w, "\nInterrupted: results are partial.\n")
	}
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

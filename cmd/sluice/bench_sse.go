package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/gateway/sseclient"
)

// httpTarget is the gateway under test.
type httpTarget struct {
	base    string // http://host:port
	product string
	// sourceAddrs > 1 spreads client connections over 127.0.0.1..127.0.0.N
	// (only when the target is on loopback).
	sourceAddrs int
	token       string // bearer token of the partner the streams read as
	purpose     string // the grant's purpose; empty: the partner's first grant
}

func (t httpTarget) streamURL(from string) string {
	u := t.base + "/v1/products/" + url.PathEscape(t.product) + "/stream?from=" + url.QueryEscape(from)
	if t.purpose != "" {
		u += "&purpose=" + url.QueryEscape(t.purpose)
	}
	return u
}

// streamRequest is a GET of the product's stream as the bench's partner.
func (t httpTarget) streamRequest(ctx context.Context, from string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.streamURL(from), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	return req, nil
}

// transport returns an HTTP transport for n streaming connections.
func (t httpTarget) transport() *http.Transport {
	var next atomic.Uint64
	loopback := false
	if u, err := url.Parse(t.base); err == nil {
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() && ip.To4() != nil {
			loopback = true
		}
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		if loopback && t.sourceAddrs > 1 {
			i := next.Add(1) % uint64(t.sourceAddrs)
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Transport{
		DialContext:           dial,
		DisableCompression:    true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// get fetches a small document (metrics, readyz).
func (t httpTarget) get(ctx context.Context, path string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return b, resp.StatusCode, err
}

// waitReady polls /readyz until it answers 200.
func (t httpTarget) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		_, code, err := t.get(ctx, "/readyz")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("status %d", code)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not ready after %s: %s", t.base, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serverStats are the gateway's own numbers from /metrics.
type serverStats struct {
	active     float64
	rssBytes   float64
	cpuSeconds float64
	goroutines float64
	delivered  float64
	catchUp    float64
}

func (t httpTarget) stats(ctx context.Context) (serverStats, error) {
	b, code, err := t.get(ctx, "/metrics")
	if err != nil {
		return serverStats{}, err
	}
	if code != http.StatusOK {
		return serverStats{}, fmt.Errorf("/metrics: status %d", code)
	}
	prod := `product="` + t.product + `"`
	var s serverStats
	s.active, _ = metricValue(b, "sluice_active_streams", prod, `protocol="sse"`)
	s.delivered, _ = metricValue(b, "sluice_records_delivered_total", prod, `protocol="sse"`)
	s.rssBytes, _ = metricValue(b, "process_resident_memory_bytes")
	s.cpuSeconds, _ = metricValue(b, "process_cpu_seconds_total")
	s.goroutines, _ = metricValue(b, "go_goroutines")
	s.catchUp, _ = metricValue(b, "sluice_direct_reads_total", prod, `reason="catch_up"`)
	return s, nil
}

// cpu returns the target gateway process's CPU seconds, or 0 when the
// gateway runs in this process (its CPU is then part of processCPU).
func (t httpTarget) cpu(ctx context.Context, mode string) float64 {
	if mode == "in-process" {
		return 0
	}
	st, err := t.stats(ctx)
	if err != nil {
		return 0
	}
	return st.cpuSeconds
}

type countingReader struct {
	r     io.Reader
	n     int64 // bytes read
	reads int64 // Read calls that returned bytes
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 {
		c.reads++
	}
	return n, err
}

// replayResult is one subscriber reading the preloaded records over SSE.
type replayResult struct {
	Parser        string  `json:"parser"`
	Records       int64   `json:"records"`
	Seconds       float64 `json:"seconds"`
	RecordsPerS   float64 `json:"records_per_s"`
	FirstRecordMS float64 `json:"first_record_ms"`
	StreamBytes   int64   `json:"stream_bytes"`
	JSONParsed    int64   `json:"json_parsed"`
	Verified      int64   `json:"verified_equal,omitempty"`
	Mismatches    int64   `json:"mismatches"`
	OrderErrors   int64   `json:"gap_or_duplicate"`
	Complete      bool    `json:"complete"`
	// PeakRSSMB is the gateway process's largest resident set seen during
	// the replay (its /metrics sampled every 200 ms; in-process: this whole
	// process).
	PeakRSSMB float64 `json:"gateway_peak_rss_mb"`
	// CPUSeconds: as for the baseline.
	CPUSeconds     float64 `json:"cpu_seconds"`
	RecordsPerCPUS float64 `json:"records_per_cpu_second"`
}

// replay reads want records from=earliest over one SSE stream. JSON is
// parsed for every sample-th record, or for all with verify, which also
// checks that offsets are contiguous per partition (no gap, no duplicate)
// and, with hashes, that each record equals the baseline's encoding.
func replay(ctx context.Context, t httpTarget, rng topicRange, want int64, sample int, verify bool, hashes *recordHashes, idle time.Duration, parser string) (res replayResult, err error) {
	res.Parser = parser
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := t.transport()
	defer tr.CloseIdleConnections()
	start := time.Now()
	req, err := t.streamRequest(ctx, "earliest")
	if err != nil {
		return res, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return res, fmt.Errorf("replay: status %d: %s", resp.StatusCode, b)
	}
	cr := &countingReader{r: resp.Body}
	var rd eventSource = sseclientSource{sseclient.NewReader(cr)}
	if parser == "lean" {
		rd = newLeanScanner(cr)
	}

	// A stalled stream ends the phase instead of hanging it.
	var progress atomic.Int64
	var stalled atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(idle / 4)
		defer tk.Stop()
		last, lastAt := int64(-1), time.Now()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if n := progress.Load(); n != last {
					last, lastAt = n, time.Now()
				} else if time.Since(lastAt) > idle {
					stalled.Store(true)
					cancel()
					return
				}
			}
		}
	}()

	// Sample the gateway's RSS while it serves the replay.
	var peakRSS atomic.Uint64
	go func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			if st, err := t.stats(ctx); err == nil && uint64(st.rssBytes) > peakRSS.Load() {
				peakRSS.Store(uint64(st.rssBytes))
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	defer func() { res.PeakRSSMB = float64(peakRSS.Load()) / (1 << 20) }()

	next := append([]int64(nil), rng.start...)
	var m map[string]any
	for res.Records < want {
		typ, data, err := rd.next()
		if err != nil {
			res.StreamBytes = cr.n
			if stalled.Load() {
				return res, fmt.Errorf("replay: stalled after %d of %d records (no record for %s)", res.Records, want, idle)
			}
			return res, fmt.Errorf("replay: after %d of %d records: %w", res.Records, want, err)
		}
		switch string(typ) {
		case "record":
		case "error", "shutdown":
			return res, fmt.Errorf("replay: after %d records the server sent %s: %s", res.Records, typ, data)
		default:
			continue
		}
		if res.Records == 0 {
			res.FirstRecordMS = float64(time.Since(start).Microseconds()) / 1000
		}
		res.Records++
		progress.Store(res.Records)
		if verify || (sample > 0 && res.Records%int64(sample) == 0) {
			clear(m)
			if err := json.Unmarshal(data, &m); err != nil {
				return res, fmt.Errorf("replay: record %d is not JSON: %v: %.200s", res.Records, err, data)
			}
			if _, ok := m["_offset"]; !ok {
				return res, fmt.Errorf("replay: record %d has no _offset: %.200s", res.Records, data)
			}
			res.JSONParsed++
		}
		if verify {
			part, off, ok := extractPosition(data)
			if !ok || int(part) >= len(next) {
				res.OrderErrors++
				continue
			}
			if off != next[part] {
				res.OrderErrors++
			}
			next[part] = off + 1
			if hashes != nil {
				if s := hashes.slot(part, off); s != nil && *s != 0 {
					if *s == hash64(data) {
						res.Verified++
					} else {
						res.Mismatches++
					}
				}
			}
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.RecordsPerS = float64(res.Records) / res.Seconds
	res.StreamBytes = cr.n
	res.Complete = true
	return res, nil
}

// fanoutResult is one live fan-out round.
type fanoutResult struct {
	Subscribers     int     `json:"subscribers"`
	Connected       int     `json:"connected"`
	ConnectSeconds  float64 `json:"connect_seconds"`
	Rate            float64 `json:"rate"`
	Parser          string  `json:"parser"`
	Produced        int64   `json:"produced"`
	ProduceSeconds  float64 `json:"produce_seconds"`
	ProduceErrors   int64   `json:"produce_errors"`
	Expected        int64   `json:"expected_deliveries"`
	Delivered       int64   `json:"delivered"`
	CompleteSubs    int     `json:"complete_subscribers"`
	AggregatePerS   float64 `json:"aggregate_records_per_s"`
	PerSubMinPerS   float64 `json:"per_sub_min_records_per_s"`
	PerSubMedPerS   float64 `json:"per_sub_median_records_per_s"`
	PerSubMaxPerS   float64 `json:"per_sub_max_records_per_s"`
	P50ms           float64 `json:"p50_ms"`
	P90ms           float64 `json:"p90_ms"`
	P99ms           float64 `json:"p99_ms"`
	P999ms          float64 `json:"p999_ms"`
	MaxMs           float64 `json:"max_ms"`
	MeanMs          float64 `json:"mean_ms"`
	Errors          int     `json:"errors"`
	ErrorSample     string  `json:"error_sample,omitempty"`
	BadTimestamps   int64   `json:"bad_timestamps"`
	ServerRSSIdleMB float64 `json:"server_rss_before_mb"`
	ServerRSSMB     float64 `json:"server_rss_connected_mb"`
	ServerRSSEndMB  float64 `json:"server_rss_after_mb"`
	ServerCPU       float64 `json:"server_cpu_seconds"`
	BenchCPU        float64 `json:"bench_process_cpu_seconds"`
	Goroutines      float64 `json:"server_goroutines_connected"`
	CatchUpReads    float64 `json:"catch_up_direct_reads"`
}

type fanSub struct {
	hist  latencyHist
	count atomic.Int64
	bad   int64
	last  time.Time
	err   error
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// fanout connects n subscribers from=latest, waits until the gateway counts
// them as active streams, produces at rate for d, waits up to drain for the
// records to arrive, and measures produce-to-receive latency from each
// record's _timestamp (the Kafka timestamp the producer set).
func fanout(ctx context.Context, t httpTarget, lp *liveProducer, n int, rate float64, d, drain, connectTimeout time.Duration, parser, memProfile string, log func(string, ...any)) (fanoutResult, error) {
	res := fanoutResult{Subscribers: n, Rate: rate, Parser: parser}
	before, err := t.stats(ctx)
	if err != nil {
		return res, err
	}
	res.ServerRSSIdleMB = before.rssBytes / (1 << 20)
	sctx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	tr := t.transport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	subs := make([]*fanSub, n)
	var wg sync.WaitGroup
	var connected, failed atomic.Int64
	sem := make(chan struct{}, 64) // connects in flight
	connStart := time.Now()
	for i := range subs {
		s := &fanSub{}
		subs[i] = s
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-sctx.Done():
				return
			}
			req, err := t.streamRequest(sctx, "latest")
			if err != nil {
				<-sem
				s.err = err
				failed.Add(1)
				return
			}
			resp, err := client.Do(req)
			<-sem
			if err != nil {
				if sctx.Err() == nil {
					s.err = err
				}
				failed.Add(1)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				s.err = fmt.Errorf("status %d: %s", resp.StatusCode, b)
				failed.Add(1)
				return
			}
			connected.Add(1)
			// Events that arrived in one read share its receive time: the
			// clock is read once per read from the socket, not per event.
			body := &countingReader{r: resp.Body}
			var src eventSource = newLeanScanner(body)
			if parser == "sseclient" {
				src = sseclientSource{sseclient.NewReader(body)}
			}
			var now time.Time
			var reads int64
			for {
				typ, data, err := src.next()
				if err != nil {
					if sctx.Err() == nil {
						s.err = err
					}
					return
				}
				if body.reads != reads {
					reads, now = body.reads, time.Now()
				}
				switch string(typ) {
				case "record":
					ts, ok := extractTimestamp(data)
					if !ok {
						s.bad++
						continue
					}
					s.hist.Record(now.UnixMicro() - ts*1000)
					s.last = now
					s.count.Add(1)
				case "error", "shutdown":
					s.err = fmt.Errorf("server sent %s: %.200s", typ, data)
					return
				}
			}
		})
	}
	// Wait until every subscriber connected (or failed) and the gateway
	// counts them: only then is from=latest resolved for all of them.
	deadline := time.Now().Add(connectTimeout)
	for {
		st, err := t.stats(ctx)
		if err == nil && int(connected.Load()+failed.Load()) == n && st.active >= before.active+float64(connected.Load()) {
			res.ServerRSSMB = st.rssBytes / (1 << 20)
			res.Goroutines = st.goroutines
			break
		}
		if ctx.Err() != nil {
			cancelSubs()
			wg.Wait()
			return res, ctx.Err()
		}
		if time.Now().After(deadline) {
			cancelSubs()
			wg.Wait()
			return res, fmt.Errorf("fan-out %d: only %d subscribers connected (%d failed, gateway counts %.0f active) after %s",
				n, connected.Load(), failed.Load(), st.active-before.active, connectTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.ConnectSeconds = time.Since(connStart).Seconds()
	res.Connected = int(connected.Load())
	log("fan-out %d: %d connected in %.2fs; producing %.0f records/s for %s", n, res.Connected, res.ConnectSeconds, rate, d)

	statsStart, _ := t.stats(ctx)
	cpuStart := processCPU()
	lp.acked.Store(0)
	lp.errs.Store(0)
	prodStart := time.Now()
	produced, prodElapsed, perr := lp.run(ctx, rate, d, max(drain, 30*time.Second))
	res.Produced = produced
	res.ProduceSeconds = prodElapsed.Seconds()
	res.ProduceErrors = lp.errs.Load()
	if perr != nil && ctx.Err() == nil {
		log("fan-out %d: producer: %v", n, perr)
	}
	acked := lp.acked.Load()
	res.Expected = acked * int64(res.Connected)
	// Drain: wait until every live subscriber has every acknowledged record.
	drainEnd := time.Now().Add(drain)
	for time.Now().Before(drainEnd) && ctx.Err() == nil {
		var got int64
		for _, s := range subs {
			got += min(s.count.Load(), acked)
		}
		if got >= res.Expected {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	statsEnd, _ := t.stats(context.WithoutCancel(ctx)) // also after Ctrl-C
	if memProfile != "" {
		// While every subscriber is still connected: what the gateway holds.
		if err := writeHeapProfile(fmt.Sprintf("%s.%d", memProfile, n)); err != nil {
			log("fan-out %d: heap profile: %v", n, err)
		}
	}
	res.ServerCPU = statsEnd.cpuSeconds - statsStart.cpuSeconds
	res.CatchUpReads = statsEnd.catchUp - statsStart.catchUp
	res.BenchCPU = processCPU() - cpuStart
	res.ServerRSSEndMB = statsEnd.rssBytes / (1 << 20)
	cancelSubs()
	wg.Wait()

	var all latencyHist
	var rates []float64
	var lastAll time.Time
	for _, s := range subs {
		c := s.count.Load()
		res.Delivered += c
		res.BadTimestamps += s.bad
		if c >= acked && acked > 0 {
			res.CompleteSubs++
		}
		if s.err != nil {
			res.Errors++
			if res.ErrorSample == "" {
				res.ErrorSample = s.err.Error()
			}
		}
		all.Merge(&s.hist)
		if c > 0 {
			if s.last.After(lastAll) {
				lastAll = s.last
			}
			rates = append(rates, float64(c)/s.last.Sub(prodStart).Seconds())
		} else if s.err == nil {
			rates = append(rates, 0)
		}
	}
	if !lastAll.IsZero() {
		res.AggregatePerS = float64(res.Delivered) / lastAll.Sub(prodStart).Seconds()
	}
	if len(rates) > 0 {
		slices.Sort(rates)
		res.PerSubMinPerS = rates[0]
		res.PerSubMedPerS = rates[len(rates)/2]
		res.PerSubMaxPerS = rates[len(rates)-1]
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	res.P50ms = ms(all.Quantile(0.50))
	res.P90ms = ms(all.Quantile(0.90))
	res.P99ms = ms(all.Quantile(0.99))
	res.P999ms = ms(all.Quantile(0.999))
	res.MaxMs = ms(all.Max())
	res.MeanMs = all.Mean() / 1000

	// Let the gateway close the streams before the next round.
	closeDeadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(closeDeadline) && ctx.Err() == nil {
		st, err := t.stats(ctx)
		if err == nil && st.active <= before.active {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if perr != nil {
		return res, fmt.Errorf("producer: %w", perr)
	}
	return res, nil
}

package main

import (
	"bytes"
	"math"
	"math/bits"
	"strconv"
	"time"
)

// latencyHist is an HDR-style histogram of non-negative integer values
// (microseconds in the bench): values below 128 have their own bucket, larger
// ones fall in log2 ranges split into 64 linear sub-buckets, so a bucket is
// at most 1/64 (1.6%) of its values wide. Recording is a few instructions and
// never allocates; min, max, count and sum are exact.
type latencyHist struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histLinear  = 128 // values 0..127 are exact
	histSub     = 64  // sub-buckets per power of two above that
	histMaxBits = 40  // values are clamped below 2^40 µs (about 12.7 days)
	histBuckets = histLinear + (histMaxBits-7)*histSub
)

func histIndex(v int64) int {
	if v < histLinear {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	if v >= 1<<histMaxBits {
		v = 1<<histMaxBits - 1
	}
	shift := bits.Len64(uint64(v)) - 7 // v>>shift is in [64, 128)
	return histLinear + (shift-1)*histSub + int(v>>shift) - histSub
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi int64) {
	if i < histLinear {
		return int64(i), int64(i)
	}
	shift := (i-histLinear)/histSub + 1
	m := int64((i-histLinear)%histSub + histSub)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one value; negative values count as 0.
func (h *latencyHist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds o's values to h.
func (h *latencyHist) Merge(o *latencyHist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *latencyHist) Count() uint64 { return h.n }

// Max is the largest recorded value (0 when empty).
func (h *latencyHist) Max() int64 { return h.max }

// Mean is the average recorded value (0 when empty).
func (h *latencyHist) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns a value v such that at least q of the recorded values
// are <= v: the upper bound of the bucket holding the value of rank
// ceil(q*n), capped by the exact maximum. It never understates.
func (h *latencyHist) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	q = math.Min(math.Max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := histBounds(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}

var timestampKey = []byte(`"_timestamp":"`)

// extractTimestamp finds `"_timestamp":"<RFC 3339>"` in a sluice record's
// JSON and returns it in ms since the epoch. Every view ends its records
// with the field, so it is searched from the end. The common form
// (2006-01-02T15:04:05.000Z, as sluice writes it) is parsed by hand; other
// RFC 3339 forms fall back to time.Parse.
func extractTimestamp(data []byte) (int64, bool) {
	// Fast path: sluice ends every record with `"_timestamp":"<24 chars>"}`.
	if n := len(data); n >= len(timestampKey)+26 && data[n-1] == '}' && data[n-2] == '"' &&
		bytes.Equal(data[n-26-len(timestampKey):n-26], timestampKey) {
		if ms, ok := parseMillisUTC(data[n-26 : n-2]); ok {
			return ms, true
		}
	}
	i := bytes.LastIndex(data, timestampKey)
	if i < 0 {
		return 0, false
	}
	s := data[i+len(timestampKey):]
	end := bytes.IndexByte(s, '"')
	if end < 0 {
		return 0, false
	}
	s = s[:end]
	if ms, ok := parseMillisUTC(s); ok {
		return ms, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return 0, false
	}
	return t.UnixMilli(), true
}

// parseMillisUTC parses exactly "YYYY-MM-DDTHH:MM:SS.mmmZ".
func parseMillisUTC(s []byte) (int64, bool) {
	if len(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return 0, false
	}
	num := func(b []byte) (int, bool) {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(s[0:4])
	mo, ok2 := num(s[5:7])
	d, ok3 := num(s[8:10])
	hh, ok4 := num(s[11:13])
	mm, ok5 := num(s[14:16])
	ss, ok6 := num(s[17:19])
	ms, ok7 := num(s[20:23])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 {
		return 0, false
	}
	return time.Date(y, time.Month(mo), d, hh, mm, ss, ms*int(time.Millisecond), time.UTC).UnixMilli(), true
}

// extractPosition reads `"_partition":P,"_offset":O` from a record's JSON.
func extractPosition(data []byte) (part int32, off int64, ok bool) {
	i := bytes.LastIndex(data, []byte(`"_partition":`))
	if i < 0 {
		return 0, 0, false
	}
	rest := data[i+len(`"_partition":`):]
	j := bytes.IndexByte(rest, ',')
	if j < 0 {
		return 0, 0, false
	}
	p, err := strconv.ParseInt(string(rest[:j]), 10, 32)
	if err != nil {
		return 0, 0, false
	}
	rest = rest[j:]
	if !bytes.HasPrefix(rest, []byte(`,"_offset":`)) {
		return 0, 0, false
	}
	rest = rest[len(`,"_offset":`):]
	k := bytes.IndexByte(rest, ',')
	if k < 0 {
		return 0, 0, false
	}
	o, err := strconv.ParseInt(string(rest[:k]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return int32(p), o, true
}

// metricValue returns the sum of the samples of metric name whose labels
// include every label in want (`key="value"` pairs), from Prometheus text
// exposition format.
func metricValue(body []byte, name string, want ...string) (float64, bool) {
	var total float64
	found := false
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(line) == 0 || line[0] == '#' || !bytes.HasPrefix(line, []byte(name)) {
			continue
		}
		rest := line[len(name):]
		var labels []byte
		switch {
		case len(rest) > 0 && rest[0] == '{':
			end := bytes.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		case len(rest) > 0 && rest[0] == ' ':
		default:
			continue // another metric with this name as prefix
		}
		match := true
		for _, w := range want {
			if !bytes.Contains(labels, []byte(w)) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(fields[0]), 64)
		if err != nil {
			continue
		}
		total += v
		found = true
	}
	return total, found
}

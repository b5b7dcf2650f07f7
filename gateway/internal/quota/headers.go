package quota

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// The RateLimit header fields follow draft-ietf-httpapi-ratelimit-headers-11
// (23 May 2026): both fields are Structured Field Lists (RFC 9651) of Items
// whose value is a String naming the policy, with Integer parameters.
//
//	RateLimit-Policy: "records";q=2000;w=1, "bytes";q=1000000;qu="content-bytes";w=1
//	RateLimit: "records";r=1500;t=1, "bytes";r=1000000;t=0
//
// RateLimit-Policy advertises the plan, which is stable across responses
// (draft §3): q is the bucket depth in units (rate*Burst, rounded down) and w
// is Burst in whole seconds (rounded up), so q/w never overstates the rate.
// The "bytes" item carries qu="content-bytes" (a registered unit, §3.1.2);
// "records" has no registered unit and is named by the policy instead.
//
// RateLimit reports this bucket's state (draft §4): r is the whole tokens
// available now (0 in debt) and t the seconds, rounded up, until the bucket
// is full again (0 when full). Under a coordinator's SetRate share, r and t
// are those of the share while the policy still shows the plan, as in the
// draft's "dynamic limits" examples (§B.2.2).
//
// A dimension the plan does not limit is not listed; when neither is
// limited both fields are removed.
const (
	PolicyRecords = "records"
	PolicyBytes   = "bytes"
)

// maxSFInteger is the largest Integer a Structured Field may carry
// (RFC 9651 §3.3.1: at most 15 digits).
const maxSFInteger = 999_999_999_999_999

// Headers sets RateLimit-Policy and RateLimit on h for the bucket's current
// state. Use it on admitted REST responses; use ThrottledHeaders on a 429.
func (b *Bucket) Headers(h http.Header) { b.headers(h, -1) }

// ThrottledHeaders sets the fields of a throttled response: Retry-After
// (whole seconds, rounded up, at least 1) and the RateLimit fields, with each
// effective window t capped at Retry-After so that Retry-After does not
// point before the end of the window (draft §6).
func (b *Bucket) ThrottledHeaders(h http.Header, retryAfter time.Duration) {
	ra := RetryAfterSeconds(retryAfter)
	h.Set("Retry-After", strconv.FormatInt(ra, 10))
	b.headers(h, ra)
}

// RetryAfterSeconds converts a wait to a Retry-After delay-seconds value:
// rounded up, at least 1, so a client that honours it finds the tokens there.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 1
	}
	return max(ceilDiv(int64(d), int64(time.Second)), 1)
}

func (b *Bucket) headers(h http.Header, maxT int64) {
	now := b.now()
	b.mu.Lock()
	plan, depth, recs, byts := b.plan, b.depth, b.records, b.bytes
	b.mu.Unlock()

	var planRecs, planBytes dim
	planRecs.set(plan.RecordsPerSec)
	planBytes.set(plan.BytesPerSec)
	if planRecs.rate == 0 && planBytes.rate == 0 {
		h.Del("RateLimit-Policy")
		h.Del("RateLimit")
		return
	}
	burst := int64(plan.burst())
	w := ceilDiv(burst, int64(time.Second))

	var pbuf, sbuf [160]byte
	policy, state := pbuf[:0], sbuf[:0]
	add := func(name, unit string, planDim, cur dim) {
		if planDim.rate == 0 {
			return
		}
		if len(policy) > 0 {
			policy = append(policy, ", "...)
			state = append(state, ", "...)
		}
		q := sfInt(planDim.rate * float64(burst) / 1e9)
		policy = appendItem(policy, name)
		policy = append(policy, ";q="...)
		policy = strconv.AppendInt(policy, q, 10)
		if unit != "" {
			policy = append(policy, `;qu="`...)
			policy = append(policy, unit...)
			policy = append(policy, '"')
		}
		policy = append(policy, ";w="...)
		policy = strconv.AppendInt(policy, w, 10)

		r, t := q, int64(0)
		if cur.rate != 0 {
			r = sfInt(cur.tokens(now, depth))
			t = ceilDiv(max(cur.full-now, 0), int64(time.Second))
		}
		if maxT >= 0 {
			t = min(t, maxT)
		}
		state = appendItem(state, name)
		state = append(state, ";r="...)
		state = strconv.AppendInt(state, r, 10)
		state = append(state, ";t="...)
		state = strconv.AppendInt(state, t, 10)
	}
	add(PolicyRecords, "", planRecs, recs)
	add(PolicyBytes, "content-bytes", planBytes, byts)
	h.Set("RateLimit-Policy", string(policy))
	h.Set("RateLimit", string(state))
}

// appendItem appends name as an sf-string; policy names are constants made
// of characters that need no escaping.
func appendItem(b []byte, name string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"')
}

// sfInt rounds a count of units down to a Structured Field Integer in
// [0, maxSFInteger]. The small epsilon absorbs float error in products that
// are whole numbers (rate*burst).
func sfInt(v float64) int64 {
	v = math.Floor(v + 1e-9)
	switch {
	case !(v > 0):
		return 0
	case v >= maxSFInteger:
		return maxSFInteger
	}
	return int64(v)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

package httpapi

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/internal/hub"
	"github.com/sluicehq/sluice/gateway/internal/quota"
)

// Quota is the plan a request runs under, for one partner and product: its
// rate, concurrent streams and monthly quota, and the metering of what is
// delivered. The gateway implements it on the subscription's plan; a nil
// Quota is unlimited and unmetered.
//
// Each protocol enforces it in its own way: REST pages are cut to the
// tokens the rate bucket holds and refused with 429 when it holds none; SSE
// batches are paced (Wait), never dropped; a stream over the plan's
// concurrent streams is refused with 429; a used-up monthly quota is a 403.
type Quota interface {
	// Bucket is the rate bucket of the partner and product (this replica's
	// share of the plan's rate).
	Bucket() *quota.Bucket
	// Asked records demand, in records wanted, whether or not it is served:
	// replicas split the plan's rate by it.
	Asked(records int)
	// Refused counts a refusal by the named limit (for /metrics).
	Refused(limit string)
	// OpenStream takes one of the plan's concurrent streams; ok is false
	// when all are in use (limit says how many there are).
	OpenStream() (release func(), limit int, ok bool)
	// Remaining is the number of records left this month
	// (math.MaxInt64 when unlimited) and when the quota resets.
	Remaining() (records int64, resets time.Time)
	// Delivered meters records and bytes the client was sent.
	Delivered(records, bytes int)
	// BatchHint bounds an SSE batch so that one paced wait stays short
	// (about a quarter of a second at the plan's rate).
	BatchHint(max int) int
}

// quotaExhausted is the 403 of a used-up monthly quota.
func quotaExhausted(resets time.Time) *Problem {
	pr := newProblem(ProblemQuotaExhausted, http.StatusForbidden,
		"the plan's monthly record quota is used up; it resets at "+resets.UTC().Format(time.RFC3339)+" (the start of next month, UTC)")
	pr.Limit = "monthly_record_quota"
	pr.Resets = resets.UTC().Format(time.RFC3339)
	return pr
}

// rateLimited writes the 429 of a spent rate bucket, with Retry-After and
// the RateLimit and RateLimit-Policy fields.
func rateLimited(w http.ResponseWriter, r *http.Request, q Quota, retry time.Duration, limit string) {
	q.Refused(limit)
	b := q.Bucket()
	b.ThrottledHeaders(w.Header(), retry)
	pr := newProblem(ProblemRateLimited, http.StatusTooManyRequests,
		"the plan's "+limitWords(limit)+" is spent; retry after "+strconv.FormatInt(quota.RetryAfterSeconds(retry), 10)+" s")
	pr.Limit = limit
	writeProblem(w, r, pr)
}

func limitWords(limit string) string {
	if limit == "bytes_per_second" {
		return "bytes per second"
	}
	return "records per second"
}

// restBudget is how many records and bytes a REST page may carry now: the
// rate bucket's tokens, the monthly quota and the requested limit. When
// nothing may be served, it writes the refusal and returns ok false.
func restBudget(w http.ResponseWriter, r *http.Request, q Quota, limit int) (records int, bytes float64, ok bool) {
	if q == nil {
		return limit, math.Inf(1), true
	}
	q.Asked(limit)
	left, resets := q.Remaining()
	if left <= 0 {
		q.Refused("monthly_record_quota")
		writeProblem(w, r, quotaExhausted(resets))
		return 0, 0, false
	}
	b := q.Bucket()
	tr, tb := b.Tokens()
	if tr < 1 || tb < 1 {
		// Nothing to serve: how long until one record (and a byte) fits.
		okTake, retry := b.Take(1, 1)
		if okTake {
			b.Charge(-1, -1) // it refilled meanwhile: give it back, retry at once
			retry = time.Millisecond
		}
		which := "records_per_second"
		if tr >= 1 {
			which = "bytes_per_second"
		}
		rateLimited(w, r, q, retry, which)
		return 0, 0, false
	}
	n := int64(limit)
	n = min(n, left, int64(tr))
	return int(n), tb, true
}

// cut returns how many of evs' records fit records and bytes (at least
// the first record is never cut for bytes when it alone exceeds the budget:
// then none fit), the bytes they take, and the positions after the last
// event kept. from is where the page started; extra partitions that
// appeared start at their first event.
func cut(evs []hub.Event, from []int64, parts int, records int, bytes float64) (kept, size int, pos []int64, all bool) {
	pos = append(make([]int64, 0, parts), from...)
	for len(pos) < parts {
		p := len(pos)
		at := int64(math.MaxInt64)
		for _, e := range evs {
			if int(e.Partition) == p && e.Offset < at {
				at = e.Offset
			}
		}
		if at == math.MaxInt64 {
			at = 0
		}
		pos = append(pos, at)
	}
	for i := range evs {
		e := &evs[i]
		if e.Data != nil {
			if kept == records || float64(size+len(e.Data)) > bytes {
				return kept, size, pos, false
			}
			kept++
			size += len(e.Data)
		}
		pos[e.Partition] = e.Offset + 1
	}
	return kept, size, pos, true
}

// pace waits for the bucket to allow a batch (SSE): nothing is dropped, the
// stream just goes at the plan's rate and, if it falls behind, later reads
// catch up from Kafka.
func pace(ctx context.Context, q Quota, records, bytes int) error {
	if q == nil || records == 0 {
		return nil
	}
	q.Asked(records)
	return q.Bucket().Wait(ctx, records, bytes)
}

// nextCursor encodes positions for product id.
func nextCursor(id string, pos []int64) string { return cursor.Encode(cursor.Tag(id), pos) }

// Package quota enforces a partner's plan inside one process: records/s and
// bytes/s, concurrent streams, and the monthly record quota.
//
// It owns:
//
//   - Bucket, a token bucket over records and bytes with one depth (the
//     plan's Burst, as time at the rate). REST admits with Take (all or
//     nothing, with an exact retry time); SSE paces with Wait (never drops;
//     a batch larger than the burst is delivered and waited off). Charge
//     accounts for costs known only afterwards (a page's encoded bytes).
//     SetRate lets a future global coordinator give this replica its share
//     of the plan's rate; Consumed reports the local demand it would weigh.
//   - The IETF RateLimit-Policy and RateLimit fields of a bucket, and
//     Retry-After on throttled responses, per
//     draft-ietf-httpapi-ratelimit-headers-11 (see headers.go for the exact
//     syntax and how a token bucket maps onto it).
//   - Streams, the count of open streams per key against a limit.
//   - Registry, one bucket per (partner, product), created full on first
//     use, updated in place when the plan changes (the tokens it holds are
//     kept), forgotten on revocation.
//   - Monthly, MonthStart and NextMonth: the pure arithmetic of the monthly
//     quota, which resets at the first instant of each month, UTC.
//
// It does not: count or persist usage (the store and metering do; Monthly
// is given the count), coordinate replicas (a coordinator adjusts buckets
// with SetRate), or write responses (handlers turn a refusal into 429 or 403
// problem+json and call ThrottledHeaders).
//
// Zero values: a rate, a stream limit or a monthly quota of 0 is unlimited;
// a Burst of 0 is one second. Validate limits once, where plans are loaded.
//
// Measuring a rate: a new bucket is full, so a client that starts greedy
// gets the burst on top of the rate (2000 rec/s with a 1 s burst gives 22000
// records in the first 10 s, +10%). Sustained-rate checks measure from the
// first refusal, as this package's tests do.
package quota

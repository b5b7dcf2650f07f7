package quota

import (
	"math"
	"time"
)

// Monthly decides a monthly record quota: a partner that has received used
// records this month may be served while used < quota (quota <= 0:
// unlimited). remaining is what is left (math.MaxInt64 when unlimited, 0 when
// exhausted), for clamping a page. resets is when the quota starts over: the
// first instant of the month after now, in UTC.
//
// A request that starts under the quota is served even if it ends over it;
// the next one is refused. Handlers that must not overshoot clamp to
// remaining.
func Monthly(used, quota int64, now time.Time) (allowed bool, remaining int64, resets time.Time) {
	resets = NextMonth(now)
	if quota <= 0 {
		return true, math.MaxInt64, resets
	}
	remaining = max(quota-max(used, 0), 0)
	return remaining > 0, remaining, resets
}

// MonthStart returns the first instant of t's month in UTC: where "used this
// month" is counted from.
func MonthStart(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
}

// NextMonth returns the first instant of the month after t's, in UTC.
func NextMonth(t time.Time) time.Time {
	y, m, _ := t.UTC().Date()
	return time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC) // December + 1 normalises to January
}

package quota

import (
	"math"
	"testing"
	"time"
)

func TestMonthly(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		note          string
		used, quota   int64
		now           string
		allowed       bool
		remaining     int64
		start, resets string
	}{
		{"under quota", 10, 100, "2026-05-14T09:30:00Z", true, 90, "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
		{"one record left", 99, 100, "2026-05-14T09:30:00Z", true, 1, "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
		{"exactly at quota", 100, 100, "2026-05-14T09:30:00Z", false, 0, "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
		{"over quota (a page overshot)", 150, 100, "2026-05-14T09:30:00Z", false, 0, "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
		{"last nanosecond of the month", 100, 100, "2026-05-31T23:59:59.999999999Z", false, 0, "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
		{"first instant of the month", 0, 100, "2026-06-01T00:00:00Z", true, 100, "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"},
		{"end of year", 5, 100, "2026-12-31T23:59:59Z", true, 95, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"leap year February 29th", 1, 100, "2028-02-29T12:00:00Z", true, 99, "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"},
		{"January 31st does not skip February", 1, 100, "2028-01-31T23:00:00Z", true, 99, "2028-01-01T00:00:00Z", "2028-02-01T00:00:00Z"},
		{"non-leap February 28th", 1, 100, "2027-02-28T23:59:59Z", true, 99, "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"},
		{"local time already in next month UTC", 1, 100, "2026-03-31T23:30:00-02:00", true, 99, "2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z"},
		{"local time still in previous month UTC", 1, 100, "2026-04-01T01:30:00+03:00", true, 99, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
		{"no quota", 1 << 40, 0, "2026-05-14T09:30:00Z", true, math.MaxInt64, "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
		{"negative used counts as 0", -5, 100, "2026-05-14T09:30:00Z", true, 100, "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
	} {
		now := utc(c.now)
		allowed, remaining, resets := Monthly(c.used, c.quota, now)
		if allowed != c.allowed || remaining != c.remaining || !resets.Equal(utc(c.resets)) || resets.Location() != time.UTC {
			t.Errorf("%s: Monthly(%d, %d, %s) = %v, %d, %s; want %v, %d, %s UTC",
				c.note, c.used, c.quota, c.now, allowed, remaining, resets, c.allowed, c.remaining, c.resets)
		}
		if got := MonthStart(now); !got.Equal(utc(c.start)) || got.Location() != time.UTC {
			t.Errorf("%s: MonthStart(%s) = %s; want %s", c.note, c.now, got, c.start)
		}
		if !resets.After(now) || MonthStart(now).After(now) {
			t.Errorf("%s: %s not in [MonthStart, resets)", c.note, c.now)
		}
	}
}

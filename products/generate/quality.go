package generate

import (
	"math"
	"time"
)

// nqInterval is the measurement interval of network-quality records.
const nqInterval = 60 * time.Second

// qualityModel reports radio KPIs per cell and interval: each cell once
// per interval, for the interval that ended last.
type qualityModel struct{}

var qualityFields = []string{"cell_id", "site_id", "region", "technology", "interval_start", "interval_s",
	"rsrp_avg_dbm", "rsrq_avg_db", "sinr_avg_db", "latency_p50_ms", "latency_p95_ms", "dl_throughput_mbps",
	"ul_throughput_mbps", "prb_utilisation_pct", "drop_rate_pct", "availability_pct", "active_users",
	"site_lat", "site_lon", "slice_id"}

func (*qualityModel) fields() []string { return qualityFields }

// nqState walks the cells interval by interval.
type nqState struct {
	order    []int     // cells (indexes into world.cells) in reporting order
	cells    int       // how many of order report per interval under Run, scaled to the rate
	interval time.Time // start of the interval being reported
	cursor   int       // position in order of the next cell to report
}

// reportInterval is the start of the last complete interval at t.
func reportInterval(t time.Time) time.Time {
	return t.Truncate(nqInterval).Add(-nqInterval)
}

// nqDue reports whether, at wall time now, a cell is due to report: Run
// spreads the reporting cells evenly over each interval. The first call
// skips the cells that would have reported before Run started.
func (g *Generator) nqDue(now time.Time) bool {
	st := &g.nq
	iv := reportInterval(now)
	frac := float64(now.Sub(iv.Add(nqInterval))) / float64(nqInterval)
	due := min(st.cells, int(float64(st.cells)*frac)+1)
	if iv.After(st.interval) {
		first := st.interval.IsZero()
		st.interval, st.cursor = iv, 0
		if first {
			st.cursor = due - 1
		}
	}
	return st.cursor < due
}

func (*qualityModel) build(g *Generator, t time.Time) (string, map[string]any, time.Time) {
	st := &g.nq
	if iv := reportInterval(t); iv.After(st.interval) {
		st.interval, st.cursor = iv, 0
	}
	if st.cursor >= len(st.order) {
		// Every cell has reported this interval (Next called for
		// network-quality faster than the clock moves): move on to the next
		// interval, and the clock past its end.
		st.interval, st.cursor = st.interval.Add(nqInterval), 0
		t = st.interval.Add(nqInterval)
		g.advanceTo(t)
	}
	c := g.w.cells[st.order[st.cursor]]
	st.cursor++
	r := g.r
	iv := st.interval

	var base struct{ latency, dl, ul float64 }
	switch c.tech {
	case techLTE:
		base.latency, base.dl, base.ul = 28, 60, 14
	case techNRNSA:
		base.latency, base.dl, base.ul = 17, 210, 32
	default:
		base.latency, base.dl, base.ul = 9, 340, 65
	}
	load := clamp(diurnal(iv)*c.loadBias*(1+0.08*r.NormFloat64()), 0.03, 1)
	availability := 100.0
	dropRate := 0.15 + 1.2*load*load + 0.05*r.NormFloat64()
	if r.Float64() < 0.004 { // outage for part of the interval
		availability = 95 * r.Float64()
		load *= availability / 100
		dropRate += 5 + 10*r.Float64()
	}
	latency := base.latency * (1 + 0.8*load*load) * (1 + 0.05*r.NormFloat64())
	m := map[string]any{
		"cell_id":             c.id,
		"site_id":             c.siteID,
		"region":              c.region,
		"technology":          c.tech,
		"interval_start":      iv,
		"interval_s":          int(nqInterval / time.Second),
		"rsrp_avg_dbm":        round(c.rsrp-4*load+1.5*r.NormFloat64(), 2),
		"rsrq_avg_db":         round(clamp(-8-6*load+0.8*r.NormFloat64(), -20, -3), 2),
		"sinr_avg_db":         round(clamp(c.sinr-6*load+1.2*r.NormFloat64(), -10, 30), 2),
		"latency_p50_ms":      round(latency, 2),
		"latency_p95_ms":      round(latency*(1.8+1.2*r.Float64()), 2),
		"dl_throughput_mbps":  round(base.dl*(1-0.7*load)*(0.85+0.3*r.Float64()), 2),
		"ul_throughput_mbps":  round(base.ul*(1-0.6*load)*(0.85+0.3*r.Float64()), 2),
		"prb_utilisation_pct": round(clamp(100*load*(0.9+0.2*r.Float64()), 0.5, 99.5), 2),
		"drop_rate_pct":       round(math.Max(0, dropRate), 3),
		"availability_pct":    round(availability, 2),
		"active_users":        int(math.Round(c.capacity * load)),
		"site_lat":            c.lat,
		"site_lon":            c.lon,
		"slice_id":            nil,
	}
	if c.slice != "" {
		m["slice_id"] = c.slice
	}
	return c.id, m, t
}

// diurnal is the network load profile over the day (Central European
// Time, without daylight saving): lowest around 04:00, busiest in the
// evening; 0.15 to 1.
func diurnal(t time.Time) float64 {
	h := float64(t.Add(time.Hour).UTC().Hour()) + float64(t.Minute())/60
	v := 0.15 + 0.7*(0.5-0.5*math.Cos(2*math.Pi*(h-4)/24)) + 0.15*math.Exp(-math.Pow((h-20.5)/1.5, 2))
	return clamp(v, 0.15, 1)
}

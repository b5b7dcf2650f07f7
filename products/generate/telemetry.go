package generate

import (
	"math"
	"slices"
	"time"
)

// telemetryModel reports the health and position of IoT devices.
type telemetryModel struct{}

var telemetryFields = []string{"device_id", "imei", "iccid", "platform", "device_type", "firmware", "battery_pct",
	"rsrp_dbm", "sinr_db", "cell_id", "lat", "lon", "temperature_c", "error_codes", "event_time"}

func (telemetryModel) fields() []string { return telemetryFields }

func (telemetryModel) build(g *Generator, t time.Time) (string, map[string]any, time.Time) {
	r := g.r
	d := g.w.devices[pick(r, g.w.devCum)]
	if d.moving {
		d.lat, d.lon = offset(d.lat, d.lon, 0.8*r.Float64(), 2*math.Pi*r.Float64())
		if distanceKm(d.lat, d.lon, d.homeLat, d.homeLon) > 25 { // head back towards the depot
			d.lat, d.lon = d.lat+(d.homeLat-d.lat)*0.2, d.lon+(d.homeLon-d.lon)*0.2
		}
	}
	var battery any
	if d.battery >= 0 {
		d.battery -= 0.05 + 0.3*r.Float64()
		if d.battery < 3 {
			d.battery = 100 // recharged or replaced
		}
		battery = round(d.battery, 1)
	}
	c := g.w.nearestCell(d.lat, d.lon)
	dist := distanceKm(d.lat, d.lon, c.lat, c.lon)
	loss := math.Log10(dist/0.2 + 1)
	temp := d.setpoint + 0.8*r.NormFloat64()
	codes := []int{}
	switch {
	case d.kind == "temp-logger" && r.Float64() < 0.01:
		temp += 6 + 4*r.Float64() // excursion: door open or cooling failure
		codes = append(codes, 301)
	case d.battery >= 0 && d.battery < 10 && slices.Contains(d.errorSet, 102):
		codes = append(codes, 102)
	case r.Float64() < 0.04:
		codes = append(codes, int(d.errorSet[r.IntN(len(d.errorSet))]))
	}
	m := map[string]any{
		"device_id":     d.id,
		"imei":          d.imei,
		"iccid":         d.iccid,
		"platform":      d.platform,
		"device_type":   d.kind,
		"firmware":      d.firmware,
		"battery_pct":   battery,
		"rsrp_dbm":      round(clamp(-75-22*loss-d.indoorLos+3*r.NormFloat64(), -140, -44), 1),
		"sinr_db":       round(clamp(18-5*loss-d.indoorLos/3+3*r.NormFloat64(), -10, 30), 1),
		"cell_id":       c.id,
		"lat":           round(d.lat, 5),
		"lon":           round(d.lon, 5),
		"temperature_c": round(temp, 1),
		"error_codes":   codes,
		"event_time":    t,
	}
	return d.id, m, t
}

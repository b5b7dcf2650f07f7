package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Services, as the cdr schema spells them.
const (
	serviceVoice = "VOICE"
	serviceSMS   = "SMS"
	serviceData  = "DATA"
)

// cdrModel writes charging records of the subscriber pool: ordinary usage,
// and now and then the activity of a fraud incident (see fraud.go).
type cdrModel struct{}

var cdrFields = []string{"record_id", "imsi", "msisdn", "imei", "mvno_id", "service", "start_time", "duration_s",
	"bytes_up", "bytes_down", "cell_id", "roaming", "visited_mcc", "charge", "currency"}

func (cdrModel) fields() []string { return cdrFields }

// cdrRec is a charging record before encoding.
type cdrRec struct {
	sub      *subscriber
	imei     string // device used, when not the subscriber's current one
	service  string
	dur      int // seconds
	up, down int64
	cell     string
	roaming  bool
	visited  string // MCC of the visited network, when roaming
	charge   float64
	// startAgo back-dates the record: it started startAgo+dur before it
	// was written.
	startAgo time.Duration
}

// pendingShare is the chance that a charging record comes from the queue of
// fraud incident activity rather than ordinary usage, while it is not empty.
const pendingShare = 0.35

func (cdrModel) build(g *Generator, t time.Time) (string, map[string]any, time.Time) {
	var c cdrRec
	if len(g.fraud.pending) > 0 && g.r.Float64() < pendingShare {
		c = g.fraud.pending[0]
		g.fraud.pending = g.fraud.pending[1:]
	} else {
		c = g.usage(g.w.pickSubscriber(g.r))
	}
	imei := c.imei
	if imei == "" {
		imei = c.sub.imei
	}
	var visited any
	if c.visited != "" {
		visited = c.visited
	}
	m := map[string]any{
		"record_id":   newUUID(g.r),
		"imsi":        c.sub.imsi,
		"msisdn":      c.sub.msisdn,
		"imei":        imei,
		"mvno_id":     c.sub.mvno.id,
		"service":     c.service,
		"start_time":  t.Add(-c.startAgo - time.Duration(c.dur)*time.Second),
		"duration_s":  c.dur,
		"bytes_up":    c.up,
		"bytes_down":  c.down,
		"cell_id":     c.cell,
		"roaming":     c.roaming,
		"visited_mcc": visited,
		"charge":      c.charge,
		"currency":    "EUR",
	}
	return c.sub.msisdn, m, t
}

// country is a destination of roaming subscribers.
type country struct {
	iso, mcc, name string
	lat, lon       float64
	eu             bool // roam like at home: no surcharge
	weight         float64
}

var countries = []country{
	{"AT", "232", "Austria", 48.21, 16.37, true, 14},
	{"FR", "208", "France", 48.86, 2.35, true, 10},
	{"ES", "214", "Spain", 40.42, -3.70, true, 12},
	{"IT", "222", "Italy", 41.90, 12.50, true, 12},
	{"NL", "204", "Netherlands", 52.37, 4.90, true, 8},
	{"PL", "260", "Poland", 52.23, 21.01, true, 6},
	{"DK", "238", "Denmark", 55.68, 12.57, true, 4},
	{"HR", "219", "Croatia", 45.81, 15.98, true, 5},
	{"CH", "228", "Switzerland", 46.95, 7.45, false, 8},
	{"GB", "234", "United Kingdom", 51.51, -0.13, false, 6},
	{"TR", "286", "Turkey", 41.01, 28.98, false, 6},
	{"US", "310", "United States", 40.71, -74.01, false, 4},
	{"AE", "424", "United Arab Emirates", 25.20, 55.27, false, 2},
	{"TH", "520", "Thailand", 13.75, 100.50, false, 2},
	{"BR", "724", "Brazil", -23.55, -46.63, false, 1},
}

var countryCum = func() []float64 {
	var cum []float64
	var total float64
	for _, c := range countries {
		total += c.weight
		cum = append(cum, total)
	}
	return cum
}()

// visitedCell returns a cell id on a visited network of the country.
func visitedCell(r *rand.Rand, c *country) string {
	return fmt.Sprintf("%s-%02d-%07X", c.mcc, 1+r.IntN(3), r.IntN(1<<28))
}

// usage draws one ordinary charging record of s.
func (g *Generator) usage(s *subscriber) cdrRec {
	r := g.r
	c := cdrRec{sub: s}
	switch x := r.Float64(); {
	case x < 0.55:
		c.service = serviceData
	case x < 0.82:
		c.service = serviceVoice
	default:
		c.service = serviceSMS
	}
	roam := 0.02
	if s.traveller {
		roam = 0.25
	}
	var visited *country
	if r.Float64() < roam {
		visited = &countries[pick(r, countryCum)]
		c.roaming, c.visited, c.cell = true, visited.mcc, visitedCell(r, visited)
	} else {
		c.cell = g.homeCell(s).id
	}
	switch c.service {
	case serviceVoice:
		if r.Float64() < 0.08 {
			c.dur = r.IntN(6) // not answered, or cut
		} else {
			c.dur = int(clamp(lognormal(r, 75, 1.0), 6, 7200))
		}
	case serviceData:
		// Data sessions are written as interim records every 15 minutes.
		c.dur = int(clamp(lognormal(r, 240, 1.0), 5, 900))
		c.down = int64(clamp(lognormal(r, 15e6, 1.3), 2e3, 2e9))
		c.up = int64(float64(c.down) * (0.04 + 0.16*r.Float64()))
	}
	c.charge = tariff(s, &c, visited)
	return c
}

// homeCell is where s usually is: its home cell, or another cell of its city.
func (g *Generator) homeCell(s *subscriber) *cell {
	if g.r.Float64() < 0.65 {
		return g.w.cells[s.home]
	}
	cells := g.w.cities[s.city].cells
	return g.w.cells[cells[g.r.IntN(len(cells))]]
}

// tariff prices a record in EUR: flat plans pay nothing at home and in the
// EU (roam like at home), pay-as-you-go pays per minute, SMS and MB, and
// roaming outside the EU is expensive (data capped at 59.50 per record).
func tariff(s *subscriber, c *cdrRec, visited *country) float64 {
	nonEU := visited != nil && !visited.eu
	minutes := math.Ceil(float64(c.dur) / 60)
	mb := float64(c.up+c.down) / 1e6
	var eur float64
	switch c.service {
	case serviceVoice:
		switch {
		case nonEU:
			eur = minutes * 1.99
		case s.payg:
			eur = minutes * 0.09
		}
	case serviceSMS:
		switch {
		case nonEU:
			eur = 0.59
		case s.payg:
			eur = 0.09
		}
	case serviceData:
		switch {
		case nonEU:
			eur = math.Min(mb*0.99, 59.50)
		case s.payg:
			eur = math.Min(mb*0.0099, 9.99)
		}
	}
	return round(eur, 2)
}

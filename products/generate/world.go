package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// The host network: every cell of the grid belongs to PLMN 262-01 and the
// IoT SIMs are its own.
const (
	hostMCC = "262"
	hostMNC = "01"
)

// mvnoSpec describes one MVNO brand of the synthetic world: its own MNC (its
// IMSI range), market share and the host number ranges its MSISDNs come
// from. Prefixes are German mobile prefixes without the trunk 0.
type mvnoSpec struct {
	id       string
	mnc      string
	share    float64
	prefixes []string
}

var mvnoSpecs = []mvnoSpec{
	{"mvno-a", "20", 0.35, []string{"1511", "1512", "1515", "1516", "160", "170", "171", "175"}},
	{"mvno-b", "22", 0.25, []string{"1520", "1522", "1523", "1525", "162", "172", "173", "174"}},
	{"mvno-c", "33", 0.20, []string{"1573", "1575", "1577", "1578", "163", "176", "177", "178", "179"}},
	{"mvno-d", "41", 0.12, []string{"1590", "1514", "1517", "176", "179"}},
	{"mvno-e", "43", 0.08, []string{"1521", "1529", "1570", "162", "172"}},
}

// phoneTACs are type allocation codes of the handsets subscribers carry;
// moduleTACs of cellular IoT modules. Synthetic but shaped like real ones
// (35... from GSMA-accredited bodies, 86... from China).
var (
	phoneTACs  = []string{"35332811", "35391110", "35925406", "35407115", "35290611", "35875011", "86950405", "86768604", "35688909", "35176712", "86423305", "35240410"}
	moduleTACs = []string{"86753604", "86695104", "35278411", "35484710", "86445104", "35916808"}
)

type mvno struct {
	id       string
	mnc      string
	share    float64
	prefixes []string
	subs     []*subscriber
}

type subscriber struct {
	mvno   *mvno
	imsi   string
	msisdn string
	iccid  string
	imei   string
	city   int // index into world.cities
	home   int // home cell, index into world.cells
	payg   bool
	// traveller subscribers roam more often than others.
	traveller bool
}

type city struct {
	name     string
	lat, lon float64
	cells    []int // indexes into world.cells
}

// Radio technologies, as the network-quality schema spells them.
const (
	techLTE   = "LTE"
	techNRNSA = "NR_NSA"
	techNRSA  = "NR_SA"
)

type cell struct {
	id       string
	siteID   string
	region   string
	city     int
	tech     string
	lat, lon float64
	sector   int     // 0..2, 120 degrees each
	slice    string  // enterprise slice (S-NSSAI) of a campus cell, or ""
	capacity float64 // RRC-connected users at full load
	rsrp     float64 // baseline mean RSRP, dBm
	sinr     float64 // baseline mean SINR, dB
	loadBias float64 // how busy this cell is compared to others
}

type device struct {
	id        string
	imei      string
	iccid     string
	platform  string
	kind      string
	firmware  string
	moving    bool
	lat, lon  float64
	homeLat   float64
	homeLon   float64
	battery   float64 // percent; <0 for mains-powered devices
	setpoint  float64 // temperature the device usually reports, Celsius
	errorSet  []int32
	indoorLos float64 // extra path loss, dB
}

type world struct {
	mvnos   []*mvno
	subs    []*subscriber
	subCum  []float64 // cumulative pick weights over subs
	cities  []city
	cells   []*cell
	devices []*device
	devCum  []float64 // cumulative pick weights over devices

	used map[string]bool // identifiers handed out, to keep them unique
}

var citySpecs = []struct {
	name     string
	code     string
	lat, lon float64
	regions  []string
}{
	{"Berlin", "BER", 52.5200, 13.4050, []string{"Berlin-Mitte", "Berlin-Kreuzberg", "Berlin-Friedrichshain", "Berlin-Prenzlauer-Berg", "Berlin-Charlottenburg", "Berlin-Neukoelln", "Berlin-Schoeneberg", "Berlin-Spandau", "Berlin-Tempelhof", "Berlin-Pankow"}},
	{"Munich", "MUC", 48.1372, 11.5756, []string{"Munich-Altstadt", "Munich-Schwabing", "Munich-Maxvorstadt", "Munich-Haidhausen", "Munich-Sendling", "Munich-Pasing", "Munich-Bogenhausen", "Munich-Giesing", "Munich-Neuhausen", "Munich-Moosach"}},
}

// Enterprise campus slices, one per city, on its first standalone-5G site.
var campusSlices = []string{"1-0000A1", "1-0000B2"}

type platformSpec struct {
	platform string
	kind     string
	prefix   string
	count    int
	moving   bool
	battery  bool
	setpoint func(r *rand.Rand) float64
	firmware []string
	errors   []int32
	weight   float64 // relative report frequency
	indoor   float64
}

var platformSpecs = []platformSpec{
	{"iot-fleet", "asset-tracker", "fleet-trk", 70, true, true, func(r *rand.Rand) float64 { return 12 + 4*r.NormFloat64() },
		[]string{"2.4.1", "2.4.3", "2.5.0"}, []int32{101, 102, 150, 900}, 1.0, 0},
	{"iot-fleet", "telematics-unit", "fleet-tcu", 50, true, false, func(r *rand.Rand) float64 { return 28 + 5*r.NormFloat64() },
		[]string{"5.1.12", "5.2.0"}, []int32{401, 402, 900}, 2.0, 0},
	{"iot-meter", "smart-meter", "meter-sm", 150, false, false, func(r *rand.Rand) float64 { return 17 + 2*r.NormFloat64() },
		[]string{"1.9.7", "2.0.1"}, []int32{201, 202, 210, 900}, 0.3, 15},
	{"iot-coldchain", "temp-logger", "cold-tl", 80, true, true, func(r *rand.Rand) float64 {
		if r.IntN(3) == 0 {
			return 4
		}
		return -18
	}, []string{"3.0.4", "3.1.0"}, []int32{301, 302, 102, 900}, 1.0, 5},
}

// newWorld builds the synthetic world deterministically from r.
func newWorld(r *rand.Rand, subsPerMVNO int) *world {
	w := &world{used: map[string]bool{}}
	w.buildCells(r)
	w.buildSubscribers(r, subsPerMVNO)
	w.buildDevices(r)
	return w
}

// unique draws from gen until it yields an identifier not handed out yet.
func (w *world) unique(gen func() string) string {
	for {
		id := gen()
		if !w.used[id] {
			w.used[id] = true
			return id
		}
	}
}

func (w *world) buildCells(r *rand.Rand) {
	const sitesPerCity = 10
	enb, gnb := 0x1A000, 0x2B0000
	for ci, cs := range citySpecs {
		c := city{name: cs.name, lat: cs.lat, lon: cs.lon}
		techs := []string{techLTE, techLTE, techLTE, techLTE, techNRNSA, techNRNSA, techNRNSA, techNRNSA, techNRSA, techNRSA}
		r.Shuffle(len(techs), func(i, j int) { techs[i], techs[j] = techs[j], techs[i] })
		campus := false
		for s := range sitesPerCity {
			// Sites spread over ~8 km around the centre, denser inside.
			dist := 0.6 + 7*math.Sqrt(r.Float64())
			bearing := 2 * math.Pi * r.Float64()
			lat, lon := offset(cs.lat, cs.lon, dist, bearing)
			tech := techs[s]
			slice := ""
			if tech == techNRSA && !campus {
				slice, campus = campusSlices[ci], true
			}
			siteID := fmt.Sprintf("%s-S%02d", cs.code, s+1)
			for sector := range 3 {
				cl := &cell{
					siteID:   siteID,
					region:   cs.regions[s],
					city:     ci,
					tech:     tech,
					lat:      round(lat, 5),
					lon:      round(lon, 5),
					sector:   sector,
					slice:    slice,
					rsrp:     -88 - 10*r.Float64(),
					sinr:     10 + 8*r.Float64(),
					loadBias: 0.6 + 0.6*r.Float64(),
				}
				switch tech {
				case techLTE:
					cl.id = fmt.Sprintf("%s-%s-%07X", hostMCC, hostMNC, enb<<8|(sector+1))
					cl.capacity = 160 + 60*r.Float64()
				default:
					cl.id = fmt.Sprintf("%s-%s-%09X", hostMCC, hostMNC, gnb<<12|(sector+1))
					cl.capacity = 220 + 100*r.Float64()
				}
				if slice != "" {
					cl.capacity = 40 + 20*r.Float64()
					cl.loadBias = 0.5
				}
				c.cells = append(c.cells, len(w.cells))
				w.cells = append(w.cells, cl)
			}
			if tech == techLTE {
				enb++
			} else {
				gnb++
			}
		}
		w.cities = append(w.cities, c)
	}
}

func (w *world) buildSubscribers(r *rand.Rand, perMVNO int) {
	var total float64
	for _, spec := range mvnoSpecs {
		m := &mvno{id: spec.id, mnc: spec.mnc, share: spec.share, prefixes: spec.prefixes}
		for range perMVNO {
			ci := 0
			if r.Float64() < 0.45 {
				ci = 1
			}
			s := &subscriber{
				mvno:      m,
				imsi:      w.unique(func() string { return newIMSI(r, m.mnc) }),
				msisdn:    w.unique(func() string { return newMSISDN(r, m.prefixes[r.IntN(len(m.prefixes))]) }),
				iccid:     w.unique(func() string { return newICCID(r, m.mnc) }),
				imei:      w.unique(func() string { return newIMEI(r, phoneTACs[r.IntN(len(phoneTACs))]) }),
				city:      ci,
				home:      w.cities[ci].cells[r.IntN(len(w.cities[ci].cells))],
				payg:      r.Float64() < 0.15,
				traveller: r.Float64() < 0.08,
			}
			m.subs = append(m.subs, s)
			w.subs = append(w.subs, s)
			// Heavy-tailed activity: a few subscribers make most records.
			total += spec.share / float64(perMVNO) * math.Exp(0.9*r.NormFloat64())
			w.subCum = append(w.subCum, total)
		}
		w.mvnos = append(w.mvnos, m)
	}
}

func (w *world) buildDevices(r *rand.Rand) {
	var total float64
	for _, ps := range platformSpecs {
		for i := range ps.count {
			c := citySpecs[r.IntN(len(citySpecs))]
			lat, lon := offset(c.lat, c.lon, 12*math.Sqrt(r.Float64()), 2*math.Pi*r.Float64())
			d := &device{
				id:        fmt.Sprintf("%s-%05d", ps.prefix, i+1),
				imei:      w.unique(func() string { return newIMEI(r, moduleTACs[r.IntN(len(moduleTACs))]) }),
				iccid:     w.unique(func() string { return newICCID(r, hostMNC) }),
				platform:  ps.platform,
				kind:      ps.kind,
				firmware:  ps.firmware[r.IntN(len(ps.firmware))],
				moving:    ps.moving,
				lat:       lat,
				lon:       lon,
				homeLat:   c.lat,
				homeLon:   c.lon,
				battery:   -1,
				setpoint:  ps.setpoint(r),
				errorSet:  ps.errors,
				indoorLos: ps.indoor,
			}
			if ps.battery {
				d.battery = 20 + 80*r.Float64()
			}
			w.devices = append(w.devices, d)
			total += ps.weight
			w.devCum = append(w.devCum, total)
		}
	}
}

// pick returns an index drawn with the weights whose running sums are cum.
func pick(r *rand.Rand, cum []float64) int {
	x := r.Float64() * cum[len(cum)-1]
	return min(sort.SearchFloat64s(cum, x), len(cum)-1)
}

func (w *world) pickSubscriber(r *rand.Rand) *subscriber {
	return w.subs[pick(r, w.subCum)]
}

// pickOther returns a subscriber of the same MVNO other than s.
func (w *world) pickOther(r *rand.Rand, s *subscriber) *subscriber {
	subs := s.mvno.subs
	for {
		o := subs[r.IntN(len(subs))]
		if o != s || len(subs) == 1 {
			return o
		}
	}
}

// nearestCell returns the cell serving a position: the nearest site, and
// its sector facing the position.
func (w *world) nearestCell(lat, lon float64) *cell {
	best, bestD := 0, math.Inf(1)
	for i := 0; i < len(w.cells); i += 3 {
		if d := distanceKm(lat, lon, w.cells[i].lat, w.cells[i].lon); d < bestD {
			best, bestD = i, d
		}
	}
	site := w.cells[best]
	b := bearingDeg(site.lat, site.lon, lat, lon)
	return w.cells[best+min(int(b/120), 2)]
}

const earthRadiusKm = 6371

// offset moves (lat, lon) by dist km towards bearing (radians).
func offset(lat, lon, dist, bearing float64) (float64, float64) {
	dLat := dist * math.Cos(bearing) / 111.32
	dLon := dist * math.Sin(bearing) / (111.32 * math.Cos(lat*math.Pi/180))
	return lat + dLat, lon + dLon
}

// distanceKm is the great-circle distance between two positions.
func distanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dp, dl := p2-p1, (lon2-lon1)*math.Pi/180
	a := math.Sin(dp/2)*math.Sin(dp/2) + math.Cos(p1)*math.Cos(p2)*math.Sin(dl/2)*math.Sin(dl/2)
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(a))
}

// bearingDeg is the initial bearing from the first to the second position,
// 0..360 degrees.
func bearingDeg(lat1, lon1, lat2, lon2 float64) float64 {
	p1, p2 := lat1*math.Pi/180, lat2*math.Pi/180
	dl := (lon2 - lon1) * math.Pi / 180
	y := math.Sin(dl) * math.Cos(p2)
	x := math.Cos(p1)*math.Sin(p2) - math.Sin(p1)*math.Cos(p2)*math.Cos(dl)
	return math.Mod(math.Atan2(y, x)*180/math.Pi+360, 360)
}

func round(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}

func clamp(v, lo, hi float64) float64 {
	return math.Max(lo, math.Min(hi, v))
}

// lognormal draws from a log-normal distribution with the given median.
func lognormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fraud types and alert states, as the fraud-alerts schema spells them.
const (
	fraudSIMSwap      = "SIM_SWAP"
	fraudIRSF         = "IRSF"
	fraudWangiri      = "WANGIRI"
	fraudRoaming      = "ROAMING_ANOMALY"
	fraudSubscription = "SUBSCRIPTION_FRAUD"
	fraudCloning      = "DEVICE_CLONING"

	statusOpen          = "OPEN"
	statusInvestigating = "INVESTIGATING"
	statusConfirmed     = "CONFIRMED"
	statusDismissed     = "DISMISSED"
)

var fraudTypes = []struct {
	typ    string
	weight float64
}{
	{fraudSIMSwap, 0.25}, {fraudIRSF, 0.20}, {fraudWangiri, 0.20},
	{fraudRoaming, 0.15}, {fraudSubscription, 0.10}, {fraudCloning, 0.10},
}

var fraudTypeCum = func() []float64 {
	var cum []float64
	var total float64
	for _, f := range fraudTypes {
		total += f.weight
		cum = append(cum, total)
	}
	return cum
}()

// numberRange is a block of external numbers (E.164 prefix and how many
// digits follow it).
type numberRange struct {
	prefix string
	name   string
	digits int
}

// Premium-rate international ranges IRSF traffic goes to, and ranges
// Wangiri one-ring calls come from.
var (
	premiumRanges = []numberRange{
		{"5352", "Cuba", 6}, {"37181", "Latvia", 6}, {"25290", "Somalia", 6}, {"23276", "Sierra Leone", 6},
		{"22462", "Guinea", 7}, {"88213", "International Networks (+882)", 8}, {"8816", "Iridium (+881)", 8},
		{"2399", "Sao Tome and Principe", 6},
	}
	wangiriRanges = []numberRange{
		{"22507", "Cote d'Ivoire", 8}, {"2163", "Tunisia", 7}, {"37368", "Moldova", 6}, {"2224", "Mauritania", 7},
	}
)

func (nr numberRange) number(r *rand.Rand) string {
	b := append([]byte(nil), nr.prefix...)
	return string(appendDigits(b, r, nr.digits))
}

// fraudModel raises alerts about subscribers of the pool. Each alert but
// the first concludes an incident planned when the previous alert was
// raised, whose charging records (SIM swap followed by premium calls, IRSF
// bursts, one-ring calls and the call-back, usage in two distant countries,
// one IMEI on two SIMs) are queued for cdrModel in the meantime. Some
// alerts are re-published later with a new status.
type fraudModel struct{}

var fraudFields = []string{"alert_id", "type", "score", "imsi", "msisdn", "imei", "mvno_id", "detected_at",
	"status", "rule", "evidence", "related_numbers"}

func (fraudModel) fields() []string { return fraudFields }

type alert struct {
	id       string
	typ      string
	score    float64
	sub      *subscriber
	imei     string // "" when no device is involved
	detected time.Time
	status   string
	rule     string
	evidence string
	related  []string
}

// fraudState holds incidents in flight.
type fraudState struct {
	pending []cdrRec // incident activity cdrModel has not written yet
	next    *alert   // the alert concluding the incident now pending
	open    []*alert // raised alerts whose status may still change
}

const (
	maxPending    = 400 // beyond this, incidents leave no charging records
	maxOpenAlerts = 32
	updateShare   = 0.25 // share of alert records that are status updates
)

func (fraudModel) build(g *Generator, t time.Time) (string, map[string]any, time.Time) {
	st := &g.fraud
	r := g.r
	var a *alert
	if len(st.open) > 0 && r.Float64() < updateShare {
		i := r.IntN(len(st.open))
		a = st.open[i]
		switch x := r.Float64(); {
		case a.status == statusOpen && x < 0.6:
			a.status = statusInvestigating
		case a.status == statusOpen && x < 0.85, a.status == statusInvestigating && x < 0.65:
			a.status = statusConfirmed
		default:
			a.status = statusDismissed
		}
		if a.status == statusConfirmed || a.status == statusDismissed {
			st.open = slices.Delete(st.open, i, i+1)
		}
	} else {
		if st.next == nil {
			st.next = g.planIncident()
		}
		a, st.next = st.next, g.planIncident()
		a.detected = t
		if len(st.open) == maxOpenAlerts {
			st.open = slices.Delete(st.open, 0, 1)
		}
		st.open = append(st.open, a)
	}
	var imei any
	if a.imei != "" {
		imei = a.imei
	}
	m := map[string]any{
		"alert_id":        a.id,
		"type":            a.typ,
		"score":           a.score,
		"imsi":            a.sub.imsi,
		"msisdn":          a.sub.msisdn,
		"imei":            imei,
		"mvno_id":         a.sub.mvno.id,
		"detected_at":     a.detected,
		"status":          a.status,
		"rule":            a.rule,
		"evidence":        a.evidence,
		"related_numbers": a.related,
	}
	return a.sub.msisdn, m, t
}

// planIncident picks a fraud pattern and a subscriber, queues the
// incident's charging records and returns the alert that will conclude it.
func (g *Generator) planIncident() *alert {
	r := g.r
	sub := g.w.pickSubscriber(r)
	a := &alert{id: newUUID(r), typ: fraudTypes[pick(r, fraudTypeCum)].typ, sub: sub, status: statusOpen, related: []string{}}
	var recs []cdrRec
	switch a.typ {
	case fraudSIMSwap:
		oldTAC := sub.imei[:8]
		sub.imei = g.w.unique(func() string {
			tac := phoneTACs[r.IntN(len(phoneTACs))]
			if tac == oldTAC {
				tac = phoneTACs[(slices.Index(phoneTACs, tac)+1)%len(phoneTACs)]
			}
			return newIMEI(r, tac)
		})
		sub.iccid = g.w.unique(func() string { return newICCID(r, sub.mvno.mnc) })
		dest := premiumRanges[r.IntN(len(premiumRanges))]
		for range 1 + r.IntN(3) {
			a.related = append(a.related, dest.number(r))
		}
		n, minutes, eur := 3+r.IntN(4), 0, 0.0
		for range n {
			dur := 300 + r.IntN(2100)
			ch := round(math.Ceil(float64(dur)/60)*(2.49+r.Float64()), 2)
			recs = append(recs, cdrRec{sub: sub, service: serviceVoice, dur: dur, cell: g.homeCell(sub).id, charge: ch})
			minutes += int(math.Ceil(float64(dur) / 60))
			eur += ch
		}
		a.imei, a.score, a.rule = sub.imei, 0.80+0.18*r.Float64(), "sim-swap-velocity-v3"
		a.evidence = fmt.Sprintf("SIM re-issued and device changed (TAC %s to %s); %d outgoing calls to premium-rate numbers in %s, %d min, EUR %.2f, within %d min of the change",
			oldTAC, sub.imei[:8], n, dest.name, minutes, eur, 5+r.IntN(40))

	case fraudIRSF:
		dests := []numberRange{premiumRanges[r.IntN(len(premiumRanges))], premiumRanges[r.IntN(len(premiumRanges))]}
		for range 2 + r.IntN(3) {
			a.related = append(a.related, dests[r.IntN(2)].number(r))
		}
		n, minutes, eur := 8+r.IntN(13), 0, 0.0
		for range n {
			dur := 60 + r.IntN(1740)
			ch := round(math.Ceil(float64(dur)/60)*(1.5+2*r.Float64()), 2)
			recs = append(recs, cdrRec{sub: sub, service: serviceVoice, dur: dur, cell: g.homeCell(sub).id, charge: ch})
			minutes += int(math.Ceil(float64(dur) / 60))
			eur += ch
		}
		names := []string{dests[0].name}
		if dests[1].name != dests[0].name {
			names = append(names, dests[1].name)
		}
		a.score, a.rule = 0.70+0.27*r.Float64(), "irsf-premium-range-burst-v2"
		a.evidence = fmt.Sprintf("%d calls to %d premium-rate numbers in %s within %d min; %d min in total, EUR %.2f",
			n, len(a.related), strings.Join(names, " and "), 20+r.IntN(100), minutes, eur)

	case fraudWangiri:
		src := wangiriRanges[r.IntN(len(wangiriRanges))]
		for range 1 + r.IntN(2) {
			a.related = append(a.related, src.number(r))
		}
		victims := 5 + r.IntN(11)
		for range victims - 1 {
			v := g.w.pickSubscriber(r)
			recs = append(recs, cdrRec{sub: v, service: serviceVoice, dur: r.IntN(2), cell: g.homeCell(v).id})
		}
		dur := 30 + r.IntN(370)
		ch := round(math.Ceil(float64(dur)/60)*3.99, 2)
		recs = append(recs, cdrRec{sub: sub, service: serviceVoice, dur: r.IntN(2), cell: g.homeCell(sub).id},
			cdrRec{sub: sub, service: serviceVoice, dur: dur, cell: g.homeCell(sub).id, charge: ch})
		a.score, a.rule = 0.60+0.30*r.Float64(), "wangiri-callback-v1"
		a.evidence = fmt.Sprintf("%d one-ring calls (under 2 s) from %d numbers in %s to subscribers within %d min; this subscriber called back for %d s (EUR %.2f)",
			victims, len(a.related), src.name, 3+r.IntN(15), dur, ch)

	case fraudRoaming:
		var from, to *country
		for from == nil || distanceKm(from.lat, from.lon, to.lat, to.lon) < 1500 {
			from, to = &countries[r.IntN(len(countries))], &countries[r.IntN(len(countries))]
		}
		km := distanceKm(from.lat, from.lon, to.lat, to.lon)
		gap := time.Duration(20+r.IntN(70)) * time.Minute
		for i, c := range []*country{from, to} {
			rec := cdrRec{sub: sub, service: serviceData, dur: 30 + r.IntN(600), roaming: true, visited: c.mcc, cell: visitedCell(r, c)}
			rec.down = int64(lognormal(r, 2e6, 1))
			rec.up = rec.down / 8
			if i == 0 {
				rec.startAgo = gap
			}
			rec.charge = tariff(sub, &rec, c)
			recs = append(recs, rec)
		}
		a.score, a.rule = 0.75+0.20*r.Float64(), "roaming-impossible-travel-v2"
		a.evidence = fmt.Sprintf("usage in %s (MCC %s) and in %s (MCC %s) %d min apart; the %.0f km between them take at least %.1f h by air",
			from.name, from.mcc, to.name, to.mcc, int(gap.Minutes()), km, km/900)

	case fraudSubscription:
		a.score, a.rule = 0.50+0.40*r.Float64(), "subscription-new-account-burst-v1"
		a.evidence = fmt.Sprintf("contract %d days old; %d international calls and %.1f GB of data in the first 24 h; identity document flagged by the credit check",
			1+r.IntN(6), 15+r.IntN(60), 2+10*r.Float64())

	case fraudCloning:
		orig := g.w.pickOther(r, sub)
		here := g.w.cells[orig.home]
		other := g.w.cities[(orig.city+1)%len(g.w.cities)]
		there := g.w.cells[other.cells[r.IntN(len(other.cells))]]
		window := 1 + r.IntN(5)
		recs = append(recs,
			cdrRec{sub: orig, service: serviceVoice, dur: 30 + r.IntN(300), cell: here.id, startAgo: time.Duration(window) * time.Minute},
			cdrRec{sub: sub, imei: orig.imei, service: serviceData, dur: 60 + r.IntN(600), cell: there.id, down: int64(lognormal(r, 5e6, 1)), up: 200_000})
		a.imei, a.score, a.rule = orig.imei, 0.70+0.25*r.Float64(), "device-imei-duplicate-v1"
		a.evidence = fmt.Sprintf("IMEI seen with 2 SIMs in cells %.0f km apart within %d min",
			distanceKm(here.lat, here.lon, there.lat, there.lon), window)
	}
	a.score = round(a.score, 3)
	if len(g.fraud.pending) < maxPending {
		g.fraud.pending = append(g.fraud.pending, recs...)
	}
	return a
}

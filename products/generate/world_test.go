package generate

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/products"
)

func TestLuhn(t *testing.T) {
	for _, tt := range []struct {
		number string
		valid  bool
	}{
		{"79927398713", true},
		{"79927398710", false},
		{"490154203237518", true}, // the IMEI example of 3GPP TS 23.003
		{"490154203237519", false},
		{"89014103211118510720", true},
		{"8901410321111851072a", false},
		{"", false},
	} {
		if got := LuhnValid(tt.number); got != tt.valid {
			t.Errorf("LuhnValid(%q) = %v, want %v", tt.number, got, tt.valid)
		}
	}
	if d, err := LuhnCheckDigit("49015420323751"); err != nil || d != '8' {
		t.Errorf("LuhnCheckDigit(49015420323751) = %c, %v; want 8", d, err)
	}
	if _, err := LuhnCheckDigit("12a"); err == nil {
		t.Error("LuhnCheckDigit(12a) succeeded")
	}
	if !ValidIMEI("490154203237518") || ValidIMEI("49015420323751") {
		t.Error("ValidIMEI")
	}
	if !ValidICCID("89014103211118510720") || ValidICCID("79014103211118510720") {
		t.Error("ValidICCID")
	}
	if !ValidCellID("262-01-1A00301") || !ValidCellID("262-01-2B0000001") || ValidCellID("262-01-1a00301") || ValidCellID("262-1-1A00301") {
		t.Error("ValidCellID")
	}
}

func TestWorld(t *testing.T) {
	w := newWorld(rand.New(rand.NewPCG(1, 2)), 200)
	seen := map[string]bool{}
	once := func(kind, id string) {
		if seen[id] {
			t.Errorf("%s %s handed out twice", kind, id)
		}
		seen[id] = true
	}
	if len(w.mvnos) != 5 || len(w.subs) != 1000 {
		t.Fatalf("%d MVNOs, %d subscribers; want 5 and 1000", len(w.mvnos), len(w.subs))
	}
	for _, m := range w.mvnos {
		for _, s := range m.subs {
			if !ValidIMSI(s.imsi) || !strings.HasPrefix(s.imsi, "262"+m.mnc) {
				t.Errorf("%s imsi %q: want 262%s + 10 digits", m.id, s.imsi, m.mnc)
			}
			if !ValidMSISDN(s.msisdn) || !strings.HasPrefix(s.msisdn, "491") || len(s.msisdn) < 12 || len(s.msisdn) > 13 {
				t.Errorf("msisdn %q", s.msisdn)
			}
			if !ValidIMEI(s.imei) || !ValidICCID(s.iccid) || len(s.iccid) != 19 {
				t.Errorf("imei %q iccid %q", s.imei, s.iccid)
			}
			once("imsi", s.imsi)
			once("msisdn", s.msisdn)
			once("imei", s.imei)
			once("iccid", s.iccid)
		}
	}
	if len(w.cells) != 60 {
		t.Errorf("%d cells, want 60", len(w.cells))
	}
	techs := map[string]int{}
	slices := 0
	for _, c := range w.cells {
		once("cell", c.id)
		techs[c.tech]++
		if !ValidCellID(c.id) {
			t.Errorf("cell id %q", c.id)
		}
		if want := map[bool]int{true: 7, false: 9}[c.tech == techLTE]; len(strings.Split(c.id, "-")[2]) != want {
			t.Errorf("%s cell id %q: want %d hex digits", c.tech, c.id, want)
		}
		if d := distanceKm(c.lat, c.lon, citySpecs[c.city].lat, citySpecs[c.city].lon); d > 10 {
			t.Errorf("cell %s is %.0f km from %s", c.id, d, citySpecs[c.city].name)
		}
		if c.slice != "" {
			slices++
		}
	}
	if techs[techLTE] == 0 || techs[techNRNSA] == 0 || techs[techNRSA] == 0 || slices == 0 {
		t.Errorf("technologies %v, %d slice cells; want all three and some", techs, slices)
	}
	platforms := map[string]int{}
	for _, d := range w.devices {
		once("device", d.id)
		once("imei", d.imei)
		once("iccid", d.iccid)
		platforms[d.platform]++
		if !ValidIMEI(d.imei) || !ValidICCID(d.iccid) {
			t.Errorf("device %s imei %q iccid %q", d.id, d.imei, d.iccid)
		}
	}
	if len(platforms) < 2 {
		t.Errorf("platforms %v", platforms)
	}
}

// TestFraudFollowsIncidents checks that alerts concern subscribers of the
// pool and that the charging records show what each alert describes.
func TestFraudFollowsIncidents(t *testing.T) {
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cat, Options{Seed: 21, Start: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	byMSISDN := map[string]*subscriber{}
	for _, s := range g.w.subs {
		byMSISDN[s.msisdn] = s
	}
	decode := func(rec Record) map[string]any {
		p, _ := cat.Get(rec.Product)
		schema, body := p.Current().Schema, rec.Value
		if body[0] == 0 {
			_, v, _ := cat.SchemaByID(int(binary.BigEndian.Uint32(body[1:5])))
			schema, body = v.Schema, body[5:]
		}
		var m map[string]any
		if err := avro.Unmarshal(schema, body, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	var alerts, cdrs []map[string]any
	next := func(product string) {
		rec, err := g.Next(product)
		if err != nil {
			t.Fatal(err)
		}
		if product == "cdr" {
			cdrs = append(cdrs, decode(rec))
		} else {
			alerts = append(alerts, decode(rec))
		}
	}
	for range 150 {
		for range 30 {
			next("cdr")
		}
		next("fraud-alerts")
	}
	for len(g.fraud.pending) > 0 { // let the last incidents play out
		next("cdr")
	}

	types := map[string]int{}
	for _, a := range alerts {
		msisdn := a["msisdn"].(string)
		s := byMSISDN[msisdn]
		if s == nil || s.imsi != a["imsi"] || s.mvno.id != a["mvno_id"] {
			t.Fatalf("alert about %s / %s / %s: not a subscriber of the pool", a["imsi"], msisdn, a["mvno_id"])
		}
		if a["status"] != statusOpen {
			continue
		}
		typ := a["type"].(string)
		types[typ]++
		var mine []map[string]any
		for _, c := range cdrs {
			if c["msisdn"] == msisdn {
				mine = append(mine, c)
			}
		}
		count := func(pred func(c map[string]any) bool) int {
			n := 0
			for _, c := range mine {
				if pred(c) {
					n++
				}
			}
			return n
		}
		var ok bool
		switch typ {
		case fraudSIMSwap:
			ok = count(func(c map[string]any) bool { return c["imei"] == a["imei"] && c["charge"].(float64) > 0 }) >= 3
		case fraudIRSF:
			ok = count(func(c map[string]any) bool { return c["service"] == serviceVoice && c["charge"].(float64) > 0 }) >= 8
		case fraudWangiri:
			ok = count(func(c map[string]any) bool { return c["service"] == serviceVoice && c["duration_s"].(int) < 2 }) >= 1 &&
				count(func(c map[string]any) bool { return c["service"] == serviceVoice && c["charge"].(float64) > 0 }) >= 1
		case fraudRoaming:
			visited := map[any]bool{}
			for _, c := range mine {
				if c["roaming"].(bool) {
					visited[c["visited_mcc"]] = true
				}
			}
			ok = len(visited) >= 2
		case fraudCloning:
			ok = count(func(c map[string]any) bool { return c["imei"] == a["imei"] }) >= 1
		default:
			ok = true
		}
		if !ok {
			t.Errorf("%s alert about %s: the charging records do not show it (%d records of the subscriber)", typ, msisdn, len(mine))
		}
	}
	for _, f := range fraudTypes {
		if types[f.typ] == 0 {
			t.Errorf("no %s alert among %d (%v)", f.typ, len(alerts), types)
		}
	}
}

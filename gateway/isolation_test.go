package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/gateway/internal/cursor"
	"github.com/sluicehq/sluice/gateway/sseclient"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/masking"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/generate"
	"github.com/sluicehq/sluice/schemas"
)

// TestIntegrationIsolation is the isolation property test: over generated
// data of every product and every demo partner, each partner receives
// exactly the records its contract allows (no more, no fewer, no
// duplicates), exactly the fields its view lists, no clear identifier it is
// not entitled to (in its own field or anywhere else in the record), keyed
// pseudonyms that are stable per partner (also across a restart) and
// unlinkable between partners, and nothing at all where it holds no grant.
//
// The row contracts are written here, independently of the policy: a bug in
// the policy, its partial evaluation, the compiled predicate, the consent
// filter, the view encoder or the hub's rings shows up as a difference
// between what the gateway delivers and what this table says.
//
// Consent: opt-outs (network analytics, marketing, both, given back, and
// one subscriber with many vendor-specific purposes) are loaded before any
// read; more change live later. Consent-based views must withhold exactly
// the opted-out subscribers' records; billing and fraud prevention none.
//
// Phases: (1) REST history reads, every record a direct Kafka read; (2) with
// an SSE stream open on every allowed view (so each view has a hub ring), a
// second batch is produced and checked as delivered on the streams and on
// REST pages served from the rings, then REST reads cover both batches
// (direct reads), byte-identical to the rings'; (3) after a restart on the
// same data directory, mvno-b's page is byte-identical.
func TestIntegrationIsolation(t *testing.T) {
	began := time.Now()
	e := newEnv(t, withKafkaFrontDoor(t)) // the Kafka front door: checkKafka below
	cat := e.cat
	reg, err := products.LoadDefaultPartners()
	if err != nil {
		t.Fatal(err)
	}
	contracts := isoContractTable()
	isoCheckRegistry(t, reg, contracts)

	// 1. Data: a mix of every product. The generator's world has five
	// MVNOs, three IoT platforms and 60 cells reported round-robin, so these
	// volumes cover every MVNO, iot-fleet's devices and enterprise-x's cells
	// (checked below, or the test would prove nothing).
	batch1 := []struct {
		product string
		n       int
	}{{"cdr", 600}, {"fraud-alerts", 150}, {"device-telemetry", 300}, {"network-quality", 240}}
	for _, b := range batch1 {
		e.produce(b.product, b.n)
	}

	// 2. The upstream truth, read directly from Kafka and decoded in clear.
	ic := &isoChecker{t: t, e: e, cat: cat, reg: reg, contracts: contracts,
		truth: map[string]map[pos]*isoRec{}, codecs: map[string]*schemas.Codec{},
		optOut: map[string]map[string]bool{}, pseudo: map[string]map[string]string{}, unpseudo: map[string]map[string]string{},
		byClear: map[string]map[string]string{}, checked: map[string]int{}, delivered: map[string]map[pos]bool{},
		restBytes: map[string]map[pos][]byte{}, used: map[string]bool{}}
	for _, p := range cat.Products {
		ic.readTruth(p.ID, 1)
	}
	ic.checkCoverage()

	// Consent: opt-outs of subscribers that appear in the data, produced
	// before anything is read through the gateway. They go to one partition
	// in order, and the gateway restarts so that its consent store loads
	// them from the topic's start, in that order, before it reports ready:
	// the outcome does not depend on timing.
	ic.produceConsent(ic.initialConsent(), true)
	e.restart()
	ic.waitConsentApplied()

	// 3 and 4. Every partner, every product, every purpose.
	views := ic.sweep("rest/batch1", 1)

	// Live consent changes (no restart): two more opt-outs and a consent
	// given back must take effect within seconds.
	live := []isoConsentChange{}
	for _, m := range ic.busiest("mvno-b", 1, false) {
		live = append(live, isoConsentChange{m, []string{products.PurposeNetworkAnalytics}})
	}
	for _, m := range ic.busiest("mvno-c", 1, true) {
		live = append(live, isoConsentChange{m, []string{products.PurposeNetworkAnalytics, products.PurposeMarketing}})
	}
	live = append(live, isoConsentChange{ic.initialOptOutOf("mvno-b"), []string{}})
	ic.produceConsent(live, false)
	ic.waitConsentApplied()

	// Phase 2: an SSE stream on every allowed view holds a hub ring.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var streams []*isoStream
	for _, v := range views {
		streams = append(streams, ic.openStream(ctx, v))
	}
	// Where batch 2 starts: the streams' rings begin at or before it.
	ringFrom := map[string][]int64{}
	for _, p := range cat.Products {
		ringFrom[p.ID] = ic.ends(p.ID)
	}
	batch2 := []struct {
		product string
		n       int
	}{{"cdr", 300}, {"fraud-alerts", 60}, {"device-telemetry", 150}, {"network-quality", 120}}
	for _, b := range batch2 {
		e.produce(b.product, b.n)
	}
	for _, p := range cat.Products {
		ic.readTruth(p.ID, 2)
	}
	ic.waitStreams(streams, 2, 20*time.Second)
	inBatch2 := func(r *isoRec) bool { return r.batch == 2 }
	// REST pages from where batch 2 starts, while the rings exist: served
	// from the rings, in pages small enough to resume inside them.
	directBefore := ic.directReads()
	ring := map[*isoView]map[pos][]byte{}
	for _, s := range streams {
		recs := ic.readFrom(s.v, cursor.Encode(cursor.Tag(s.v.product), ringFrom[s.v.product]), 50)
		ic.checkView("ring/batch2", s.v, recs, inBatch2, true)
		ring[s.v] = ic.byPos(recs)
	}
	t.Logf("REST reads from the rings: %v direct Kafka reads (0 means every page came from a ring)", ic.directReads()-directBefore)
	for _, s := range streams {
		s.close()
		recs := s.records()
		ic.checkView("sse/batch2", s.v, recs, inBatch2, true)
		ic.sameBytes("sse vs ring", s.v, ic.byPos(recs), ring[s.v])
	}
	views2 := ic.sweep("rest/all", 2)
	for _, v := range views2 {
		for _, w := range views {
			if w.partner == v.partner && w.product == v.product && w.purpose == v.purpose {
				ic.sameBytes("direct vs ring", v, ic.restBytes[v.partner+" "+v.product+" "+v.purpose], ring[w])
			}
		}
	}
	if len(views2) != len(views) {
		t.Errorf("allowed views changed between phases: %d then %d", len(views), len(views2))
	}

	// The Kafka front door delivers the same bytes (kafka_test.go).
	ic.checkKafka(views2)

	// (e) Partners with own-row contracts on the same product never share
	// a record.
	ic.checkDisjoint()

	// (d) Pseudonyms survive a restart on the same data directory.
	ic.checkRestart()

	ic.checkCrossPartner()

	// Counts.
	var ids []string
	for id := range ic.checked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t.Logf("records checked for %-40s %6d", id, ic.checked[id])
	}
	for _, p := range reg.List {
		t.Logf("partner %-15s records checked %6d (allowed views %d, refusals checked in both sweeps %d)",
			p.ID, ic.perPartner(p.ID), ic.allowedViews[p.ID], ic.refusals[p.ID])
	}
	t.Logf("pseudonyms: %d (partner, treatment) maps, %d clear values compared across partners; %d opt-outs; took %s",
		len(ic.pseudo), ic.crossCompared, len(ic.optOut), time.Since(began).Round(time.Millisecond))
}

// ---------------------------------------------------------------------------
// The contracts, written independently of the policy.
// ---------------------------------------------------------------------------

// isoRow decides whether a clear record belongs to the partner.
type isoRow func(rec map[string]any) bool

type isoRule struct {
	row isoRow
	own bool // the partner sees its own rows only (not every row)
}

type isoContract struct {
	typ   products.PartnerType
	attrs string                // the partner's attributes as JSON, as demo.yaml must say
	views map[[2]string]isoRule // {product, purpose} -> rows
}

// enterpriseXCells are the cells enterprise-x pays for.
var enterpriseXCells = []string{"262-01-2B0000001", "262-01-2B0000002", "262-01-2B0000003", "262-01-2B0006001", "262-01-2B0006002"}

func isoContractTable() map[string]isoContract {
	all := isoRule{row: func(map[string]any) bool { return true }}
	eq := func(field, want string) isoRule {
		return isoRule{own: true, row: func(rec map[string]any) bool {
			s, ok := rec[field].(string)
			return ok && s == want
		}}
	}
	in := func(field string, want []string) isoRule {
		return isoRule{own: true, row: func(rec map[string]any) bool {
			s, ok := rec[field].(string)
			return ok && slices.Contains(want, s)
		}}
	}
	cells, _ := json.Marshal(map[string]any{"cells": enterpriseXCells})
	return map[string]isoContract{
		// MVNOs: only their own subscribers' records; network quality of
		// every cell.
		"mvno-a": {typ: products.PartnerMVNO, attrs: `{"mvno_id":"mvno-a"}`, views: map[[2]string]isoRule{
			{"cdr", "billing"}:                       eq("mvno_id", "mvno-a"),
			{"fraud-alerts", "fraud-prevention"}:     eq("mvno_id", "mvno-a"),
			{"network-quality", "network-analytics"}: all,
		}},
		"mvno-b": {typ: products.PartnerMVNO, attrs: `{"mvno_id":"mvno-b"}`, views: map[[2]string]isoRule{
			{"cdr", "network-analytics"}: eq("mvno_id", "mvno-b"),
		}},
		// The IoT platform: only its own devices (the telemetry's owner
		// field is "platform").
		"iot-fleet": {typ: products.PartnerIoT, attrs: `{"platform":"iot-fleet"}`, views: map[[2]string]isoRule{
			{"device-telemetry", "network-analytics"}: eq("platform", "iot-fleet"),
			{"network-quality", "network-analytics"}:  all,
		}},
		// The enterprise: only its cells.
		"enterprise-x": {typ: products.PartnerEnterprise, attrs: string(cells), views: map[[2]string]isoRule{
			{"network-quality", "network-analytics"}: in("cell_id", enterpriseXCells),
		}},
		// Internal divisions: everything.
		"internal-noc": {typ: products.PartnerInternal, attrs: `{}`, views: map[[2]string]isoRule{
			{"cdr", "network-analytics"}:              all,
			{"device-telemetry", "network-analytics"}: all,
			{"fraud-alerts", "network-analytics"}:     all,
			{"network-quality", "network-analytics"}:  all,
		}},
		"internal-fraud": {typ: products.PartnerInternal, attrs: `{}`, views: map[[2]string]isoRule{
			{"fraud-alerts", "fraud-prevention"}: all,
			{"cdr", "fraud-prevention"}:          all,
		}},
		// The regulator and the data governance office read no data product.
		"regulator": {typ: products.PartnerRegulator, attrs: `{}`, views: map[[2]string]isoRule{}},
		"admin":     {typ: products.PartnerInternal, attrs: `{}`, views: map[[2]string]isoRule{}},
	}
}

// isoCheckRegistry checks that the table above describes demo.yaml: every
// partner, type, attribute and grant. A registry change must come with a
// change of this table (and so of the properties this test checks).
func isoCheckRegistry(t *testing.T, reg *products.Partners, table map[string]isoContract) {
	t.Helper()
	for _, p := range reg.List {
		c, ok := table[p.ID]
		if !ok {
			t.Fatalf("demo partner %s is not in the isolation test's contract table", p.ID)
		}
		if p.Type != c.typ {
			t.Fatalf("partner %s: type %s in demo.yaml, the isolation table says %s", p.ID, p.Type, c.typ)
		}
		attrs := p.Attributes
		if attrs == nil {
			attrs = map[string]any{}
		}
		got, _ := json.Marshal(attrs)
		var want map[string]any
		_ = json.Unmarshal([]byte(c.attrs), &want)
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(got, wantJSON) {
			t.Fatalf("partner %s: attributes %s in demo.yaml, the isolation table says %s", p.ID, got, wantJSON)
		}
		var grants [][2]string
		for _, g := range p.Grants {
			grants = append(grants, [2]string{g.Product, g.Purpose})
			if _, ok := c.views[[2]string{g.Product, g.Purpose}]; !ok {
				t.Fatalf("partner %s: grant %s/%s is not in the isolation table", p.ID, g.Product, g.Purpose)
			}
		}
		for k := range c.views {
			if !slices.Contains(grants, k) {
				t.Fatalf("partner %s: the isolation table allows %s/%s, demo.yaml grants no such thing", p.ID, k[0], k[1])
			}
		}
	}
	for id := range table {
		if _, ok := reg.Get(id); !ok {
			t.Fatalf("the isolation table names partner %s, which demo.yaml does not have", id)
		}
	}
}

// isoConsentPurposes are the purposes that rely on subscriber consent
// (GDPR: marketing and analytics); billing and fraud prevention do not.
var isoConsentPurposes = []string{products.PurposeNetworkAnalytics, products.PurposeMarketing}

var isoAllPurposes = []string{products.PurposeBilling, products.PurposeFraudPrevention,
	products.PurposeNetworkAnalytics, products.PurposeMarketing, products.PurposeRegulatory}

// isoClearIDPurposes are the only purposes that may see direct identifiers
// in clear.
var isoClearIDPurposes = []string{products.PurposeBilling, products.PurposeFraudPrevention}

// ---------------------------------------------------------------------------
// The checker.
// ---------------------------------------------------------------------------

type isoRec struct {
	product string
	pos     pos
	ts      string         // _timestamp
	m       map[string]any // clear values (identity view)
	batch   int
}

type isoView struct {
	partner, product, purpose string
	tok                       string
	rule                      isoRule
	ex                        isoExplain
}

type isoExplain struct {
	Partner         string `json:"partner"`
	Product         string `json:"product"`
	Purpose         string `json:"purpose"`
	Allowed         bool   `json:"allowed"`
	Reason          string `json:"reason"`
	RowCondition    string `json:"row_condition"`
	ConsentRequired bool   `json:"consent_required"`
	Fields          []struct {
		Name           string         `json:"name"`
		Classification string         `json:"classification"`
		Treatment      map[string]any `json:"treatment"`
	} `json:"fields"`
	Schema json.RawMessage `json:"schema"`
}

type isoChecker struct {
	t         *testing.T
	e         *env
	cat       *products.Catalog
	reg       *products.Partners
	contracts map[string]isoContract

	codecs map[string]*schemas.Codec
	truth  map[string]map[pos]*isoRec // product -> position -> record

	optOut map[string]map[string]bool // msisdn -> purpose -> opted out (final state)
	used   map[string]bool            // subscribers picked for consent changes

	// Keyed pseudonyms: (partner, treatment) -> clear -> pseudonym, and back.
	pseudo, unpseudo map[string]map[string]string
	// clear -> (partner, treatment) -> pseudonym, for cross-partner checks.
	byClear       map[string]map[string]string
	crossCompared int

	checked      map[string]int          // "partner product purpose phase" -> records checked
	delivered    map[string]map[pos]bool // "partner product" -> positions (phase rest/all)
	allowedViews map[string]int
	refusals     map[string]int
	mvnoBPage    [][]byte                  // mvno-b's cdr page before the restart
	restBytes    map[string]map[pos][]byte // "partner product purpose" -> position -> record (phase rest/all)
}

func (ic *isoChecker) perPartner(id string) int {
	n := 0
	for k, v := range ic.checked {
		if strings.HasPrefix(k, id+" ") {
			n += v
		}
	}
	return n
}

func (ic *isoChecker) codec(p *products.Product) *schemas.Codec {
	if c, ok := ic.codecs[p.ID]; ok {
		return c
	}
	var vs []schemas.SchemaVersion
	for _, v := range p.Versions {
		vs = append(vs, schemas.SchemaVersion{Version: v.Version, ID: v.ID, Schema: v.Schema})
	}
	c, err := schemas.NewCodec(p.ID, schemas.Framing(p.Framing), vs, nil)
	if err != nil {
		ic.t.Fatal(err)
	}
	ic.codecs[p.ID] = c
	return c
}

// readTruth reads every record of a product's topic from Kafka, decodes it
// with the product's codec and the identity view, and adds the ones not
// seen yet as batch.
func (ic *isoChecker) readTruth(product string, batch int) {
	t, e := ic.t, ic.e
	t.Helper()
	p, _ := ic.cat.Get(product)
	topic := e.topic(product)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(e.prod)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	starts.Each(func(o kadm.ListedOffset) { total -= o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.gw.KafkaAddr()), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	codec := ic.codec(p)
	id := view.NewIdentity(p.ID, codec.Layout())
	rec := codec.Layout().NewRecord()
	if ic.truth[product] == nil {
		ic.truth[product] = map[pos]*isoRec{}
	}
	seen := int64(0)
	for seen < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: got %d of %d records: %v", topic, seen, total, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("reading %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			ps := pos{r.Partition, r.Offset}
			if _, ok := ic.truth[product][ps]; ok {
				return
			}
			if err := codec.Decode(ctx, r.Value, rec); err != nil {
				t.Fatalf("%s %v: decode: %v", product, ps, err)
			}
			b, _ := id.Append(nil, rec, view.Meta{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()})
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s %v: identity JSON %s: %v", product, ps, b, err)
			}
			ts, _ := m["_timestamp"].(string)
			delete(m, "_partition")
			delete(m, "_offset")
			delete(m, "_timestamp")
			ic.truth[product][ps] = &isoRec{product: product, pos: ps, ts: ts, m: m, batch: batch}
		})
	}
}

// checkCoverage makes sure the data exercises every contract.
func (ic *isoChecker) checkCoverage() {
	t := ic.t
	count := func(product, field string) map[string]int {
		n := map[string]int{}
		for _, r := range ic.truth[product] {
			if s, ok := r.m[field].(string); ok {
				n[s]++
			}
		}
		return n
	}
	cdr, fa := count("cdr", "mvno_id"), count("fraud-alerts", "mvno_id")
	for _, m := range []string{"mvno-a", "mvno-b", "mvno-c", "mvno-d", "mvno-e"} {
		if cdr[m] == 0 {
			t.Fatalf("no cdr record of %s in the generated data: %v", m, cdr)
		}
	}
	if fa["mvno-a"] == 0 || len(fa) < 3 {
		t.Fatalf("fraud alerts do not cover mvno-a and other MVNOs: %v", fa)
	}
	plat := count("device-telemetry", "platform")
	if plat["iot-fleet"] == 0 || len(plat) < 2 {
		t.Fatalf("device telemetry must have iot-fleet's and other platforms' devices: %v", plat)
	}
	cells := count("network-quality", "cell_id")
	for _, c := range enterpriseXCells {
		if cells[c] == 0 {
			t.Fatalf("enterprise-x's cell %s has no network-quality record", c)
		}
	}
	if len(cells) <= len(enterpriseXCells) {
		t.Fatalf("network quality has only %d cells", len(cells))
	}
	t.Logf("upstream: cdr %d %v; fraud-alerts %d %v; device-telemetry %d %v; network-quality %d records over %d cells",
		len(ic.truth["cdr"]), cdr, len(ic.truth["fraud-alerts"]), fa, len(ic.truth["device-telemetry"]), plat, len(ic.truth["network-quality"]), len(cells))
}

// isoConsentChange is one consent record: a subscriber's opt-outs.
type isoConsentChange struct {
	msisdn  string
	optOuts []string
}

// busiest returns the n busiest subscribers of an MVNO in cdr (those with
// fraud alerts first if preferAlerts) not picked before.
func (ic *isoChecker) busiest(mvno string, n int, preferAlerts bool) []string {
	count := map[string]int{}
	for _, r := range ic.truth["cdr"] {
		if r.m["mvno_id"] == mvno {
			ms, _ := r.m["msisdn"].(string)
			count[ms]++
		}
	}
	inAlerts := map[string]bool{}
	for _, r := range ic.truth["fraud-alerts"] {
		ms, _ := r.m["msisdn"].(string)
		inAlerts[ms] = true
	}
	var ms []string
	for m := range count {
		if !ic.used[m] {
			ms = append(ms, m)
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if preferAlerts && inAlerts[ms[i]] != inAlerts[ms[j]] {
			return inAlerts[ms[i]]
		}
		if count[ms[i]] != count[ms[j]] {
			return count[ms[i]] > count[ms[j]]
		}
		return ms[i] < ms[j]
	})
	ms = ms[:min(n, len(ms))]
	for _, m := range ms {
		ic.used[m] = true
	}
	return ms
}

// initialConsent returns the opt-outs written before anything is read:
// network analytics (mvno-b's and other MVNOs' subscribers, some with fraud
// alerts), marketing only (must not affect analytics), both, one who opts
// out and gives consent back (the latest record wins), one with no records,
// and first of all one subscriber who opted out of many vendor-specific
// marketing purposes: a consent platform's purposes are not limited to
// sluice's five, and none of them may switch consent checks off (the
// consent store gives each distinct purpose string one of 64 bits; a
// purpose first seen after 64 others must still be honoured, or its views
// must fail closed).
func (ic *isoChecker) initialConsent() []isoConsentChange {
	na := []string{products.PurposeNetworkAnalytics}
	mk := []string{products.PurposeMarketing}
	both := []string{products.PurposeMarketing, products.PurposeNetworkAnalytics}
	var vendors []string
	for i := range 64 {
		vendors = append(vendors, fmt.Sprintf("marketing:vendor-%02d", i+1))
	}
	var changes []isoConsentChange
	add := func(ms []string, o []string) {
		for _, m := range ms {
			changes = append(changes, isoConsentChange{m, o})
		}
	}
	add([]string{"4915999999998"}, vendors)
	add(ic.busiest("mvno-b", 3, false), na)
	add(ic.busiest("mvno-b", 2, true), na)
	add(ic.busiest("mvno-a", 2, true), na)
	add(ic.busiest("mvno-c", 2, true), na)
	add(ic.busiest("mvno-e", 1, true), na)
	add(ic.busiest("mvno-b", 2, false), mk)
	add(ic.busiest("mvno-d", 1, false), mk)
	add(ic.busiest("mvno-a", 1, false), both)
	add(ic.busiest("mvno-b", 1, false), both)
	back := ic.busiest("mvno-b", 1, false)
	add(back, na)
	add(back, []string{})              // consent given back: the latest record wins
	add([]string{"4915999999999"}, na) // a subscriber with no records
	return changes
}

// produceConsent writes consent records, in order, to one partition of the
// consent topic when onePartition (so a reader applies them in this order)
// and keyed by subscriber otherwise, and records the final state.
func (ic *isoChecker) produceConsent(changes []isoConsentChange, onePartition bool) {
	t, e := ic.t, ic.e
	var recs []*kgo.Record
	now := time.Now().UTC()
	for i, c := range changes {
		r := generate.ConsentFor(c.msisdn, c.optOuts, now.Add(time.Duration(i)*time.Millisecond))
		recs = append(recs, &kgo.Record{Topic: e.gw.ConsentTopic(), Key: r.Key, Value: r.Value, Timestamp: r.Time})
		state := map[string]bool{}
		for _, p := range c.optOuts {
			state[p] = true
		}
		ic.optOut[c.msisdn] = state
	}
	if onePartition {
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.gw.KafkaAddr()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = cl.ProduceSync(ctx, recs...).FirstErr()
		cancel()
		cl.Close()
		if err != nil {
			t.Fatalf("produce consent: %v", err)
		}
	} else {
		e.produceRaw(recs...)
	}
	var summary []string
	for _, c := range changes {
		o := fmt.Sprint(c.optOuts)
		if len(c.optOuts) > 4 {
			o = fmt.Sprintf("[%s ... %d purposes]", c.optOuts[0], len(c.optOuts))
		}
		summary = append(summary, c.msisdn+":"+o)
	}
	t.Logf("consent changes: %s", strings.Join(summary, " "))
}

// initialOptOutOf returns a subscriber of an MVNO who opted out of network
// analytics.
func (ic *isoChecker) initialOptOutOf(mvno string) string {
	var ms []string
	for _, r := range ic.truth["cdr"] {
		m, _ := r.m["msisdn"].(string)
		if r.m["mvno_id"] == mvno && ic.optOut[m][products.PurposeNetworkAnalytics] {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		ic.t.Fatalf("no %s subscriber opted out of network analytics", mvno)
	}
	slices.Sort(ms)
	return ms[0]
}

func (ic *isoChecker) optedOut(r *isoRec, purpose string) bool {
	p, _ := ic.cat.Get(r.product)
	if p.SubjectField == "" {
		return false
	}
	s, _ := r.m[p.SubjectField].(string)
	return ic.optOut[s][purpose]
}

// consentFiltered reports whether the partner's view of a product must
// withhold opted-out subscribers: a consent-based purpose on a product
// whose records are about a subscriber.
func (ic *isoChecker) consentFiltered(product, purpose string) bool {
	p, _ := ic.cat.Get(product)
	return p.SubjectField != "" && slices.Contains(isoConsentPurposes, purpose)
}

// expected returns the positions a view must deliver, among in-scope records.
func (ic *isoChecker) expected(v *isoView, inScope func(*isoRec) bool) map[pos]*isoRec {
	out := map[pos]*isoRec{}
	for ps, r := range ic.truth[v.product] {
		if inScope != nil && !inScope(r) {
			continue
		}
		if !v.rule.row(r.m) {
			continue
		}
		if ic.consentFiltered(v.product, v.purpose) && ic.optedOut(r, v.purpose) {
			continue
		}
		out[ps] = r
	}
	return out
}

// waitConsentApplied waits until the opt-outs reach the gateway: an
// opt-out must take effect within seconds. internal-noc's cdr analytics
// view (every row, consent required) is polled until it delivers exactly
// the expected records.
func (ic *isoChecker) waitConsentApplied() {
	t := ic.t
	v := &isoView{partner: "internal-noc", product: "cdr", purpose: products.PurposeNetworkAnalytics,
		tok: ic.e.token("internal-noc"), rule: ic.contracts["internal-noc"].views[[2]string{"cdr", products.PurposeNetworkAnalytics}]}
	want := ic.expected(v, nil)
	if len(want) == len(ic.truth["cdr"]) {
		t.Fatal("no cdr record belongs to a subscriber who opted out of network analytics: the consent check proves nothing")
	}
	start := time.Now()
	for {
		recs := ic.readAll(v, 1000)
		got := map[pos]bool{}
		for _, raw := range recs {
			p, _ := recordPos(t, raw)
			got[p] = true
		}
		same := len(got) == len(want)
		for p := range want {
			same = same && got[p]
		}
		if same {
			t.Logf("opt-outs in effect after %s (%d of %d cdr records withheld for network analytics)",
				time.Since(start).Round(time.Millisecond), len(ic.truth["cdr"])-len(want), len(ic.truth["cdr"]))
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("opt-outs not in effect 5 s after they were produced: internal-noc cdr delivers %d records, want %d", len(got), len(want))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readAll pages through a view's records from earliest.
func (ic *isoChecker) readAll(v *isoView, limit int) [][]byte {
	return ic.readFrom(v, "", limit)
}

// readFrom pages through a view's records from a cursor ("": earliest)
// until a page is empty and the cursor stays put.
func (ic *isoChecker) readFrom(v *isoView, cur string, limit int) [][]byte {
	t := ic.t
	t.Helper()
	var out [][]byte
	for page := 0; ; page++ {
		if page > 10000 {
			t.Fatalf("%s/%s/%s: paging did not end", v.partner, v.product, v.purpose)
		}
		q := url.Values{"limit": {strconv.Itoa(limit)}}
		if v.purpose != "" {
			q.Set("purpose", v.purpose)
		}
		if cur == "" {
			q.Set("from", "earliest")
		} else {
			q.Set("cursor", cur)
		}
		recs, next := ic.page(v, q)
		out = append(out, recs...)
		if len(recs) == 0 && next == cur {
			return out
		}
		cur = next
	}
}

func (ic *isoChecker) page(v *isoView, q url.Values) ([][]byte, string) {
	t := ic.t
	t.Helper()
	path := "/v1/products/" + v.product + "/records?" + q.Encode()
	resp, body := ic.e.get(path, "Authorization", "Bearer "+v.tok)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s GET %s: %d %s", v.partner, path, resp.StatusCode, body)
	}
	var pg struct {
		Records    []json.RawMessage `json:"records"`
		NextCursor string            `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &pg); err != nil {
		t.Fatalf("%s GET %s: %v: %s", v.partner, path, err, body)
	}
	if pg.NextCursor == "" || resp.Header.Get("Sluice-Next-Cursor") != pg.NextCursor {
		t.Fatalf("%s GET %s: next_cursor %q, header %q", v.partner, path, pg.NextCursor, resp.Header.Get("Sluice-Next-Cursor"))
	}
	out := make([][]byte, len(pg.Records))
	for i, r := range pg.Records {
		out[i] = []byte(r)
	}
	return out, pg.NextCursor
}

// refused checks a 403 problem of the given type on a path.
func (ic *isoChecker) refused(partner, tok, path, typ string) {
	t := ic.t
	t.Helper()
	resp, body := ic.e.get(path, "Authorization", "Bearer "+tok)
	var p map[string]any
	_ = json.Unmarshal(body, &p)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" ||
		p["type"] != typ || p["status"] != float64(403) || p["detail"] == "" {
		t.Errorf("%s GET %s: %d %s %s, want 403 problem+json %s", partner, path, resp.StatusCode, resp.Header.Get("Content-Type"), body, typ)
	}
	if bytes.Contains(body, []byte(`"_offset"`)) || bytes.Contains(body, []byte(`"records"`)) {
		t.Errorf("%s GET %s: a refusal carries data: %s", partner, path, body)
	}
	ic.refusals[partner]++
}

// sweep asks every partner for every product under every purpose (and
// none): refusals where there is no grant, and the full property check
// where there is. It returns the allowed views.
func (ic *isoChecker) sweep(phase string, batches int) []*isoView {
	t := ic.t
	if ic.allowedViews == nil {
		ic.allowedViews, ic.refusals = map[string]int{}, map[string]int{}
	}
	var views []*isoView
	for _, partner := range ic.reg.List {
		c := ic.contracts[partner.ID]
		tok := ic.e.token(partner.ID)
		for _, p := range ic.cat.Products {
			for _, purpose := range append([]string{""}, isoAllPurposes...) {
				q := ""
				if purpose != "" {
					q = "&purpose=" + purpose
				}
				records := "/v1/products/" + p.ID + "/records?from=earliest&limit=1000" + q
				viewPath := "/v1/products/" + p.ID + "/view?" + strings.TrimPrefix(q, "&")
				eff := purpose
				if purpose == "" {
					// No purpose: the partner's first grant of the product.
					g, ok := partner.Grant(p.ID)
					if !ok {
						ic.refused(partner.ID, tok, records, "urn:sluice:problem:no-grant")
						ic.refused(partner.ID, tok, viewPath, "urn:sluice:problem:no-grant")
						continue
					}
					eff = g.Purpose
				}
				rule, ok := c.views[[2]string{p.ID, eff}]
				if !ok {
					ic.refused(partner.ID, tok, records, "urn:sluice:problem:no-grant")
					ic.refused(partner.ID, tok, viewPath, "urn:sluice:problem:no-grant")
					continue
				}
				v := &isoView{partner: partner.ID, product: p.ID, purpose: eff, tok: tok, rule: rule}
				resp, body := ic.e.get(viewPath, "Authorization", "Bearer "+tok)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s GET %s: %d %s", partner.ID, viewPath, resp.StatusCode, body)
					continue
				}
				if err := json.Unmarshal(body, &v.ex); err != nil {
					t.Fatalf("%s GET %s: %v", partner.ID, viewPath, err)
				}
				if !v.ex.Allowed || v.ex.Partner != partner.ID || v.ex.Product != p.ID || v.ex.Purpose != eff {
					t.Errorf("%s GET %s: view %s, want allowed for %s/%s/%s", partner.ID, viewPath, body, partner.ID, p.ID, eff)
					continue
				}
				if purpose == "" {
					// The default grant must be the same view as the
					// explicit purpose: check it delivers the same bytes.
					def := ic.readAll(&isoView{partner: partner.ID, product: p.ID, purpose: "", tok: tok}, 1000)
					exp := ic.readAll(v, 1000)
					if !reflect.DeepEqual(def, exp) {
						t.Errorf("%s %s: the default purpose delivers %d records, ?purpose=%s %d (or different bytes)", partner.ID, p.ID, len(def), eff, len(exp))
					}
					continue
				}
				if batches == 1 {
					ic.allowedViews[partner.ID]++
				}
				recs := ic.readAll(v, 1000)
				ic.checkView(phase, v, recs, nil, false)
				if batches == 2 {
					ic.restBytes[partner.ID+" "+p.ID+" "+eff] = ic.byPos(recs)
					key := partner.ID + " " + p.ID
					ic.delivered[key] = map[pos]bool{}
					for _, raw := range recs {
						ps, _ := recordPos(t, raw)
						ic.delivered[key][ps] = true
					}
					if partner.ID == "mvno-b" && p.ID == "cdr" {
						// Smaller pages (the cursor moves across filtered
						// records) deliver the same records.
						small := ic.readAll(v, 37)
						if !reflect.DeepEqual(small, recs) {
							t.Errorf("mvno-b cdr: pages of 37 deliver %d records, pages of 1000 %d (or different bytes)", len(small), len(recs))
						}
						pg, _ := ic.page(v, url.Values{"from": {"earliest"}, "limit": {"1000"}, "purpose": {eff}})
						ic.mvnoBPage = pg
					}
				}
				views = append(views, v)
			}
		}
	}
	return views
}

// checkView checks the properties of one view's delivered records. inScope
// limits completeness to some records (nil: all); strict also fails on
// records out of scope (a stream from latest must not replay history).
func (ic *isoChecker) checkView(phase string, v *isoView, recs [][]byte, inScope func(*isoRec) bool, strict bool) int {
	t := ic.t
	t.Helper()
	label := v.partner + " " + v.product + " " + v.purpose + " " + phase
	prod, _ := ic.cat.Get(v.product)
	c := ic.contracts[v.partner]

	// The view: every field of the product exactly once; what the DOMAIN
	// rules require of it, independently of the policy.
	treat := map[string]map[string]any{}
	var wantKeys []string
	for _, f := range v.ex.Fields {
		if _, dup := treat[f.Name]; dup {
			t.Errorf("%s: /view lists field %s twice", label, f.Name)
		}
		treat[f.Name] = f.Treatment
		op, _ := f.Treatment["op"].(string)
		if op == "" {
			t.Errorf("%s: field %s has no treatment op: %v", label, f.Name, f.Treatment)
		}
		if op != "drop" {
			wantKeys = append(wantKeys, f.Name)
		}
		fs, ok := prod.Field(f.Name)
		if !ok {
			t.Errorf("%s: /view lists field %s, which the product does not have", label, f.Name)
			continue
		}
		if string(fs.Classification) != f.Classification {
			t.Errorf("%s: field %s classified %q in /view, %q in the catalog", label, f.Name, f.Classification, fs.Classification)
		}
		if fs.Classification == products.ClassDirectIdentifier && op == "keep" && !slices.Contains(isoClearIDPurposes, v.purpose) {
			t.Errorf("%s: direct identifier %s kept in clear for purpose %s", label, f.Name, v.purpose)
		}
		if c.typ == products.PartnerEnterprise && fs.Classification != products.ClassPublic && op != "drop" {
			t.Errorf("%s: enterprise receives non-public field %s (%s) as %v", label, f.Name, fs.Classification, f.Treatment)
		}
	}
	for _, f := range prod.Fields {
		if _, ok := treat[f.Name]; !ok {
			t.Errorf("%s: /view does not say what happens to field %s", label, f.Name)
		}
	}
	var sch struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(v.ex.Schema, &sch); err != nil {
		t.Errorf("%s: /view schema %s: %v", label, v.ex.Schema, err)
	}
	var schNames []string
	for _, f := range sch.Fields {
		schNames = append(schNames, f.Name)
	}
	if !slices.Equal(schNames, wantKeys) {
		t.Errorf("%s: /view schema fields %v, non-dropped fields %v", label, schNames, wantKeys)
	}
	if prod.SubjectField == "" && v.ex.ConsentRequired && phase == "rest/batch1" {
		t.Logf("note: %s: /view says consent_required, but %s has no subject field, so no record is withheld", label, v.product)
	}
	if prod.SubjectField != "" && v.ex.ConsentRequired != ic.consentFiltered(v.product, v.purpose) {
		t.Errorf("%s: /view consent_required %v; a %s purpose on subscriber data must say %v", label, v.ex.ConsentRequired, v.purpose, ic.consentFiltered(v.product, v.purpose))
	}

	// Identifier values this partner must never see in clear anywhere in a
	// record: those of records outside its contract, and those of fields
	// its view does not keep, minus those it legitimately keeps.
	forbidden, allowed := map[string]string{}, map[string]bool{}
	for _, r := range ic.truth[v.product] {
		in := v.rule.row(r.m) && !(ic.consentFiltered(v.product, v.purpose) && ic.optedOut(r, v.purpose))
		for _, f := range prod.Fields {
			if f.Classification != products.ClassDirectIdentifier {
				continue
			}
			op, _ := treat[f.Name]["op"].(string)
			for _, s := range isoStrings(r.m[f.Name]) {
				if len(s) < 6 {
					continue
				}
				switch {
				case in && op == "keep":
					allowed[s] = true
				case !in:
					forbidden[s] = fmt.Sprintf("%s of %s %v (outside the contract)", f.Name, v.product, r.pos)
				default:
					forbidden[s] = fmt.Sprintf("%s of %s %v (treatment %s)", f.Name, v.product, r.pos, op)
				}
			}
		}
	}
	for s := range allowed {
		delete(forbidden, s)
	}
	lens := map[int]bool{}
	for s := range forbidden {
		if isoDigits(s) {
			lens[len(s)] = true
		}
	}

	want := ic.expected(v, inScope)
	got := map[pos]bool{}
	// Failures by kind (the first word of the message): the first few of
	// each are reported in full, the rest counted.
	kinds := map[string]int{}
	var kindOrder []string
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		kind, _, _ := strings.Cut(msg, ":")
		if strings.HasPrefix(kind, "{") { // "{p o} field x: ...": by field
			_, rest, _ := strings.Cut(msg, "} ")
			kind, _, _ = strings.Cut(rest, ":")
		}
		kind, _, _ = strings.Cut(kind, " in ")
		if f := strings.Fields(kind); len(f) > 2 {
			kind = strings.Join(f[:2], " ")
		}
		if kinds[kind] == 0 {
			kindOrder = append(kindOrder, kind)
		}
		kinds[kind]++
		if kinds[kind] <= 3 {
			if len(msg) > 600 {
				msg = msg[:600] + "..."
			}
			t.Errorf("%s: %s", label, msg)
		}
	}
	for _, raw := range recs {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			fail("record %s: %v", raw, err)
			continue
		}
		ps, _ := recordPos(t, raw)
		r := ic.truth[v.product][ps]
		if r == nil {
			fail("delivered %v, which is not upstream: %s", ps, raw)
			continue
		}
		if got[ps] {
			fail("delivered %v twice", ps)
		}
		got[ps] = true
		// (a) rows.
		if !v.rule.row(r.m) {
			fail("ROW LEAK: delivered %v outside the contract (clear record %v): %s", ps, r.m, raw)
		}
		if ic.consentFiltered(v.product, v.purpose) && ic.optedOut(r, v.purpose) {
			fail("CONSENT LEAK: delivered %v of subscriber %v, who opted out of %s: %s", ps, r.m[prod.SubjectField], v.purpose, raw)
		}
		if strict && inScope != nil && !inScope(r) {
			fail("delivered %v, which is not in scope (batch %d)", ps, r.batch)
		}
		if m["_timestamp"] != r.ts {
			fail("%v: _timestamp %v, upstream %v", ps, m["_timestamp"], r.ts)
		}
		// (b) fields, in schema order.
		keys := isoKeys(raw)
		if n := len(keys); n < 3 || !slices.Equal(keys[n-3:], []string{"_partition", "_offset", "_timestamp"}) {
			fail("%v: record does not end with _partition, _offset, _timestamp: %v", ps, keys)
		} else if !slices.Equal(keys[:n-3], wantKeys) {
			fail("%v: fields %v, the view's non-dropped fields are %v", ps, keys[:n-3], wantKeys)
		}
		// (c) treatments.
		for _, name := range wantKeys {
			if msg := ic.checkField(v, name, treat[name], r, m); msg != "" {
				fail("%v field %s: %s", ps, name, msg)
			}
		}
		// (c) no forbidden identifier anywhere in the record (values of
		// format-preserving pseudonyms are exempt: they live in the same
		// digit space as the clear values and may coincide with another
		// record's by chance; they are checked against their own clear
		// value above).
		for name, val := range m {
			if op, _ := treat[name]["op"].(string); op == "pseudonymise-format" {
				continue
			}
			for _, s := range isoStrings(val) {
				if why, ok := forbidden[s]; ok {
					fail("CLEAR IDENTIFIER in %s: %q is %s: %s", name, s, why, raw)
				}
				for _, run := range isoDigitRuns(s) {
					for l := range lens {
						for i := 0; i+l <= len(run); i++ {
							if why, ok := forbidden[run[i:i+l]]; ok && run[i:i+l] != s {
								fail("CLEAR IDENTIFIER inside %s=%q: %s is %s", name, s, run[i:i+l], why)
							}
						}
					}
				}
			}
		}
		// (d) pseudonyms.
		for _, name := range wantKeys {
			op, _ := treat[name]["op"].(string)
			if op != "pseudonymise" && op != "pseudonymise-format" {
				continue
			}
			cv, ok1 := r.m[name].(string)
			pn, ok2 := m[name].(string)
			if !ok1 || !ok2 {
				continue
			}
			spec, _ := json.Marshal(treat[name])
			k := v.partner + " " + string(spec)
			if ic.pseudo[k] == nil {
				ic.pseudo[k], ic.unpseudo[k] = map[string]string{}, map[string]string{}
			}
			if prev, ok := ic.pseudo[k][cv]; ok && prev != pn {
				fail("PSEUDONYM UNSTABLE: %s gets %q and %q for %s with %s", v.partner, prev, pn, cv, spec)
			}
			if prev, ok := ic.unpseudo[k][pn]; ok && prev != cv {
				fail("PSEUDONYM COLLISION: %s gets %q for both %s and %s", v.partner, pn, prev, cv)
			}
			ic.pseudo[k][cv], ic.unpseudo[k][pn] = pn, cv
			if ic.byClear[cv] == nil {
				ic.byClear[cv] = map[string]string{}
			}
			ic.byClear[cv][k] = pn
		}
	}
	// (a) completeness.
	var missing []string
	for ps, r := range want {
		if !got[ps] {
			missing = append(missing, fmt.Sprintf("%v %v", ps, r.m))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		fail("MISSING %d of %d records the contract grants, e.g. %s", len(missing), len(want), missing[0])
	}
	if len(want) == 0 {
		fail("no upstream record is for this view: the test proves nothing")
	}
	if len(recs) == 0 {
		fail("delivered nothing")
	}
	for _, k := range kindOrder {
		if kinds[k] > 3 {
			t.Errorf("%s: %s: %d failures in all", label, k, kinds[k])
		}
	}
	ic.checked[label] += len(recs)
	return len(recs)
}

var isoBase32 = regexp.MustCompile(`^[a-z2-7]{26}$`)

// checkField checks one delivered field against its clear value and
// treatment; it returns what is wrong, or "".
func (ic *isoChecker) checkField(v *isoView, name string, tr map[string]any, r *isoRec, m map[string]any) string {
	op, _ := tr["op"].(string)
	cv, got := r.m[name], m[name]
	if cv == nil && op != "redact" {
		if got != nil {
			return fmt.Sprintf("clear value null, delivered %v", got)
		}
		return ""
	}
	clearStr := isoText(cv)
	gotStr, gotIsStr := got.(string)
	switch op {
	case "keep":
		if !reflect.DeepEqual(cv, got) {
			return fmt.Sprintf("kept value %v differs from the clear value %v", got, cv)
		}
		return ""
	case "pseudonymise", "pseudonymise-format", "keep-prefix", "keep-suffix":
		if !gotIsStr {
			return fmt.Sprintf("%s gives %v (%T), want a string", op, got, got)
		}
		if gotStr == clearStr {
			return fmt.Sprintf("%s delivered the clear value %q", op, clearStr)
		}
	}
	switch op {
	case "pseudonymise":
		prefix, _ := tr["prefix"].(string)
		if !strings.HasPrefix(gotStr, prefix) || !isoBase32.MatchString(gotStr[len(prefix):]) {
			return fmt.Sprintf("pseudonym %q is not %q + 26 base32 characters", gotStr, prefix)
		}
	case "pseudonymise-format":
		if len(gotStr) != len(clearStr) {
			return fmt.Sprintf("format-preserving pseudonym %q of %q changes the length", gotStr, clearStr)
		}
		keep := int(isoNum(tr["keep_digits"]))
		digits := 0
		for i := range len(clearStr) {
			cd, gd := isoDigit(clearStr[i]), isoDigit(gotStr[i])
			if cd != gd || (!cd && clearStr[i] != gotStr[i]) {
				return fmt.Sprintf("format-preserving pseudonym %q of %q changes the character class at %d", gotStr, clearStr, i)
			}
			if cd {
				if digits < keep && clearStr[i] != gotStr[i] {
					return fmt.Sprintf("format-preserving pseudonym %q of %q changes kept digit %d", gotStr, clearStr, digits)
				}
				digits++
			}
		}
		if f, _ := tr["format"].(string); (f == "imei" || f == "iccid") && generate.LuhnValid(clearStr) && !generate.LuhnValid(gotStr) {
			return fmt.Sprintf("format-preserving %s pseudonym %q has no valid Luhn check digit", f, gotStr)
		}
	case "keep-prefix", "keep-suffix":
		n := int(isoNum(tr["n"]))
		fill, _ := tr["fill"].(string)
		rs := []rune(clearStr)
		var want string
		switch {
		case n >= len(rs):
			want = clearStr
		case op == "keep-prefix":
			want = string(rs[:n]) + strings.Repeat(fill, len(rs)-n)
		default:
			want = strings.Repeat(fill, len(rs)-n) + string(rs[len(rs)-n:])
		}
		if gotStr != want {
			return fmt.Sprintf("%s %d of %q gives %q, want %q", op, n, clearStr, gotStr, want)
		}
		if utf8.RuneCountInString(gotStr) >= utf8.RuneCountInString(clearStr) && fill == "" {
			return fmt.Sprintf("%s %d of %q reveals the whole value", op, n, clearStr)
		}
	case "redact":
		if got != tr["replacement"] {
			return fmt.Sprintf("redacted to %v, want %v", got, tr["replacement"])
		}
		if cv != nil && reflect.DeepEqual(got, cv) {
			return "redact delivered the clear value"
		}
	case "generalise-time":
		ct, err1 := time.Parse(time.RFC3339Nano, clearStr)
		gt, err2 := time.Parse(time.RFC3339Nano, gotStr)
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("generalise-time of %v gives %v", cv, got)
		}
		unit := map[string]time.Duration{"second": time.Second, "minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[fmt.Sprint(tr["unit"])]
		if unit == 0 || !gt.Equal(ct.UTC().Truncate(unit)) {
			return fmt.Sprintf("generalise-time %v of %s gives %s", tr["unit"], clearStr, gotStr)
		}
	case "generalise-location":
		meters := isoNum(tr["meters"])
		pair, _ := tr["pair"].(string)
		axis, _ := tr["axis"].(string)
		cf, ok1 := cv.(float64)
		gv, ok2 := got.(float64)
		po, ok3 := r.m[pair].(float64)
		if !ok1 || !ok2 || !ok3 {
			return fmt.Sprintf("generalise-location of %v (pair %s=%v) gives %v", cv, pair, r.m[pair], got)
		}
		lat, lon := cf, po
		if axis == "lon" {
			lat, lon = po, cf
		}
		wlat, wlon := masking.GeneraliseLatLon(lat, lon, meters)
		w := wlat
		if axis == "lon" {
			w = wlon
		}
		if math.Abs(w-gv) > 1e-9 {
			return fmt.Sprintf("generalise-location %s of (%v, %v) gives %v, want %v", axis, lat, lon, gv, w)
		}
		deg := meters / 111_320 * 2 // generous: a cell is at least meters, at most about twice that
		if axis == "lon" {
			deg /= math.Cos(lat * math.Pi / 180)
		}
		if math.Abs(gv-cf) > deg {
			return fmt.Sprintf("generalise-location %s moved %v to %v, more than a grid cell", axis, cf, gv)
		}
	case "bucket":
		cf, ok1 := cv.(float64)
		gv, ok2 := got.(float64)
		if !ok1 || !ok2 || gv > cf {
			return fmt.Sprintf("bucket of %v gives %v", cv, got)
		}
	case "keep":
	default:
		return fmt.Sprintf("treatment %v is not checked by the isolation test; extend checkField", tr)
	}
	return ""
}

// ---------------------------------------------------------------------------
// Streams (phase 2).
// ---------------------------------------------------------------------------

type isoStream struct {
	v      *isoView
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	recs   [][]byte
	err    error
}

func (s *isoStream) records() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.recs)
}

func (s *isoStream) close() {
	s.cancel()
	<-s.done
}

// openStream opens an SSE stream of a view from latest: while it is open,
// the view has a ring in the hub.
func (ic *isoChecker) openStream(ctx context.Context, v *isoView) *isoStream {
	t := ic.t
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ic.e.base+"/v1/products/"+v.product+"/stream?purpose="+v.purpose, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+v.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("stream %s %s: %v", v.partner, v.product, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		t.Fatalf("stream %s %s: %d", v.partner, v.product, resp.StatusCode)
	}
	s := &isoStream{v: v, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		r := sseclient.NewReader(resp.Body)
		for {
			ev, err := r.Next()
			if err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			switch ev.Type {
			case "record":
				s.mu.Lock()
				s.recs = append(s.recs, bytes.Clone(ev.Data))
				s.mu.Unlock()
			case "error", "shutdown", "reauthenticate":
				s.mu.Lock()
				s.err = fmt.Errorf("stream ended with %s: %s", ev.Type, ev.Data)
				s.mu.Unlock()
				return
			}
		}
	}()
	return s
}

// waitStreams waits until every stream has received the batch's records
// its contract grants (or the timeout; checkView then reports what is
// missing).
func (ic *isoChecker) waitStreams(streams []*isoStream, batch int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		pending := 0
		for _, s := range streams {
			want := len(ic.expected(s.v, func(r *isoRec) bool { return r.batch == batch }))
			if len(s.records()) < want {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			ic.t.Errorf("%d streams did not receive their records within %s", pending, timeout)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Cross-partner properties.
// ---------------------------------------------------------------------------

// checkDisjoint: two partners that each see only their own rows of a
// product never receive the same record.
func (ic *isoChecker) checkDisjoint() {
	t := ic.t
	var keys []string
	for k := range ic.delivered {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := 0
	for i, a := range keys {
		for _, b := range keys[i+1:] {
			pa, proda, _ := strings.Cut(a, " ")
			pb, prodb, _ := strings.Cut(b, " ")
			if pa == pb || proda != prodb {
				continue
			}
			if !ic.ownRows(pa, proda) || !ic.ownRows(pb, prodb) {
				continue
			}
			pairs++
			n := 0
			for ps := range ic.delivered[a] {
				if ic.delivered[b][ps] {
					n++
				}
			}
			if n > 0 {
				t.Errorf("ROW LEAK: %s and %s both received %d of the same %s records", pa, pb, n, proda)
			}
			t.Logf("disjoint: %s (%d) and %s (%d) on %s", pa, len(ic.delivered[a]), pb, len(ic.delivered[b]), proda)
		}
	}
	if pairs == 0 {
		t.Error("no two partners with own-row contracts share a product: the disjointness check proves nothing")
	}
}

func (ic *isoChecker) ownRows(partner, product string) bool {
	for k, r := range ic.contracts[partner].views {
		if k[0] == product && r.own {
			return true
		}
	}
	return false
}

// checkCrossPartner: a clear value pseudonymised for two partners gets two
// different pseudonyms (no partner can join its data with another's).
func (ic *isoChecker) checkCrossPartner() {
	t := ic.t
	linked := 0
	for cv, per := range ic.byClear {
		var ks []string
		for k := range per {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for i, a := range ks {
			for _, b := range ks[i+1:] {
				pa, _, _ := strings.Cut(a, " ")
				pb, _, _ := strings.Cut(b, " ")
				if pa == pb {
					continue
				}
				ic.crossCompared++
				if per[a] == per[b] {
					linked++
					if linked <= 10 {
						t.Errorf("LINKABLE: %s and %s both get pseudonym %q for %s", pa, pb, per[a], cv)
					}
				}
			}
		}
	}
	if ic.crossCompared == 0 {
		t.Error("no clear value was pseudonymised for two partners: the unlinkability check proves nothing")
	}
	// The example of the brief: a subscriber of mvno-b whose MSISDN both
	// mvno-b and internal-noc pseudonymise.
	both := 0
	for _, r := range ic.truth["cdr"] {
		ms, _ := r.m["msisdn"].(string)
		var b, n string
		for k, ps := range ic.byClear[ms] {
			switch {
			case strings.HasPrefix(k, "mvno-b "):
				b = ps
			case strings.HasPrefix(k, "internal-noc "):
				n = ps
			}
		}
		if b != "" && n != "" {
			both++
			if b == n {
				t.Errorf("LINKABLE: mvno-b and internal-noc get the same pseudonym for %s", ms)
			}
		}
	}
	if both == 0 {
		t.Error("no MSISDN pseudonymised by both mvno-b and internal-noc")
	}
}

// checkRestart re-reads mvno-b's cdr page after a restart on the same data
// directory: the same server secret gives the same bytes, and every
// pseudonym matches the ones seen before (checkView compares them).
func (ic *isoChecker) checkRestart() {
	t := ic.t
	if len(ic.mvnoBPage) == 0 {
		t.Error("no mvno-b cdr page to compare after the restart")
		return
	}
	ic.e.restart()
	c := ic.contracts["mvno-b"]
	v := &isoView{partner: "mvno-b", product: "cdr", purpose: products.PurposeNetworkAnalytics,
		tok: ic.e.token("mvno-b"), rule: c.views[[2]string{"cdr", products.PurposeNetworkAnalytics}]}
	resp, body := ic.e.get("/v1/products/cdr/view?purpose="+v.purpose, "Authorization", "Bearer "+v.tok)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v.ex) != nil {
		t.Fatalf("mvno-b cdr view after restart: %d %s", resp.StatusCode, body)
	}
	pg, _ := ic.page(v, url.Values{"from": {"earliest"}, "limit": {"1000"}, "purpose": {v.purpose}})
	ic.checkView("rest/after-restart", v, pg, nil, false)
	if len(pg) != len(ic.mvnoBPage) {
		t.Errorf("after restart mvno-b's first cdr page has %d records, before %d", len(pg), len(ic.mvnoBPage))
		return
	}
	for i := range pg {
		if !bytes.Equal(pg[i], ic.mvnoBPage[i]) {
			t.Errorf("PSEUDONYM UNSTABLE across restart: record %d was\n%s\nnow\n%s", i, ic.mvnoBPage[i], pg[i])
			return
		}
	}
	t.Logf("after restart: mvno-b's cdr page of %d records is byte-identical", len(pg))
}

// ---------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------

// ends returns the end offset of every partition of a product's topic.
func (ic *isoChecker) ends(product string) []int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(ic.e.prod).ListEndOffsets(ctx, ic.e.topic(product))
	if err != nil {
		ic.t.Fatal(err)
	}
	p, _ := ic.cat.Get(product)
	out := make([]int64, p.Partitions)
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// directReads is the gateway's count of direct Kafka reads.
func (ic *isoChecker) directReads() float64 {
	resp, body := ic.e.get("/metrics", "Authorization", "")
	if resp.StatusCode != http.StatusOK {
		ic.t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "sluice_direct_reads_total{") {
			if f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
				sum += f
			}
		}
	}
	return sum
}

func (ic *isoChecker) byPos(recs [][]byte) map[pos][]byte {
	m := map[pos][]byte{}
	for _, raw := range recs {
		ps, _ := recordPos(ic.t, raw)
		m[ps] = raw
	}
	return m
}

// sameBytes checks that two reads of a view agree byte for byte on the
// positions both delivered (b's positions must all be in a).
func (ic *isoChecker) sameBytes(what string, v *isoView, a, b map[pos][]byte) {
	diff := 0
	for ps, rb := range b {
		ra, ok := a[ps]
		if !ok || !bytes.Equal(ra, rb) {
			diff++
			if diff <= 3 {
				ic.t.Errorf("%s %s %s %s: %v differs:\n%s\n%s", what, v.partner, v.product, v.purpose, ps, ra, rb)
			}
		}
	}
	if len(b) == 0 {
		ic.t.Errorf("%s %s %s %s: nothing to compare", what, v.partner, v.product, v.purpose)
	}
}

// isoKeys returns the top-level keys of a JSON object in order.
func isoKeys(raw []byte) []string {
	d := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return keys
		}
		k, _ := tok.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return keys
		}
	}
	return keys
}

// isoStrings returns the strings in a JSON value (itself, or an array's).
func isoStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, isoStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, e := range x {
			out = append(out, isoStrings(e)...)
		}
		return out
	}
	return nil
}

func isoDigit(c byte) bool { return c >= '0' && c <= '9' }

func isoDigits(s string) bool {
	for i := range len(s) {
		if !isoDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// isoDigitRuns returns the maximal runs of digits in s.
func isoDigitRuns(s string) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isoDigit(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			out = append(out, s[start:i])
			start = -1
		}
	}
	return out
}

func isoNum(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return 0
}

// isoText is a clear value as the text transforms see it (ints as decimal).
func isoText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

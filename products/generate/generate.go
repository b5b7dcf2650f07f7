package generate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/products"
)

// Record is one generated record, ready to be produced to Topic.
type Record struct {
	Product string // product id
	Topic   string // the product's topic
	// Key keeps related records in one partition: the subscriber's MSISDN
	// for cdr and fraud-alerts, the cell id for network-quality, the device
	// id for device-telemetry. Nil when the product has no natural key.
	Key []byte
	// Value is the Avro body, plain or Schema Registry framed (0x00, 4-byte
	// big-endian schema id, body).
	Value []byte
	// Time is the event time: when the call closed, the KPI interval was
	// reported, the alert was raised, the device measured.
	Time time.Time
}

// Framing modes of Options.Framing.
const (
	// FramingMixed: about half the records are plain Avro of the current
	// schema version, half Schema Registry framed with a version drawn from
	// all of the product's versions, so old versions appear.
	FramingMixed = "mixed"
	// FramingPlain: plain Avro of the current version only.
	FramingPlain = "plain"
	// FramingRegistry: Schema Registry framed, versions drawn from all of
	// the product's versions.
	FramingRegistry = "registry"
)

// Options configure a Generator. The zero value means defaults.
type Options struct {
	// Rate is the number of records per second Run emits across all
	// products; default 50, at most 1,000,000.
	Rate float64
	// Seed makes output deterministic: two generators with the same seed,
	// options and catalog produce the same records from the same calls
	// (Run's event times and network-quality scheduling follow the wall
	// clock, so only Next is fully reproducible).
	Seed int64
	// Framing is FramingMixed (default), FramingPlain or FramingRegistry.
	// A product whose catalog framing is plain or registry always gets that
	// framing, whatever this says: the generator never writes what the
	// product's readers do not expect.
	Framing string
	// ConsentOptOutRate is the share of Run's records that are consent
	// changes on ConsentTopic (default 0.01; negative: none).
	ConsentOptOutRate float64
	// Start is the event time of the first record Next returns; each call
	// advances it by 1/Rate seconds. Default: time.Now() at New. Set it
	// for reproducible timestamps.
	Start time.Time
	// SubscribersPerMVNO is the size of each of the five MVNOs' subscriber
	// pools; default 200.
	SubscribersPerMVNO int
}

const (
	defaultRate        = 50
	maxRate            = 1e6
	defaultSubscribers = 200
	maxSubscribers     = 100_000
)

// Generator produces synthetic records for the products of a catalog. It is
// safe for concurrent use, but records are only reproducible from one
// goroutine.
type Generator struct {
	opts    Options
	gens    []*productGen // catalog order
	byID    map[string]*productGen
	mixed   []*productGen // products Run draws at random (all but network-quality)
	cum     []float64     // cumulative weights over mixed
	quality *productGen   // network-quality, scheduled per cell and interval; may be nil

	mu    sync.Mutex // guards everything below
	r     *rand.Rand
	w     *world
	n     int64 // records returned by Next, for the virtual clock
	nq    nqState
	fraud fraudState

	// The subscriber, device and cell of the record being built, picked
	// on first use, so that a generic record's identifiers agree.
	recSub  *subscriber
	recDev  *device
	recCell *cell
}

// productGen generates one product.
type productGen struct {
	p        *products.Product
	model    model
	versions []versionGen
	weight   float64
}

// versionGen encodes one schema version; fill supplies the fields of that
// version the product's model does not set.
type versionGen struct {
	v    products.SchemaVersion
	fill []filler
}

// model builds one record of a product as a map from field name to value
// (the representation hamba/avro encodes against any schema version).
type model interface {
	// fields lists the keys build sets.
	fields() []string
	// build returns the record key, the field values and the event time.
	build(g *Generator, t time.Time) (key string, rec map[string]any, at time.Time)
}

// Relative shares of the products Run draws at random. Network quality is
// scheduled per cell and interval instead.
var productWeights = map[string]float64{
	"cdr":              0.72,
	"device-telemetry": 0.276,
	"fraud-alerts":     0.004,
}

const unknownProductWeight = 0.05

// New builds the world and checks that every schema version of every
// product can be generated and encoded.
func New(cat *products.Catalog, opts Options) (*Generator, error) {
	if cat == nil || len(cat.Products) == 0 {
		return nil, errors.New("generate: empty catalog; load one with products.LoadDefault")
	}
	switch {
	case math.IsNaN(opts.Rate) || opts.Rate < 0 || opts.Rate > maxRate:
		return nil, fmt.Errorf("generate: rate %v records/s out of range (want 0 for the default %d, up to %g)", opts.Rate, defaultRate, maxRate)
	case opts.Rate == 0:
		opts.Rate = defaultRate
	}
	switch opts.Framing {
	case "":
		opts.Framing = FramingMixed
	case FramingMixed, FramingPlain, FramingRegistry:
	default:
		return nil, fmt.Errorf("generate: unknown framing %q (want mixed, plain or registry)", opts.Framing)
	}
	switch {
	case opts.SubscribersPerMVNO < 0 || opts.SubscribersPerMVNO > maxSubscribers:
		return nil, fmt.Errorf("generate: %d subscribers per MVNO out of range (want 0 for the default %d, up to %d)", opts.SubscribersPerMVNO, defaultSubscribers, maxSubscribers)
	case opts.SubscribersPerMVNO == 0:
		opts.SubscribersPerMVNO = defaultSubscribers
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	opts.Start = opts.Start.UTC().Truncate(time.Millisecond)

	// Probe on a throwaway generator, so the one returned starts from the
	// seed's first state.
	probe, err := build(cat, opts)
	if err != nil {
		return nil, err
	}
	for _, pg := range probe.gens {
		for vi := range pg.versions {
			if _, err := probe.record(pg, probe.clock(), framingFor(pg, vi), vi); err != nil {
				return nil, fmt.Errorf("generate: product %q cannot be generated with schema version %d (%s): %w",
					pg.p.ID, pg.versions[vi].v.Version, pg.versions[vi].v.File, err)
			}
		}
	}
	return build(cat, opts)
}

func framingFor(pg *productGen, vi int) bool {
	return pg.p.Framing == products.FramingRegistry || vi != len(pg.versions)-1
}

func build(cat *products.Catalog, opts Options) (*Generator, error) {
	r := rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed_51c3))
	g := &Generator{
		opts: opts,
		byID: map[string]*productGen{},
		w:    newWorld(r, opts.SubscribersPerMVNO),
	}
	// Records draw from their own stream, so the world does not shift when
	// a product is added.
	g.r = rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
	g.nq.order = r.Perm(len(g.w.cells))
	for _, p := range cat.Products {
		pg := &productGen{p: p, model: modelFor(p)}
		provided := map[string]bool{}
		for _, f := range pg.model.fields() {
			provided[f] = true
		}
		for _, v := range p.Versions {
			rec, ok := v.Schema.(*avro.RecordSchema)
			if !ok {
				return nil, fmt.Errorf("generate: product %q schema version %d is a %s, want a record", p.ID, v.Version, v.Schema.Type())
			}
			vg := versionGen{v: v}
			for _, f := range rec.Fields() {
				if !provided[f.Name()] {
					vg.fill = append(vg.fill, newFiller(f))
				}
			}
			pg.versions = append(pg.versions, vg)
		}
		if _, ok := pg.model.(*qualityModel); ok {
			g.quality = pg
		} else {
			pg.weight = unknownProductWeight
			if w, ok := productWeights[p.ID]; ok {
				pg.weight = w
			}
			g.mixed = append(g.mixed, pg)
			g.cum = append(g.cum, sumLast(g.cum)+pg.weight)
		}
		g.gens = append(g.gens, pg)
		g.byID[p.ID] = pg
	}
	g.nq.cells = min(len(g.w.cells), max(1, int(0.2*opts.Rate*nqInterval.Seconds())))
	return g, nil
}

func sumLast(cum []float64) float64 {
	if len(cum) == 0 {
		return 0
	}
	return cum[len(cum)-1]
}

// modelFor returns the model of a known product, or the schema-driven one.
func modelFor(p *products.Product) model {
	switch p.ID {
	case "cdr":
		return cdrModel{}
	case "network-quality":
		return &qualityModel{}
	case "fraud-alerts":
		return fraudModel{}
	case "device-telemetry":
		return telemetryModel{}
	}
	return newGenericModel(p)
}

// Next returns one record of the product, without pacing. Its event time
// follows a virtual clock starting at Options.Start and advancing 1/Rate
// seconds per call.
func (g *Generator) Next(product string) (Record, error) {
	pg, ok := g.byID[product]
	if !ok {
		return Record{}, fmt.Errorf("generate: unknown product %q", product)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.clock()
	g.n++
	framed, vi := g.chooseFraming(pg)
	return g.record(pg, t, framed, vi)
}

// clock is the virtual time of the next Next record.
func (g *Generator) clock() time.Time {
	return g.opts.Start.Add(time.Duration(float64(g.n) / g.opts.Rate * float64(time.Second)))
}

// advanceTo moves the virtual clock of Next to t or later.
func (g *Generator) advanceTo(t time.Time) {
	if n := int64(math.Ceil(t.Sub(g.opts.Start).Seconds()*g.opts.Rate)) + 1; n > g.n {
		g.n = n
	}
}

// chooseFraming decides whether the next record of pg is framed, and with
// which version (an index into pg.versions).
func (g *Generator) chooseFraming(pg *productGen) (bool, int) {
	cur := len(pg.versions) - 1
	mode := g.opts.Framing
	switch pg.p.Framing {
	case products.FramingPlain:
		mode = FramingPlain
	case products.FramingRegistry:
		mode = FramingRegistry
	}
	switch mode {
	case FramingPlain:
		return false, cur
	case FramingMixed:
		if g.r.IntN(2) == 0 {
			return false, cur
		}
	}
	return true, g.r.IntN(len(pg.versions))
}

// record builds and encodes one record at time t.
func (g *Generator) record(pg *productGen, t time.Time, framed bool, vi int) (Record, error) {
	g.recSub, g.recDev, g.recCell = nil, nil, nil
	key, m, at := pg.model.build(g, t)
	vg := &pg.versions[vi]
	for _, f := range vg.fill {
		m[f.name] = f.gen(g, t)
	}
	body, err := avro.Marshal(vg.v.Schema, m)
	if err != nil {
		return Record{}, fmt.Errorf("generate: encode %s with schema version %d: %w", pg.p.ID, vg.v.Version, err)
	}
	if framed {
		buf := make([]byte, 5, 5+len(body))
		binary.BigEndian.PutUint32(buf[1:], uint32(vg.v.ID))
		body = append(buf, body...)
	}
	rec := Record{Product: pg.p.ID, Topic: pg.p.Topic, Value: body, Time: at}
	if key != "" {
		rec.Key = []byte(key)
	}
	return rec, nil
}

// Run emits records at Options.Rate, spread over the products with
// realistic weights (cdr most, network-quality one record per cell per
// minute, fraud-alerts rare), until ctx is done; then it returns nil. An
// error from emit ends Run and is returned, unless ctx is done by then.
//
// Pacing is a token bucket refilled at Rate and drained in batches (at
// most every 2 ms), so high rates cost few wake-ups. When emit is slower
// than the rate, Run falls behind by at most 100 ms worth of records and
// then drops the deficit rather than bursting. Run one Run at a time per
// Generator: two would each emit at Rate.
func (g *Generator) Run(ctx context.Context, emit func(context.Context, Record) error) error {
	if emit == nil {
		return errors.New("generate: Run needs an emit function")
	}
	const minWait = 2 * time.Millisecond
	rate := g.opts.Rate
	maxBacklog := int64(math.Max(1, rate/10))
	start := time.Now()
	var sent int64
	var err error
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		now := time.Now()
		due := int64(now.Sub(start).Seconds()*rate) + 1
		if due-sent > maxBacklog {
			sent = due - maxBacklog
		}
		for ; sent < due; sent++ {
			if ctx.Err() != nil {
				return nil
			}
			var rec Record
			if g.consentDue() {
				rec = g.NextConsent()
			} else if rec, err = g.scheduled(now); err != nil {
				return err
			}
			if err := emit(ctx, rec); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("generate: emit %s record: %w", rec.Product, err)
			}
		}
		wait := time.Until(start.Add(time.Duration(float64(sent) / rate * float64(time.Second))))
		timer.Reset(max(wait, minWait))
	}
}

// consentDue draws whether Run's next record is a consent change.
func (g *Generator) consentDue() bool {
	rate := g.opts.ConsentOptOutRate
	if rate == 0 {
		rate = 0.01
	}
	if rate < 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.r.Float64() < rate
}

// scheduled returns the next record of Run at wall time now: a
// network-quality report when a cell is due, otherwise a product drawn by
// weight.
func (g *Generator) scheduled(now time.Time) (Record, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now = now.UTC()
	var pg *productGen
	switch {
	case g.quality != nil && g.nqDue(now):
		pg = g.quality
	case len(g.mixed) == 0:
		// Only network quality, and no cell is due: report the next cell
		// early rather than emit nothing.
		pg = g.quality
	default:
		pg = g.mixed[pick(g.r, g.cum)]
	}
	framed, vi := g.chooseFraming(pg)
	return g.record(pg, now, framed, vi)
}

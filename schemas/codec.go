package schemas

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"
)

// Framing says how a product's record values are framed on Kafka.
type Framing string

const (
	// FramingAuto (the default, also ""): a value starting with magic byte
	// 0 whose schema id is known or resolvable is read as framed; anything
	// else is read as plain Avro written with the current schema. If a
	// framed read fails, the plain read is tried before giving up. A plain
	// record whose first byte is 0 can be mistaken for a framed one: use
	// FramingPlain or FramingRegistry when the topic's framing is known.
	FramingAuto Framing = "auto"
	// FramingPlain: every value is Avro written with the current schema.
	FramingPlain Framing = "plain"
	// FramingRegistry: every value carries the Confluent Schema Registry
	// header (byte 0, 4-byte big-endian schema id) before the Avro body.
	FramingRegistry Framing = "registry"
)

// SchemaVersion is one version of a product's schema from the catalog.
type SchemaVersion struct {
	Version int         // product schema version; the highest is the reader schema
	ID      int         // Schema Registry id; <= 0 when the version is not registered
	Schema  avro.Schema // must be a record
}

// Registry resolves Schema Registry ids the product catalog does not list.
// Implementations must be safe for concurrent use; Codec calls SchemaByID
// on the record path only for ids it has not seen in the last 30 s.
type Registry interface {
	SchemaByID(ctx context.Context, id int) (avro.Schema, error)
}

const (
	// negativeTTL is how long a failed registry lookup is remembered.
	negativeTTL = 30 * time.Second
	// maxNegative bounds remembered failures so corrupt input naming random
	// ids cannot grow memory or flood the registry; past it, unknown ids
	// fail without a lookup until entries expire.
	maxNegative = 1024
)

// Codec decodes one product's record values: it picks plain or framed
// reading, resolves schema ids through the catalog versions and then the
// external registry, and reads every version into the current layout.
// It is safe for concurrent use.
type Codec struct {
	product string
	framing Framing
	layout  *Layout
	current *Decoder
	static  map[int]*Decoder // catalog versions by registry id; immutable
	reg     Registry

	dyn      atomic.Pointer[map[int]*regEntry] // copy-on-write snapshot
	mu       sync.Mutex                        // serialises dyn updates and inflight
	inflight map[int]*lookup
	now      func() time.Time

	errNoHeader error
	errFlooded  error
}

type regEntry struct {
	dec   *Decoder
	err   error
	until time.Time // failures only
}

type lookup struct {
	done chan struct{}
	e    *regEntry
}

// NewCodec builds a product's codec. The reader schema is the version with
// the highest Version; decoders from every version into it are compiled
// now, so an incompatible catalog fails here, naming version and field.
// reg may be nil: ids outside the catalog are then unknown.
func NewCodec(product string, framing Framing, versions []SchemaVersion, reg Registry) (*Codec, error) {
	switch framing {
	case "":
		framing = FramingAuto
	case FramingAuto, FramingPlain, FramingRegistry:
	default:
		return nil, fmt.Errorf("schemas: product %q: framing %q must be one of auto, plain, registry", product, framing)
	}
	if len(versions) == 0 {
		return nil, fmt.Errorf("schemas: product %q: no schema versions", product)
	}
	cur := -1
	seenVersion := map[int]bool{}
	for i, v := range versions {
		if v.Schema == nil {
			return nil, fmt.Errorf("schemas: product %q: version %d has no schema", product, v.Version)
		}
		if seenVersion[v.Version] {
			return nil, fmt.Errorf("schemas: product %q: version %d listed twice", product, v.Version)
		}
		seenVersion[v.Version] = true
		if cur < 0 || v.Version > versions[cur].Version {
			cur = i
		}
	}
	layout, err := NewLayout(versions[cur].Schema)
	if err != nil {
		return nil, fmt.Errorf("schemas: product %q: version %d: %w", product, versions[cur].Version, err)
	}
	c := &Codec{
		product:  product,
		framing:  framing,
		layout:   layout,
		static:   map[int]*Decoder{},
		reg:      reg,
		inflight: map[int]*lookup{},
		now:      time.Now,
	}
	byID := map[int]int{}
	for i, v := range versions {
		dec, err := NewDecoder(v.Schema, layout)
		if err != nil {
			return nil, fmt.Errorf("schemas: product %q: version %d (id %d) cannot be read as current version %d: %w",
				product, v.Version, v.ID, versions[cur].Version, err)
		}
		if i == cur {
			c.current = dec
		}
		if v.ID <= 0 {
			continue
		}
		if j, dup := byID[v.ID]; dup {
			return nil, fmt.Errorf("schemas: product %q: versions %d and %d share registry id %d", product, versions[j].Version, v.Version, v.ID)
		}
		byID[v.ID] = i
		c.static[v.ID] = dec
	}
	c.errNoHeader = fmt.Errorf("schemas: product %q: value lacks the schema registry header (magic byte 0 and 4-byte id): %w", product, ErrMalformed)
	c.errFlooded = fmt.Errorf("schemas: product %q: too many unknown schema ids in the last %s; not looking this one up: %w", product, negativeTTL, ErrUnknownSchemaID)
	return c, nil
}

// Layout returns the product's current (reader) layout.
func (c *Codec) Layout() *Layout { return c.layout }

// Product returns the product id the codec was built for.
func (c *Codec) Product() string { return c.product }

// Decode reads one Kafka record value into rec. Errors wrap ErrMalformed,
// ErrUnknownSchemaID or ErrIncompatible. After the first record of each
// schema id, it does not allocate on success.
func (c *Codec) Decode(ctx context.Context, value []byte, rec *Record) error {
	switch c.framing {
	case FramingPlain:
		return c.current.Decode(value, rec)
	case FramingRegistry:
		if len(value) < 5 || value[0] != 0 {
			return c.errNoHeader
		}
		dec, err := c.decoderFor(ctx, int(binary.BigEndian.Uint32(value[1:5])))
		if err != nil {
			return err
		}
		return dec.Decode(value[5:], rec)
	}
	if len(value) < 5 || value[0] != 0 {
		return c.current.Decode(value, rec)
	}
	dec, err := c.decoderFor(ctx, int(binary.BigEndian.Uint32(value[1:5])))
	if err == nil {
		err = dec.Decode(value[5:], rec)
		if err == nil {
			return nil
		}
	}
	if c.current.Decode(value, rec) == nil {
		return nil
	}
	return err
}

// decoderFor returns the decoder for a registry id.
func (c *Codec) decoderFor(ctx context.Context, id int) (*Decoder, error) {
	if d, ok := c.static[id]; ok {
		return d, nil
	}
	if m := c.dyn.Load(); m != nil {
		if e, ok := (*m)[id]; ok {
			if e.dec != nil {
				return e.dec, nil
			}
			if c.now().Before(e.until) {
				return nil, e.err
			}
		}
	}
	return c.resolve(ctx, id)
}

// resolve looks an id up in the registry (one lookup per id at a time) and
// caches the outcome: decoders for good, failures for negativeTTL.
func (c *Codec) resolve(ctx context.Context, id int) (*Decoder, error) {
	c.mu.Lock()
	if m := c.dyn.Load(); m != nil {
		if e, ok := (*m)[id]; ok && (e.dec != nil || c.now().Before(e.until)) {
			c.mu.Unlock()
			return e.dec, e.err
		}
	}
	if l, ok := c.inflight[id]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.e.dec, l.e.err
		case <-ctx.Done():
			return nil, fmt.Errorf("schemas: product %q: waiting for schema id %d: %w", c.product, id, ctx.Err())
		}
	}
	if c.negativeFullLocked() {
		c.mu.Unlock()
		return nil, c.errFlooded
	}
	if c.reg == nil {
		e := &regEntry{
			err:   fmt.Errorf("schemas: product %q: schema id %d is not a catalog version and no registry is configured: %w", c.product, id, ErrUnknownSchemaID),
			until: c.now().Add(negativeTTL),
		}
		c.storeLocked(id, e)
		c.mu.Unlock()
		return nil, e.err
	}
	l := &lookup{done: make(chan struct{})}
	c.inflight[id] = l
	c.mu.Unlock()

	e, cacheable := c.fetch(ctx, id)

	c.mu.Lock()
	if cacheable {
		c.storeLocked(id, e)
	}
	delete(c.inflight, id)
	l.e = e
	close(l.done)
	c.mu.Unlock()
	return e.dec, e.err
}

func (c *Codec) fetch(ctx context.Context, id int) (e *regEntry, cacheable bool) {
	e = &regEntry{until: c.now().Add(negativeTTL)}
	s, err := c.reg.SchemaByID(ctx, id)
	if err != nil {
		e.err = fmt.Errorf("schemas: product %q: schema id %d: %w: %w", c.product, id, ErrUnknownSchemaID, err)
		// The caller giving up says nothing about the id: do not remember it.
		return e, ctx.Err() == nil
	}
	dec, err := NewDecoder(s, c.layout)
	if err != nil {
		e.err = fmt.Errorf("schemas: product %q: writer schema id %d: %w", c.product, id, err)
		return e, true
	}
	e.dec = dec
	return e, true
}

// negativeFullLocked reports whether the failure cache is full after
// dropping expired entries.
func (c *Codec) negativeFullLocked() bool {
	m := c.dyn.Load()
	if m == nil {
		return false
	}
	n := 0
	for _, e := range *m {
		if e.dec == nil {
			n++
		}
	}
	if n < maxNegative {
		return false
	}
	now := c.now()
	next := make(map[int]*regEntry, len(*m))
	n = 0
	for id, e := range *m {
		if e.dec != nil || now.Before(e.until) {
			next[id] = e
			if e.dec == nil {
				n++
			}
		}
	}
	c.dyn.Store(&next)
	return n >= maxNegative
}

func (c *Codec) storeLocked(id int, e *regEntry) {
	old := c.dyn.Load()
	next := make(map[int]*regEntry, 1)
	if old != nil {
		next = make(map[int]*regEntry, len(*old)+1)
		for k, v := range *old {
			next[k] = v
		}
	}
	next[id] = e
	c.dyn.Store(&next)
}

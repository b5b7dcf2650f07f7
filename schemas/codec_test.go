package schemas

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

const (
	usageV1 = `{"type":"record","name":"Usage","namespace":"sluice.test","fields":[
		{"name":"id","type":"string"},{"name":"bytes","type":"long"}]}`
	usageV2 = `{"type":"record","name":"Usage","namespace":"sluice.test","fields":[
		{"name":"id","type":"string"},{"name":"bytes","type":"long"},{"name":"plan","type":"string","default":"basic"}]}`
	// usageExt is only in the external registry: int bytes (promoted), an extra field.
	usageExt = `{"type":"record","name":"Usage","namespace":"sluice.test","fields":[
		{"name":"id","type":"string"},{"name":"bytes","type":"int"},{"name":"extra","type":"boolean"}]}`
	usageBad = `{"type":"record","name":"Usage","namespace":"sluice.test","fields":[
		{"name":"id","type":"boolean"},{"name":"bytes","type":"long"}]}`
)

func framed(id int, body []byte) []byte {
	out := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(id))
	return append(out, body...)
}

func usageVersions(t testing.TB) []SchemaVersion {
	return []SchemaVersion{
		{Version: 2, ID: 12, Schema: mustParse(t, usageV2)},
		{Version: 1, ID: 11, Schema: mustParse(t, usageV1)},
	}
}

func mustCodec(t testing.TB, framing Framing, reg Registry) *Codec {
	t.Helper()
	c, err := NewCodec("usage", framing, usageVersions(t), reg)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

func decodeJSON(t testing.TB, c *Codec, value []byte) (string, error) {
	t.Helper()
	rc := c.Layout().NewRecord()
	if err := c.Decode(context.Background(), value, rc); err != nil {
		return "", err
	}
	return string(appendObject(nil, keys(c.Layout()), rc)), nil
}

func TestCodecFraming(t *testing.T) {
	v1 := mustParse(t, usageV1)
	v2 := mustParse(t, usageV2)
	bodyV1 := mustMarshal(t, v1, map[string]any{"id": "u1", "bytes": int64(10)})
	bodyV2 := mustMarshal(t, v2, map[string]any{"id": "u2", "bytes": int64(20), "plan": "pro"})
	tests := []struct {
		note    string
		framing Framing
		value   []byte
		want    string
		wantErr error
	}{
		{"plain reads the current version", FramingPlain, bodyV2, `{"id":"u2","bytes":20,"plan":"pro"}`, nil},
		{"registry framing, catalog id of an old version", FramingRegistry, framed(11, bodyV1), `{"id":"u1","bytes":10,"plan":"basic"}`, nil},
		{"registry framing, catalog id of the current version", FramingRegistry, framed(12, bodyV2), `{"id":"u2","bytes":20,"plan":"pro"}`, nil},
		{"registry framing without header", FramingRegistry, bodyV2, "", ErrMalformed},
		{"registry framing, short value", FramingRegistry, []byte{0, 0, 0}, "", ErrMalformed},
		{"registry framing, unknown id, no registry", FramingRegistry, framed(77, bodyV2), "", ErrUnknownSchemaID},
		{"registry framing, corrupt body", FramingRegistry, framed(11, bodyV1[:3]), "", ErrMalformed},
		{"auto, plain value", FramingAuto, bodyV2, `{"id":"u2","bytes":20,"plan":"pro"}`, nil},
		{"auto (empty string), framed value", "", framed(11, bodyV1), `{"id":"u1","bytes":10,"plan":"basic"}`, nil},
		{"auto, unknown id and not plain either", FramingAuto, framed(77, bodyV2), "", ErrUnknownSchemaID},
		{"auto, corrupt plain value", FramingAuto, bodyV2[:4], "", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.note, func(t *testing.T) {
			c := mustCodec(t, tc.framing, nil)
			got, err := decodeJSON(t, c, tc.value)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			jsonEqual(t, []byte(got), tc.want)
		})
	}
}

// TestCodecAutoPlainStartingWithZero: in auto mode a plain record whose
// first byte is 0 (empty string) is still read as plain.
func TestCodecAutoPlainStartingWithZero(t *testing.T) {
	c := mustCodec(t, FramingAuto, nil)
	body := mustMarshal(t, mustParse(t, usageV2), map[string]any{"id": "", "bytes": int64(1 << 30), "plan": "x"})
	got, err := decodeJSON(t, c, body)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, []byte(got), `{"id":"","bytes":1073741824,"plan":"x"}`)
}

func TestNewCodecErrors(t *testing.T) {
	v1, v2 := mustParse(t, usageV1), mustParse(t, usageV2)
	tests := []struct {
		note     string
		framing  Framing
		versions []SchemaVersion
		want     string
	}{
		{"no versions", FramingAuto, nil, "no schema versions"},
		{"bad framing", "confluent", []SchemaVersion{{Version: 1, Schema: v1}}, `framing "confluent"`},
		{"duplicate version", FramingAuto, []SchemaVersion{{Version: 1, Schema: v1}, {Version: 1, Schema: v2}}, "version 1 listed twice"},
		{"duplicate id", FramingAuto, []SchemaVersion{{Version: 1, ID: 5, Schema: v1}, {Version: 2, ID: 5, Schema: v2}}, "share registry id 5"},
		{"nil schema", FramingAuto, []SchemaVersion{{Version: 1}}, "version 1 has no schema"},
		{"old version incompatible with current", FramingAuto,
			[]SchemaVersion{{Version: 1, ID: 1, Schema: mustParse(t, usageBad)}, {Version: 2, ID: 2, Schema: v2}}, `version 1 (id 1) cannot be read as current version 2: schemas: field "id"`},
		{"current version not a record", FramingAuto, []SchemaVersion{{Version: 1, Schema: avro.NewPrimitiveSchema(avro.String, nil)}}, "must be a record"},
	}
	for _, tc := range tests {
		_, err := NewCodec("usage", tc.framing, tc.versions, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.note, err, tc.want)
		}
	}
}

// fakeSR serves an in-memory Schema Registry over HTTP and counts id lookups.
type fakeSR struct {
	*srfake.Registry
	lookups atomic.Int64
	gate    chan struct{} // when non-nil, id lookups wait for it to close
}

func newFakeSR(t *testing.T) *fakeSR {
	f := &fakeSR{Registry: srfake.New()}
	t.Cleanup(f.Close)
	f.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			f.lookups.Add(1)
			if f.gate != nil {
				<-f.gate
			}
		}
		return false
	})
	f.SeedSchema("usage-value", 3, 99, sr.Schema{Schema: usageExt})
	f.SeedSchema("usage-value", 4, 66, sr.Schema{Schema: usageBad})
	return f
}

func mustRegistry(t *testing.T, f *fakeSR) Registry {
	reg, err := NewRegistryClient(f.URL())
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestCodecExternalRegistry(t *testing.T) {
	f := newFakeSR(t)
	c := mustCodec(t, FramingRegistry, mustRegistry(t, f))
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }

	ext := mustParse(t, usageExt)
	value := framed(99, mustMarshal(t, ext, map[string]any{"id": "x9", "bytes": 7, "extra": true}))
	for range 3 {
		got, err := decodeJSON(t, c, value)
		if err != nil {
			t.Fatal(err)
		}
		jsonEqual(t, []byte(got), `{"id":"x9","bytes":7,"plan":"basic"}`)
	}
	if n := f.lookups.Load(); n != 1 {
		t.Fatalf("registry saw %d lookups for id 99, want 1 (cached)", n)
	}

	// Catalog ids never reach the registry.
	if _, err := decodeJSON(t, c, framed(11, mustMarshal(t, mustParse(t, usageV1), map[string]any{"id": "a", "bytes": int64(1)}))); err != nil {
		t.Fatal(err)
	}
	if n := f.lookups.Load(); n != 1 {
		t.Fatalf("catalog id went to the registry (%d lookups)", n)
	}

	// Unknown id: negative result cached for 30 s.
	f.lookups.Store(0)
	for range 3 {
		if _, err := decodeJSON(t, c, framed(1234, []byte{2, 'a', 2})); !errors.Is(err, ErrUnknownSchemaID) {
			t.Fatalf("err = %v, want ErrUnknownSchemaID", err)
		}
	}
	if n := f.lookups.Load(); n != 1 {
		t.Fatalf("registry saw %d lookups for unknown id, want 1", n)
	}
	now = now.Add(29 * time.Second)
	decodeJSON(t, c, framed(1234, nil))
	if n := f.lookups.Load(); n != 1 {
		t.Fatalf("lookup repeated before 30 s (%d)", n)
	}
	now = now.Add(2 * time.Second)
	decodeJSON(t, c, framed(1234, nil))
	if n := f.lookups.Load(); n != 2 {
		t.Fatalf("registry saw %d lookups after the negative entry expired, want 2", n)
	}

	// A registered but incompatible writer schema fails with ErrIncompatible.
	if _, err := decodeJSON(t, c, framed(66, []byte{0})); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), `"id"`) {
		t.Fatalf("incompatible registry schema: err = %v", err)
	}
}

// TestCodecHotPathAllocs: framed decoding through a registry-resolved id
// does not allocate once the id is cached.
func TestCodecHotPathAllocs(t *testing.T) {
	f := newFakeSR(t)
	c := mustCodec(t, FramingAuto, mustRegistry(t, f))
	value := framed(99, mustMarshal(t, mustParse(t, usageExt), map[string]any{"id": "x9", "bytes": 7, "extra": true}))
	catalog := framed(11, mustMarshal(t, mustParse(t, usageV1), map[string]any{"id": "a", "bytes": int64(1)}))
	rc := c.Layout().NewRecord()
	ctx := context.Background()
	if err := c.Decode(ctx, value, rc); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(500, func() {
		if err := c.Decode(ctx, value, rc); err != nil {
			t.Fatal(err)
		}
		if err := c.Decode(ctx, catalog, rc); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Codec.Decode allocated %.1f times, want 0", allocs)
	}
}

// TestCodecSingleLookup: concurrent records naming the same new id cause
// one registry lookup.
func TestCodecSingleLookup(t *testing.T) {
	f := newFakeSR(t)
	f.gate = make(chan struct{})
	c := mustCodec(t, FramingRegistry, mustRegistry(t, f))
	value := framed(99, mustMarshal(t, mustParse(t, usageExt), map[string]any{"id": "x9", "bytes": 7, "extra": true}))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			rc := c.Layout().NewRecord()
			errs <- c.Decode(context.Background(), value, rc)
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.lookups.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(f.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.lookups.Load(); n != 1 {
		t.Fatalf("%d registry lookups, want 1", n)
	}
}

// funcRegistry adapts a function to Registry.
type funcRegistry func(ctx context.Context, id int) (avro.Schema, error)

func (f funcRegistry) SchemaByID(ctx context.Context, id int) (avro.Schema, error) { return f(ctx, id) }

// TestCodecCancelledLookupNotCached: a lookup failing because the caller's
// context ended is not remembered as an unknown id.
func TestCodecCancelledLookupNotCached(t *testing.T) {
	var calls atomic.Int64
	ext := mustParse(t, usageExt)
	reg := funcRegistry(func(ctx context.Context, id int) (avro.Schema, error) {
		calls.Add(1)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return ext, nil
	})
	c := mustCodec(t, FramingRegistry, reg)
	value := framed(99, mustMarshal(t, ext, map[string]any{"id": "x9", "bytes": 7, "extra": true}))
	rc := c.Layout().NewRecord()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Decode(ctx, value, rc); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
	if err := c.Decode(context.Background(), value, rc); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d lookups, want 2", n)
	}
}

// TestCodecNegativeCacheBound: past maxNegative remembered failures, new
// unknown ids fail without a lookup until old entries expire.
func TestCodecNegativeCacheBound(t *testing.T) {
	var calls atomic.Int64
	reg := funcRegistry(func(ctx context.Context, id int) (avro.Schema, error) {
		calls.Add(1)
		return nil, errors.New("not found")
	})
	c := mustCodec(t, FramingRegistry, reg)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	rc := c.Layout().NewRecord()
	ctx := context.Background()
	for id := 1000; id < 1000+maxNegative; id++ {
		c.Decode(ctx, framed(id, nil), rc)
	}
	if n := calls.Load(); n != maxNegative {
		t.Fatalf("%d lookups, want %d", n, maxNegative)
	}
	err := c.Decode(ctx, framed(5000, nil), rc)
	if !errors.Is(err, ErrUnknownSchemaID) || calls.Load() != maxNegative {
		t.Fatalf("flooded: err = %v, lookups %d", err, calls.Load())
	}
	now = now.Add(negativeTTL + time.Second)
	c.Decode(ctx, framed(5000, nil), rc)
	if n := calls.Load(); n != maxNegative+1 {
		t.Fatalf("after expiry: %d lookups, want %d", n, maxNegative+1)
	}
}

// TestRegistryClientReferences resolves a schema that references another
// subject's schema.
func TestRegistryClientReferences(t *testing.T) {
	f := newFakeSR(t)
	f.SeedSchema("cell-value", 1, 40, sr.Schema{Schema: `{"type":"record","name":"Cell","namespace":"sluice.test","fields":[{"name":"id","type":"string"}]}`})
	f.SeedSchema("event-value", 1, 41, sr.Schema{
		Schema:     `{"type":"record","name":"Event","namespace":"sluice.test","fields":[{"name":"cell","type":"Cell"}]}`,
		References: []sr.SchemaReference{{Name: "sluice.test.Cell", Subject: "cell-value", Version: 1}},
	})
	reg := mustRegistry(t, f)
	s, err := reg.SchemaByID(context.Background(), 41)
	if err != nil {
		t.Fatal(err)
	}
	l := mustLayout(t, s)
	d := mustDecoder(t, s, l)
	rc := l.NewRecord()
	if err := d.Decode(mustMarshal(t, s, map[string]any{"cell": map[string]any{"id": "c1"}}), rc); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, appendObject(nil, keys(l), rc), `{"cell":{"id":"c1"}}`)
	if _, err := reg.SchemaByID(context.Background(), 4242); err == nil {
		t.Fatal("unknown id resolved")
	}
}

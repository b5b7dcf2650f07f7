package schemas

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// registryClient is a Registry backed by a Confluent-compatible Schema
// Registry over HTTP (franz-go pkg/sr). Schemas are immutable per id, so
// parsed schemas are cached forever; failures are not cached here (Codec
// remembers them for 30 s).
type registryClient struct {
	cl *sr.Client

	mu   sync.Mutex
	byID map[int]avro.Schema
}

// NewRegistryClient returns a Registry for the Schema Registry at url.
// opts are passed to sr.NewClient after sr.URLs(url) (for auth, TLS, a
// custom http.Client, ...). Schema references are resolved by subject and
// version; non-Avro schemas are rejected.
func NewRegistryClient(url string, opts ...sr.ClientOpt) (Registry, error) {
	if url == "" {
		return nil, fmt.Errorf("schemas: registry url is empty; set it or pass a nil Registry")
	}
	cl, err := sr.NewClient(append([]sr.ClientOpt{sr.URLs(url)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("schemas: registry %s: %w", url, err)
	}
	return &registryClient{cl: cl, byID: map[int]avro.Schema{}}, nil
}

func (r *registryClient) SchemaByID(ctx context.Context, id int) (avro.Schema, error) {
	r.mu.Lock()
	s, ok := r.byID[id]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	got, err := r.cl.SchemaByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("schemas: registry: schema id %d: %w", id, err)
	}
	if got.Type != sr.TypeAvro {
		return nil, fmt.Errorf("schemas: registry: schema id %d is %s, not Avro", id, got.Type)
	}
	cache := &avro.SchemaCache{}
	if err := r.parseRefs(ctx, got.References, cache, map[string]bool{}, 0); err != nil {
		return nil, fmt.Errorf("schemas: registry: schema id %d: %w", id, err)
	}
	s, err = avro.ParseBytesWithCache([]byte(got.Schema), "", cache)
	if err != nil {
		return nil, fmt.Errorf("schemas: registry: schema id %d: parse: %w", id, err)
	}
	r.mu.Lock()
	r.byID[id] = s
	r.mu.Unlock()
	return s, nil
}

// parseRefs parses referenced schemas, depth first, into cache.
func (r *registryClient) parseRefs(ctx context.Context, refs []sr.SchemaReference, cache *avro.SchemaCache, seen map[string]bool, depth int) error {
	if depth > 32 {
		return fmt.Errorf("schema references nest deeper than 32")
	}
	for _, ref := range refs {
		key := ref.Subject + "/" + strconv.Itoa(ref.Version)
		if seen[key] {
			continue
		}
		seen[key] = true
		ss, err := r.cl.SchemaByVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			return fmt.Errorf("reference %q (subject %s version %d): %w", ref.Name, ref.Subject, ref.Version, err)
		}
		if err := r.parseRefs(ctx, ss.References, cache, seen, depth+1); err != nil {
			return err
		}
		if _, err := avro.ParseBytesWithCache([]byte(ss.Schema.Schema), "", cache); err != nil {
			return fmt.Errorf("reference %q (subject %s version %d): parse: %w", ref.Name, ref.Subject, ref.Version, err)
		}
	}
	return nil
}

package gateway

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"sync"

	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/gateway/view"
	"github.com/sluicehq/sluice/products/store"
)

// Avro output of the Kafka front door and the read-only Schema Registry
// that serves its schemas:
//
//   - a subscription's kafka_format (store) picks the encoding of its
//     topic's values: json (the view's JSON object) or avro (wire format:
//     0, schema id, Avro binary of the view schema; view.Avro);
//   - the schema id is the store's id of the view schema's text
//     (store.RegisterSchema), so every replica and every restart gives a
//     view the same id; schemaIDs caches them (ids never change);
//   - httpapi serves /schema-registry on registry: a partner sees the
//     subjects "<topic>-value" of its Avro topics and their schemas, by the
//     same decision as its Kafka session (kafkaOutput), and nothing else.

// schemaIDs maps view schema texts to their registry ids.
type schemaIDs struct {
	store store.Store
	mu    sync.Mutex
	ids   map[[32]byte]uint32
}

func newSchemaIDs(s store.Store) *schemaIDs {
	return &schemaIDs{store: s, ids: map[[32]byte]uint32{}}
}

// id registers schema (once per process) and returns its id.
func (r *schemaIDs) id(ctx context.Context, schema []byte) (uint32, error) {
	sum := sha256.Sum256(schema)
	r.mu.Lock()
	id, ok := r.ids[sum]
	r.mu.Unlock()
	if ok {
		return id, nil
	}
	n, err := r.store.RegisterSchema(ctx, string(schema))
	if err != nil {
		return 0, fmt.Errorf("register view schema: %w", err)
	}
	if n <= 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("register view schema: id %d out of the registry's range", n)
	}
	r.mu.Lock()
	r.ids[sum] = uint32(n)
	r.mu.Unlock()
	return uint32(n), nil
}

// kafkaOutput is the view a Kafka topic's records are encoded by: the
// governed view itself (JSON) or its Avro form under the view schema's id.
func (g *Gateway) kafkaOutput(ctx context.Context, v *view.Governed, format string) (view.View, error) {
	if format != store.KafkaFormatAvro {
		return v, nil
	}
	id, err := g.schemaIDs.id(ctx, v.Schema())
	if err != nil {
		return nil, err
	}
	return view.NewAvro(v, id)
}

// registry is httpapi.SchemaRegistry over the partner's Kafka decisions.
type registry struct{ g *Gateway }

var _ httpapi.SchemaRegistry = registry{}

// Subjects lists the partner's Avro topics: the products it reads over
// Kafka with kafka_format avro whose policy decision allows a view (the
// decision kafkaSession.refresh takes), with the view schema and its id.
func (r registry) Subjects(ctx context.Context, partnerID string) ([]httpapi.RegistrySubject, error) {
	g := r.g
	a := g.access
	partner, ok := a.partners.Get(partnerID)
	if !ok {
		return nil, nil
	}
	var out []httpapi.RegistrySubject
	for _, prod := range g.catalog.Products {
		if g.hub.Product(prod.ID) == nil {
			continue
		}
		sub, _, err := a.grant(ctx, partner.ID, prod.ID, "")
		if err != nil {
			return nil, fmt.Errorf("subscriptions of %s: %w", prod.ID, err)
		}
		if sub.ID == "" || sub.KafkaFormat != store.KafkaFormatAvro {
			continue
		}
		pl := a.plan(ctx, partner, prod, sub.Purpose)
		if pl.view == nil {
			continue
		}
		id, err := g.schemaIDs.id(ctx, pl.view.Schema())
		if err != nil {
			return nil, err
		}
		out = append(out, httpapi.RegistrySubject{Subject: prod.ID + "-value", Topic: prod.ID, ID: int(id), Schema: string(pl.view.Schema())})
	}
	return out, nil
}

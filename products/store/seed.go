package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/products"
)

// SeedActor is the actor SeedDemo records in subscription history.
const SeedActor = "seed"

// DemoPlans returns the plans SeedDemo creates: trial, standard (the
// default) and premium.
func DemoPlans() []Plan {
	return []Plan{
		{ID: "trial", Name: "Trial", RecordsPerSecond: 20, BytesPerSecond: 100_000, ConcurrentStreams: 2,
			MonthlyRecordQuota: 1_000_000, ReplayWindow: 24 * time.Hour, Formats: []string{FormatJSON, FormatSSE}},
		{ID: "standard", Name: "Standard", RecordsPerSecond: 200, BytesPerSecond: 1_000_000, ConcurrentStreams: 10,
			MonthlyRecordQuota: 50_000_000, ReplayWindow: 168 * time.Hour,
			Formats: []string{FormatJSON, FormatNDJSON, FormatSSE, FormatKafka}, Default: true},
		{ID: "premium", Name: "Premium", RecordsPerSecond: 2_000, BytesPerSecond: 10_000_000, ConcurrentStreams: 50,
			MonthlyRecordQuota: 1_000_000_000, ReplayWindow: 720 * time.Hour,
			Formats: []string{FormatJSON, FormatNDJSON, FormatSSE, FormatKafka}},
	}
}

// UnlimitedDemoPlans returns DemoPlans with limits no client reaches and
// every format: what `sluice bench` and the gateway's functional tests
// run under, so that they measure and test the gateway, not a plan.
func UnlimitedDemoPlans() []Plan {
	plans := DemoPlans()
	for i := range plans {
		p := &plans[i]
		p.RecordsPerSecond, p.BytesPerSecond = 1e9, 1e12
		p.ConcurrentStreams, p.MonthlyRecordQuota = 1e6, 1e15
		p.Formats = slices.Clone(knownFormats)
	}
	return plans
}

// demoPlanFor: internal divisions read under premium, everyone else
// standard.
func demoPlanFor(t products.PartnerType) string {
	if t == products.PartnerInternal {
		return "premium"
	}
	return "standard"
}

// SeedDemo fills a store for the embedded default from a partner registry:
//
//   - every partner of the registry is upserted (the registry wins over
//     edits made in the store);
//   - each plan of DemoPlans is created if missing (edits made in the store
//     are kept);
//   - every grant of the registry becomes an active subscription (actor
//     "seed"), unless the partner already has a subscription for that
//     product and purpose in any state: a demo subscription an admin
//     suspended or revoked stays so across restarts.
//
// It is idempotent: a second run changes nothing. A run interrupted between
// creating a subscription and approving it is completed by the next.
func SeedDemo(ctx context.Context, s Store, partners *products.Partners) error {
	if partners == nil {
		return fmt.Errorf("%w: seed: no partner registry", ErrInvalid)
	}
	for _, p := range partners.List {
		if err := s.UpsertPartner(ctx, Partner{ID: p.ID, Name: p.Name, Type: p.Type, Attributes: p.Attributes}); err != nil {
			return fmt.Errorf("store: seed partner %s: %w", p.ID, err)
		}
	}
	for _, p := range DemoPlans() {
		_, err := s.Plan(ctx, p.ID)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("store: seed plan %s: %w", p.ID, err)
		}
		if err := s.UpsertPlan(ctx, p); err != nil {
			return fmt.Errorf("store: seed plan %s: %w", p.ID, err)
		}
	}
	for _, p := range partners.List {
		have, err := s.Subscriptions(ctx, Filter{PartnerID: p.ID})
		if err != nil {
			return fmt.Errorf("store: seed subscriptions of %s: %w", p.ID, err)
		}
		for _, g := range p.Grants {
			if err := seedGrant(ctx, s, p, g, have); err != nil {
				return fmt.Errorf("store: seed subscription of %s to %s (%s): %w", p.ID, g.Product, g.Purpose, err)
			}
		}
	}
	return nil
}

func seedGrant(ctx context.Context, s Store, p *products.Partner, g products.Grant, have []Subscription) error {
	for _, sub := range have {
		if sub.Product != g.Product || sub.Purpose != g.Purpose {
			continue
		}
		if sub.State != StateRequested {
			return nil // seeded before, or managed since
		}
		h, err := s.History(ctx, sub.ID)
		if err != nil {
			return err
		}
		if len(h) == 1 && h[0].Actor == SeedActor { // an interrupted seed
			_, err = s.Transition(ctx, sub.ID, ActionApprove, SeedActor, "demo registry grant")
		}
		return err
	}
	sub, err := s.CreateSubscription(ctx, p.ID, g.Product, g.Purpose, demoPlanFor(p.Type), SeedActor)
	if err != nil {
		return err
	}
	_, err = s.Transition(ctx, sub.ID, ActionApprove, SeedActor, "demo registry grant")
	return err
}

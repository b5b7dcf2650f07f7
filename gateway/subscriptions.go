package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/store"
)

// AdminPartner is the identity of the data owner's admin: the internal
// partner that approves, rejects, suspends, resumes and revokes
// subscriptions.
const AdminPartner = "admin"

// subscriptions is httpapi.SubscriptionService on the store.
type subscriptions struct {
	store    store.Store
	partners *products.Partners
	audit    *auditor // nil: no audit (adapter tests)
}

var _ httpapi.SubscriptionService = (*subscriptions)(nil)

func apiPlan(p store.Plan) httpapi.Plan {
	return httpapi.Plan{
		ID: p.ID, Name: p.Name, RecordsPerSecond: p.RecordsPerSecond, BytesPerSecond: p.BytesPerSecond,
		ConcurrentStreams: p.ConcurrentStreams, MonthlyRecordQuota: p.MonthlyRecordQuota,
		ReplayWindow: int64(p.ReplayWindow.Seconds()), Formats: append([]string{}, p.Formats...), Default: p.Default,
	}
}

func apiSubscription(s store.Subscription) httpapi.Subscription {
	return httpapi.Subscription{
		ID: s.ID, Partner: s.PartnerID, Product: s.Product, Purpose: s.Purpose, Plan: s.PlanID,
		State: string(s.State), KafkaFormat: s.KafkaFormat, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
}

// apiError maps store errors to the ones the API branches on.
func apiError(err error) error {
	var te *store.TransitionError
	switch {
	case errors.As(err, &te):
		e := &httpapi.IllegalTransitionError{Subscription: te.SubscriptionID, State: string(te.From), Action: string(te.Action)}
		if te.From.Final() {
			e.Detail = string(te.From) + " is final"
		}
		return e
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: the partner already holds an open subscription for this product and purpose; see GET /v1/subscriptions", httpapi.ErrConflict)
	case errors.Is(err, store.ErrNotFound):
		return httpapi.ErrNotFound
	}
	return err
}

func (s *subscriptions) Plans(ctx context.Context) ([]httpapi.Plan, error) {
	ps, err := s.store.Plans(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.Plan, 0, len(ps))
	for _, p := range ps {
		out = append(out, apiPlan(p))
	}
	return out, nil
}

func (s *subscriptions) Create(ctx context.Context, partner, product, purpose, plan, kafkaFormat string) (httpapi.Subscription, error) {
	if plan == "" {
		ps, err := s.store.Plans(ctx)
		if err != nil {
			return httpapi.Subscription{}, err
		}
		for _, p := range ps {
			if p.Default {
				plan = p.ID
			}
		}
		if plan == "" {
			return httpapi.Subscription{}, fmt.Errorf("%w: there is no default plan; name one (GET /v1/plans lists them)", httpapi.ErrInvalid)
		}
	} else if _, err := s.store.Plan(ctx, plan); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return httpapi.Subscription{}, fmt.Errorf("%w: no plan %q; GET /v1/plans lists them", httpapi.ErrInvalid, plan)
	} else if err != nil {
		return httpapi.Subscription{}, err
	}
	if err := s.audit.ready(); err != nil {
		return httpapi.Subscription{}, err
	}
	sub, err := s.store.CreateSubscription(ctx, partner, product, purpose, plan, partner, store.WithKafkaFormat(kafkaFormat))
	if err != nil {
		return httpapi.Subscription{}, apiError(err)
	}
	s.audit.change(ctx, audit.KindSubscription, audit.Lifecycle{ID: sub.ID, Partner: partner, Product: product,
		Action: "requested", To: string(sub.State), Actor: partner, Reason: "purpose " + purpose + ", plan " + plan + ", kafka_format " + sub.KafkaFormat})
	return apiSubscription(sub), nil
}

func (s *subscriptions) List(ctx context.Context, partner string) ([]httpapi.Subscription, error) {
	subs, err := s.store.Subscriptions(ctx, store.Filter{PartnerID: partner})
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.Subscription, 0, len(subs))
	for _, sub := range subs {
		out = append(out, apiSubscription(sub))
	}
	return out, nil
}

func (s *subscriptions) Get(ctx context.Context, id string) (httpapi.Subscription, error) {
	sub, err := s.store.Subscription(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return httpapi.Subscription{}, httpapi.ErrNotFound // a malformed id names nothing
		}
		return httpapi.Subscription{}, apiError(err)
	}
	return apiSubscription(sub), nil
}

func (s *subscriptions) Transition(ctx context.Context, id, action, actor, reason string) (httpapi.Subscription, error) {
	if err := s.audit.ready(); err != nil {
		return httpapi.Subscription{}, err
	}
	before, _ := s.store.Subscription(ctx, id)
	sub, err := s.store.Transition(ctx, id, store.Action(action), actor, reason)
	if err == nil {
		s.audit.change(ctx, audit.KindSubscription, audit.Lifecycle{ID: sub.ID, Partner: sub.PartnerID, Product: sub.Product,
			Action: action, From: string(before.State), To: string(sub.State), Actor: actor, Reason: reason})
	}
	if err != nil {
		if errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrIllegalTransition) {
			if _, gerr := s.store.Subscription(ctx, id); gerr != nil {
				return httpapi.Subscription{}, httpapi.ErrNotFound
			}
		}
		return httpapi.Subscription{}, apiError(err)
	}
	return apiSubscription(sub), nil
}

func (s *subscriptions) SetKafkaFormat(ctx context.Context, id, format, actor string) (httpapi.Subscription, error) {
	if err := s.audit.ready(); err != nil {
		return httpapi.Subscription{}, err
	}
	before, err := s.store.Subscription(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return httpapi.Subscription{}, httpapi.ErrNotFound
		}
		return httpapi.Subscription{}, apiError(err)
	}
	sub, err := s.store.SetKafkaFormat(ctx, id, format, actor)
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			return httpapi.Subscription{}, fmt.Errorf("%w: %v", httpapi.ErrInvalid, err)
		}
		return httpapi.Subscription{}, apiError(err)
	}
	if before.KafkaFormat != sub.KafkaFormat {
		s.audit.change(ctx, audit.KindSubscription, audit.Lifecycle{ID: sub.ID, Partner: sub.PartnerID, Product: sub.Product,
			Action: string(store.ActionSetKafkaFormat), From: string(sub.State), To: string(sub.State), Actor: actor,
			Reason: "kafka_format " + before.KafkaFormat + " -> " + sub.KafkaFormat})
	}
	return apiSubscription(sub), nil
}

// Admin: only the registry's internal admin identity.
func (s *subscriptions) Admin(partner string) bool {
	if partner != AdminPartner || s.partners == nil {
		return false
	}
	p, ok := s.partners.Get(partner)
	return ok && p.Type == products.PartnerInternal
}

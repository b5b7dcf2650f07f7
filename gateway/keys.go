package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/sluicehq/sluice/gateway/audit"
	"github.com/sluicehq/sluice/gateway/httpapi"
	"github.com/sluicehq/sluice/products"
	"github.com/sluicehq/sluice/products/store"
)

// keys is httpapi.KeyService on the store: API keys, the partners holding
// them and their usage.
type keys struct {
	store    store.Store
	partners *products.Partners
	audit    *auditor // nil: no audit (adapter tests)
}

var _ httpapi.KeyService = (*keys)(nil)

// apiKey shows a key as the API does, its state judged at now.
func apiKey(k store.KeyInfo, now time.Time) httpapi.Key {
	out := httpapi.Key{ID: k.ID, Prefix: k.Prefix(), CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, State: httpapi.KeyActive}
	switch {
	case k.Revoked():
		at := k.RevokedAt
		out.RevokedAt, out.RevokedBy, out.State = &at, k.RevokedBy, httpapi.KeyRevoked
	case !now.Before(k.ExpiresAt):
		out.State = httpapi.KeyExpired
	}
	return out
}

// partnerExists maps a missing partner to httpapi.ErrUnknownPartner.
func (k *keys) partnerExists(ctx context.Context, partner string) error {
	_, err := k.store.Partner(ctx, partner)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return httpapi.ErrUnknownPartner
	}
	return err
}

func (k *keys) CreateKey(ctx context.Context, partner string, ttl time.Duration, actor string) (httpapi.NewKey, error) {
	if err := k.audit.ready(); err != nil {
		return httpapi.NewKey{}, err
	}
	info, secret, err := k.store.CreateKey(ctx, partner, ttl)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.NewKey{}, httpapi.ErrUnknownPartner
	}
	if err != nil {
		return httpapi.NewKey{}, err
	}
	k.audit.change(ctx, audit.KindKey, audit.Lifecycle{ID: info.ID, Partner: partner, Action: "created", To: "active",
		Actor: actor, Reason: "expires " + info.ExpiresAt.Format(time.RFC3339)})
	return httpapi.NewKey{ID: info.ID, Prefix: info.Prefix(), Secret: secret, CreatedAt: info.CreatedAt, ExpiresAt: info.ExpiresAt}, nil
}

func (k *keys) Keys(ctx context.Context, partner string) ([]httpapi.Key, error) {
	if err := k.partnerExists(ctx, partner); err != nil {
		return nil, err
	}
	ks, err := k.store.Keys(ctx, partner)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]httpapi.Key, 0, len(ks))
	for _, info := range ks {
		out = append(out, apiKey(info, now))
	}
	return out, nil
}

func (k *keys) RevokeKey(ctx context.Context, partner, id, actor string) error {
	if err := k.audit.ready(); err != nil {
		return err
	}
	err := k.store.RevokeKey(ctx, partner, id, actor)
	if errors.Is(err, store.ErrKeyNotFound) {
		return httpapi.ErrUnknownKey
	}
	if err == nil {
		k.audit.change(ctx, audit.KindKey, audit.Lifecycle{ID: id, Partner: partner, Action: "revoked", To: "revoked", Actor: actor})
	}
	return err
}

func (k *keys) Partners(ctx context.Context) ([]httpapi.Partner, error) {
	ps, err := k.store.Partners(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.Partner, 0, len(ps))
	for _, p := range ps {
		attrs := p.Attributes
		if attrs == nil {
			attrs = map[string]any{}
		}
		out = append(out, httpapi.Partner{ID: p.ID, Name: p.Name, Type: string(p.Type), Attributes: attrs})
	}
	return out, nil
}

func (k *keys) Usage(ctx context.Context, f httpapi.UsageFilter) ([]httpapi.UsageRow, error) {
	rows, err := k.store.Usage(ctx, store.UsageFilter{From: f.From, To: f.To, PartnerID: f.Partner, Product: f.Product})
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.UsageRow, 0, len(rows))
	for _, u := range rows {
		out = append(out, httpapi.UsageRow{Day: u.Day, Partner: u.PartnerID, Product: u.Product, Purpose: u.Purpose, Records: u.Records, Bytes: u.Bytes})
	}
	return out, nil
}

// Admin: the same identity that decides subscriptions, by the same rule.
func (k *keys) Admin(partner string) bool {
	return (&subscriptions{partners: k.partners}).Admin(partner)
}

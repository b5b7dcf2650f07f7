package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/products"
)

func TestOpenDSN(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		note, dsn string
		wantErr   error
	}{
		{note: "sqlite prefix", dsn: "sqlite:" + filepath.Join(dir, "a.db")},
		{note: "plain path, directory created", dsn: filepath.Join(dir, "sub", "dir", "b.db")},
		{note: "empty", dsn: "", wantErr: ErrInvalid},
		{note: "unknown scheme", dsn: "mysql://localhost/db", wantErr: ErrInvalid},
		{note: "sqlite URI options not accepted", dsn: "sqlite:" + filepath.Join(dir, "c.db") + "?mode=ro", wantErr: ErrInvalid},
		{note: "memory not accepted", dsn: "sqlite::memory:", wantErr: ErrInvalid},
		{note: "bad postgres DSN", dsn: "postgres://host:notaport/db", wantErr: ErrInvalid},
	} {
		t.Run(tc.note, func(t *testing.T) {
			s, err := Open(t.Context(), tc.dsn)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open(%q) = %v, want %v", tc.dsn, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.dsn, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMigrations(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		dir := "sqlite"
		if !strings.HasPrefix(dsn, "sqlite:") {
			dir = "postgres"
		}
		ms, err := loadMigrations(dir)
		if err != nil || len(ms) == 0 {
			t.Fatalf("loadMigrations(%s) = %d, %v", dir, len(ms), err)
		}

		// Three replicas open a fresh database at once: one migrates, all
		// succeed.
		var wg sync.WaitGroup
		stores := make([]Store, 3)
		errs := make([]error, 3)
		for i := range stores {
			wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent Open %d: %v", i, err)
			}
			defer stores[i].Close()
		}
		// All three work on the same data.
		seedBasics(t, stores[0])
		for i, s := range stores {
			if ps, err := s.Partners(t.Context()); err != nil || len(ps) != 2 {
				t.Fatalf("store %d: Partners = %d, %v; want 2", i, len(ps), err)
			}
		}

		// Reopening applies nothing again.
		e := openStore(t, dsn)
		got := rawRows(t, e, `SELECT CAST(version AS TEXT), name, 'x' FROM schema_migrations ORDER BY version`)
		if len(got) != len(ms) {
			t.Fatalf("schema_migrations has %d rows, want %d: %v", len(got), len(ms), got)
		}
		for i, m := range ms {
			if got[i][1] != m.name {
				t.Errorf("schema_migrations[%d] = %v, want %s", i, got[i], m.name)
			}
		}

		// A database from a newer sluice is refused.
		rawExec(t, e, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			int64(9999), "9999_future.sql", e.b.ts(time.Now()))
		if s, err := Open(t.Context(), dsn); err == nil || !strings.Contains(err.Error(), "newer than this sluice") {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open of a newer schema = %v, want a refusal", err)
		}
	})
}

func TestPartners(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := t.Context()
		base := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
		s.now = func() time.Time { return base }

		p := Partner{ID: "enterprise-x", Name: "Enterprise X", Type: products.PartnerEnterprise, Attributes: map[string]any{
			"cells":  []any{"262-01-2B0000001", "262-01-2B0000002"},
			"tier":   int64(3),
			"ratio":  0.25,
			"vip":    true,
			"nested": map[string]any{"a": []any{int64(1), "b"}},
		}}
		if err := s.UpsertPartner(ctx, p); err != nil {
			t.Fatal(err)
		}
		got, err := s.Partner(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := p
		want.CreatedAt = base.Truncate(time.Microsecond)
		want.UpdatedAt = want.CreatedAt
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Partner =\n %#v\nwant\n %#v", got, want)
		}

		// Identical values: nothing changes, not even updated_at.
		s.now = func() time.Time { return base.Add(time.Hour) }
		if err := s.UpsertPartner(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Partner(ctx, p.ID); !got.UpdatedAt.Equal(want.UpdatedAt) {
			t.Fatalf("identical upsert moved updated_at to %v", got.UpdatedAt)
		}
		// A change updates, keeping created_at.
		p.Name = "Enterprise X GmbH"
		if err := s.UpsertPartner(ctx, p); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Partner(ctx, p.ID)
		if got.Name != p.Name || !got.UpdatedAt.Equal(base.Add(time.Hour).Truncate(time.Microsecond)) || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("after update: %+v", got)
		}

		if err := s.UpsertPartner(ctx, Partner{ID: "admin", Name: "Data Governance Office", Type: products.PartnerInternal}); err != nil {
			t.Fatal(err)
		}
		list, err := s.Partners(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != "admin" || list[1].ID != "enterprise-x" || list[0].Attributes == nil {
			t.Fatalf("Partners = %+v", list)
		}

		if _, err := s.Partner(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Partner(nobody) = %v, want ErrNotFound", err)
		}
		for _, bad := range []Partner{
			{ID: "X", Name: "n", Type: "mvno"},
			{ID: "ok-id", Name: "", Type: "mvno"},
			{ID: "ok-id", Name: "n", Type: "reseller"},
			{ID: "ok-id", Name: "n", Type: "mvno", Attributes: map[string]any{"f": func() {}}},
		} {
			if err := s.UpsertPartner(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("UpsertPartner(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
	})
}

func TestKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := t.Context()
		seedBasics(t, s)

		k, secret, err := s.CreateKey(ctx, "mvno-a", 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := parseKey(secret); !ok || id != k.ID || !strings.HasPrefix(secret, k.Prefix()+"_") {
			t.Fatalf("secret %q does not parse to id %s", secret, k.ID)
		}
		if k.PartnerID != "mvno-a" || k.ExpiresAt.Sub(k.CreatedAt) != 24*time.Hour || k.Revoked() {
			t.Fatalf("KeyInfo = %+v", k)
		}

		// Only the hash is stored: not in any column, nor anywhere in the
		// database files.
		hexHash := `encode(hash, 'hex')`
		if strings.HasPrefix(dsn, "sqlite:") {
			hexHash = `lower(hex(hash))`
		}
		raw := rawRows(t, s, `SELECT id, partner_id, `+hexHash+` FROM api_keys`)
		if len(raw) != 1 || raw[0][0] != k.ID {
			t.Fatalf("api_keys rows = %q", raw)
		}
		sum := sha256.Sum256([]byte(secret))
		if raw[0][2] != hex.EncodeToString(sum[:]) {
			t.Fatalf("stored hash %s is not SHA-256 of the key", raw[0][2])
		}
		secretPart := secret[len(secret)-keySecretLen:]
		secretBytes, _ := base64.RawURLEncoding.DecodeString(secretPart)
		for _, row := range raw {
			for _, col := range row {
				if strings.Contains(col, secretPart) || strings.Contains(col, string(secretBytes)) {
					t.Fatalf("api_keys column contains the secret")
				}
			}
		}
		if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
			for _, f := range []string{path, path + "-wal"} {
				data, err := os.ReadFile(f)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				if bytes.Contains(data, []byte(secretPart)) || bytes.Contains(data, secretBytes) {
					t.Fatalf("%s contains the key secret", f)
				}
			}
		} else {
			rows := rawRows(t, s, `SELECT row_to_json(k)::text, '', '' FROM api_keys k`)
			if strings.Contains(rows[0][0], secretPart) || strings.Contains(rows[0][0], hex.EncodeToString(secretBytes)) {
				t.Fatalf("api_keys row contains the secret: %s", rows[0][0])
			}
		}

		got, err := s.VerifyKey(ctx, secret)
		if err != nil || got != k {
			t.Fatalf("VerifyKey = %+v, %v; want %+v", got, err, k)
		}

		// A second key to revoke, a third to expire.
		k2, secret2, err := s.CreateKey(ctx, "mvno-a", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		k3, secret3, err := s.CreateKey(ctx, "iot-fleet", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, "iot-fleet", k2.ID, "admin"); !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("revoking another partner's key = %v, want ErrKeyNotFound", err)
		}
		if err := s.RevokeKey(ctx, "mvno-a", k2.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, "mvno-a", k2.ID, "someone-else"); err != nil {
			t.Fatalf("second revocation = %v, want a no-op", err)
		}
		if err := s.RevokeKey(ctx, "mvno-a", "nosuchkey", "admin"); !errors.Is(err, ErrKeyNotFound) {
			t.Fatalf("revoking an unknown key = %v, want ErrKeyNotFound", err)
		}
		keys, err := s.Keys(ctx, "mvno-a")
		if err != nil || len(keys) != 2 || keys[0].ID != k.ID || keys[1].ID != k2.ID ||
			!keys[1].Revoked() || keys[1].RevokedBy != "admin" || keys[0].Revoked() {
			t.Fatalf("Keys = %+v, %v", keys, err)
		}

		wrongSecret := secret[:len(secret)-keySecretLen] + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
		otherID := keyPrefix + strings.Repeat("a", keyIDLen) + secret[len(keyPrefix)+keyIDLen:]
		later := time.Now().Add(2 * time.Minute)
		for _, tc := range []struct {
			note      string
			presented string
			at        time.Time
			want      error
		}{
			{note: "ok", presented: secret},
			{note: "wrong secret", presented: wrongSecret, want: ErrKeyNotFound},
			{note: "unknown id", presented: otherID, want: ErrKeyNotFound},
			{note: "revoked", presented: secret2, want: ErrKeyRevoked},
			{note: "expired", presented: secret3, at: later, want: ErrKeyExpired},
			{note: "not yet expired", presented: secret3},
			{note: "empty", presented: "", want: ErrKeyMalformed},
			{note: "bearer prefix left on", presented: "Bearer " + secret, want: ErrKeyMalformed},
			{note: "truncated", presented: secret[:len(secret)-1], want: ErrKeyMalformed},
			{note: "wrong prefix", presented: "sk_" + secret[3:], want: ErrKeyMalformed},
			{note: "uppercase id", presented: strings.ToUpper(secret[:20]) + secret[20:], want: ErrKeyMalformed},
			{note: "padding", presented: secret[:len(secret)-1] + "=", want: ErrKeyMalformed},
		} {
			t.Run(tc.note, func(t *testing.T) {
				s.now = time.Now
				if !tc.at.IsZero() {
					s.now = func() time.Time { return tc.at }
				}
				defer func() { s.now = time.Now }()
				_, err := s.VerifyKey(ctx, tc.presented)
				if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
					t.Fatalf("VerifyKey = %v, want %v", err, tc.want)
				}
				if err != nil && len(tc.presented) > len(keyPrefix)+keyIDLen+1 &&
					strings.Contains(err.Error(), tc.presented[len(keyPrefix)+keyIDLen+1:]) {
					t.Fatalf("error %q contains the secret", err)
				}
			})
		}
		if k3.PartnerID != "iot-fleet" {
			t.Fatal(k3)
		}

		for _, tc := range []struct {
			partner string
			ttl     time.Duration
			want    error
		}{
			{"nobody", time.Hour, ErrNotFound},
			{"mvno-a", 0, ErrInvalid},
			{"mvno-a", -time.Hour, ErrInvalid},
			{"Bad!", time.Hour, ErrInvalid},
		} {
			if _, sec, err := s.CreateKey(ctx, tc.partner, tc.ttl); !errors.Is(err, tc.want) || sec != "" {
				t.Errorf("CreateKey(%q, %v) = %q, %v; want %v", tc.partner, tc.ttl, sec, err, tc.want)
			}
		}
	})
}

func TestPlans(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := t.Context()
		a, b := testPlan("alpha", true), testPlan("beta", false)
		b.Formats = []string{FormatKafka, FormatNDJSON, FormatJSON, FormatSSE}
		b.ReplayWindow = 0
		for _, p := range []Plan{a, b} {
			if err := s.UpsertPlan(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Plan(ctx, "beta")
		if err != nil {
			t.Fatal(err)
		}
		b.CreatedAt, b.UpdatedAt = got.CreatedAt, got.UpdatedAt
		if !reflect.DeepEqual(got, b) || got.CreatedAt.IsZero() {
			t.Fatalf("Plan = %+v, want %+v", got, b)
		}

		// Making beta the default takes it from alpha.
		b.Default = true
		if err := s.UpsertPlan(ctx, b); err != nil {
			t.Fatal(err)
		}
		list, err := s.Plans(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "alpha" || list[0].Default || !list[1].Default {
			t.Fatalf("Plans = %+v, %v", list, err)
		}
		if _, err := s.Plan(ctx, "gamma"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Plan(gamma) = %v, want ErrNotFound", err)
		}

		for _, tc := range []struct {
			note string
			edit func(*Plan)
		}{
			{"bad id", func(p *Plan) { p.ID = "Premium" }},
			{"no name", func(p *Plan) { p.Name = " " }},
			{"zero rate", func(p *Plan) { p.RecordsPerSecond = 0 }},
			{"negative bytes", func(p *Plan) { p.BytesPerSecond = -1 }},
			{"no streams", func(p *Plan) { p.ConcurrentStreams = 0 }},
			{"no quota", func(p *Plan) { p.MonthlyRecordQuota = 0 }},
			{"negative replay", func(p *Plan) { p.ReplayWindow = -time.Second }},
			{"fractional replay", func(p *Plan) { p.ReplayWindow = 1500 * time.Millisecond }},
			{"no formats", func(p *Plan) { p.Formats = nil }},
			{"unknown format", func(p *Plan) { p.Formats = []string{"xml"} }},
			{"duplicate format", func(p *Plan) { p.Formats = []string{"sse", "sse"} }},
		} {
			p := testPlan("delta", false)
			tc.edit(&p)
			if err := s.UpsertPlan(ctx, p); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: UpsertPlan = %v, want ErrInvalid", tc.note, err)
			}
		}
	})
}

// subIn returns a new subscription of mvno-a brought into state st
// (approved is set directly: approve goes on to active).
func subIn(t *testing.T, s *engine, product string, st State) Subscription {
	t.Helper()
	ctx := t.Context()
	sub, err := s.CreateSubscription(ctx, "mvno-a", product, products.PurposeBilling, "", "mvno-a")
	if err != nil {
		t.Fatal(err)
	}
	var path []Action
	switch st {
	case StateRequested:
	case StateApproved:
		rawExec(t, s, `UPDATE subscriptions SET state = 'approved' WHERE id = $1`, sub.ID)
	case StateRejected:
		path = []Action{ActionReject}
	case StateActive:
		path = []Action{ActionApprove}
	case StateSuspended:
		path = []Action{ActionApprove, ActionSuspend}
	case StateRevoked:
		path = []Action{ActionApprove, ActionRevoke}
	}
	for _, a := range path {
		if _, err := s.Transition(ctx, sub.ID, a, "admin", "set-up"); err != nil {
			t.Fatal(err)
		}
	}
	sub, err = s.Subscription(ctx, sub.ID)
	if err != nil || sub.State != st {
		t.Fatalf("set-up: subscription %+v, %v; want state %s", sub, err, st)
	}
	return sub
}

func TestTransitionTable(t *testing.T) {
	// The state machine, written out independently of lifecycle.go: for
	// every state, the actions that are legal and where they lead (approve
	// records approved and active). Everything else is illegal.
	legal := map[State]map[Action][]State{
		StateRequested: {ActionApprove: {StateApproved, StateActive}, ActionReject: {StateRejected}},
		StateApproved:  {ActionActivate: {StateActive}, ActionRevoke: {StateRevoked}},
		StateActive:    {ActionSuspend: {StateSuspended}, ActionRevoke: {StateRevoked}},
		StateSuspended: {ActionResume: {StateActive}, ActionRevoke: {StateRevoked}},
		StateRejected:  {},
		StateRevoked:   {},
	}
	states := []State{StateRequested, StateApproved, StateRejected, StateActive, StateSuspended, StateRevoked}
	actions := []Action{ActionApprove, ActionReject, ActionActivate, ActionSuspend, ActionResume, ActionRevoke}

	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		seedBasics(t, s)
		ctx := t.Context()
		n := 0
		for _, from := range states {
			for _, action := range actions {
				t.Run(fmt.Sprintf("%s-%s", from, action), func(t *testing.T) {
					n++
					sub := subIn(t, s, fmt.Sprintf("product-%d", n), from)
					before, err := s.History(ctx, sub.ID)
					if err != nil {
						t.Fatal(err)
					}
					reason := fmt.Sprintf("because %d", n)
					got, err := s.Transition(ctx, sub.ID, action, "data-owner", reason)
					to, ok := legal[from][action]
					if !ok {
						var te *TransitionError
						if !errors.Is(err, ErrIllegalTransition) || !errors.As(err, &te) ||
							te.From != from || te.Action != action || te.SubscriptionID != sub.ID {
							t.Fatalf("Transition = %+v, %v; want a TransitionError from %s by %s", got, err, from, action)
						}
						if !strings.Contains(err.Error(), string(from)) || !strings.Contains(err.Error(), string(action)) {
							t.Fatalf("error %q does not name state and action", err)
						}
						if now, _ := s.Subscription(ctx, sub.ID); now.State != from {
							t.Fatalf("illegal transition moved the state to %s", now.State)
						}
						if after, _ := s.History(ctx, sub.ID); len(after) != len(before) {
							t.Fatalf("illegal transition wrote history: %+v", after)
						}
						return
					}
					if err != nil {
						t.Fatalf("Transition: %v", err)
					}
					if got.State != to[len(to)-1] {
						t.Fatalf("state %s, want %s", got.State, to[len(to)-1])
					}
					if now, _ := s.Subscription(ctx, sub.ID); now != got {
						t.Fatalf("stored %+v, returned %+v", now, got)
					}
					after, err := s.History(ctx, sub.ID)
					if err != nil {
						t.Fatal(err)
					}
					added := after[len(before):]
					if len(added) != len(to) {
						t.Fatalf("history added %+v, want %d records", added, len(to))
					}
					prev := from
					for i, h := range added {
						if h.From != prev || h.To != to[i] || h.Actor != "data-owner" || h.Reason != reason ||
							h.SubscriptionID != sub.ID || !h.At.Equal(got.UpdatedAt) {
							t.Fatalf("history record %d = %+v", i, h)
						}
						prev = h.To
					}
					if added[0].Action != action {
						t.Fatalf("first record action %s, want %s", added[0].Action, action)
					}
				})
			}
		}
	})
}

func TestSubscriptions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		seedBasics(t, s)
		ctx := t.Context()
		clock := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
		s.now = func() time.Time { clock = clock.Add(time.Second); return clock }

		sub, err := s.CreateSubscription(ctx, "mvno-a", "cdr", products.PurposeBilling, "", "mvno-a")
		if err != nil {
			t.Fatal(err)
		}
		if sub.State != StateRequested || sub.PlanID != "basic" || !strings.HasPrefix(sub.ID, "sub_") || len(sub.ID) != 20 {
			t.Fatalf("CreateSubscription = %+v (want requested, default plan basic)", sub)
		}
		if _, err := s.CreateSubscription(ctx, "mvno-a", "cdr", products.PurposeBilling, "big", "mvno-a"); !errors.Is(err, ErrConflict) {
			t.Fatalf("second open request = %v, want ErrConflict", err)
		}
		other, err := s.CreateSubscription(ctx, "mvno-a", "cdr", products.PurposeFraudPrevention, "big", "mvno-a")
		if err != nil {
			t.Fatal(err)
		}

		steps := []struct {
			action        Action
			actor, reason string
		}{
			{ActionApprove, "admin", "contract 2026-117 signed"},
			{ActionSuspend, "admin", "invoice overdue"},
			{ActionResume, "admin", "paid"},
			{ActionRevoke, "dpo", "purpose no longer covered"},
		}
		for _, st := range steps {
			if _, err := s.Transition(ctx, sub.ID, st.action, st.actor, st.reason); err != nil {
				t.Fatalf("%s: %v", st.action, err)
			}
		}
		h, err := s.History(ctx, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			action        Action
			from, to      State
			actor, reason string
		}
		want := []rec{
			{ActionRequest, "", StateRequested, "mvno-a", ""},
			{ActionApprove, StateRequested, StateApproved, "admin", "contract 2026-117 signed"},
			{ActionActivate, StateApproved, StateActive, "admin", "contract 2026-117 signed"},
			{ActionSuspend, StateActive, StateSuspended, "admin", "invoice overdue"},
			{ActionResume, StateSuspended, StateActive, "admin", "paid"},
			{ActionRevoke, StateActive, StateRevoked, "dpo", "purpose no longer covered"},
		}
		if len(h) != len(want) {
			t.Fatalf("History = %+v", h)
		}
		for i, r := range h {
			if got := (rec{r.Action, r.From, r.To, r.Actor, r.Reason}); got != want[i] {
				t.Errorf("History[%d] = %+v, want %+v", i, got, want[i])
			}
			if i > 0 && r.At.Before(h[i-1].At) {
				t.Errorf("History[%d] at %v before the previous %v", i, r.At, h[i-1].At)
			}
		}
		if !h[1].At.Equal(h[2].At) || !h[3].At.After(h[2].At) {
			t.Errorf("approve and activate should share one time, later steps later: %+v", h)
		}

		// Revoked: a new request for the same product and purpose is allowed.
		again, err := s.CreateSubscription(ctx, "mvno-a", "cdr", products.PurposeBilling, "big", "mvno-a")
		if err != nil {
			t.Fatalf("request after revocation: %v", err)
		}
		if _, err := s.CreateSubscription(ctx, "iot-fleet", "device-telemetry", products.PurposeNetworkAnalytics, "", "iot-fleet"); err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			f    Filter
			want []string
		}{
			{Filter{PartnerID: "mvno-a"}, []string{sub.ID, other.ID, again.ID}},
			{Filter{PartnerID: "mvno-a", State: StateRequested}, []string{other.ID, again.ID}},
			{Filter{Product: "cdr", State: StateRevoked}, []string{sub.ID}},
			{Filter{PartnerID: "nobody"}, nil},
		} {
			list, err := s.Subscriptions(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, x := range list {
				ids = append(ids, x.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("Subscriptions(%+v) = %v, want %v", tc.f, ids, tc.want)
			}
		}
		if all, _ := s.Subscriptions(ctx, Filter{}); len(all) != 4 {
			t.Errorf("Subscriptions() = %d, want 4", len(all))
		}

		for _, tc := range []struct {
			note                                   string
			partner, product, purpose, plan, actor string
			want                                   error
		}{
			{"unknown partner", "nobody", "cdr", "billing", "", "x", ErrNotFound},
			{"unknown plan", "iot-fleet", "cdr", "billing", "gold", "x", ErrNotFound},
			{"bad purpose", "iot-fleet", "cdr", "curiosity", "", "x", ErrInvalid},
			{"bad product", "iot-fleet", "CDR", "billing", "", "x", ErrInvalid},
			{"no actor", "iot-fleet", "cdr", "billing", "", "", ErrInvalid},
		} {
			if _, err := s.CreateSubscription(ctx, tc.partner, tc.product, tc.purpose, tc.plan, tc.actor); !errors.Is(err, tc.want) {
				t.Errorf("%s: CreateSubscription = %v, want %v", tc.note, err, tc.want)
			}
		}
		for _, tc := range []struct {
			note          string
			id            string
			action        Action
			actor, reason string
			want          error
		}{
			{"unknown subscription", "sub_nonexistent", ActionApprove, "admin", "", ErrNotFound},
			{"unknown action", other.ID, "delete", "admin", "x", ErrInvalid},
			{"request is not an action", other.ID, ActionRequest, "admin", "x", ErrInvalid},
			{"no actor", other.ID, ActionApprove, "", "", ErrInvalid},
			{"reject needs a reason", other.ID, ActionReject, "admin", " ", ErrInvalid},
		} {
			if _, err := s.Transition(ctx, tc.id, tc.action, tc.actor, tc.reason); !errors.Is(err, tc.want) {
				t.Errorf("%s: Transition = %v, want %v", tc.note, err, tc.want)
			}
		}
		if _, err := s.History(ctx, "sub_nonexistent"); !errors.Is(err, ErrNotFound) {
			t.Errorf("History(unknown) = %v, want ErrNotFound", err)
		}

		// No default plan: a request must name one.
		rawExec(t, s, `UPDATE plans SET is_default = $1`, false)
		if _, err := s.CreateSubscription(ctx, "iot-fleet", "network-quality", "network-analytics", "", "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("request without plan and no default = %v, want ErrNotFound", err)
		}
	})
}

func TestConcurrentTransitions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		seedBasics(t, s)
		ctx := t.Context()
		const n = 12
		for i := range n {
			sub := subIn(t, s, fmt.Sprintf("p-%d", i), StateRequested)
			var wg sync.WaitGroup
			var errApprove, errRevoke error
			wg.Go(func() { _, errApprove = s.Transition(ctx, sub.ID, ActionApprove, "owner-1", "ok") })
			wg.Go(func() { _, errRevoke = s.Transition(ctx, sub.ID, ActionRevoke, "owner-2", "no") })
			wg.Wait()
			if errApprove != nil {
				t.Fatalf("approve of a requested subscription failed: %v", errApprove)
			}
			got, err := s.Subscription(ctx, sub.ID)
			if err != nil {
				t.Fatal(err)
			}
			// Either revoke ran first (illegal from requested) and approve
			// activated, or approve ran first and revoke revoked.
			switch {
			case errRevoke == nil && got.State == StateRevoked:
			case errors.Is(errRevoke, ErrIllegalTransition) && got.State == StateActive:
			default:
				t.Fatalf("approve/revoke race ended in %s with revoke error %v", got.State, errRevoke)
			}
			checkHistoryChain(t, s, got)
		}
		// Many goroutines hammering one active subscription with suspend,
		// resume and revoke: every success is a legal step, the history is
		// one unbroken chain ending in the final state.
		sub := subIn(t, s, "hammered", StateActive)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for g := range 6 {
			wg.Go(func() {
				for j := range 8 {
					a := []Action{ActionSuspend, ActionResume, ActionSuspend, ActionResume}[(g+j)%4]
					if g == 5 && j == 7 {
						a = ActionRevoke
					}
					_, err := s.Transition(ctx, sub.ID, a, fmt.Sprintf("g%d", g), "load")
					if err != nil && !errors.Is(err, ErrIllegalTransition) {
						t.Errorf("Transition: %v", err)
					}
					if err == nil {
						mu.Lock()
						ok++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		got, _ := s.Subscription(ctx, sub.ID)
		h := checkHistoryChain(t, s, got)
		if want := 3 + ok; len(h) != want { // request, approve, activate, then one record per success
			t.Fatalf("history has %d records for %d successful transitions", len(h), ok)
		}
	})
}

// checkHistoryChain checks that sub's history is one chain of legal steps
// ending in its state.
func checkHistoryChain(t *testing.T, s Store, sub Subscription) []TransitionRecord {
	t.Helper()
	h, err := s.History(t.Context(), sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	prev := State("")
	for i, r := range h {
		if r.From != prev {
			t.Fatalf("history[%d] %+v does not start at %q: %+v", i, r, prev, h)
		}
		if i > 0 && r.Action != ActionActivate {
			if steps, ok := plan(r.From, r.Action); !ok || steps[0].to != r.To {
				t.Fatalf("history[%d] %+v is not a legal step", i, r)
			}
		}
		prev = r.To
	}
	if prev != sub.State {
		t.Fatalf("history ends in %s, subscription is %s", prev, sub.State)
	}
	return h
}

func TestUsage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := t.Context()
		d1 := time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC)
		d2 := time.Date(2026, 12, 1, 0, 0, 1, 0, time.FixedZone("CET", 3600)) // still Nov 30 in UTC
		d3 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		partners := []string{"mvno-a", "iot-fleet"}
		prods := []string{"cdr", "network-quality"}

		// 8 writers, 25 batches each, every batch touching every row of two
		// days (in varying order, with duplicates inside a batch).
		type key struct {
			day              time.Time
			partner, product string
		}
		want := map[key][2]int64{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for b := range 25 {
					var batch []UsageDelta
					for i, p := range partners {
						for j, pr := range prods {
							for _, day := range []time.Time{d1, d2, d3} {
								r, by := int64(g+b+i+j+1), int64(100*(g+1)+b)
								batch = append(batch, UsageDelta{PartnerID: p, Product: pr, Purpose: "billing", Day: day, Records: r, Bytes: by})
							}
						}
					}
					if b%2 == 1 {
						slices.Reverse(batch)
					}
					if err := s.AddUsage(ctx, batch); err != nil {
						t.Errorf("AddUsage: %v", err)
						return
					}
					mu.Lock()
					for _, d := range batch {
						k := key{utcDay(d.Day), d.PartnerID, d.Product}
						v := want[k]
						want[k] = [2]int64{v[0] + d.Records, v[1] + d.Bytes}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		rows, err := s.Usage(ctx, UsageFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(want) {
			t.Fatalf("Usage has %d rows, want %d", len(rows), len(want))
		}
		for i, r := range rows {
			k := key{r.Day, r.PartnerID, r.Product}
			if w := want[k]; r.Records != w[0] || r.Bytes != w[1] || r.Purpose != "billing" {
				t.Errorf("row %+v, want records %d bytes %d", r, w[0], w[1])
			}
			if i > 0 && rows[i-1].Day.After(r.Day) {
				t.Errorf("rows not ordered by day")
			}
		}

		nov30 := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
		dec1 := nov30.AddDate(0, 0, 1)
		for _, tc := range []struct {
			note  string
			f     UsageFilter
			nrows int
		}{
			{"November", UsageFilter{From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: dec1}, 4},
			{"from inside Nov 30 keeps Nov 30", UsageFilter{From: nov30.Add(13 * time.Hour)}, 8},
			{"to inside Dec 1 keeps Dec 1", UsageFilter{To: dec1.Add(time.Minute)}, 8},
			{"to at midnight excludes that day", UsageFilter{To: dec1}, 4},
			{"one partner", UsageFilter{PartnerID: "mvno-a"}, 4},
			{"one partner and product", UsageFilter{PartnerID: "mvno-a", Product: "cdr", From: dec1}, 1},
			{"nothing", UsageFilter{PartnerID: "nobody"}, 0},
		} {
			rows, err := s.Usage(ctx, tc.f)
			if err != nil || len(rows) != tc.nrows {
				t.Errorf("%s: Usage = %d rows, %v; want %d", tc.note, len(rows), err, tc.nrows)
			}
		}

		// A failing batch adds nothing.
		before, _ := s.Usage(ctx, UsageFilter{})
		for _, bad := range [][]UsageDelta{
			{{PartnerID: "mvno-a", Product: "cdr", Purpose: "billing", Day: d1, Records: 1}, {PartnerID: "mvno-a", Product: "cdr", Purpose: "billing", Day: d1, Records: -1}},
			{{PartnerID: "mvno-a", Product: "cdr", Purpose: "billing", Records: 1}},
			{{PartnerID: "", Product: "cdr", Purpose: "billing", Day: d1, Records: 1}},
		} {
			if err := s.AddUsage(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("AddUsage(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		if err := s.AddUsage(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if after, _ := s.Usage(ctx, UsageFilter{}); !reflect.DeepEqual(before, after) {
			t.Errorf("a rejected batch changed usage")
		}
	})
}

func TestChanges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		writer := openStore(t, dsn)
		reader := openStore(t, dsn) // another replica (PostgreSQL) or Store (SQLite) on the same database
		seedBasics(t, writer)
		ctx := t.Context()
		sub := subIn(t, writer, "cdr", StateActive)
		key, _, err := writer.CreateKey(ctx, "mvno-a", time.Hour)
		if err != nil {
			t.Fatal(err)
		}

		feedCtx, stop := context.WithCancel(ctx)
		feed, err := reader.Changes(feedCtx)
		if err != nil {
			t.Fatal(err)
		}
		own, err := writer.Changes(ctx)
		if err != nil {
			t.Fatal(err)
		}

		t0 := time.Now()
		if _, err := writer.Transition(ctx, sub.ID, ActionRevoke, "admin", "contract ended"); err != nil {
			t.Fatal(err)
		}
		recv(t, feed, Change{ChangeSubscription, sub.ID}, time.Second)
		t.Logf("revocation reached the other store in %v", time.Since(t0))
		if got, _ := reader.Subscription(ctx, sub.ID); got.State != StateRevoked {
			t.Fatalf("after the notification the other store reads %s", got.State)
		}
		recv(t, own, Change{ChangeSubscription, sub.ID}, time.Second)

		if err := writer.RevokeKey(ctx, "mvno-a", key.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		recv(t, feed, Change{ChangeKey, key.ID}, time.Second)
		p := testPlan("basic", true)
		p.RecordsPerSecond = 1
		if err := writer.UpsertPlan(ctx, p); err != nil {
			t.Fatal(err)
		}
		recv(t, feed, Change{ChangePlan, "basic"}, time.Second)

		// A failed write notifies nothing: the next change is the first seen.
		if _, err := writer.Transition(ctx, sub.ID, ActionApprove, "admin", ""); !errors.Is(err, ErrIllegalTransition) {
			t.Fatal(err)
		}
		if err := writer.UpsertPartner(ctx, Partner{ID: "marker", Name: "m", Type: "internal"}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-feed:
			if c != (Change{ChangePartner, "marker"}) {
				t.Fatalf("got %v, want the marker first", c)
			}
		case <-time.After(time.Second):
			t.Fatal("no marker change")
		}

		stop()
		closedWithin(t, feed, time.Second)
		writer.Close()
		closedWithin(t, own, time.Second)
		if _, err := writer.Changes(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Changes after Close = %v, want ErrClosed", err)
		}
		if _, err := writer.Partners(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Partners after Close = %v, want ErrClosed", err)
		}
	})
}

func TestSeedDemo(t *testing.T) {
	reg, err := products.LoadDefaultPartners()
	if err != nil {
		t.Fatal(err)
	}
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := t.Context()

		// An interrupted earlier seed left one request behind.
		if err := s.UpsertPartner(ctx, Partner{ID: "mvno-a", Name: "MVNO A", Type: "mvno", Attributes: map[string]any{"mvno_id": "mvno-a"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertPlan(ctx, DemoPlans()[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateSubscription(ctx, "mvno-a", "cdr", "billing", "standard", SeedActor); err != nil {
			t.Fatal(err)
		}

		if err := SeedDemo(ctx, s, reg); err != nil {
			t.Fatal(err)
		}
		snap := snapshot(t, s)
		if len(snap.partners) != len(reg.List) || len(snap.plans) != len(DemoPlans()) {
			t.Fatalf("seeded %d partners, %d plans", len(snap.partners), len(snap.plans))
		}
		grants := 0
		for _, p := range reg.List {
			for _, g := range p.Grants {
				grants++
				subs, err := s.Subscriptions(ctx, Filter{PartnerID: p.ID, Product: g.Product, State: StateActive})
				if err != nil {
					t.Fatal(err)
				}
				if i := slices.IndexFunc(subs, func(x Subscription) bool { return x.Purpose == g.Purpose }); i < 0 {
					t.Errorf("no active subscription for %s %s (%s)", p.ID, g.Product, g.Purpose)
				} else if h := snap.history[subs[i].ID]; h[len(h)-1].Actor != SeedActor {
					t.Errorf("history of %s: %+v", subs[i].ID, h)
				}
			}
		}
		if len(snap.subs) != grants {
			t.Fatalf("%d subscriptions for %d grants", len(snap.subs), grants)
		}
		if def := slices.IndexFunc(snap.plans, func(p Plan) bool { return p.Default }); def < 0 || snap.plans[def].ID != "standard" {
			t.Fatalf("default plan: %+v", snap.plans)
		}

		// A second run changes nothing, and notifies nothing.
		feed, err := s.Changes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.now = func() time.Time { return time.Now().Add(time.Hour) } // any write would show
		if err := SeedDemo(ctx, s, reg); err != nil {
			t.Fatal(err)
		}
		if again := snapshot(t, s); !reflect.DeepEqual(snap, again) {
			t.Fatalf("second SeedDemo changed the store")
		}
		if err := s.UpsertPartner(ctx, Partner{ID: "marker", Name: "m", Type: "internal"}); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-feed:
			if c != (Change{ChangePartner, "marker"}) {
				t.Fatalf("second SeedDemo notified %v", c)
			}
		case <-time.After(time.Second):
			t.Fatal("no marker change")
		}

		// A revoked demo subscription stays revoked across seeds.
		subs, _ := s.Subscriptions(ctx, Filter{PartnerID: "mvno-b"})
		if _, err := s.Transition(ctx, subs[0].ID, ActionRevoke, "admin", "test"); err != nil {
			t.Fatal(err)
		}
		if err := SeedDemo(ctx, s, reg); err != nil {
			t.Fatal(err)
		}
		if now, _ := s.Subscriptions(ctx, Filter{PartnerID: "mvno-b"}); len(now) != 1 || now[0].State != StateRevoked {
			t.Fatalf("after re-seed mvno-b has %+v", now)
		}
	})
}

type storeSnapshot struct {
	partners []Partner
	plans    []Plan
	subs     []Subscription
	history  map[string][]TransitionRecord
}

func snapshot(t *testing.T, s Store) storeSnapshot {
	t.Helper()
	ctx := t.Context()
	var snap storeSnapshot
	var err error
	if snap.partners, err = s.Partners(ctx); err != nil {
		t.Fatal(err)
	}
	if snap.plans, err = s.Plans(ctx); err != nil {
		t.Fatal(err)
	}
	if snap.subs, err = s.Subscriptions(ctx, Filter{}); err != nil {
		t.Fatal(err)
	}
	snap.history = map[string][]TransitionRecord{}
	for _, sub := range snap.subs {
		if snap.history[sub.ID], err = s.History(ctx, sub.ID); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

// TestChangesAfterListenerLoss: when the PostgreSQL listening connection
// dies, the Store reconnects, says ChangeResync (notifications sent
// meanwhile are lost), and delivers changes again.
func TestChangesAfterListenerLoss(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		if strings.HasPrefix(dsn, "sqlite:") {
			t.Skip("SQLite changes are in process: no connection to lose")
		}
		writer := openStore(t, dsn)
		reader := openStore(t, dsn)
		seedBasics(t, writer)
		ctx := t.Context()
		feed, err := reader.Changes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		listen := "LISTEN " + `"` + reader.b.(*pgBackend).channel + `"`
		if n, err := writer.b.exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`, listen); err != nil || n != 1 {
			t.Fatalf("terminate the listener (%s): %d, %v", listen, n, err)
		}
		recv(t, feed, Change{Kind: ChangeResync}, 5*time.Second)
		sub := subIn(t, writer, "cdr", StateActive)
		if _, err := writer.Transition(ctx, sub.ID, ActionRevoke, "admin", "after reconnect"); err != nil {
			t.Fatal(err)
		}
		recv(t, feed, Change{ChangeSubscription, sub.ID}, time.Second)
	})
}

// TestUnlimitedDemoPlans: the bench's and tests' plans are the demo plans
// (same ids, same default) with every format and limits no client
// reaches, and the store accepts them.
func TestUnlimitedDemoPlans(t *testing.T) {
	s := openStore(t, newSQLiteDSN(t))
	demo, unlimited := DemoPlans(), UnlimitedDemoPlans()
	if len(demo) != len(unlimited) {
		t.Fatalf("%d plans, want %d", len(unlimited), len(demo))
	}
	for i, p := range unlimited {
		if p.ID != demo[i].ID || p.Default != demo[i].Default || !slices.Equal(p.Formats, knownFormats) ||
			p.RecordsPerSecond < 1e9 || p.MonthlyRecordQuota < 1e15 || p.ConcurrentStreams < 1e6 {
			t.Errorf("plan %d: %+v", i, p)
		}
		if err := s.UpsertPlan(t.Context(), p); err != nil {
			t.Fatalf("UpsertPlan(%s): %v", p.ID, err)
		}
	}
	if demo[0].RecordsPerSecond >= 1e9 {
		t.Error("UnlimitedDemoPlans changed DemoPlans")
	}
}

package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/products"
)

// TestMigration0004: a database at version 3 holding subscriptions is
// migrated on Open; its subscriptions read kafka_format json and the
// schema registry table is there.
func TestMigration0004(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		e := openStore(t, dsn)
		seedBasics(t, e)
		sub, err := e.CreateSubscription(t.Context(), "mvno-a", "cdr", products.PurposeBilling, "", "mvno-a")
		if err != nil {
			t.Fatal(err)
		}
		// Back to version 3, as a sluice before this migration left it.
		rawExec(t, e, `ALTER TABLE subscriptions DROP COLUMN kafka_format`)
		rawExec(t, e, `DROP TABLE registered_schemas`)
		rawExec(t, e, `DELETE FROM schema_migrations WHERE version = 4`)
		e.Close()

		s := openStore(t, dsn)
		got, err := s.Subscription(t.Context(), sub.ID)
		if err != nil || got.KafkaFormat != KafkaFormatJSON {
			t.Fatalf("after migration: %+v, %v; want kafka_format json", got, err)
		}
		if id, err := s.RegisterSchema(t.Context(), `"string"`); err != nil || id != 1 {
			t.Fatalf("RegisterSchema after migration = %d, %v; want 1", id, err)
		}
		// The column only takes the two formats.
		if err := s.b.tx(t.Context(), func(q querier) error {
			_, err := q.exec(t.Context(), `UPDATE subscriptions SET kafka_format = 'xml'`)
			return err
		}); err == nil {
			t.Fatal("kafka_format 'xml' was stored; want the CHECK constraint to refuse it")
		}
	})
}

// TestKafkaFormat: a subscription is created json by default or with the
// format asked for; SetKafkaFormat changes it, records the change in the
// history (same state, reason naming both formats), notifies it, and
// setting the same format again changes nothing.
func TestKafkaFormat(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		seedBasics(t, s)
		ctx := t.Context()
		clock := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
		s.now = func() time.Time { clock = clock.Add(time.Second); return clock }

		def, err := s.CreateSubscription(ctx, "mvno-a", "cdr", products.PurposeBilling, "", "mvno-a")
		if err != nil || def.KafkaFormat != KafkaFormatJSON {
			t.Fatalf("default format: %+v, %v; want json", def, err)
		}
		av, err := s.CreateSubscription(ctx, "mvno-a", "fraud-alerts", products.PurposeFraudPrevention, "", "mvno-a", WithKafkaFormat(KafkaFormatAvro))
		if err != nil || av.KafkaFormat != KafkaFormatAvro {
			t.Fatalf("WithKafkaFormat(avro): %+v, %v", av, err)
		}
		if got, err := s.Subscription(ctx, av.ID); err != nil || got.KafkaFormat != KafkaFormatAvro {
			t.Fatalf("read back: %+v, %v; want avro", got, err)
		}
		if _, err := s.CreateSubscription(ctx, "mvno-a", "network-quality", products.PurposeBilling, "", "mvno-a", WithKafkaFormat("xml")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("format xml: %v, want ErrInvalid", err)
		}

		if _, err := s.Transition(ctx, def.ID, ActionApprove, "admin", "ok"); err != nil {
			t.Fatal(err)
		}
		ch, err := s.Changes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.SetKafkaFormat(ctx, def.ID, KafkaFormatAvro, "admin")
		if err != nil || got.KafkaFormat != KafkaFormatAvro || got.State != StateActive || !got.UpdatedAt.Equal(clock) {
			t.Fatalf("SetKafkaFormat = %+v, %v; want avro, still active, updated now", got, err)
		}
		recv(t, ch, Change{Kind: ChangeSubscription, ID: def.ID}, 5*time.Second)
		if list, err := s.Subscriptions(ctx, Filter{PartnerID: "mvno-a", Product: "cdr"}); err != nil || len(list) != 1 || list[0].KafkaFormat != KafkaFormatAvro {
			t.Fatalf("Subscriptions = %+v, %v", list, err)
		}
		h, err := s.History(ctx, def.ID)
		if err != nil {
			t.Fatal(err)
		}
		last := h[len(h)-1]
		if last.Action != ActionSetKafkaFormat || last.From != StateActive || last.To != StateActive ||
			last.Actor != "admin" || last.Reason != "kafka_format json -> avro" {
			t.Fatalf("history entry %+v", last)
		}
		// The same format again: no history, no change.
		if _, err := s.SetKafkaFormat(ctx, def.ID, KafkaFormatAvro, "admin"); err != nil {
			t.Fatal(err)
		}
		if h2, _ := s.History(ctx, def.ID); len(h2) != len(h) {
			t.Fatalf("setting the same format added history: %d -> %d entries", len(h), len(h2))
		}
		for _, c := range []struct {
			id, format, actor string
			want              error
		}{
			{"sub_NOSUCHSUBSCRIPT", KafkaFormatJSON, "admin", ErrNotFound},
			{def.ID, "protobuf", "admin", ErrInvalid},
			{def.ID, KafkaFormatJSON, "", ErrInvalid},
		} {
			if _, err := s.SetKafkaFormat(ctx, c.id, c.format, c.actor); !errors.Is(err, c.want) {
				t.Errorf("SetKafkaFormat(%s, %q, %q) = %v, want %v", c.id, c.format, c.actor, err, c.want)
			}
		}
	})
}

// TestRegisterSchema: the same text gets the same id on every store of
// the database (replicas), concurrently and after reopening; distinct
// texts get distinct, growing ids; unknown ids are ErrNotFound.
func TestRegisterSchema(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		a := openStore(t, dsn)
		b := openStore(t, dsn)
		ctx := t.Context()
		texts := []string{`{"type":"record","name":"A","fields":[]}`, `{"type":"record","name":"B","fields":[]}`, `"long"`}

		// Two replicas register the same texts at once.
		ids := make([][]int, 2)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, s := range []*engine{a, b} {
			wg.Go(func() {
				for _, txt := range texts {
					id, err := s.RegisterSchema(ctx, txt)
					if err != nil {
						errs[i] = err
						return
					}
					ids[i] = append(ids[i], id)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if fmt.Sprint(ids[0]) != fmt.Sprint(ids[1]) {
			t.Fatalf("replicas got different ids: %v and %v", ids[0], ids[1])
		}
		for i := 1; i < len(ids[0]); i++ {
			if ids[0][i] <= ids[0][i-1] || ids[0][0] <= 0 {
				t.Fatalf("ids %v: want positive and growing", ids[0])
			}
		}
		a.Close()
		c := openStore(t, dsn)
		for i, txt := range texts {
			if id, err := c.RegisterSchema(ctx, txt); err != nil || id != ids[0][i] {
				t.Fatalf("after reopen: RegisterSchema(%s) = %d, %v; want %d", txt, id, err, ids[0][i])
			}
			if got, err := c.Schema(ctx, ids[0][i]); err != nil || got != txt {
				t.Fatalf("Schema(%d) = %q, %v; want %q", ids[0][i], got, err, txt)
			}
		}
		if _, err := c.Schema(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Schema(999999) = %v, want ErrNotFound", err)
		}
		if _, err := c.RegisterSchema(ctx, ""); !errors.Is(err, ErrInvalid) {
			t.Fatalf("empty schema: %v, want ErrInvalid", err)
		}
		if _, err := c.RegisterSchema(ctx, strings.Repeat("x", maxSchemaText+1)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("oversized schema: %v, want ErrInvalid", err)
		}
	})
}

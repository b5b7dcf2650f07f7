package store

import (
	"errors"
	"testing"
	"time"
)

// TestShareQuota: two replicas on one database see each other's shares;
// a replica's write replaces its own rows; stale shares are not returned.
func TestShareQuota(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		a, b := openStore(t, dsn), openStore(t, dsn)
		ctx := t.Context()
		const fresh = 2 * time.Second
		got, err := a.ShareQuota(ctx, "replica-a", []QuotaShare{
			{PartnerID: "mvno-a", Product: "cdr", Demand: 120.5, Streams: 2},
			{PartnerID: "mvno-a", Product: "network-quality", Demand: 10, Streams: 0},
		}, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Replica != "replica-a" || got[0].Product != "cdr" || got[0].Demand != 120.5 || got[0].Streams != 2 {
			t.Fatalf("a's first share: %+v", got)
		}
		got, err = b.ShareQuota(ctx, "replica-b", []QuotaShare{{PartnerID: "mvno-a", Product: "cdr", Demand: 40, Streams: 1}}, fresh)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"mvno-a/cdr/replica-a", "mvno-a/cdr/replica-b", "mvno-a/network-quality/replica-a"}
		if len(got) != len(want) {
			t.Fatalf("b sees %+v, want %v", got, want)
		}
		for i, s := range got {
			if k := s.PartnerID + "/" + s.Product + "/" + s.Replica; k != want[i] {
				t.Fatalf("share %d is %s, want %s", i, k, want[i])
			}
			if s.UpdatedAt.IsZero() {
				t.Fatalf("share %d has no time", i)
			}
		}
		// a drops network-quality: its row goes.
		got, err = a.ShareQuota(ctx, "replica-a", []QuotaShare{{PartnerID: "mvno-a", Product: "cdr", Demand: 80, Streams: 1}}, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Demand != 80 || got[1].Replica != "replica-b" {
			t.Fatalf("after a's rewrite: %+v", got)
		}
		// Shares older than fresh are not returned (b last wrote above).
		b.now = func() time.Time { return time.Now().Add(3 * time.Second) }
		got, err = b.ShareQuota(ctx, "replica-b", nil, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("stale shares returned: %+v", got)
		}
		// Invalid input.
		for _, bad := range [][]QuotaShare{
			{{PartnerID: "mvno-a", Product: "cdr", Demand: -1}},
			{{PartnerID: "X", Product: "cdr"}},
			{{PartnerID: "mvno-a", Product: "cdr", Streams: -1}},
		} {
			if _, err := a.ShareQuota(ctx, "replica-a", bad, fresh); !errors.Is(err, ErrInvalid) {
				t.Errorf("ShareQuota(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
		if _, err := a.ShareQuota(ctx, "", nil, fresh); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty replica: %v", err)
		}
	})
}

// TestShareKafkaNode: two replicas on one database list each other's Kafka
// nodes in node id order; a replica's write replaces its own row; a
// dropped node and nodes older than fresh are not returned; bad nodes are
// refused.
func TestShareKafkaNode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		a, b := openStore(t, dsn), openStore(t, dsn)
		ctx := t.Context()
		const fresh = 2 * time.Second
		na := KafkaNode{Replica: "replica-a", NodeID: 7, Host: "10.0.0.1", Port: 9094}
		nb := KafkaNode{Replica: "replica-b", NodeID: 3, Host: "10.0.0.2", Port: 9094}
		if _, err := a.ShareKafkaNode(ctx, na, fresh); err != nil {
			t.Fatal(err)
		}
		got, err := b.ShareKafkaNode(ctx, nb, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Replica != "replica-b" || got[1].Replica != "replica-a" ||
			got[1].NodeID != 7 || got[1].Host != "10.0.0.1" || got[1].Port != 9094 || got[0].UpdatedAt.IsZero() {
			t.Fatalf("b sees %+v, want b's node 3 then a's node 7", got)
		}
		// a moves to another address: its row is replaced, not added.
		na.Host, na.Port = "10.0.0.9", 19094
		if got, err = a.ShareKafkaNode(ctx, na, fresh); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[1].Host != "10.0.0.9" || got[1].Port != 19094 {
			t.Fatalf("after a's move: %+v", got)
		}
		// b stops cleanly: a no longer sees it.
		if err := b.DropKafkaNode(ctx, "replica-b"); err != nil {
			t.Fatal(err)
		}
		if got, err = a.ShareKafkaNode(ctx, na, fresh); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Replica != "replica-a" {
			t.Fatalf("after b's drop: %+v", got)
		}
		// Nodes older than fresh are not returned (a last wrote above).
		if _, err := b.ShareKafkaNode(ctx, nb, fresh); err != nil {
			t.Fatal(err)
		}
		b.now = func() time.Time { return time.Now().Add(3 * time.Second) }
		if got, err = b.ShareKafkaNode(ctx, nb, fresh); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Replica != "replica-b" {
			t.Fatalf("a's stale node returned: %+v", got)
		}
		for _, bad := range []KafkaNode{
			{Replica: "", NodeID: 1, Host: "h", Port: 1},
			{Replica: "r", NodeID: -1, Host: "h", Port: 1},
			{Replica: "r", NodeID: 1, Host: "", Port: 1},
			{Replica: "r", NodeID: 1, Host: "h", Port: 0},
			{Replica: "r", NodeID: 1, Host: "h", Port: 65536},
		} {
			if _, err := a.ShareKafkaNode(ctx, bad, fresh); !errors.Is(err, ErrInvalid) {
				t.Errorf("ShareKafkaNode(%+v) = %v, want ErrInvalid", bad, err)
			}
		}
	})
}

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

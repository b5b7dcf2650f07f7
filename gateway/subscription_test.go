package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/products/store"
)

// TestIntegrationAPIKeyCredential: an API key from the store is a bearer
// credential for its partner; a revoked key is refused.
func TestIntegrationAPIKeyCredential(t *testing.T) {
	e := newEnv(t)
	e.produce("cdr", 10)
	ctx := context.Background()
	k, secret, err := e.gw.Store().CreateKey(ctx, "mvno-a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := e.get("/v1/products/cdr/records?from=earliest", "Authorization", "Bearer "+secret)
	if resp.StatusCode != 200 {
		t.Fatalf("records with an API key: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), `"mvno_id":"mvno-a"`) && strings.Contains(string(body), `"mvno_id"`) {
		t.Fatalf("the key did not act as mvno-a: %s", body)
	}
	e.problem("/v1/products/cdr/records", 401, "urn:sluice:problem:key-invalid", "Authorization", "Bearer "+secret[:len(secret)-2]+"xx")
	if err := e.gw.Store().RevokeKey(ctx, "mvno-a", k.ID, "test"); err != nil {
		t.Fatal(err)
	}
	p := e.problem("/v1/products/cdr/records", 401, "urn:sluice:problem:key-revoked", "Authorization", "Bearer "+secret)
	if strings.Contains(p["detail"].(string), secret) {
		t.Fatal("the problem echoes the key")
	}
}

// TestIntegrationRevocationEndsStream: revoking a partner's subscription
// ends its live stream within 1 s with a final event, and its next request
// is refused; suspension likewise, and resuming restores access.
func TestIntegrationRevocationEndsStream(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := e.gw.Store()
	sub := func(partner, product string) store.Subscription {
		subs, err := st.Subscriptions(ctx, store.Filter{PartnerID: partner, Product: product, State: store.StateActive})
		if err != nil || len(subs) != 1 {
			t.Fatalf("active subscriptions of %s/%s: %v %v", partner, product, subs, err)
		}
		return subs[0]
	}
	endsWithin := func(action store.Action) {
		t.Helper()
		resp, r := e.streamAs(ctx, "/v1/products/cdr/stream", "mvno-a")
		defer resp.Body.Close()
		s := sub("mvno-a", "cdr")
		at := time.Now()
		if _, err := st.Transition(ctx, s.ID, action, "admin", "test "+string(action)); err != nil {
			t.Fatal(err)
		}
		for {
			ev, err := r.Next()
			if err != nil {
				t.Fatalf("stream ended without a revoked event after %s: %v", action, err)
			}
			if ev.Type == "revoked" {
				if d := time.Since(at); d > time.Second {
					t.Fatalf("stream ended %s after %s, want within 1 s", d, action)
				} else {
					t.Logf("%s ended the stream after %s", action, d)
				}
				if !strings.Contains(string(ev.Data), "no-grant") {
					t.Fatalf("revoked event %s", ev.Data)
				}
				return
			}
		}
	}
	endsWithin(store.ActionSuspend)
	mvnoA := "Bearer " + e.token("mvno-a")
	e.problem("/v1/products/cdr/records", 403, "urn:sluice:problem:no-grant", "Authorization", mvnoA)
	subs, _ := st.Subscriptions(ctx, store.Filter{PartnerID: "mvno-a", Product: "cdr"})
	if _, err := st.Transition(ctx, subs[0].ID, store.ActionResume, "admin", "test resume"); err != nil {
		t.Fatal(err)
	}
	if resp, body := e.get("/v1/products/cdr/records", "Authorization", mvnoA); resp.StatusCode != 200 {
		t.Fatalf("after resume: %d %s", resp.StatusCode, body)
	}
	endsWithin(store.ActionRevoke)
	e.problem("/v1/products/cdr/records", 403, "urn:sluice:problem:no-grant", "Authorization", mvnoA)
	// Other partners are untouched.
	if resp, body := e.get("/v1/products/cdr/records"); resp.StatusCode != 200 {
		t.Fatalf("internal-fraud after mvno-a's revocation: %d %s", resp.StatusCode, body)
	}
}

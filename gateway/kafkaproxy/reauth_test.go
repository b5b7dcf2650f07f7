package kafkaproxy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// reauthBackend's sessions expire lifetime after login and can be renewed
// on their connection (Reauthenticator).
type reauthBackend struct {
	*testBackend
	lifetime time.Duration
	renewals atomic.Int32
}

type reauthSession struct {
	*testSession
	b       *reauthBackend
	expires atomic.Int64 // unix nanoseconds
}

func (b *reauthBackend) Authenticate(ctx context.Context, c Credentials) (Session, error) {
	s, err := b.testBackend.Authenticate(ctx, c)
	if err != nil {
		return nil, err
	}
	rs := &reauthSession{testSession: s.(*testSession), b: b}
	rs.expires.Store(time.Now().Add(b.lifetime).UnixNano())
	return rs, nil
}

func (s *reauthSession) Expires() time.Time { return time.Unix(0, s.expires.Load()) }

func (s *reauthSession) Reauthenticate(next Session) error {
	n := next.(*reauthSession)
	s.expires.Store(n.expires.Load())
	next.Close()
	s.b.renewals.Add(1)
	return nil
}

func authenticate(r *rawClient, mech string, msg string) *kmsg.SASLAuthenticateResponse {
	r.t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, mech
	if code := r.roundTrip(hs).(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
		r.t.Fatalf("handshake %s: error %d", mech, code)
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = 2, []byte(msg)
	return r.roundTrip(au).(*kmsg.SASLAuthenticateResponse)
}

// TestReauthentication (KIP-368): a login reports the credential's
// lifetime; a second handshake and login of the same partner with the same
// mechanism renews it on the connection, which stays logged in; a
// re-authentication as another partner fails and closes the connection,
// and one with another mechanism is ILLEGAL_SASL_STATE.
func TestReauthentication(t *testing.T) {
	tb, _ := standardBackend()
	b := &reauthBackend{testBackend: tb, lifetime: time.Minute}
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})

	r := dialRaw(t, ts.addr)
	resp := authenticate(r, MechanismPlain, "\x00key-a\x00secret-a")
	if resp.ErrorCode != 0 || resp.SessionLifetimeMillis < 59_000 || resp.SessionLifetimeMillis > 60_000 {
		t.Fatalf("login: error %d, session lifetime %d ms, want about 60000", resp.ErrorCode, resp.SessionLifetimeMillis)
	}
	time.Sleep(20 * time.Millisecond)
	resp = authenticate(r, MechanismPlain, "\x00key-a\x00secret-a")
	if resp.ErrorCode != 0 || resp.SessionLifetimeMillis < 59_000 || b.renewals.Load() != 1 {
		t.Fatalf("re-authentication: error %d, lifetime %d ms, %d renewals; want 0, about 60000, 1", resp.ErrorCode, resp.SessionLifetimeMillis, b.renewals.Load())
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 9
	if m := r.roundTrip(md).(*kmsg.MetadataResponse); len(m.Topics) != 2 {
		t.Fatalf("after re-authentication Metadata lists %d topics, want mvno-a's 2", len(m.Topics))
	}
	resp = authenticate(r, MechanismPlain, "\x00key-b\x00secret-b")
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || b.renewals.Load() != 1 {
		t.Fatalf("re-authentication as mvno-b: error %d, %d renewals; want SASL_AUTHENTICATION_FAILED, no renewal", resp.ErrorCode, b.renewals.Load())
	}
	r.expectClosed(2 * time.Second)

	r = dialRaw(t, ts.addr)
	if code := r.login("key-a", "secret-a"); code != 0 {
		t.Fatalf("login: %d", code)
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, MechanismOAuthBearer
	if code := r.roundTrip(hs).(*kmsg.SASLHandshakeResponse).ErrorCode; code != kerr.IllegalSaslState.Code {
		t.Fatalf("re-authentication with another mechanism: error %d, want ILLEGAL_SASL_STATE", code)
	}
	r.expectClosed(2 * time.Second)
}

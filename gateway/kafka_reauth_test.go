package gateway_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/sluicehq/sluice/gateway/auth"
)

// brokerConns counts a franz-go client's connections to brokers it learnt
// from Metadata (not its seed connections, which it may drop by design).
type brokerConns struct{ connects, disconnects atomic.Int32 }

func (h *brokerConns) OnBrokerConnect(m kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil && m.NodeID >= 0 {
		h.connects.Add(1)
	}
}

func (h *brokerConns) OnBrokerDisconnect(m kgo.BrokerMetadata, _ net.Conn) {
	if m.NodeID >= 0 {
		h.disconnects.Add(1)
	}
}

// TestIntegrationKafkaReauth (KIP-368): a consumer logged in with tokens
// that live 4 s reads for about 10 s. The front door tells it the token's
// lifetime, the client logs in again on the same connections before each
// token expires, and none of its connections is closed: every record
// arrives, and the client asked for at least three tokens.
func TestIntegrationKafkaReauth(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	key, kid, err := auth.DevKey(e.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	var tokens atomic.Int32
	mech := oauth.Oauth(func(context.Context) (oauth.Auth, error) {
		tokens.Add(1)
		tok, err := auth.Sign(key, kid, auth.DevIssuer, auth.DevAudience, "internal-noc", 4*time.Second)
		return oauth.Auth{Token: tok}, err
	})
	conns := &brokerConns{}
	cl := e.kafkaClient(kgo.SASL(mech), kgo.WithHooks(conns), kgo.ConsumeTopics("network-quality"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	const rounds, per = 20, 5
	go func() {
		for range rounds {
			e.produce("network-quality", per)
			time.Sleep(500 * time.Millisecond)
		}
	}()
	got := readKafka(t, cl, rounds*per, 30*time.Second)
	if len(got) != rounds*per {
		t.Errorf("received %d records, want %d", len(got), rounds*per)
	}
	if n := tokens.Load(); n < 3 {
		t.Errorf("the client asked for %d tokens in ~10 s of 4 s tokens, want at least 3 (re-authentication)", n)
	}
	if c, d := conns.connects.Load(), conns.disconnects.Load(); d != 0 {
		t.Errorf("%d of the client's %d broker connections were closed; re-authentication should keep them", d, c)
	}
}

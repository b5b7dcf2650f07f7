package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestIntegrationKafkaScram: SASL/SCRAM-SHA-512 with an API key (username
// = key id or slk_<id>, password = secret) reads the partner's view, the
// same records as REST; a wrong password and an unknown key id fail alike;
// revoking the key closes the connection, and a login with it then fails
// and says why (after the proof).
func TestIntegrationKafkaScram(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 150)
	_, keyID, secret := e.kafkaKey("mvno-a")
	login := func(user, pass string) kgo.Opt {
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism())
	}
	rest := restRecords(t, e, "mvno-a", "cdr")
	cl := e.kafkaClient(login(keyID, secret), kgo.ConsumeTopics("cdr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	sameRecords(t, "scram vs rest", kafkaByPos(t, "mvno-a cdr", readKafka(t, cl, len(rest), 30*time.Second)), rest)

	ping := func(opt kgo.Opt) error {
		c, err := kgo.NewClient(e.kafkaOpts(opt, kgo.RetryTimeout(time.Second))...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Ping(ctx)
	}
	if err := ping(login("slk_"+keyID, secret)); err != nil {
		t.Fatalf("username slk_<id>: %v", err)
	}
	var msgs []string
	for _, c := range []struct{ user, pass string }{{keyID, secret[:len(secret)-2] + "xx"}, {"aaaaaaaaaaaaaaaa", secret}} {
		err := ping(login(c.user, c.pass))
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("%s: %v, want SASL_AUTHENTICATION_FAILED", c.user, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error echoes the secret: %v", err)
		}
		msgs = append(msgs, strings.ReplaceAll(err.Error(), c.user, "ID"))
	}
	if msgs[0] != msgs[1] {
		t.Errorf("a wrong password and an unknown key are told apart:\n%s\n%s", msgs[0], msgs[1])
	}

	// Revocation: the open connection closes; a new login fails, saying so.
	if resp, raw := e.send(http.MethodDelete, "/v1/keys/"+keyID, e.bearer("mvno-a"), ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /v1/keys/%s: %d %s", keyID, resp.StatusCode, raw)
	}
	revoked := time.Now()
	closed := false
	for !closed && time.Since(revoked) < 10*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				closed = true
			}
		})
		if ctx.Err() == nil && !closed {
			continue
		}
		if err := cl.Ping(context.Background()); err != nil {
			closed = true
		}
	}
	if !closed {
		t.Fatal("the SCRAM connection still works 10 s after its key was revoked")
	}
	t.Logf("the revoked key's connection stopped working %s after the revocation", time.Since(revoked).Round(time.Millisecond))
	err := ping(login(keyID, secret))
	if !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("login with the revoked key: %v, want SASL_AUTHENTICATION_FAILED saying revoked", err)
	}
}

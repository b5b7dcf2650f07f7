package kafkaproxy

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// scramCredential derives what a server keeps of password (RFC 5802).
func scramCredential(password string, salt []byte) ScramCredential {
	salted, _ := pbkdf2.Key(sha512.New, password, salt, 4096, sha512.Size)
	stored := sha512.Sum512(hmacSHA512(salted, []byte("Client Key")))
	return ScramCredential{Salt: salt, Iterations: 4096, StoredKey: stored[:], ServerKey: hmacSHA512(salted, []byte("Server Key"))}
}

// ScramLookup makes the test backend a ScramBackend: username = key,
// password = secret.
func (b *testBackend) ScramLookup(_ context.Context, username string) (ScramLogin, error) {
	b.mu.Lock()
	id := b.keys[username]
	p := b.partners[id]
	b.mu.Unlock()
	if p == nil {
		return ScramLogin{}, ErrUnknownUser
	}
	return ScramLogin{
		Credential: scramCredential(p.secret, []byte("salt-of-"+username)),
		Complete: func(ctx context.Context) (Session, error) {
			return b.Authenticate(ctx, Credentials{Mechanism: MechanismPlain, Username: username, Secret: p.secret})
		},
	}, nil
}

func scramClient(t testing.TB, addr, user, pass string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return saslClient(t, addr, scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), opts...)
}

// TestScramLogin: franz-go's SCRAM-SHA-512 client logs in (and checks the
// server's signature) and consumes; a wrong password and an unknown user
// both fail with SASL_AUTHENTICATION_FAILED and the same words, and the
// password appears in no log line.
func TestScramLogin(t *testing.T) {
	b, want := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	cl := scramClient(t, ts.addr, "key-a", "secret-a", kgo.ConsumeTopics("fraud-alerts"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeAll(t, cl, len(want["fraud-alerts"]), 10*time.Second)
	if len(got) != len(want["fraud-alerts"]) {
		t.Fatalf("consumed %d records over SCRAM, want %d", len(got), len(want["fraud-alerts"]))
	}
	var msgs []string
	for _, c := range []struct{ user, pass string }{{"key-a", "secret-b"}, {"key-x", "secret-a"}} {
		cl := scramClient(t, ts.addr, c.user, c.pass)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := cl.Ping(ctx)
		cancel()
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("%s/%s: %v, want SASL_AUTHENTICATION_FAILED", c.user, c.pass, err)
		}
		msgs = append(msgs, strings.ReplaceAll(err.Error(), c.user, "USER"))
	}
	if msgs[0] != msgs[1] {
		t.Errorf("a wrong password and an unknown user are told apart:\n%s\n%s", msgs[0], msgs[1])
	}
	if ts.logs.contains("secret-a") || ts.logs.contains("secret-b") {
		t.Error("a password appears in the log")
	}
}

// scramExchange runs SCRAM-SHA-512 by hand over a v0 handshake (raw SASL
// frames), checks the server's signature and returns the client's view.
func scramExchange(t *testing.T, r *rawClient, user, pass string, tamper func(clientFinal string) string) (serverFinal []byte, err error) {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version = 0
	hs.Mechanism = MechanismScramSHA512
	resp := r.roundTrip(hs).(*kmsg.SASLHandshakeResponse)
	if resp.ErrorCode != 0 || !strings.Contains(strings.Join(resp.SupportedMechanisms, ","), MechanismScramSHA512) {
		t.Fatalf("handshake: code %d, mechanisms %v", resp.ErrorCode, resp.SupportedMechanisms)
	}
	raw := func(msg string) ([]byte, error) {
		if _, err := r.c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)); err != nil {
			t.Fatal(err)
		}
		return r.readFrame(5 * time.Second)
	}
	clientFirstBare := "n=" + user + ",r=fyko+d2lbbFgONRv9qkxdawL"
	sf, err := raw("n,," + clientFirstBare)
	if err != nil {
		return nil, err
	}
	var nonce, salt string
	var iters int
	for _, a := range strings.Split(string(sf), ",") {
		switch {
		case strings.HasPrefix(a, "r="):
			nonce = a[2:]
		case strings.HasPrefix(a, "s="):
			salt = a[2:]
		case strings.HasPrefix(a, "i="):
			iters, _ = strconv.Atoi(a[2:])
		}
	}
	if !strings.HasPrefix(nonce, "fyko+d2lbbFgONRv9qkxdawL") || len(nonce) <= 24 || iters != 4096 {
		t.Fatalf("server-first %q", sf)
	}
	saltB, _ := base64.StdEncoding.DecodeString(salt)
	salted, _ := pbkdf2.Key(sha512.New, pass, saltB, iters, sha512.Size)
	withoutProof := "c=biws,r=" + nonce
	authMessage := []byte(clientFirstBare + "," + string(sf) + "," + withoutProof)
	clientKey := hmacSHA512(salted, []byte("Client Key"))
	stored := sha512.Sum512(clientKey)
	sig := hmacSHA512(stored[:], authMessage)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey)
	if tamper != nil {
		final = tamper(final)
	}
	sfin, err := raw(final)
	if err != nil {
		return nil, err
	}
	wantSig := "v=" + base64.StdEncoding.EncodeToString(hmacSHA512(hmacSHA512(salted, []byte("Server Key")), authMessage))
	if string(sfin) != wantSig {
		return sfin, fmt.Errorf("server-final %q, want %q", sfin, wantSig)
	}
	return sfin, nil
}

// flip returns a base64 character other than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestScramV0: the exchange over a v0 handshake (raw frames), checked
// step by step against RFC 5802 computed here; a tampered proof, nonce or
// channel binding closes the connection.
func TestScramV0(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	r := dialRaw(t, ts.addr)
	if _, err := scramExchange(t, r, "key-a", "secret-a", nil); err != nil {
		t.Fatal(err)
	}
	if md := r.roundTrip(metadataRequest()).(*kmsg.MetadataResponse); len(md.Topics) != 2 {
		t.Errorf("metadata after a SCRAM login lists %d topics, want 2", len(md.Topics))
	}
	for name, tamper := range map[string]func(string) string{
		"proof":           func(f string) string { i := strings.Index(f, ",p="); return f[:i+3] + flip(f[i+3]) + f[i+4:] },
		"nonce":           func(f string) string { i := strings.Index(f, ",p="); return f[:i-1] + flip(f[i-1]) + f[i:] },
		"channel binding": func(f string) string { return strings.Replace(f, "c=biws", "c=eSws", 1) },
		"password":        nil,
	} {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, ts.addr)
			pass := "secret-a"
			if tamper == nil {
				pass = "secret-b"
			}
			if _, err := scramExchange(t, r, "key-a", pass, tamper); err == nil {
				t.Fatal("login succeeded")
			}
			r.expectClosed(2 * time.Second)
		})
	}
}

// FuzzScram: whatever two messages a client sends, the server answers or
// refuses without panicking, and never logs in without the password.
func FuzzScram(f *testing.F) {
	f.Add([]byte("n,,n=key-a,r=abc"), []byte("c=biws,r=abcxyz,p=AAAA"))
	f.Add([]byte("n,a=key-a,n=key-a,r=abc,tokenauth=true"), []byte(""))
	f.Add([]byte("p=tls-unique,,n=x,r=y"), []byte("c=,r=,p="))
	f.Add([]byte("y,,n=k=2Cey-a,r=abc"), []byte("c=eSws,r=abc,e=x,p=="))
	b, _ := standardBackend()
	f.Fuzz(func(t *testing.T, first, final []byte) {
		s := &scramServer{}
		if _, err := s.first(context.Background(), b, []byte("pepper"), first); err != nil {
			return
		}
		if sess, _, err := s.final(context.Background(), final); err == nil || sess != nil {
			t.Fatalf("login without the password: first %q final %q", first, final)
		}
	})
}

package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sluicehq/sluice/gateway/auth"
)

// librdkafkaPython is the Python of the venv that holds confluent-kafka
// (deploy/test.sh's tools phase makes it): $SLUICE_PYVENV, else
// <user cache>/sluice/pyvenv. The test skips without it, unless
// SLUICE_PYVENV is set (as deploy/test.sh does): then a missing venv is a
// failure, not a silent skip.
func librdkafkaPython(t *testing.T) string {
	t.Helper()
	dir, required := os.LookupEnv("SLUICE_PYVENV")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Skipf("no user cache directory for the confluent-kafka venv: %v", err)
		}
		dir, required = filepath.Join(cache, "sluice", "pyvenv"), false
	}
	py := filepath.Join(dir, "bin", "python")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", "import confluent_kafka").CombinedOutput()
	if err != nil {
		msg := "no Python confluent-kafka (librdkafka) in " + dir + ": " + strings.TrimSpace(err.Error()+" "+string(out)) +
			"; deploy/test.sh's tools phase installs it (python3 -m venv " + dir + " && " + py + " -m pip install confluent-kafka, pinned in deploy/test.sh PY_REQS)"
		if required {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return py
}

// pyResult is one run of testdata/librdkafka/client.py.
type pyResult struct {
	stdout, stderr string
	code           int
}

// TestIntegrationLibrdkafkaOAuthBearer: a real librdkafka client (Python
// confluent-kafka, whose wheel bundles librdkafka) logs in to the front
// door over SASL_SSL with SASL/OAUTHBEARER and the gateway's signed JWT,
// (a) handed over by an oauth_cb callback and (b) fetched by librdkafka
// itself from an OAuth 2.0 client-credentials token endpoint
// (sasl.oauthbearer.method=oidc). Either way it lists only the partner's
// products and consumes one from the beginning, without a group and in a
// group that commits, and gets what REST and SSE give the partner: the
// same values, byte for byte, at the same offsets. (c) SASL/SCRAM-SHA-512
// with an API key does the same. An expired JWT, one signed by another
// key, one of an unknown partner and a wrong SCRAM password do not log
// in: the client reports an authentication error.
func TestIntegrationLibrdkafkaOAuthBearer(t *testing.T) {
	py := librdkafkaPython(t)
	script, err := filepath.Abs(filepath.Join("testdata", "librdkafka", "client.py"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, env []string, args ...string) pyResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, py, append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("client.py %v timed out; stderr:\n%s", args, errb.String())
		}
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("client.py %v: %v", args, err)
		}
		return pyResult{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
	}
	var info struct {
		ConfluentKafka string `json:"confluent_kafka"`
		Librdkafka     string `json:"librdkafka"`
		OIDC           bool   `json:"oidc"`
	}
	if r := run(t, nil, "info"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &info) != nil {
		t.Fatalf("client.py info: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("confluent-kafka %s, librdkafka %s (oidc: %v)", info.ConfluentKafka, info.Librdkafka, info.OIDC)

	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 200)
	cert := e.gw.KafkaProxyCert()
	if cert == "" {
		t.Fatal("the front door serves no TLS certificate")
	}
	const partner, product = "mvno-a", "cdr"
	rest := restRecords(t, e, partner, product)
	if len(rest) == 0 {
		t.Fatalf("%s sees no %s record over REST", partner, product)
	}
	sse := sseRecords(t, e, partner, product, len(rest))
	sameRecords(t, "sse vs rest", sse, rest)

	base := []string{"--bootstrap", e.gw.KafkaProxyAddr(), "--ca", cert}
	callback := func(token string) ([]string, []string) {
		return []string{"SLUICE_TOKEN=" + token}, append(slices.Clone(base), "--auth", "callback", "--principal", partner)
	}

	// topics checks list_topics(): the partner's products, and only the
	// front door as broker.
	topics := func(t *testing.T, env, args []string, want []string) {
		t.Helper()
		r := run(t, env, append(slices.Clone(args), "topics")...)
		if r.code != 0 {
			t.Fatalf("list_topics: exit %d\n%s", r.code, r.stderr)
		}
		var got, brokers []string
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if name, ok := strings.CutPrefix(line, "topic "); ok {
				got = append(got, name)
			} else if b, ok := strings.CutPrefix(line, "broker "); ok {
				brokers = append(brokers, b)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("list_topics() shows %v, want %v", got, want)
		}
		if !slices.Equal(brokers, []string{e.gw.KafkaProxyAddr()}) {
			t.Errorf("list_topics() shows brokers %v, want only the front door %s", brokers, e.gw.KafkaProxyAddr())
		}
	}

	// consume reads the product from the beginning (in group, if not
	// empty) and checks it against REST and SSE; it returns the offsets
	// the group committed.
	consume := func(t *testing.T, note string, env, args []string, group string) map[int32]int64 {
		t.Helper()
		args = append(slices.Clone(args), "consume", product)
		if group != "" {
			args = append(args, "--group", group)
		}
		began := time.Now()
		r := run(t, env, args...)
		if r.code != 0 {
			t.Fatalf("%s: consume: exit %d\n%s", note, r.code, r.stderr)
		}
		got, committed := map[pos][]byte{}, map[int32]int64{}
		for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
			if c, ok := strings.CutPrefix(line, "committed "); ok {
				var p int32
				var o int64
				if _, err := fmt.Sscanf(c, "%d %d", &p, &o); err != nil {
					t.Fatalf("%s: line %q: %v", note, line, err)
				}
				committed[p] = o
				continue
			}
			f := strings.SplitN(line, " ", 3)
			if len(f) != 3 {
				t.Fatalf("%s: line %q", note, line)
			}
			p, err1 := strconv.ParseInt(f[0], 10, 32)
			o, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: line %q", note, line)
			}
			ps := pos{int32(p), o}
			if in, _ := recordPos(t, []byte(f[2])); in != ps {
				t.Fatalf("%s: the record at %v carries _partition/_offset %v", note, ps, in)
			}
			if _, dup := got[ps]; dup {
				t.Fatalf("%s: record %v came twice", note, ps)
			}
			got[ps] = []byte(f[2])
		}
		sameRecords(t, note+" vs rest", got, rest)
		sameRecords(t, note+" vs sse", got, sse)
		t.Logf("%s: librdkafka consumed %d records in %s, identical to REST and SSE (values and offsets)",
			note, len(got), time.Since(began).Round(time.Millisecond))
		return committed
	}

	// groupCommitted checks that what the client says its group committed
	// is what the gateway stored: the next offset after the last record of
	// each partition.
	groupCommitted := func(t *testing.T, group string, committed map[int32]int64) {
		t.Helper()
		want := map[int32]int64{}
		for ps := range rest {
			want[ps.Partition] = max(want[ps.Partition], ps.Offset+1)
		}
		stored, err := e.gw.Store().GroupOffsets(context.Background(), partner, group)
		if err != nil {
			t.Fatal(err)
		}
		inStore := map[int32]int64{}
		for _, o := range stored {
			if o.Topic != product {
				t.Errorf("group %s committed an offset of topic %q, want %q", group, o.Topic, product)
			}
			inStore[o.Partition] = o.Offset
		}
		if !maps.Equal(committed, want) || !maps.Equal(inStore, want) {
			t.Errorf("group %s: the client says it committed %v, the store holds %v; want %v", group, committed, inStore, want)
		}
	}

	// refused runs a login that must fail with an authentication error.
	refused := func(t *testing.T, env, args []string) {
		t.Helper()
		r := run(t, env, append(slices.Clone(args), "--timeout", "15", "topics")...)
		if r.code != 3 || !strings.Contains(r.stderr, "AUTHENTICATION") {
			t.Fatalf("exit %d (want 3, an authentication error); stdout %q\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("refused: %s", lastLine(r.stderr))
	}

	key, kid, err := auth.DevKey(e.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(key ed25519.PrivateKey, sub string, iat, exp time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": sub, "iat": iat.Unix(), "exp": exp.Unix(),
		})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, foreign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	t.Run("oauth_cb", func(t *testing.T) {
		env, args := callback(devToken(t, e.cfg.DataDir, partner))
		topics(t, env, args, []string{"cdr", "fraud-alerts", "network-quality"})
		consume(t, "oauth_cb, no group", env, args, "")
		const group = "py-billing"
		groupCommitted(t, group, consume(t, "oauth_cb, group "+group, env, args, group))
		benv, bargs := callback(devToken(t, e.cfg.DataDir, "mvno-b"))
		topics(t, benv, bargs, []string{"cdr"})
	})

	t.Run("scram", func(t *testing.T) {
		_, keyID, secret := e.kafkaKey(partner)
		scram := append(slices.Clone(base), "--auth", "scram")
		env := []string{"SLUICE_SCRAM_USER=" + keyID, "SLUICE_SCRAM_PASSWORD=" + secret}
		topics(t, env, scram, []string{"cdr", "fraud-alerts", "network-quality"})
		consume(t, "scram-sha-512, no group", env, scram, "")
		refused(t, []string{"SLUICE_SCRAM_USER=" + keyID, "SLUICE_SCRAM_PASSWORD=" + secret[:len(secret)-1] + flipChar(secret[len(secret)-1])}, scram)
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct{ note, token string }{
			{"expired", sign(key, partner, now.Add(-2*time.Hour), now.Add(-time.Hour))},
			{"signed by another key", sign(foreign, partner, now, now.Add(time.Hour))},
			{"unknown partner", devToken(t, e.cfg.DataDir, "nobody")},
		} {
			t.Run(tc.note, func(t *testing.T) {
				t.Parallel()
				env, args := callback(tc.token)
				refused(t, env, args)
			})
		}
	})

	t.Run("oidc", func(t *testing.T) {
		if !info.OIDC {
			t.Skipf("librdkafka %s was built without OIDC (builtin.features lacks oidc)", info.Librdkafka)
		}
		const clientID, secret = "mvno-a-client", "s3cret"
		var issued, denied atomic.Int32
		var token atomic.Value // what the endpoint hands out
		token.Store(devToken(t, e.cfg.DataDir, partner))
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, sec, ok := r.BasicAuth()
			if r.Method != http.MethodPost || r.URL.Path != "/token" || r.ParseForm() != nil ||
				r.PostForm.Get("grant_type") != "client_credentials" || !ok || id != clientID || sec != secret {
				denied.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"error":"invalid_client"}`)) //nolint:errcheck // test server
				return
			}
			issued.Add(1)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"access_token": token.Load(), "token_type": "bearer", "expires_in": 3600}) //nolint:errcheck // test server
		}))
		defer ts.Close()
		oidc := func(secret string) ([]string, []string) {
			return []string{"SLUICE_CLIENT_SECRET=" + secret}, append(slices.Clone(base), "--auth", "oidc",
				"--token-url", ts.URL+"/token", "--client-id", clientID)
		}
		env, args := oidc(secret)
		topics(t, env, args, []string{"cdr", "fraud-alerts", "network-quality"})
		consume(t, "oidc, no group", env, args, "")
		const group = "py-oidc"
		groupCommitted(t, group, consume(t, "oidc, group "+group, env, args, group))
		if issued.Load() == 0 {
			t.Fatal("librdkafka never asked the token endpoint")
		}
		t.Logf("the token endpoint issued %d tokens", issued.Load())

		// The endpoint refuses the client: no token, no login.
		env, args = oidc("wrong")
		refused(t, env, args)
		if denied.Load() == 0 {
			t.Error("the token endpoint was not asked with the wrong secret")
		}
		// The endpoint hands out a token the gateway does not trust.
		token.Store(sign(foreign, partner, time.Now(), time.Now().Add(time.Hour)))
		env, args = oidc(secret)
		refused(t, env, args)
	})
}

// lastLine is s's last non-empty line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// flipChar returns a character other than c.
func flipChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

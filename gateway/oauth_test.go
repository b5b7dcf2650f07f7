package gateway_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/gateway"
)

// unsecuredJWT is a token for Kafka's built-in unsecured OAUTHBEARER
// validator (test brokers only): alg none, empty signature.
func unsecuredJWT(sub string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	h := enc([]byte(`{"alg":"none"}`))
	p := enc(fmt.Appendf(nil, `{"sub":%q,"iat":%d,"exp":%d}`, sub, time.Now().Add(-time.Minute).Unix(), exp.Unix()))
	return h + "." + p + "."
}

// TestIntegrationOAuthUpstream connects sluice to a real Apache Kafka
// listener that requires SASL/OAUTHBEARER (deploy/kafka/start.sh opens one;
// CI passes its address in SLUICE_TEST_OAUTH_BROKERS). kfake has no
// OAUTHBEARER, so this runs only in the real-Kafka pass.
func TestIntegrationOAuthUpstream(t *testing.T) {
	addr := os.Getenv("SLUICE_TEST_OAUTH_BROKERS")
	if addr == "" || os.Getenv("SLUICE_TEST_BROKERS") == "" {
		t.Skip("needs the real-Kafka pass: SLUICE_TEST_BROKERS and SLUICE_TEST_OAUTH_BROKERS")
	}
	e := newEnv(t) // creates this test's topics on the plaintext listener
	e.produce("cdr", 4)
	dir := t.TempDir()
	for _, tc := range []struct {
		note  string
		token string
		ready bool
	}{
		{"valid token", unsecuredJWT("sluice", time.Now().Add(time.Hour)), true},
		{"expired token", unsecuredJWT("sluice", time.Now().Add(-time.Hour)), false},
	} {
		t.Run(tc.note, func(t *testing.T) {
			tokenFile := filepath.Join(dir, strings.ReplaceAll(tc.note, " ", "-"))
			if err := os.WriteFile(tokenFile, []byte(tc.token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			no, yes := false, true
			dataDir := t.TempDir()
			cfg := gateway.Config{
				Brokers: []string{addr}, HTTPAddr: "127.0.0.1:0", Generate: &no, DataDir: dataDir, Auth: gateway.AuthConfig{DevKey: &yes}, SeedDemo: &yes, TopicPrefix: e.cfg.TopicPrefix,
				Logger: slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
				Kafka:  gateway.KafkaConfig{SASL: gateway.SASLConfig{Mechanism: "OAUTHBEARER", TokenFile: tokenFile}},
			}
			ctx, cancel := context.WithCancel(context.Background())
			gw, err := gateway.New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- gw.Run(ctx) }()
			defer func() { cancel(); <-done }()
			base := "http://" + gw.HTTPAddr()
			ready := func() int {
				resp, err := http.Get(base + "/readyz")
				if err != nil {
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if !tc.ready {
				time.Sleep(3 * time.Second)
				if c := ready(); c != http.StatusServiceUnavailable {
					t.Fatalf("readyz with an expired token = %d, want 503", c)
				}
				return
			}
			waitFor(t, 30*time.Second, func() bool { return ready() == 200 }, "readiness over OAUTHBEARER")
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/products/cdr/records?from=earliest", nil)
			req.Header.Set("Authorization", "Bearer "+devToken(t, dataDir, "internal-fraud"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var page struct{ Records []json.RawMessage }
			if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Records) != 4 {
				t.Fatalf("records over OAUTHBEARER: %d, err %v", len(page.Records), err)
			}
		})
	}
}

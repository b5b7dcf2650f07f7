package kafkaproxy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/gateway/internal/testkit"
)

// TestKcat: librdkafka (kcat) logs in with SASL/PLAIN over plaintext and
// TLS, consumes a topic whose offsets have gaps (also at the end of
// partitions) to the end, lists only entitled topics, and is refused
// when producing.
func TestKcat(t *testing.T) {
	bin := testkit.Kcat(t)
	b, want := standardBackend()
	srv, _, certPEM := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	plainSrv := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	tlsSrv := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}, TLS: srv})

	for _, tc := range []struct {
		note string
		addr string
		sec  []string
	}{
		{"SASL_PLAINTEXT", plainSrv.addr, []string{"-X", "security.protocol=SASL_PLAINTEXT"}},
		{"SASL_SSL", tlsSrv.addr, []string{"-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + caFile}},
	} {
		t.Run(tc.note, func(t *testing.T) {
			common := append([]string{"-b", tc.addr}, tc.sec...)
			common = append(common, "-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=key-a", "-X", "sasl.password=secret-a")

			for _, topic := range []string{"cdr", "fraud-alerts"} {
				out, stderr, err := testkit.RunKcat(t, bin, nil, "", append(slices.Clone(common), "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o %s\n")...)
				if err != nil {
					t.Fatalf("kcat -C %s: %v\n%s", topic, err, stderr)
				}
				var wantLines []string
				for _, r := range want[topic] {
					wantLines = append(wantLines, fmt.Sprintf("%d %d %s", recordPartition(r), r.Offset, r.Value))
				}
				gotLines := strings.Split(strings.TrimSpace(out), "\n")
				slices.Sort(gotLines)
				slices.Sort(wantLines)
				if !slices.Equal(gotLines, wantLines) {
					t.Errorf("kcat -C %s: got %d lines, want %d; first got %q", topic, len(gotLines), len(wantLines), gotLines[:min(3, len(gotLines))])
				}
			}

			out, stderr, err := testkit.RunKcat(t, bin, nil, "", append(slices.Clone(common), "-L")...)
			if err != nil {
				t.Fatalf("kcat -L: %v\n%s", err, stderr)
			}
			topics := testkit.KcatTopics(out)
			if !slices.Equal(topics, []string{"cdr", "fraud-alerts"}) {
				t.Errorf("kcat -L lists %v, want [cdr fraud-alerts]\n%s", topics, out)
			}

			_, stderr, err = testkit.RunKcat(t, bin, nil, "hello\n", append(slices.Clone(common), "-P", "-t", "cdr")...)
			if err == nil || !strings.Contains(strings.ToLower(stderr), "authorization failed") {
				t.Errorf("kcat -P: err %v, stderr %q; want a topic authorization failure", err, stderr)
			}

			bad := append(append([]string{"-b", tc.addr}, tc.sec...), "-X", "sasl.mechanisms=PLAIN",
				"-X", "sasl.username=key-a", "-X", "sasl.password=wrong", "-L", "-m", "2")
			_, stderr, err = testkit.RunKcat(t, bin, nil, "", bad...)
			if err == nil || !strings.Contains(strings.ToLower(stderr), "authentication") {
				t.Errorf("kcat -L with a wrong password: err %v, stderr %q; want an authentication failure", err, stderr)
			}
		})
	}
}

// TestKcatOAuthBearer: librdkafka's OAUTHBEARER login with its built-in
// unsecured (alg none) JWT reaches the Backend as a bearer token. Only the
// test backend accepts unsigned tokens; with the gateway, kcat needs a
// signed token (sasl.oauthbearer.method=oidc against a token endpoint).
func TestKcatOAuthBearer(t *testing.T) {
	bin := testkit.Kcat(t)
	b, want := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	out, stderr, err := testkit.RunKcat(t, bin, nil, "", "-b", ts.addr, "-X", "security.protocol=SASL_PLAINTEXT",
		"-X", "sasl.mechanisms=OAUTHBEARER", "-X", "enable.sasl.oauthbearer.unsecure.jwt=true",
		"-X", "sasl.oauthbearer.config=principal=token-b", "-C", "-t", "cdr", "-o", "beginning", "-e", "-q", "-f", "%o\n")
	if err != nil {
		t.Fatalf("kcat OAUTHBEARER: %v\n%s", err, stderr)
	}
	if n := len(strings.Fields(out)); n != len(want["cdr"]) {
		t.Errorf("kcat OAUTHBEARER consumed %d records, want %d", n, len(want["cdr"]))
	}
}

// TestKcatConsumerGroup: librdkafka's balanced consumer (kcat -G) joins a
// group (JoinGroup with MEMBER_ID_REQUIRED, SyncGroup, heartbeats),
// consumes everything, commits, and a second run resumes from the commits.
func TestKcatConsumerGroup(t *testing.T) {
	bin := testkit.Kcat(t)
	b, want := standardBackend()
	offsets := &MemoryOffsets{}
	ts := startServer(t, Config{Backend: b, Offsets: offsets})
	args := []string{"-b", ts.addr, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
		"-X", "sasl.username=key-a", "-X", "sasl.password=secret-a", "-X", "auto.offset.reset=earliest",
		"-X", "session.timeout.ms=6000", "-G", "kcat-group", "-e", "-q", "-f", "%p %o\n", "cdr"}
	out, stderr, err := testkit.RunKcat(t, bin, nil, "", args...)
	if err != nil {
		t.Fatalf("kcat -G: %v\n%s", err, stderr)
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != len(want["cdr"]) {
		t.Fatalf("kcat -G consumed %d records, want %d\n%s", n, len(want["cdr"]), stderr)
	}
	// librdkafka commits past the last record it delivered (198 + 1), not
	// past the filtered row 199 that ends every partition; resuming at 199
	// gets an empty batch that moves it to 200.
	committed, _ := offsets.Fetch(context.Background(), "mvno-a", "kcat-group")
	for p := range int32(3) {
		if c := committed[TopicPartition{"cdr", p}].Offset; c != 199 && c != 200 {
			t.Errorf("committed offset of cdr/%d = %d, want 199 or 200", p, c)
		}
	}
	b.produce("cdr", 1, 4, nil)
	out, stderr, err = testkit.RunKcat(t, bin, nil, "", args...)
	if err != nil {
		t.Fatalf("second kcat -G: %v\n%s", err, stderr)
	}
	if got := strings.TrimSpace(out); got != "1 200\n1 201\n1 202\n1 203" {
		t.Errorf("second kcat -G run consumed %q, want the 4 new records of partition 1", got)
	}
}

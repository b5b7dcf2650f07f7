// Package testkit holds helpers shared by the gateway's tests in several
// packages (the gateway, its Kafka protocol layer, its views). Only tests
// import it.
package testkit

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// Kcat returns the path of kcat (or kafkacat), or skips the test.
func Kcat(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"kcat", "kafkacat"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("kcat not installed (apt-get install kafkacat)")
	return ""
}

// RunKcat runs bin with args, stdin and extra environment (on top of the
// test's), and returns its output; it fails the test after 30 s.
func RunKcat(t testing.TB, bin string, env []string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, strings.NewReader(stdin)
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kcat %v timed out; stderr:\n%s", args, errb.String())
	}
	return out.String(), errb.String(), err
}

// KcatTopics returns the topic names of `kcat -L` output, sorted.
func KcatTopics(listing string) []string {
	var topics []string
	for _, line := range strings.Split(listing, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "topic" {
			topics = append(topics, strings.Trim(f[1], `"`))
		}
	}
	slices.Sort(topics)
	return topics
}

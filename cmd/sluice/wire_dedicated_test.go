package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestIntegrationWireDedicated runs deploy/bench/wire-dedicated.sh against
// the real Kafka broker of the integration phase: `sluice serve --brokers`
// in its own process pinned to CPU 1, the bench pinned to CPU 0. Both reads
// of the wire phase get every record of the topic, the front door's as the
// partner's view (pseudonyms, no charge field), so the script's setup
// (config plans, certificate, topics from readiness) stays working.
func TestIntegrationWireDedicated(t *testing.T) {
	brokers := os.Getenv("SLUICE_TEST_BROKERS")
	if brokers == "" {
		t.Skip("SLUICE_TEST_BROKERS is not set: runs in the real-Kafka phase of deploy/test.sh")
	}
	if _, err := exec.LookPath("taskset"); err != nil || runtime.NumCPU() < 2 {
		t.Skipf("needs taskset and 2 CPUs (taskset: %v, CPUs: %d)", err, runtime.NumCPU())
	}
	script, err := filepath.Abs("../../deploy/bench/wire-dedicated.sh")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command("bash", script, "--brokers", strings.Split(brokers, ",")[0], "--bin", bin, "--",
		"--records", "3000", "--repeat", "1", "--wire-live=false", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("wire-dedicated.sh: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	if !strings.Contains(stderr.String(), "starting the gateway on CPUs 1") {
		t.Errorf("the gateway was not started on CPU 1:\n%s", stderr.String())
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("bench JSON: %v\n%s", err, stdout.String())
	}
	w := rep.Wire
	if rep.Mode != "target" || w == nil || w.Direct == nil || w.Front == nil || len(rep.Errors) > 0 {
		t.Fatalf("report: mode %q, errors %v, wire %+v", rep.Mode, rep.Errors, w)
	}
	if rep.N < 3000 || w.Direct.Records != rep.N || w.Front.Records != rep.N || !w.Direct.Complete || !w.Front.Complete {
		t.Errorf("topic holds %d records; direct read %d (complete %v), front door %d (complete %v)",
			rep.N, w.Direct.Records, w.Direct.Complete, w.Front.Records, w.Front.Complete)
	}
	if !slices.Contains(w.FrontFields, "msisdn") || slices.Contains(w.FrontFields, "charge") || !slices.Contains(w.UpstreamFields, "charge") {
		t.Errorf("front door fields %v (upstream %v): want internal-noc's view, which drops charge", w.FrontFields, w.UpstreamFields)
	}
	if w.Front.OrderErrors != 0 || w.Front.RecordsPerS <= 0 || w.Ratio <= 0 {
		t.Errorf("front door: %d out of order, %.0f records/s, ratio %.2f", w.Front.OrderErrors, w.Front.RecordsPerS, w.Ratio)
	}
}

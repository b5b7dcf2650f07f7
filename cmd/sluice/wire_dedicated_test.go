package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/products"
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
	// The topics the gateway waits for, made here (the script would start
	// a JVM per topic, a load the parallel integration tests feel).
	broker := strings.Split(brokers, ",")[0]
	createCatalogTopics(t, broker)
	bin := filepath.Join(t.TempDir(), "sluice")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command("bash", script, "--brokers", broker, "--bin", bin, "--",
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

// createCatalogTopics makes the built-in catalog's topics and the consent
// topic on broker, if missing.
func createCatalogTopics(t *testing.T, broker string) {
	t.Helper()
	cat, err := products.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	compact := "compact"
	create := func(topic string, partitions int32, cfg map[string]*string) {
		r, err := adm.CreateTopic(ctx, partitions, 1, cfg, topic)
		if err == nil {
			err = r.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	for _, p := range cat.Products {
		create(p.Topic, p.Partitions, nil)
	}
	create("telco.consent", 3, map[string]*string{"cleanup.policy": &compact})
}

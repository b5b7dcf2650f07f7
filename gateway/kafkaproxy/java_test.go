package kafkaproxy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestJavaConsumer runs a Java KafkaConsumer (testdata/java/Consume.java:
// classic group protocol, SASL PLAIN, commitSync) against the proxy. It is
// opt-in: set SLUICE_JAVA_CLASSPATH to the kafka-clients jar and its
// dependencies (slf4j-api, lz4-java, snappy-java, zstd-jni), e.g. from
// Maven Central.
func TestJavaConsumer(t *testing.T) {
	cp := os.Getenv("SLUICE_JAVA_CLASSPATH")
	if cp == "" {
		t.Skip("SLUICE_JAVA_CLASSPATH not set")
	}
	b, want := standardBackend()
	offsets := &MemoryOffsets{}
	ts := startServer(t, Config{Backend: b, Offsets: offsets})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", "-cp", cp, "testdata/java/Consume.java", ts.addr, "java-group", fmt.Sprint(len(want["cdr"])))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("java consumer: %v\n%s", err, stderr.String())
	}
	var wantLines []string
	for _, r := range want["cdr"] {
		wantLines = append(wantLines, fmt.Sprintf("%d %d %s", recordPartition(r), r.Offset, r.Value))
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(got)
	slices.Sort(wantLines)
	if !slices.Equal(got, wantLines) {
		t.Errorf("java consumed %d lines, want %d; first %q", len(got), len(wantLines), got[:min(3, len(got))])
	}
	committed, _ := offsets.Fetch(ctx, "mvno-a", "java-group")
	if len(committed) != 3 {
		t.Errorf("java committed %v, want 3 partitions", committed)
	}
}

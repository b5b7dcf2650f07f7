package policy

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestRego runs the shipped policy's Rego tests (rego/*_test.rego), so that
// go test ./policy/ fails when one fails or none ran.
func TestRego(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	passed, failed, err := e.Test(context.Background(), &out, testing.Verbose())
	if testing.Verbose() || failed > 0 || err != nil {
		t.Log("\n" + out.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	if failed > 0 {
		t.Fatalf("%d Rego tests failed (%d passed)", failed, passed)
	}
	if passed == 0 {
		t.Fatal("no Rego tests ran")
	}
}

// TestRegoReportsFailures checks the counting and the report on a policy
// with one passing and one failing test, and errors in test files.
func TestRegoReportsFailures(t *testing.T) {
	e, dir := newTestEngine(t, map[string]string{
		"p.rego": versioned("v1"),
		"p_test.rego": `package sluice_test

import data.sluice

test_passes if sluice.decision.reason == "v1"

test_fails if sluice.decision.reason == "v2"
`,
	})
	var out bytes.Buffer
	passed, failed, err := e.Test(context.Background(), &out, false)
	if err != nil || passed != 1 || failed != 1 {
		t.Fatalf("passed %d, failed %d, err %v\n%s", passed, failed, err, out.String())
	}
	if !strings.Contains(out.String(), "test_fails") || !strings.Contains(out.String(), "FAIL: 1/2") {
		t.Errorf("report:\n%s", out.String())
	}

	writePolicy(t, dir, map[string]string{"p_test.rego": "package sluice_test\n\ntest_x if 1 +\n\ntest_y if true\n"})
	if err := e.Reload(); err != nil {
		t.Fatalf("a broken test file must not stop the policy: %v", err)
	}
	if _, _, err := e.Test(context.Background(), &out, false); err == nil || !strings.Contains(err.Error(), "p_test.rego:") {
		t.Fatalf("broken test file: %v", err)
	}
}

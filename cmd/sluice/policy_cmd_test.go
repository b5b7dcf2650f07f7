package main

import (
	"strings"
	"testing"
)

func TestPolicyCommands(t *testing.T) {
	var out, errOut strings.Builder
	if code := run([]string{"policy", "test"}, &out, &errOut); code != 0 {
		t.Fatalf("policy test exited %d: %s %s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), " passed, 0 failed") {
		t.Fatalf("policy test output: %s", out.String())
	}
	out.Reset()
	if code := run([]string{"policy", "explain", "--partner", "mvno-b", "--product", "cdr"}, &out, &errOut); code != 0 {
		t.Fatalf("policy explain exited %d: %s", code, errOut.String())
	}
	for _, want := range []string{`mvno_id == "mvno-b"`, "msisdn", "pseudonymise-format", "drop (not mentioned)", "schema    {", "consent   required"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"policy", "explain", "--partner", "regulator", "--product", "cdr", "--purpose", "regulatory"}, &out, &errOut); code != 0 {
		t.Fatalf("explain of a denial exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "denied") {
		t.Errorf("regulator explain does not say denied:\n%s", out.String())
	}
}

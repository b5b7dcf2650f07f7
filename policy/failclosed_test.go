package policy

import (
	"errors"
	"strings"
	"testing"
)

// TestFailClosed checks that a policy that fails, rather than decides,
// denies with a reason and an error wrapping ErrFailed.
func TestFailClosed(t *testing.T) {
	const rowAll = "\n\nrow := true\n"
	for _, tc := range []struct {
		note   string
		policy string
		reason string // the denial's reason starts with it
	}{
		{"runtime error in the decision",
			`decision := {"allow": true, "reason": "x", "fields": {}, "consent_required": to_number("not a number")}` + rowAll,
			"policy evaluation failed: "},
		{"conflicting rule values",
			`decision := {"allow": true, "reason": "x", "fields": {}, "consent_required": c}

c := true

c := false if input.partner.id` + rowAll,
			"policy evaluation failed: "},
		{"undefined decision",
			`decision := d if d := input.nothing` + rowAll,
			"policy gave no decision: data.sluice.decision is undefined"},
		{"decision not an object",
			`decision := true` + rowAll,
			`policy decision malformed: data.sluice.decision is a boolean, want an object`},
		{"allow not a boolean",
			`decision := {"allow": "yes", "reason": "x", "fields": {}, "consent_required": false}` + rowAll,
			`policy decision malformed: "allow" is the string "yes", want a boolean`},
		{"allow missing",
			`decision := {"reason": "x", "fields": {}, "consent_required": false}` + rowAll,
			`policy decision malformed: "allow" is missing or null, want a boolean`},
		{"reason missing",
			`decision := {"allow": true, "fields": {}, "consent_required": false}` + rowAll,
			`policy decision malformed: "reason" is missing or null, want a non-empty string`},
		{"reason empty",
			`decision := {"allow": false, "reason": "", "fields": {}, "consent_required": false}` + rowAll,
			`policy decision malformed: "reason" is the string "", want a non-empty string`},
		{"consent missing",
			`decision := {"allow": true, "reason": "x", "fields": {}}` + rowAll,
			`policy decision malformed: "consent_required" is missing or null, want a boolean`},
		{"unknown key",
			`decision := {"allow": true, "reason": "x", "fields": {}, "consent_required": false, "rows": "all"}` + rowAll,
			`policy decision malformed: unknown key "rows"`},
		{"fields not an object",
			`decision := {"allow": true, "reason": "x", "fields": ["msisdn"], "consent_required": false}` + rowAll,
			`policy decision malformed: "fields" is an array, want an object`},
		{"treatment not an object",
			`decision := {"allow": true, "reason": "x", "fields": {"msisdn": "pseudonymise"}, "consent_required": false}` + rowAll,
			`policy decision malformed: field "msisdn": treatment is the string "pseudonymise", want an object`},
		{"treatment without op",
			`decision := {"allow": true, "reason": "x", "fields": {"imei": {"n": 8}}, "consent_required": false}` + rowAll,
			`policy decision malformed: field "imei": "op" is missing or null`},
		{"op not a string",
			`decision := {"allow": true, "reason": "x", "fields": {"imei": {"op": 8}}, "consent_required": false}` + rowAll,
			`policy decision malformed: field "imei": "op" is a number`},
		{"unknown op",
			`decision := {"allow": true, "reason": "x", "fields": {"msisdn": {"op": "encrypt"}}, "consent_required": false}` + rowAll,
			`policy decision malformed: field "msisdn": unknown op "encrypt"`},
		{"runtime error in the row rule",
			`decision := {"allow": true, "reason": "x", "fields": {}, "consent_required": false}

row if {
	to_number(input.partner.id) > 0
	input.record.a == 1
}`,
			"row condition evaluation failed: "},
		{"unsupported row condition",
			`decision := {"allow": true, "reason": "x", "fields": {}, "consent_required": false}

row if startswith(input.record.cell_id, "262")`,
			"row condition not supported: "},
	} {
		t.Run(tc.note, func(t *testing.T) {
			e, _ := newTestEngine(t, map[string]string{"p.rego": "package sluice\n\n" + tc.policy})
			d, err := decide(t, e, simpleInput())
			if !errors.Is(err, ErrFailed) {
				t.Errorf("err = %v, want ErrFailed", err)
			}
			if d.Allow || d.Fields != nil || d.ConsentRequired || !d.Row.Never {
				t.Errorf("failure did not deny cleanly: %+v", d)
			}
			if !strings.HasPrefix(d.Reason, tc.reason) {
				t.Errorf("reason %q, want prefix %q", d.Reason, tc.reason)
			}
			if d.Revision != e.Revision() {
				t.Errorf("revision %q, want %q", d.Revision, e.Revision())
			}
		})
	}
}

// TestDenyIsNotAFailure: a policy's own denial has no error, and needs no
// fields or consent flag.
func TestDenyIsNotAFailure(t *testing.T) {
	e, _ := newTestEngine(t, map[string]string{"p.rego": `package sluice

decision := {"allow": false, "reason": "no"}

row := true
`})
	d, err := decide(t, e, simpleInput())
	if err != nil || d.Allow || d.Reason != "no" || !d.Row.Never {
		t.Fatalf("%+v, %v", d, err)
	}
	if n := e.Evaluations(); n != 1 {
		t.Errorf("%d evaluations for a denial, want 1 (no partial evaluation)", n)
	}
}

// TestInvalidInput denies an input that cannot become a Rego value.
func TestInvalidInput(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := simpleInput()
	in.Partner.Attributes = map[string]any{"bad": make(chan int)}
	d, err := decide(t, e, in)
	if d.Allow || !errors.Is(err, ErrFailed) || !strings.HasPrefix(d.Reason, "invalid input: ") {
		t.Fatalf("%+v, %v", d, err)
	}
}

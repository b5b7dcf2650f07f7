package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/rego"
)

// Options configure an Engine. The zero value means defaults.
type Options struct {
	// Dir is the directory whose top-level *.rego files are the policy
	// (files ending in _test.rego are its tests). Default "": the embedded
	// shipped policy, DefaultPolicy.
	Dir string
	// Logger receives reload and watch events. Default: discard.
	Logger *slog.Logger
}

// Engine evaluates a compiled policy. It is safe for concurrent use: Decide
// reads an immutable snapshot that Reload replaces atomically, so a Decide
// running during a reload completes against the policy it started with and
// reports that policy's Revision.
//
// Lifecycle: New compiles; Decide per subscription; Reload (or Watch, which
// the caller runs in a goroutine it owns and stops by cancelling ctx) swaps
// in a new policy. An Engine holds no goroutines of its own and needs no
// Close.
type Engine struct {
	opts  Options
	log   *slog.Logger
	cur   atomic.Pointer[snapshot]
	evals atomic.Uint64

	reloadMu sync.Mutex // serialises Reload

	mu      sync.Mutex // guards lastErr
	lastErr error

	revisions latest[string] // Subscribe
	failures  latest[error]  // SubscribeFailures
}

// New reads and compiles the policy and prepares its queries. A policy that
// does not parse or compile is an error naming file and line (a
// *CompileError); so is one that defines no data.sluice.decision or
// data.sluice.row rule.
func New(opts Options) (*Engine, error) {
	e := &Engine{opts: opts, log: opts.Logger}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	s, err := load(opts.Dir)
	if err != nil {
		return nil, err
	}
	e.cur.Store(s)
	return e, nil
}

func load(dir string) (*snapshot, error) {
	files, err := readFiles(dir)
	if err != nil {
		return nil, err
	}
	return compile(context.Background(), dir, files)
}

// Revision identifies the policy in force: the first 12 hex digits of the
// sha256 of its files' names and contents (test files excluded), in name
// order. The embedded default and a directory holding the same files have
// the same revision.
func (e *Engine) Revision() string { return e.cur.Load().revision }

// Evaluations returns how many OPA evaluations the engine has run: one full
// evaluation of the decision per Decide, plus one partial evaluation of the
// row rule when the decision allows. The gateway exports it to show that
// records cause none.
func (e *Engine) Evaluations() uint64 { return e.evals.Load() }

// ErrFailed is wrapped by the error Decide returns when it denied because
// the policy failed rather than decided: an evaluation error, an undefined
// or malformed decision, or a row condition the gateway cannot compile. The
// Decision is a denial either way; the error lets the caller count and log
// policy failures apart from ordinary denials.
var ErrFailed = errors.New("policy failed; access denied")

// failure is the error of a Decide that denied because the policy failed.
// It matches ErrFailed and its cause (a context error, an OPA error) with
// errors.Is and errors.As; its text is the denial's Reason.
type failure struct {
	reason string
	cause  error
}

func (f *failure) Error() string { return "policy: " + f.reason + "; access denied" }

func (f *failure) Unwrap() []error {
	if f.cause == nil {
		return []error{ErrFailed}
	}
	return []error{ErrFailed, f.cause}
}

// Decision is what a partner may see of a product for one purpose.
type Decision struct {
	// Allow is whether the partner may read the product at all.
	Allow bool `json:"allow"`
	// Reason says why, for the partner, the portal and the audit trail.
	// Always set.
	Reason string `json:"reason"`
	// Row selects the records the partner sees. Never unless Allow.
	Row Condition `json:"row"`
	// Fields maps each field the policy mentions to its treatment, e.g.
	// {"op": "keep-prefix", "n": 8}, exactly as the policy wrote it (numbers
	// as json.Number); package masking parses it. A field of the product that
	// Fields does not mention must be dropped by the gateway: data
	// minimisation, and the fate of every field added to a schema before the
	// policy learns of it. Empty unless Allow.
	Fields map[string]map[string]any `json:"fields,omitempty"`
	// ConsentRequired means subscribers who withdrew their consent must not
	// appear in what the partner sees.
	ConsentRequired bool `json:"consent_required"`
	// Revision is the policy revision that decided; plans compiled from the
	// decision are valid until the revision changes.
	Revision string `json:"revision"`
}

// ops lists the field treatment ops a decision may name, as package masking
// spells them.
var ops = []string{
	"keep", "drop", "redact", "pseudonymise", "pseudonymise-format",
	"keep-prefix", "keep-suffix", "generalise-location", "generalise-time", "bucket",
}

// Decide evaluates the policy for one subscription: the decision document in
// full, then, if it allows, the row rule partially with input.record
// unknown. It never allows by mistake: an evaluation error, an undefined or
// malformed decision, or a row condition outside what Condition expresses
// yields a denial whose Reason says why, together with an error wrapping
// ErrFailed. An ordinary denial by the policy returns a nil error.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	s := e.cur.Load()
	deny := func(reason string, cause error) (Decision, error) {
		return Decision{Reason: reason, Row: Condition{Never: true}, Revision: s.revision},
			&failure{reason: reason, cause: cause}
	}
	if err := ctx.Err(); err != nil {
		return deny(fmt.Sprintf("policy evaluation not started: %v", err), err)
	}
	input, err := in.value()
	if err != nil {
		return deny(fmt.Sprintf("invalid input: %v", err), nil)
	}

	e.evals.Add(1)
	rs, err := s.decision.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return deny(fmt.Sprintf("policy evaluation failed: %v", err), err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return deny("policy gave no decision: "+DecisionQuery+" is undefined", nil)
	}
	if len(rs) > 1 {
		return deny(fmt.Sprintf("policy gave %d decisions", len(rs)), nil)
	}
	d, err := parseDecision(rs[0].Expressions[0].Value)
	if err != nil {
		return deny("policy decision malformed: "+err.Error(), nil)
	}
	d.Revision = s.revision
	if !d.Allow {
		return Decision{Reason: d.Reason, Row: Condition{Never: true}, Revision: s.revision}, nil
	}

	e.evals.Add(1)
	pq, err := s.row.Partial(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return deny(fmt.Sprintf("row condition evaluation failed: %v", err), err)
	}
	d.Row, err = conditionFrom(pq)
	if err == nil {
		err = checkFields(d.Row, in.Product)
	}
	if err != nil {
		return deny(err.Error(), nil)
	}
	return d, nil
}

// checkFields refuses a condition on a field the product does not have: a
// misspelt field in `input.record.x != "a"` is undefined in Rego, so no
// record would pass, but the gateway would see a null that is not "a" and
// pass every record.
func checkFields(c Condition, p Product) error {
	for _, conj := range c.Any {
		for _, t := range conj {
			if !slices.ContainsFunc(p.Fields, func(f Field) bool { return f.Name == t.Field }) {
				return &UnsupportedError{
					Expr:   t.String(),
					Detail: fmt.Sprintf("product %q has no field %q", p.ID, t.Field),
				}
			}
		}
	}
	return nil
}

// parseDecision checks the decision document strictly: an object with
// allow (boolean), reason (non-empty string), consent_required (boolean)
// and fields (object of objects whose "op" is one of ops), and nothing
// else.
func parseDecision(v any) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("%s is %s, want an object", DecisionQuery, typeName(v))
	}
	var d Decision
	for k := range obj {
		switch k {
		case "allow", "reason", "fields", "consent_required":
		default:
			return Decision{}, fmt.Errorf("unknown key %q (want allow, reason, fields, consent_required)", k)
		}
	}
	if d.Allow, ok = obj["allow"].(bool); !ok {
		return Decision{}, fmt.Errorf(`"allow" is %s, want a boolean`, typeName(obj["allow"]))
	}
	if d.Reason, ok = obj["reason"].(string); !ok || d.Reason == "" {
		return Decision{}, fmt.Errorf(`"reason" is %s, want a non-empty string`, typeName(obj["reason"]))
	}
	if !d.Allow {
		return d, nil // a denial needs nothing else to be safe
	}
	if d.ConsentRequired, ok = obj["consent_required"].(bool); !ok {
		return Decision{}, fmt.Errorf(`"consent_required" is %s, want a boolean`, typeName(obj["consent_required"]))
	}
	fields, ok := obj["fields"].(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf(`"fields" is %s, want an object`, typeName(obj["fields"]))
	}
	d.Fields = make(map[string]map[string]any, len(fields))
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names) // report the first bad field deterministically
	for _, name := range names {
		t, ok := fields[name].(map[string]any)
		if !ok {
			return Decision{}, fmt.Errorf("field %q: treatment is %s, want an object such as {\"op\": \"keep\"}", name, typeName(fields[name]))
		}
		op, ok := t["op"].(string)
		if !ok {
			return Decision{}, fmt.Errorf("field %q: \"op\" is %s, want one of %s", name, typeName(t["op"]), strings.Join(ops, ", "))
		}
		if !knownOp(op) {
			return Decision{}, fmt.Errorf("field %q: unknown op %q (want one of %s)", name, op, strings.Join(ops, ", "))
		}
		d.Fields[name] = t
	}
	return d, nil
}

func knownOp(op string) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "missing or null"
	case bool:
		return "a boolean"
	case string:
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

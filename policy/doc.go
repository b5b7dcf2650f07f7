// Package policy owns sluice's access decisions: it loads the Rego policy
// (the shipped one in policy/rego, embedded as DefaultPolicy, or a
// directory), compiles it once, and decides per subscription whether a
// partner may read a product for a purpose, which records it sees, how each
// field is treated, and whether subscribers' consent applies. It also runs
// the policy's Rego unit tests and reloads the policy when its files change.
//
// It does not apply decisions: the gateway compiles a Decision into a plan
// (a Go predicate from Row, masking transforms from Fields), so the record
// path makes no OPA call. Package policy imports no other sluice package;
// it knows nothing of HTTP, Kafka, Avro or masking, and nothing of where
// partners, grants or products are stored: the caller builds the Input.
//
// # Decisions
//
// Decide evaluates two documents of package sluice:
//
//	data.sluice.decision   fully, with the Input as input:
//	    {"allow": bool, "reason": string, "consent_required": bool,
//	     "fields": {"<field>": {"op": "<op>", <params>...}, ...}}
//	data.sluice.row        partially, with input.record unknown
//
// The decision is checked strictly (see Decision); a denial needs only
// allow and reason. Only if it allows is the row rule partially evaluated:
// what remains of it are conditions on input.record, translated into a
// Condition (an OR of ANDs of Terms comparing a top-level record field with
// constants: eq, neq, lt, lte, gt, gte, in, not-in). No remaining query
// means no rows (Never); an empty one means all rows (Always).
//
// Fields lists only what the policy mentions. The gateway must drop every
// field of the product that Fields does not mention, so a field added to a
// schema stays private until the policy names it. Treatment parameters are
// passed through untouched (numbers as json.Number) for package masking to
// parse strictly; package policy only checks that each treatment is an
// object whose "op" is one masking knows (keep, drop, redact, pseudonymise,
// pseudonymise-format, keep-prefix, keep-suffix, generalise-location,
// generalise-time, bucket).
//
// # Failing closed
//
// Decide never allows by mistake. An evaluation error (built-in errors are
// fatal), a cancelled context, an undefined or malformed decision, or a row
// residual the translator does not understand (a comparison of two fields,
// a function of the record such as startswith, a nested field, a field the
// product does not have, support rules from negating a rule over the
// record, ...) each yield a denial whose
// Reason says why ("row condition not supported: ...") and an error
// wrapping ErrFailed, so the caller can tell a broken policy from a policy
// that said no. Where the translation cannot be exact it is stricter than
// Rego, never looser: a bare field test requires true, comparisons between
// different types are false (Rego orders types), and a negated comparison
// does not pass records lacking the field.
//
// Writing row rules: the translator sees the residual of partial
// evaluation, so the known parts of a row rule must be evaluable without
// the record. Read input.partner, input.grant and input.product through
// their own paths (input.partner.type), never through a function of the
// whole input document (object.get(input, ...)): input as a whole contains
// the unknown record, so such a call stays in the residual, and Decide
// denies. Keep the data the row rule reads small (see contracts.rego):
// partial evaluation walks every rule a row rule reaches, so its cost grows
// with their size.
//
// # Revisions and reloads
//
// A policy is a set of top-level .rego files; *_test.rego files are its
// tests and are not part of the decision. Its Revision is a short sha256 of
// the policy files' names and contents, so the embedded default and a
// directory with the same files agree, and a plan compiled from a Decision
// is valid while the revision is unchanged. New fails on a policy that does
// not compile, with every error naming file and line (CompileError), or
// that lacks either rule. The policy may use every OPA built-in except the
// nondeterministic ones (http.send, time.now_ns, rand.intn, ...): a
// decision must follow from the input and the policy alone.
//
// Reload re-reads the directory and swaps the new compiled policy in with an
// atomic pointer; on failure the old policy stays in force and LastError
// says why. Watch polls the directory (names, sizes, modification times,
// then content hashes) and reloads on change; it blocks, so the caller runs
// it in a goroutine it owns and stops it by cancelling its context.
// Subscribe delivers each new revision so the gateway can recompile its
// plans. Decide calls in flight during a swap finish on the policy they
// started with, and their Decision says which revision that was.
//
// # Cost
//
// Policies are compiled and both queries prepared once per revision (about
// 10 ms for the shipped policy). A Decide costs about 1 ms: one full
// evaluation, plus one partial evaluation when allowed. Evaluations counts
// both, for a metric showing that records cause none.
package policy

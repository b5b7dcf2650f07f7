// Package audit owns sluice's tamper-evident audit trail: the event types,
// the hash chain with signed checkpoints, the Kafka sink (Log) that writes
// it fail-closed, and Verify, which a regulator runs on the topic or on an
// NDJSON export. It does not decide anything: the gateway calls Append at
// the points listed below and refuses access while Healthy reports an
// error. It knows nothing of HTTP; publishing the keys at
// GET /v1/audit/keys is the front door's job (Log.PublicKeys).
//
// # Chains
//
// Every Log writes one chain: events numbered 0, 1, 2, ... (seq), each
// carrying the chain id and Prev, the hex SHA-256 of the previous event's
// exact stored bytes. Hashing stored bytes avoids any canonicalisation
// question; Verify additionally requires that stored bytes are what
// encoding/json writes for the parsed event, so even the last event of a
// chain cannot be rewritten in a way JSON readers would not notice.
// Seq 0 is a chain-start event publishing the public key that signs the
// chain's checkpoints. Every CheckpointEvery events or CheckpointInterval
// a checkpoint event signs (Ed25519) the chain id, its seq, the hash of the
// event it seals (its Prev), a running hash over all events and its own
// fields (SignedMessage). Close writes a final signed chain-close.
//
// A chain is written to one partition of the audit topic (key = chain id,
// partition fixed when the chain starts), so topic order is seq order.
//
// # A new chain per process start
//
// A restarted instance starts a new chain (id = instance, start time,
// random suffix) rather than continuing its old one, because a chain must
// have exactly one writer ever: during a rolling update two processes with
// the same instance id may run at once, and a crashed process may still
// have an unacknowledged event in flight that lands later. Continuing the
// old chain would then fork it; a new chain cannot be forked by either.
// Continuity is kept by a link instead: Open reads the tail of the topic
// (PredecessorScan records per partition) for the newest event of the same
// instance and records it (chain, seq, hash) in the new chain-start. Verify
// checks that the predecessor still ends exactly there, so cutting the tail
// of any chain that has a successor is detected; only the newest chain of
// an instance can lose its unsealed tail unnoticed, and the report says how
// many events each chain has after its last checkpoint ("unsealed").
//
// # Fail-closed writing
//
// Log.Append returns only when the event is acknowledged by all in-sync
// replicas (acks=all, idempotent producer), or with an error wrapping
// ErrUnavailable within AckTimeout. One writer goroutine takes queued
// events in batches (so many concurrent Appends share one produce
// request), chains them and waits for the batch's outcome before the next:
//
//   - acknowledged: Append returns nil.
//   - failed by franz-go (a broker error it does not retry): nothing of the
//     batch from the failed event on is in Kafka (the idempotent producer
//     fails every later record of the partition too), so the chain rolls
//     back to the last acknowledged event and reuses the failed seqs.
//     No gap, no gap marker needed.
//   - not answered within AckTimeout (broker hung or unreachable): the
//     Appends return an in-doubt AppendError and the log turns unhealthy,
//     but the chain stalls: nothing more is produced until franz-go
//     resolves the batch (it never fails a request in flight). If it lands
//     later, it lands exactly once in its place; events queued meanwhile
//     fail within their bound without ever being produced.
//
// An idle unhealthy log probes with a checkpoint every second and turns
// healthy with the first acknowledged batch; Watch signals each change.
//
// # Gateway protocol
//
// "No record is delivered whose delivery is not covered by a persisted
// audit event":
//
//   - Access decision (every authorization, allowed or denied, all front
//     doors): Append(KindAccess) before answering; if it fails, deny with
//     503 (audit unavailable), never serve.
//   - Stream open (SSE, Kafka wire session): Append(KindStreamOpen) with the
//     starting cursor, and wait; deliver nothing before it returns nil.
//     The open covers delivery from that cursor until the next summary.
//   - While streaming: Append(KindDelivery) at least every minute with the
//     window's records, bytes, first and last cursor and the totals, and
//     wait before delivering past the window. If it fails, pause the stream
//     (stop writing, keep the cursor) and retry the summary; resume when it
//     is persisted. Each summary is the receipt of the window before it and
//     the cover of the one after, so at most one window is covered only by
//     its intent (open or previous summary) if the process dies.
//   - Stream close: Append(KindDelivery with Final) then
//     Append(KindStreamClose) with the reason.
//   - REST page: the access event (with the request's cursor as Stream and
//     the decision) is the intent; after writing, a final Delivery.
//   - Subscription and API key changes: Append(KindSubscription /
//     KindKey) with the acting user, before the change is acknowledged to
//     the caller.
//   - Policy reload: Append(KindPolicyReload) with the revision and the
//     SHA-256 of each file, before streams recompile to it.
//   - Consent changes applied: Append(KindConsent) with the subject
//     pseudonymised by Log.Pseudonymise (Append refuses anything else).
//   - Admin actions: Append(KindAdmin).
//   - Health: check Healthy (or Watch) before granting new access; when it
//     turns unhealthy, pause every stream until it is healthy again.
//   - Shutdown: end streams (their close events), then Log.Close, then the
//     Kafka clients.
//
// Events carry no raw personal data: subscriber identifiers appear only as
// audit pseudonyms (HMAC-SHA256 with an audit-only key, never a partner
// key). ContainsRawIdentifier lets tests check exports for leaks.
package audit

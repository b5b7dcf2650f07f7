// Package store owns sluice's persistent state: partners, their API keys,
// plans, subscriptions (a partner's access to one product for one purpose
// under a plan) with the history of every transition, and daily usage
// counters for billing. It also tells every replica when any of that
// changes.
//
// One interface, Store, has two backends, chosen by the DSN given to Open:
//
//   - SQLite (modernc.org/sqlite, pure Go, nothing to install): a file in
//     the data directory, the embedded default. One replica.
//   - PostgreSQL (pgx v5, pgxpool): "postgres://..."; several replicas share
//     one database.
//
// Both run the same SQL (engine.go); the schema is embedded
// (migrations/<backend>/NNNN_name.sql) and Open applies what the database
// lacks in one transaction, recorded in schema_migrations. Several replicas
// opening one fresh database migrate it once: PostgreSQL serialises them
// with a transaction-scoped advisory lock, SQLite with BEGIN IMMEDIATE. A
// database migrated by a newer sluice is refused at Open.
//
// Package store does not decide whether a partner may read a product
// (package policy does, with the active subscription as input), enforce
// plans (the gateway's quota code reads them from here), count usage (the
// gateway counts at delivery and calls AddUsage in batches) or know the
// catalog: product ids are only checked for shape.
//
// # Subscription lifecycle
//
// A subscription starts requested (CreateSubscription) and moves by
// Transition actions:
//
//	requested --approve--> approved --activate--> active   (approve does both, see below)
//	requested --reject---> rejected                          (final)
//	active    --suspend--> suspended
//	suspended --resume---> active
//	approved, active, suspended --revoke--> revoked          (final)
//
// Approve takes a request straight to active: it records two transitions in
// one transaction, requested -> approved (action approve) and approved ->
// active (action activate), both with the approver as actor and the same
// reason and time. The API has no separate activation step and a
// product is served only under an active subscription, so an approval
// that did not activate would serve nothing. Approved is therefore
// transient today; activate stays a legal action for a subscription found
// approved (for a later "approve now, start on date D").
//
// Every other (state, action) pair is illegal and fails with a
// *TransitionError naming the state and the action (errors.Is
// ErrIllegalTransition): approving a revoked subscription, resuming an
// active one, revoking a revoked one, and so on. Reject, suspend and revoke
// need a reason; every transition records who, when and why. A partner
// holds at most one open (not rejected, not revoked) subscription per
// product and purpose; after a rejection or revocation it may request
// again.
//
// Transitions are serialised per subscription: PostgreSQL locks the row
// (SELECT ... FOR UPDATE) inside the transaction; SQLite transactions hold
// the database write lock. Two concurrent actions on one subscription
// therefore apply in some order, the second judged against the state the
// first left.
//
// # API keys
//
// A key is "slk_<id>_<secret>": id is 16 base32 characters, random and
// public (it names the key in listings and revocations, and is the lookup
// key), secret is 32 random bytes in base64url. CreateKey returns the key
// once; the store keeps only SHA-256 of the whole key. A fast hash is the
// right choice here: with 256 bits of entropy the secret cannot be guessed
// from its hash, so a slow password hash (bcrypt, scrypt, argon2), which
// only helps low-entropy human passwords, would add CPU cost to every
// request and no security. VerifyKey looks the id up, compares hashes in
// constant time, and only then reports revocation (ErrKeyRevoked) or
// expiry (ErrKeyExpired); an unknown id and a wrong secret are the same
// ErrKeyNotFound; a string that is not a key is ErrKeyMalformed. No error
// or log line contains a secret.
//
// # Usage
//
// Usage is counted per partner, product, purpose and UTC day. AddUsage adds
// a batch in one transaction with upserts that increment the counters
// (INSERT ... ON CONFLICT DO UPDATE SET records = records + excluded.records),
// so concurrent batches from any number of replicas add up exactly. Rows
// are written in one canonical order, so two batches cannot deadlock.
//
// # Change notification
//
// Changes(ctx) delivers a Change (kind and id: partner, key, plan,
// subscription) for every write that changed something, made through any
// Store on the same database, after it commits:
//
//   - PostgreSQL: the writing transaction calls pg_notify before it commits,
//     so a notification goes out exactly when the change commits; each
//     Store LISTENs on one dedicated connection and fans out to its
//     subscribers. This reaches every replica without another moving part
//     (no Kafka control topic to create, retain and secure) and in
//     milliseconds. When the listening connection drops, the Store
//     reconnects and sends ChangeResync: notifications sent meanwhile are
//     lost, so readers must reload what they cache.
//   - SQLite: an in-process broadcast to the Stores of this process open on
//     the same file, after commit.
//
// A slow reader never blocks writers or other readers: each subscriber has
// its own queue, and one that falls more than 1024 changes behind gets a
// single ChangeResync instead of the backlog. A Change carries no state:
// the reader reads the entity for its new state (a revoked subscription is
// then revoked whichever replica asks).
package store

-- sluice store schema, SQLite. Times are UTC text, 2006-01-02T15:04:05.000000Z
-- (fixed width: text order is time order); days are 2006-01-02.
-- Keep in step with ../postgres/0001_init.sql.

CREATE TABLE partners (
  id         TEXT NOT NULL PRIMARY KEY,
  name       TEXT NOT NULL,
  type       TEXT NOT NULL,
  attributes TEXT NOT NULL DEFAULT '{}', -- JSON object
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;

-- Only the SHA-256 of a key is stored, never the key.
CREATE TABLE api_keys (
  id         TEXT NOT NULL PRIMARY KEY, -- the lookup id of slk_<id>_<secret>
  partner_id TEXT NOT NULL REFERENCES partners (id),
  hash       BLOB NOT NULL CHECK (length(hash) = 32),
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  revoked_at TEXT,
  revoked_by TEXT
) STRICT;
CREATE INDEX api_keys_partner ON api_keys (partner_id, created_at);

CREATE TABLE plans (
  id                    TEXT NOT NULL PRIMARY KEY,
  name                  TEXT NOT NULL,
  records_per_second    INTEGER NOT NULL CHECK (records_per_second > 0),
  bytes_per_second      INTEGER NOT NULL CHECK (bytes_per_second > 0),
  concurrent_streams    INTEGER NOT NULL CHECK (concurrent_streams > 0),
  monthly_record_quota  INTEGER NOT NULL CHECK (monthly_record_quota > 0),
  replay_window_seconds INTEGER NOT NULL CHECK (replay_window_seconds >= 0),
  formats               TEXT NOT NULL, -- JSON array of strings
  is_default            INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
  created_at            TEXT NOT NULL,
  updated_at            TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX plans_one_default ON plans (is_default) WHERE is_default = 1;

CREATE TABLE subscriptions (
  id         TEXT NOT NULL PRIMARY KEY,
  partner_id TEXT NOT NULL REFERENCES partners (id),
  product    TEXT NOT NULL,
  purpose    TEXT NOT NULL,
  plan_id    TEXT NOT NULL REFERENCES plans (id),
  state      TEXT NOT NULL CHECK (state IN ('requested', 'approved', 'rejected', 'active', 'suspended', 'revoked')),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;
-- At most one open subscription per partner, product and purpose.
CREATE UNIQUE INDEX subscriptions_open ON subscriptions (partner_id, product, purpose)
  WHERE state NOT IN ('rejected', 'revoked');
CREATE INDEX subscriptions_partner ON subscriptions (partner_id, created_at);

CREATE TABLE subscription_history (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
  action          TEXT NOT NULL,
  from_state      TEXT NOT NULL, -- '' for the request
  to_state        TEXT NOT NULL,
  actor           TEXT NOT NULL,
  reason          TEXT NOT NULL,
  at              TEXT NOT NULL
) STRICT;
CREATE INDEX subscription_history_sub ON subscription_history (subscription_id, seq);

CREATE TABLE usage_daily (
  day        TEXT NOT NULL, -- UTC day
  partner_id TEXT NOT NULL,
  product    TEXT NOT NULL,
  purpose    TEXT NOT NULL,
  records    INTEGER NOT NULL CHECK (records >= 0),
  bytes      INTEGER NOT NULL CHECK (bytes >= 0),
  PRIMARY KEY (day, partner_id, product, purpose)
) STRICT;
CREATE INDEX usage_daily_partner ON usage_daily (partner_id, day);

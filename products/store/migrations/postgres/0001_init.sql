-- sluice store schema, PostgreSQL. Keep in step with ../sqlite/0001_init.sql.

CREATE TABLE partners (
  id         text NOT NULL PRIMARY KEY,
  name       text NOT NULL,
  type       text NOT NULL,
  attributes jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

-- Only the SHA-256 of a key is stored, never the key.
CREATE TABLE api_keys (
  id         text NOT NULL PRIMARY KEY, -- the lookup id of slk_<id>_<secret>
  partner_id text NOT NULL REFERENCES partners (id),
  hash       bytea NOT NULL CHECK (length(hash) = 32),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  revoked_by text
);
CREATE INDEX api_keys_partner ON api_keys (partner_id, created_at);

CREATE TABLE plans (
  id                    text NOT NULL PRIMARY KEY,
  name                  text NOT NULL,
  records_per_second    bigint NOT NULL CHECK (records_per_second > 0),
  bytes_per_second      bigint NOT NULL CHECK (bytes_per_second > 0),
  concurrent_streams    bigint NOT NULL CHECK (concurrent_streams > 0),
  monthly_record_quota  bigint NOT NULL CHECK (monthly_record_quota > 0),
  replay_window_seconds bigint NOT NULL CHECK (replay_window_seconds >= 0),
  formats               jsonb NOT NULL, -- array of strings
  is_default            boolean NOT NULL DEFAULT false,
  created_at            timestamptz NOT NULL,
  updated_at            timestamptz NOT NULL
);
CREATE UNIQUE INDEX plans_one_default ON plans (is_default) WHERE is_default;

CREATE TABLE subscriptions (
  id         text NOT NULL PRIMARY KEY,
  partner_id text NOT NULL REFERENCES partners (id),
  product    text NOT NULL,
  purpose    text NOT NULL,
  plan_id    text NOT NULL REFERENCES plans (id),
  state      text NOT NULL CHECK (state IN ('requested', 'approved', 'rejected', 'active', 'suspended', 'revoked')),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
-- At most one open subscription per partner, product and purpose.
CREATE UNIQUE INDEX subscriptions_open ON subscriptions (partner_id, product, purpose)
  WHERE state NOT IN ('rejected', 'revoked');
CREATE INDEX subscriptions_partner ON subscriptions (partner_id, created_at);

CREATE TABLE subscription_history (
  seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id text NOT NULL REFERENCES subscriptions (id),
  action          text NOT NULL,
  from_state      text NOT NULL, -- '' for the request
  to_state        text NOT NULL,
  actor           text NOT NULL,
  reason          text NOT NULL,
  at              timestamptz NOT NULL
);
CREATE INDEX subscription_history_sub ON subscription_history (subscription_id, seq);

CREATE TABLE usage_daily (
  day        date NOT NULL, -- UTC day
  partner_id text NOT NULL,
  product    text NOT NULL,
  purpose    text NOT NULL,
  records    bigint NOT NULL CHECK (records >= 0),
  bytes      bigint NOT NULL CHECK (bytes >= 0),
  PRIMARY KEY (day, partner_id, product, purpose)
);
CREATE INDEX usage_daily_partner ON usage_daily (partner_id, day);

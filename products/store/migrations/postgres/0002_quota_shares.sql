-- Each replica's recent demand and open streams per partner and product, so
-- replicas split a plan's rate and stream limit between them (see
-- Store.ShareQuota). Rows are rewritten several times a second and expire.
-- Keep in step with ../sqlite/0002_quota_shares.sql.
CREATE TABLE quota_shares (
  replica    text NOT NULL,
  partner_id text NOT NULL,
  product    text NOT NULL,
  demand     double precision NOT NULL CHECK (demand >= 0),
  streams    integer NOT NULL CHECK (streams >= 0),
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (replica, partner_id, product)
);
CREATE INDEX quota_shares_updated ON quota_shares (updated_at);

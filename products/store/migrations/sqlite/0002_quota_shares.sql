-- Each replica's recent demand and open streams per partner and product, so
-- replicas split a plan's rate and stream limit between them (see
-- Store.ShareQuota). Rows are rewritten several times a second and expire.
-- Keep in step with ../postgres/0002_quota_shares.sql.
CREATE TABLE quota_shares (
  replica    TEXT NOT NULL,
  partner_id TEXT NOT NULL,
  product    TEXT NOT NULL,
  demand     REAL NOT NULL CHECK (demand >= 0),
  streams    INTEGER NOT NULL CHECK (streams >= 0),
  updated_at TEXT NOT NULL,
  PRIMARY KEY (replica, partner_id, product)
) STRICT;
CREATE INDEX quota_shares_updated ON quota_shares (updated_at);

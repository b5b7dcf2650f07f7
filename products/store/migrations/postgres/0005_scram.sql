-- SCRAM-SHA-512 credentials of an API key (RFC 5802, RFC 7677), for the
-- Kafka front door's SASL/SCRAM-SHA-512 login (username = key id,
-- password = secret): salt, iteration count, StoredKey and ServerKey, as
-- a Kafka broker stores them. Computed from the secret when the key is
-- created; NULL for keys created before this migration (they log in with
-- PLAIN). See Store.ScramKey.
-- Keep in step with ../sqlite/0005_scram.sql.
ALTER TABLE api_keys ADD COLUMN scram_salt bytea;
ALTER TABLE api_keys ADD COLUMN scram_iterations integer;
ALTER TABLE api_keys ADD COLUMN scram_stored_key bytea;
ALTER TABLE api_keys ADD COLUMN scram_server_key bytea;

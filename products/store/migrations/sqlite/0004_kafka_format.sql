-- The Kafka front door's value format per subscription (json: the view's
-- JSON object, as SSE sends it; avro: Schema Registry wire format with the
-- view's schema), and the view schemas registered for it: ids are shared
-- by every replica and stable across restarts (the schema registry
-- endpoint serves them). See Store.SetKafkaFormat and Store.RegisterSchema.
-- Keep in step with ../postgres/0004_kafka_format.sql.
ALTER TABLE subscriptions ADD COLUMN kafka_format TEXT NOT NULL DEFAULT 'json'
  CHECK (kafka_format IN ('json', 'avro'));

CREATE TABLE registered_schemas (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  sha256      TEXT NOT NULL UNIQUE, -- hex SHA-256 of schema_text
  schema_text TEXT NOT NULL,
  created_at  TEXT NOT NULL
) STRICT;

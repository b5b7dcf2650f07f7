-- Kafka consumer groups' committed offsets (the Kafka front door,
-- gateway/kafkaproxy), namespaced by partner: two partners may use the same
-- group id without seeing each other's positions. topic is the virtual
-- topic (a product id), not an upstream topic. See Store.CommitOffsets.
-- Keep in step with ../postgres/0003_group_offsets.sql.
CREATE TABLE group_offsets (
  partner_id       TEXT NOT NULL,
  group_id         TEXT NOT NULL,
  topic            TEXT NOT NULL,
  kafka_partition  INTEGER NOT NULL CHECK (kafka_partition >= 0),
  committed_offset INTEGER NOT NULL,
  metadata         TEXT NOT NULL DEFAULT '',
  committed_at     TEXT NOT NULL,
  PRIMARY KEY (partner_id, group_id, topic, kafka_partition)
) STRICT;

-- Kafka consumer groups' committed offsets (the Kafka front door,
-- gateway/kafkaproxy), namespaced by partner: two partners may use the same
-- group id without seeing each other's positions. topic is the virtual
-- topic (a product id), not an upstream topic. See Store.CommitOffsets.
-- Keep in step with ../sqlite/0003_group_offsets.sql.
CREATE TABLE group_offsets (
  partner_id       text NOT NULL,
  group_id         text NOT NULL,
  topic            text NOT NULL,
  kafka_partition  integer NOT NULL CHECK (kafka_partition >= 0),
  committed_offset bigint NOT NULL,
  metadata         text NOT NULL DEFAULT '',
  committed_at     timestamptz NOT NULL,
  PRIMARY KEY (partner_id, group_id, topic, kafka_partition)
);

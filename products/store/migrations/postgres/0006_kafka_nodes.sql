-- Each replica's Kafka front door as clients reach it (its node id and
-- advertised address), so replicas list each other as brokers and agree on
-- each consumer group's coordinator (see Store.ShareKafkaNode). Rows are
-- rewritten every second and expire.
-- Keep in step with ../sqlite/0006_kafka_nodes.sql.
CREATE TABLE kafka_nodes (
  replica    text PRIMARY KEY,
  node_id    integer NOT NULL CHECK (node_id >= 0),
  host       text NOT NULL,
  port       integer NOT NULL CHECK (port > 0 AND port < 65536),
  updated_at timestamptz NOT NULL
);

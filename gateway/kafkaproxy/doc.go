// Package kafkaproxy is sluice's Kafka wire front door: partners consume
// their governed data products with their own Kafka clients (Java,
// librdkafka/kcat, franz-go) from a listener that speaks the Kafka protocol
// (franz-go's kmsg for every request and response).
//
// It owns the protocol: the listener and connections (optional TLS),
// framing with size caps, request parsing (request header v1/v2 with
// tagged fields for flexible versions; response header v1, except
// ApiVersions which always answers header v0), SASL login (PLAIN,
// OAUTHBEARER and, with a ScramBackend, SCRAM-SHA-512; SaslHandshake v0 raw
// tokens and v1 + SaslAuthenticate),
// read-only virtual topics (Metadata, ListOffsets, Fetch encoded as v2
// record batches with the view's gaps), an in-memory classic consumer group
// coordinator namespaced by partner, committed offsets through an
// OffsetStore, and clear authorization errors for every write.
//
// It does not own what a partner may see: a Backend (the gateway)
// authenticates credentials and returns a Session that lists the partner's
// entitled topics, reads its governed view (rows filtered, fields masked,
// encoded as JSON) and accounts its quota. It knows nothing of policy,
// masking, products or upstream Kafka.
//
// # Files
//
//	backend.go      Backend, Session, OffsetStore and the errors they return
//	server.go       Config, Server: listeners, Close and the shutdown order
//	conn.go         one connection: frames, header parsing, SASL gating, writes
//	apis.go         the request-key registry behind ApiVersions and dispatch
//	NN_name.go      one file per API key, each saying which versions it handles
//	sasl.go         PLAIN and OAUTHBEARER message parsing, login steps, raw v0 tokens
//	scram.go        SCRAM-SHA-512 server (RFC 5802)
//	group.go        the consumer group coordinator (state machine, janitor)
//	cluster.go      replicas as one cluster: nodes, group coordinators
//	observer.go     protocol events for metrics
//	records.go      record batch v2 encoding (CRC-32C, offset gaps)
//	errors.go       the one mapping from Go errors to Kafka error codes
//	offsets.go      MemoryOffsets, an OffsetStore for tests
//
// # Served API keys and versions
//
//	Produce 3-9 (refused)            ApiVersions 0-3
//	Fetch 4-12                       CreateTopics 2-7 (refused)
//	ListOffsets 1-6                  DeleteTopics 1-5 (refused)
//	Metadata 1-12                    DeleteRecords 0-2 (refused)
//	OffsetCommit 2-8                 SaslAuthenticate 0-2
//	OffsetFetch 1-8                  CreatePartitions 0-3 (refused)
//	FindCoordinator 0-4              SaslHandshake 0-1
//	JoinGroup 0-9, Heartbeat 0-4, LeaveGroup 0-5, SyncGroup 0-5
//	DescribeGroups 0-5, ListGroups 0-4 (the partner's groups: lag monitors)
//
// InitProducerId 0-5, AddPartitionsToTxn 0-3, AddOffsetsToTxn 0-3, EndTxn
// 0-3 and TxnOffsetCommit 0-3 are answered with authorization errors but
// not advertised. Any other key, or a version outside these ranges (except
// ApiVersions, see KIP-511), closes the connection with a log line.
//
// # Connections and shutdown
//
// Each connection has a serving goroutine (read a frame, handle it, write
// the response: one request at a time, like a broker) and a watcher that
// closes the socket when the Server closes, the partner's Session is done
// (revocation: within a second, cancelling any wait in flight) or the
// serving goroutine ends. Malformed input (short or truncated frames,
// negative or oversized sizes, unknown keys, unsupported versions,
// unparsable bodies, requests before login) closes that connection only.
//
// Server.Close: stop accepting; cancel every connection (closing sockets,
// ending JoinGroup/SyncGroup and Fetch waits); wait for every connection
// goroutine, each of which closes its Session; stop the group coordinator's
// janitor. Group membership is in memory and is lost; committed offsets
// live in the OffsetStore, which the caller owns.
package kafkaproxy

package kafkaproxy

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// errorCode is the one place that turns a backend or store error into a
// Kafka error code. Unknown errors become KAFKA_STORAGE_ERROR, which every
// client retries, and are logged by the caller.
func errorCode(err error) (code int16, known bool) {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code, true
	case errors.Is(err, ErrNotAuthorized):
		return kerr.TopicAuthorizationFailed.Code, true
	case errors.Is(err, ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code, true
	case errors.As(err, &ke):
		return ke.Code, true
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code, false
	}
	return kerr.KafkaStorageError.Code, false
}

// code maps err and logs it when it has no Kafka meaning.
func (c *conn) code(err error, what string, topic string, partition int32) int16 {
	code, known := errorCode(err)
	if !known && c.ctx.Err() == nil {
		c.log.Warn("kafkaproxy: backend error", "op", what, "topic", topic, "partition", partition, "err", err)
	}
	return code
}

// partitionCode says whether the partner may read topic/partition: 0, or
// TOPIC_AUTHORIZATION_FAILED for a topic it is not entitled to, or
// UNKNOWN_TOPIC_OR_PARTITION for a partition the topic does not have.
func partitionCode(topics []Topic, topic string, partition int32) int16 {
	t, ok := findTopic(topics, topic)
	switch {
	case !ok:
		return kerr.TopicAuthorizationFailed.Code
	case partition < 0 || partition >= t.Partitions:
		return kerr.UnknownTopicOrPartition.Code
	}
	return 0
}

package gateway

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/gateway/internal/metrics"
)

// kafkaMetrics observes the Kafka front door (kafkaproxy.Observer) into
// the gateway's metrics: open connections, requests and their time by
// API, logins and re-authentications by mechanism and result, and
// connections closed for breaking the protocol.
type kafkaMetrics struct{ m *metrics.Metrics }

func (k kafkaMetrics) Connection(delta int) { k.m.KafkaConnections.Add(float64(delta)) }

func (k kafkaMetrics) Request(apiKey int16, d time.Duration) {
	k.m.KafkaRequests.WithLabelValues(kmsg.NameForKey(apiKey)).Observe(d.Seconds())
}

func (k kafkaMetrics) Login(mechanism string, reauth, ok bool) {
	kind, result := "login", "ok"
	if reauth {
		kind = "reauth"
	}
	if !ok {
		result = "failed"
	}
	k.m.KafkaLogins.WithLabelValues(mechanism, kind, result).Inc()
}

func (k kafkaMetrics) ProtocolError() { k.m.KafkaProtocolErrors.Inc() }

package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaMetrics observes the Kafka front door (kafkaproxy.Observer) for
// /metrics: open connections, requests and their time by API, logins and
// re-authentications by mechanism and result, and connections closed for
// breaking the protocol.
type kafkaMetrics struct {
	conns    prometheus.Gauge
	requests *prometheus.HistogramVec
	logins   *prometheus.CounterVec
	protocol prometheus.Counter
}

func newKafkaMetrics(reg prometheus.Registerer) *kafkaMetrics {
	m := &kafkaMetrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_kafka_connections", Help: "Open connections to the Kafka front door.",
		}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_kafka_request_seconds",
			Help:    "Kafka front door requests by API, from arrival to response written (a Fetch's wait for data included).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"api"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_kafka_logins_total", Help: "Kafka front door SASL logins (kind login) and KIP-368 re-authentications (kind reauth), by result.",
		}, []string{"mechanism", "kind", "result"}),
		protocol: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_kafka_protocol_errors_total", Help: "Kafka front door connections closed for breaking the protocol (malformed or oversized frames, unknown APIs).",
		}),
	}
	reg.MustRegister(m.conns, m.requests, m.logins, m.protocol)
	return m
}

func (m *kafkaMetrics) Connection(delta int) { m.conns.Add(float64(delta)) }

func (m *kafkaMetrics) Request(apiKey int16, d time.Duration) {
	m.requests.WithLabelValues(kmsg.NameForKey(apiKey)).Observe(d.Seconds())
}

func (m *kafkaMetrics) Login(mechanism string, reauth, ok bool) {
	kind, result := "login", "ok"
	if reauth {
		kind = "reauth"
	}
	if !ok {
		result = "failed"
	}
	m.logins.WithLabelValues(mechanism, kind, result).Inc()
}

func (m *kafkaMetrics) ProtocolError() { m.protocol.Inc() }

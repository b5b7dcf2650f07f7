// Package metrics holds the gateway's Prometheus metrics. Label values come
// from the catalog (product ids) and from code (protocol names), never from
// request input, so cardinality stays bounded.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one gateway's set of metrics, registered on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	Delivered       *prometheus.CounterVec // product, protocol
	DeliveredBytes  *prometheus.CounterVec // product, protocol
	ActiveStreams   *prometheus.GaugeVec   // product, protocol
	UpstreamReaders *prometheus.GaugeVec   // product
	UpstreamRecords *prometheus.CounterVec // product
	UpstreamLag     *prometheus.GaugeVec   // product
	DecodeErrors    *prometheus.CounterVec // product, reason
	DirectReads     *prometheus.CounterVec // product, reason
	Views           *prometheus.GaugeVec   // product

	// Usage by subscription, labelled with ids from the store (the
	// authenticated partner, the catalog product, the subscription's
	// purpose), never from request input.
	UsageRecords *prometheus.CounterVec // partner, product, purpose
	UsageBytes   *prometheus.CounterVec // partner, product, purpose
	Throttled    *prometheus.CounterVec // partner, product, limit
	QuotaShare   *prometheus.GaugeVec   // partner, product: this replica's share of the plan's rate
	UsageFlushes *prometheus.CounterVec // result: ok, failed

	// The Kafka front door's protocol (labels from its API table and its
	// mechanisms, never from request input).
	KafkaConnections    prometheus.Gauge
	KafkaRequests       *prometheus.HistogramVec // api
	KafkaLogins         *prometheus.CounterVec   // mechanism, kind (login, reauth), result (ok, failed)
	KafkaProtocolErrors prometheus.Counter
}

// New creates and registers the metrics, plus Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_records_delivered_total", Help: "Records delivered to clients.",
		}, []string{"product", "protocol"}),
		DeliveredBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_bytes_delivered_total", Help: "Encoded record bytes delivered to clients.",
		}, []string{"product", "protocol"}),
		ActiveStreams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_active_streams", Help: "Open streaming connections.",
		}, []string{"product", "protocol"}),
		UpstreamReaders: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_upstream_readers", Help: "Running upstream readers (one per product per process).",
		}, []string{"product"}),
		UpstreamRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_upstream_records_total", Help: "Records read by the shared upstream reader.",
		}, []string{"product"}),
		UpstreamLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_upstream_lag_records", Help: "Records between the upstream reader's position and the log end.",
		}, []string{"product"}),
		DecodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_decode_errors_total", Help: "Records that did not decode and were skipped.",
		}, []string{"product", "reason"}),
		DirectReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_direct_reads_total", Help: "Fetches outside the shared reader: catch-up of laggards and history reads.",
		}, []string{"product", "reason"}),
		Views: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_views", Help: "Distinct compiled views being encoded by the shared reader.",
		}, []string{"product"}),
		UsageRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_usage_records_total", Help: "Records delivered, metered per partner, product and purpose (billing).",
		}, []string{"partner", "product", "purpose"}),
		UsageBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_usage_bytes_total", Help: "Encoded bytes delivered, metered per partner, product and purpose (billing).",
		}, []string{"partner", "product", "purpose"}),
		Throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_quota_refusals_total", Help: "Requests refused by a plan limit (429 or 403).",
		}, []string{"partner", "product", "limit"}),
		QuotaShare: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_quota_share", Help: "This replica's share of a partner's plan rate on a product (1 when alone).",
		}, []string{"partner", "product"}),
		UsageFlushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_usage_flushes_total", Help: "Usage batches written to the store, by result.",
		}, []string{"result"}),
		KafkaConnections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_kafka_connections", Help: "Open connections to the Kafka front door.",
		}),
		KafkaRequests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_kafka_request_seconds",
			Help:    "Kafka front door requests by API, from arrival to response written (a Fetch's wait for data included).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"api"}),
		KafkaLogins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_kafka_logins_total", Help: "Kafka front door SASL logins (kind login) and KIP-368 re-authentications (kind reauth), by result.",
		}, []string{"mechanism", "kind", "result"}),
		KafkaProtocolErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_kafka_protocol_errors_total", Help: "Kafka front door connections closed for breaking the protocol (malformed or oversized frames, unknown APIs).",
		}),
	}
	r.MustRegister(m.Delivered, m.DeliveredBytes, m.ActiveStreams, m.UpstreamReaders, m.UpstreamRecords,
		m.UpstreamLag, m.DecodeErrors, m.DirectReads, m.Views,
		m.UsageRecords, m.UsageBytes, m.Throttled, m.QuotaShare, m.UsageFlushes,
		m.KafkaConnections, m.KafkaRequests, m.KafkaLogins, m.KafkaProtocolErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// TestIntegrationKafkaMetrics: /metrics shows the Kafka front door's open
// connections, its requests by API, its logins by mechanism and result,
// and the connections it closed for breaking the protocol; connections
// return to 0 when the clients leave.
func TestIntegrationKafkaMetrics(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("network-quality", 10)
	cl, err := kgo.NewClient(e.kafkaOpts(kafkaOAuth(e.token("internal-noc")), kgo.ConsumeTopics("network-quality"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	readKafka(t, cl, 10, 20*time.Second)
	if v := metric(t, e, "sluice_kafka_connections"); v < 1 {
		t.Errorf("sluice_kafka_connections = %v with a consumer connected, want >= 1", v)
	}
	for _, s := range []string{
		`sluice_kafka_request_seconds_count{api="Fetch"}`,
		`sluice_kafka_request_seconds_count{api="Metadata"}`,
		`sluice_kafka_logins_total{kind="login",mechanism="OAUTHBEARER",result="ok"}`,
	} {
		if v := metric(t, e, s); v < 1 {
			t.Errorf("%s = %v, want >= 1", s, v)
		}
	}

	// A wrong secret: one failed PLAIN login.
	bad, err := kgo.NewClient(e.kafkaOpts(kgo.SASL(plain.Auth{User: "nokey0000000000", Pass: "wrong"}.AsMechanism()))...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if _, err := kadm.NewClient(bad).Metadata(ctx); err == nil {
		t.Error("metadata with a wrong secret succeeded")
	}
	cancel()
	bad.Close()
	if v := metric(t, e, `sluice_kafka_logins_total{kind="login",mechanism="PLAIN",result="failed"}`); v < 1 {
		t.Errorf("failed PLAIN logins = %v after a wrong secret, want >= 1", v)
	}

	// A frame announcing 2 GiB before login: the connection is closed.
	c, err := tls.Dial("tcp", e.gw.KafkaProxyAddr(), e.kafkaTLS())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(binary.BigEndian.AppendUint32(nil, 0x7fffffff))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the oversized frame's connection stayed open")
	}
	c.Close()
	waitFor(t, 5*time.Second, func() bool { return metric(t, e, "sluice_kafka_protocol_errors_total") >= 1 }, "the protocol error counted")

	cl.Close()
	waitFor(t, 5*time.Second, func() bool { return metric(t, e, "sluice_kafka_connections") == 0 }, "sluice_kafka_connections back to 0")
}

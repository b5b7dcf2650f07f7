package gateway_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestEmbeddedRetention: the embedded broker's product topics carry the
// catalog's replay window and size bound as retention, and the consent
// topic is compacted, so the data directory stays bounded however long the
// generator runs (kfake applies retention every minute).
func TestEmbeddedRetention(t *testing.T) {
	e := newEnv(t, withEmbedded)
	adm := kadm.NewClient(e.prod)
	var topics []string
	for _, p := range e.cat.Products {
		topics = append(topics, e.topic(p.ID))
	}
	rc, err := adm.DescribeTopicConfigs(context.Background(), append(topics, e.gw.ConsentTopic())...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	for _, r := range rc {
		got[r.Name] = map[string]string{}
		for _, c := range r.Configs {
			if c.Value != nil {
				got[r.Name][c.Key] = *c.Value
			}
		}
	}
	for _, p := range e.cat.Products {
		c := got[e.topic(p.ID)]
		if c["retention.ms"] != strconv.FormatInt(p.ReplayWindow.Milliseconds(), 10) {
			t.Errorf("%s retention.ms = %q, want the replay window %s", p.ID, c["retention.ms"], p.ReplayWindow)
		}
		if c["retention.bytes"] != strconv.FormatInt(p.RetentionBytes, 10) {
			t.Errorf("%s retention.bytes = %q, want %d", p.ID, c["retention.bytes"], p.RetentionBytes)
		}
	}
	if c := got[e.gw.ConsentTopic()]; c["cleanup.policy"] != "compact" {
		t.Errorf("consent topic cleanup.policy = %q, want compact", c["cleanup.policy"])
	}
}

package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/gateway/internal/testkit"
)

// TestIntegrationKafkaAvro: a partner sets its subscriptions to Avro
// (PATCH /v1/subscriptions/{id}); a franz-go consumer reads them through
// the front door and decodes every value the way a standard deserializer
// does (pkg/sr: wire format header, schema by id from the gateway's
// /schema-registry with the partner's API key as basic auth, hamba/avro),
// and gets, record for record, the field values of the partner's JSON view
// over REST at the same offsets. The registry shows another partner none
// of it; JSON subscriptions are unchanged; switching back to json gives
// JSON again.
func TestIntegrationKafkaAvro(t *testing.T) {
	e := newEnv(t, withKafkaFrontDoor(t))
	e.produce("cdr", 200)
	e.produce("fraud-alerts", 60) // an array field: the JSON-text path of the encoder

	// mvno-a asks for Avro on its cdr and fraud-alerts subscriptions.
	subs := map[string]string{} // product -> subscription id
	_, list := e.do(http.MethodGet, "/v1/subscriptions", "mvno-a", "")
	for _, s := range list["subscriptions"].([]any) {
		m := s.(map[string]any)
		if m["kafka_format"] != "json" {
			t.Fatalf("seeded subscription %v: kafka_format %v, want json", m["id"], m["kafka_format"])
		}
		subs[m["product"].(string)] = m["id"].(string)
	}
	for _, product := range []string{"cdr", "fraud-alerts"} {
		status, v := e.do(http.MethodPatch, "/v1/subscriptions/"+subs[product], "mvno-a", `{"kafka_format":"avro"}`)
		if status != http.StatusOK || v["kafka_format"] != "avro" {
			t.Fatalf("PATCH %s: %d %v", product, status, v)
		}
	}
	if status, v := e.do(http.MethodPatch, "/v1/subscriptions/"+subs["cdr"], "mvno-b", `{"kafka_format":"json"}`); status != http.StatusNotFound {
		t.Fatalf("mvno-b PATCHes mvno-a's subscription: %d %v, want 404", status, v)
	}
	if status, v := e.do(http.MethodGet, "/v1/subscriptions/"+subs["cdr"], "mvno-a", ""); status != http.StatusOK || v["kafka_format"] != "avro" {
		t.Fatalf("GET after PATCH: %d %v", status, v)
	}

	keyOpt, keyID, secret := e.kafkaKey("mvno-a")
	reg, err := sr.NewClient(sr.URLs(e.base+"/schema-registry"), sr.BasicAuth(keyID, secret))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	subjects, err := reg.Subjects(ctx)
	if err != nil || !slices.Equal(subjects, []string{"cdr-value", "fraud-alerts-value"}) {
		t.Fatalf("mvno-a's subjects: %v, %v; want cdr-value and fraud-alerts-value", subjects, err)
	}

	ids := map[string]int{} // product -> schema id
	for _, product := range []string{"cdr", "fraud-alerts"} {
		rest := restRecords(t, e, "mvno-a", product)
		if len(rest) == 0 {
			t.Fatalf("mvno-a sees no %s over REST", product)
		}
		cl := e.kafkaClient(keyOpt, kgo.ConsumeTopics(product), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		recs := readKafka(t, cl, len(rest), 15*time.Second)
		if len(recs) != len(rest) {
			t.Fatalf("%s: %d Kafka records, %d over REST", product, len(recs), len(rest))
		}
		schemas := map[int]avro.Schema{}
		for _, r := range recs {
			var h sr.ConfluentHeader
			id, payload, err := h.DecodeID(r.Value)
			if err != nil {
				t.Fatalf("%s %d/%d: not Schema Registry wire format: %v (% x)", product, r.Partition, r.Offset, err, r.Value[:min(8, len(r.Value))])
			}
			sch, ok := schemas[id]
			if !ok {
				ss, err := reg.SchemaByID(ctx, id)
				if err != nil {
					t.Fatalf("schema %d from the gateway's registry: %v", id, err)
				}
				if ss.Type != sr.TypeAvro {
					t.Fatalf("schema %d: type %v, want AVRO", id, ss.Type)
				}
				if sch, err = avro.Parse(ss.Schema); err != nil {
					t.Fatalf("schema %d does not parse: %v", id, err)
				}
				schemas[id] = sch
				ids[product] = id
			}
			var got map[string]any
			if err := avro.Unmarshal(sch, payload, &got); err != nil {
				t.Fatalf("%s %d/%d: Avro decode: %v", product, r.Partition, r.Offset, err)
			}
			js, ok := rest[pos{r.Partition, r.Offset}]
			if !ok {
				t.Fatalf("%s %d/%d: delivered over Kafka, not over REST", product, r.Partition, r.Offset)
			}
			var want map[string]any
			if err := json.Unmarshal(js, &want); err != nil {
				t.Fatal(err)
			}
			if ts := r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"); want["_timestamp"] != ts {
				t.Fatalf("%s %d/%d: Kafka timestamp %s, JSON _timestamp %v", product, r.Partition, r.Offset, ts, want["_timestamp"])
			}
			for _, meta := range []string{"_partition", "_offset", "_timestamp"} {
				delete(want, meta)
			}
			b, _ := json.Marshal(testkit.AvroAsJSON(got, sch))
			var norm map[string]any
			if err := json.Unmarshal(b, &norm); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(norm, want) {
				t.Fatalf("%s %d/%d: Avro and JSON views differ:\navro %s\njson %s", product, r.Partition, r.Offset, b, js)
			}
		}
		if len(schemas) != 1 {
			t.Fatalf("%s: %d schema ids in one view's records, want 1", product, len(schemas))
		}
		// The registry's schema is the view schema the HTTP API serves.
		resp, body := e.get("/v1/products/"+product+"/schema", "Authorization", "Bearer "+e.token("mvno-a"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET schema: %d %s", resp.StatusCode, body)
		}
		ss, err := reg.SchemaByVersion(ctx, product+"-value", -1)
		if err != nil || ss.ID != ids[product] || ss.Version != ids[product] || !jsonEqual([]byte(ss.Schema.Schema), body) {
			t.Fatalf("latest %s-value: %+v, %v; want id %d and the schema GET /v1/products/%s/schema serves (%s)", product, ss, err, ids[product], product, body)
		}
		t.Logf("%s: %d Avro records (schema id %d) equal mvno-a's JSON view field for field", product, len(recs), ids[product])
	}
	if ids["cdr"] == ids["fraud-alerts"] {
		t.Fatalf("cdr and fraud-alerts views share schema id %d", ids["cdr"])
	}

	// Another partner: not its schema ids, no subjects; no credential: 401.
	other, err := sr.NewClient(sr.URLs(e.base+"/schema-registry"), sr.BearerToken(e.token("mvno-b")))
	if err != nil {
		t.Fatal(err)
	}
	var re *sr.ResponseError
	if _, err := other.SchemaByID(ctx, ids["cdr"]); !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != 40403 {
		t.Fatalf("mvno-b asks for mvno-a's schema %d: %v, want 404 error_code 40403", ids["cdr"], err)
	}
	if s, err := other.Subjects(ctx); err != nil || len(s) != 0 {
		t.Fatalf("mvno-b's subjects: %v, %v; want none (its subscriptions are json)", s, err)
	}
	anon, err := sr.NewClient(sr.URLs(e.base + "/schema-registry"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.SchemaByID(ctx, ids["cdr"]); !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized || re.ErrorCode != 40101 {
		t.Fatalf("no credential: %v, want 401 error_code 40101", err)
	}
	wrong, _ := sr.NewClient(sr.URLs(e.base+"/schema-registry"), sr.BasicAuth(keyID, "not-the-secret"))
	if _, err := wrong.Subjects(ctx); !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %v, want 401", err)
	}

	// JSON subscriptions are unchanged: mvno-b's cdr is SSE's bytes.
	rest := restRecords(t, e, "mvno-b", "cdr")
	clb := e.kafkaClient(kafkaOAuth(e.token("mvno-b")), kgo.ConsumeTopics("cdr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	sameRecords(t, "mvno-b kafka (json) vs rest", kafkaByPos(t, "mvno-b cdr", readKafka(t, clb, len(rest), 15*time.Second)), rest)

	// Back to json: a new consumer reads JSON, the REST bytes.
	if status, v := e.do(http.MethodPatch, "/v1/subscriptions/"+subs["cdr"], "admin", `{"kafka_format":"json"}`); status != http.StatusOK || v["kafka_format"] != "json" {
		t.Fatalf("admin PATCH back to json: %d %v", status, v)
	}
	rest = restRecords(t, e, "mvno-a", "cdr")
	cla := e.kafkaClient(keyOpt, kgo.ConsumeTopics("cdr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	sameRecords(t, "mvno-a kafka (json again) vs rest", kafkaByPos(t, "mvno-a cdr", readKafka(t, cla, len(rest), 15*time.Second)), rest)
	if s, err := reg.Subjects(ctx); err != nil || !slices.Equal(s, []string{"fraud-alerts-value"}) {
		t.Fatalf("mvno-a's subjects after cdr went back to json: %v, %v", s, err)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

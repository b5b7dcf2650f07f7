package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

func mustParse(t testing.TB, text string) avro.Schema {
	t.Helper()
	s, err := Parse([]byte(text))
	if err != nil {
		t.Fatalf("parse schema: %v\n%s", err, text)
	}
	return s
}

func mustLayout(t testing.TB, s avro.Schema) *Layout {
	t.Helper()
	l, err := NewLayout(s)
	if err != nil {
		t.Fatalf("NewLayout: %v", err)
	}
	return l
}

func mustDecoder(t testing.TB, w avro.Schema, l *Layout) *Decoder {
	t.Helper()
	d, err := NewDecoder(w, l)
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	return d
}

func mustMarshal(t testing.TB, s avro.Schema, v any) []byte {
	t.Helper()
	b, err := avro.Marshal(s, v)
	if err != nil {
		t.Fatalf("avro.Marshal: %v", err)
	}
	return b
}

// keys precomputes `"name":` per field, with commas, as a view would.
func keys(l *Layout) [][]byte {
	out := make([][]byte, len(l.Fields))
	for i, f := range l.Fields {
		var k []byte
		if i > 0 {
			k = append(k, ',')
		}
		out[i] = AppendJSONKey(k, f.Name)
	}
	return out
}

// appendObject writes every field of rec as one JSON object.
func appendObject(dst []byte, keys [][]byte, rec *Record) []byte {
	dst = append(dst, '{')
	for i := range rec.Values {
		dst = append(dst, keys[i]...)
		dst = AppendJSONValue(dst, &rec.Values[i])
	}
	return append(dst, '}')
}

// jsonEqual compares two JSON documents semantically.
func jsonEqual(t testing.TB, got []byte, want string) {
	t.Helper()
	g, err := unmarshalNumber(got)
	if err != nil {
		t.Fatalf("output is not valid JSON: %v\n%s", err, got)
	}
	w, err := unmarshalNumber([]byte(want))
	if err != nil {
		t.Fatalf("bad expectation JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("JSON mismatch\n got: %s\nwant: %s", got, want)
	}
}

// unmarshalNumber decodes JSON keeping numbers as their literal text, so
// int64 extremes and float formatting compare exactly.
func unmarshalNumber(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// CDR fixture used by the benchmark, the allocation test and the fuzzers.

type cdr struct {
	RecordID   string    `avro:"record_id"`
	IMSI       string    `avro:"imsi"`
	MSISDN     string    `avro:"msisdn"`
	IMEI       string    `avro:"imei"`
	MVNOID     string    `avro:"mvno_id"`
	Service    string    `avro:"service"`
	StartTime  time.Time `avro:"start_time"`
	DurationS  int32     `avro:"duration_s"`
	BytesUp    int64     `avro:"bytes_up"`
	BytesDown  int64     `avro:"bytes_down"`
	CellID     string    `avro:"cell_id"`
	Roaming    bool      `avro:"roaming"`
	VisitedMCC *string   `avro:"visited_mcc"`
	Charge     float64   `avro:"charge"`
	Currency   string    `avro:"currency"`
}

func cdrSchema(t testing.TB) avro.Schema {
	t.Helper()
	s, err := ParseFile(os.DirFS("testdata"), "cdr.avsc")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sampleCDR() cdr {
	mcc := "262"
	return cdr{
		RecordID:   "cdr-2026-11-25-000000000042",
		IMSI:       "208150123456789",
		MSISDN:     "+33612345678",
		IMEI:       "356938035643809",
		MVNOID:     "mvno-42",
		Service:    "DATA",
		StartTime:  time.Date(2026, 11, 25, 10, 0, 0, 123e6, time.UTC),
		DurationS:  183,
		BytesUp:    1_234_567,
		BytesDown:  98_765_432,
		CellID:     "208-15-4711-0815",
		Roaming:    true,
		VisitedMCC: &mcc,
		Charge:     0.4375,
		Currency:   "EUR",
	}
}

const sampleCDRJSON = `{"record_id":"cdr-2026-11-25-000000000042","imsi":"208150123456789",
"msisdn":"+33612345678","imei":"356938035643809","mvno_id":"mvno-42","service":"DATA",
"start_time":"2026-11-25T10:00:00.123Z","duration_s":183,"bytes_up":1234567,"bytes_down":98765432,
"cell_id":"208-15-4711-0815","roaming":true,"visited_mcc":"262","charge":0.4375,"currency":"EUR"}`

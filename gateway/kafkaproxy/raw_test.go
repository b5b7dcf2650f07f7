package kafkaproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func metadataRequest() *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	return req
}

func fetchRequest(topic string, partition int32, offset int64, maxWait time.Duration) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = partition, offset, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// TestWrongPasswordFails: a wrong secret is SASL_AUTHENTICATION_FAILED and
// the server closes the connection; franz-go reports the same error.
func TestWrongPasswordFails(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	r := dialRaw(t, ts.addr)
	if code := r.login("key-a", "Pa55-n0t-it"); code != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("login with a wrong secret: code %d, want SASL_AUTHENTICATION_FAILED", code)
	}
	r.expectClosed(2 * time.Second)

	cl := client(t, ts.addr, "key-a", "Pa55-n0t-it")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("franz-go ping with a wrong secret: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if ts.logs.contains("Pa55-n0t-it") {
		t.Error("the secret appears in the log")
	}
	if n := b.logins.Load(); n != 0 {
		t.Errorf("%d logins succeeded", n)
	}
}

// TestSaslHandshakeV0: old Java clients send SaslHandshake v0 and then the
// raw SASL token without a Kafka header; the answer is a raw empty frame.
func TestSaslHandshakeV0(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	for _, tc := range []struct {
		note, secret string
		ok           bool
	}{{"good secret", "secret-a", true}, {"wrong secret", "nope", false}} {
		t.Run(tc.note, func(t *testing.T) {
			r := dialRaw(t, ts.addr)
			hs := kmsg.NewPtrSASLHandshakeRequest()
			hs.Version = 0
			hs.Mechanism = MechanismPlain
			if code := r.roundTrip(hs).(*kmsg.SASLHandshakeResponse).ErrorCode; code != 0 {
				t.Fatalf("handshake: code %d", code)
			}
			tok := []byte("\x00key-a\x00" + tc.secret)
			if _, err := r.c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(tok))), tok...)); err != nil {
				t.Fatal(err)
			}
			if !tc.ok {
				r.expectClosed(2 * time.Second)
				return
			}
			f, err := r.readFrame(5 * time.Second)
			if err != nil || len(f) != 0 {
				t.Fatalf("raw SASL answer %q, %v; want an empty frame", f, err)
			}
			md := r.roundTrip(metadataRequest()).(*kmsg.MetadataResponse)
			if len(md.Topics) != 2 {
				t.Errorf("metadata after v0 login lists %d topics, want 2", len(md.Topics))
			}
		})
	}
}

// TestRevocationClosesConnections: when a partner's Session is done, every
// connection of that partner closes within a second (a long-polling fetch
// included); other partners are untouched.
func TestRevocationClosesConnections(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	r := dialRaw(t, ts.addr)
	if code := r.login("key-b", "secret-b"); code != 0 {
		t.Fatalf("login: %d", code)
	}
	other := dialRaw(t, ts.addr)
	if code := other.login("key-a", "secret-a"); code != 0 {
		t.Fatalf("login: %d", code)
	}
	cl := client(t, ts.addr, "key-b", "secret-b", kgo.ConsumeTopics("cdr"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	cl.PollFetches(ctx) // connects and long-polls
	cancel()
	r.send(fetchRequest("cdr", 0, 200, 10*time.Second)) // at the end: waits
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	b.revoke("mvno-b")
	r.expectClosed(time.Second)
	b.mu.Lock()
	sessions := b.partners["mvno-b"].sessions
	b.mu.Unlock()
	waitFor(t, time.Second-time.Since(start), "every session of the revoked partner to close", func() bool {
		for _, s := range sessions {
			if !s.closed.Load() {
				return false
			}
		}
		return true
	})
	t.Logf("closed %d sessions %s after revocation", len(sessions), time.Since(start))
	if md := other.roundTrip(metadataRequest()).(*kmsg.MetadataResponse); len(md.Topics) != 2 {
		t.Errorf("the other partner's connection: %d topics", len(md.Topics))
	}
	// A new login of the revoked partner fails.
	again := dialRaw(t, ts.addr)
	if code := again.login("key-b", "secret-b"); code != kerr.SaslAuthenticationFailed.Code {
		t.Errorf("login after revocation: code %d", code)
	}
}

// TestThrottleInFetch: Session.Throttle's answer is the Fetch response's
// throttle_time_ms, and the connection pauses for as long.
func TestThrottleInFetch(t *testing.T) {
	b, _ := standardBackend()
	b.setThrottle(250 * time.Millisecond)
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	r := dialRaw(t, ts.addr)
	if code := r.login("key-a", "secret-a"); code != 0 {
		t.Fatalf("login: %d", code)
	}
	resp := r.roundTrip(fetchRequest("cdr", 0, 0, 0)).(*kmsg.FetchResponse)
	if resp.ThrottleMillis != 250 {
		t.Fatalf("throttle_time_ms = %d, want 250", resp.ThrottleMillis)
	}
	if len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatal("no records")
	}
	start := time.Now()
	r.roundTrip(kmsg.NewPtrApiVersionsRequest())
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("the next request was answered after %s; the connection should pause ~250ms", d)
	}
}

// TestFetchErrors: unentitled topics, unknown partitions and out-of-range
// offsets answer per-partition errors with empty (not null) record sets.
func TestFetchErrors(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	r := dialRaw(t, ts.addr)
	if code := r.login("key-b", "secret-b"); code != 0 {
		t.Fatalf("login: %d", code)
	}
	for _, tc := range []struct {
		note      string
		topic     string
		partition int32
		offset    int64
		want      error
	}{
		{"unentitled topic", "fraud-alerts", 0, 0, kerr.TopicAuthorizationFailed},
		{"unknown partition", "cdr", 7, 0, kerr.UnknownTopicOrPartition},
		{"offset past the end", "cdr", 0, 5000, kerr.OffsetOutOfRange},
	} {
		resp := r.roundTrip(fetchRequest(tc.topic, tc.partition, tc.offset, 0)).(*kmsg.FetchResponse)
		p := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(p.ErrorCode); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.note, err, tc.want)
		}
		if p.RecordBatches == nil {
			t.Errorf("%s: record set is null", tc.note)
		}
	}
	// Only filtered rows left (199 is filtered): an empty batch moves the
	// client past them.
	resp := r.roundTrip(fetchRequest("cdr", 0, 199, 0)).(*kmsg.FetchResponse)
	var batch kmsg.RecordBatch
	if err := batch.ReadFrom(resp.Topics[0].Partitions[0].RecordBatches); err != nil {
		t.Fatal(err)
	}
	if batch.FirstOffset != 199 || batch.LastOffsetDelta != 0 || batch.NumRecords != 0 {
		t.Errorf("batch at 199: first %d last delta %d records %d", batch.FirstOffset, batch.LastOffsetDelta, batch.NumRecords)
	}
}

// TestMalformedFrames: each malformed input closes its connection with a
// log line; the server keeps serving others.
func TestMalformedFrames(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}, MaxFrameBytes: 64 << 10})
	header := func(key, version int16) []byte {
		h := binary.BigEndian.AppendUint16(nil, uint16(key))
		h = binary.BigEndian.AppendUint16(h, uint16(version))
		h = binary.BigEndian.AppendUint32(h, 1)
		return binary.BigEndian.AppendUint16(h, 0xffff) // null client id
	}
	frame := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	for _, tc := range []struct {
		note  string
		login bool
		data  []byte
		log   string
	}{
		{"truncated frame", false, append(binary.BigEndian.AppendUint32(nil, 100), make([]byte, 20)...), "frame truncated"},
		{"oversized size before login", false, binary.BigEndian.AppendUint32(nil, 200<<20), "exceeds the limit of 524288 bytes"},
		{"oversized size after login", true, binary.BigEndian.AppendUint32(nil, 1<<20), "exceeds the limit of 65536 bytes"},
		{"negative size", false, binary.BigEndian.AppendUint32(nil, 0xfffffff0), "is negative"},
		{"frame too short for a header", false, frame([]byte{0, 18}), "too short for a request header"},
		{"unknown api key", true, frame(header(999, 0)), "unknown or unsupported api key 999"},
		{"unadvertised api key", true, frame(header(32, 0)), "unknown or unsupported api key 32"},
		{"unsupported version", true, frame(header(1, 99)), "Fetch version 99 is not supported"},
		{"request before login", false, frame(append(header(3, 1), 0xff, 0xff, 0xff, 0xff)), "Metadata before authentication"},
		{"malformed body", true, frame(append(header(1, 11), 1, 2, 3)), "Fetch v11: malformed request"},
		{"second handshake", true, frame(append(header(17, 1), 0, 5, 'P', 'L', 'A', 'I', 'N')), "closing after error response"},
	} {
		t.Run(tc.note, func(t *testing.T) {
			r := dialRaw(t, ts.addr)
			if tc.login {
				if code := r.login("key-a", "secret-a"); code != 0 {
					t.Fatalf("login: %d", code)
				}
			}
			if _, err := r.c.Write(tc.data); err != nil {
				t.Fatal(err)
			}
			if tc.note == "truncated frame" {
				r.c.(*net.TCPConn).CloseWrite()
			}
			// Read whatever the server answers (the second handshake's
			// error) until it closes.
			r.expectClosed(3 * time.Second)
			waitFor(t, 2*time.Second, "log line "+tc.log, func() bool { return ts.logs.contains(tc.log) })
			ok := dialRaw(t, ts.addr)
			if code := ok.login("key-b", "secret-b"); code != 0 {
				t.Fatalf("a well-behaved connection after %s: login code %d", tc.note, code)
			}
		})
	}
}

// TestApiVersionsDowngrade: a version above ours gets a v0 answer with
// UNSUPPORTED_VERSION and our range (KIP-511); ours lists what clients
// need.
func TestApiVersionsDowngrade(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	r := dialRaw(t, ts.addr)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 4
	r.send(req)
	f, err := r.readFrame(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(f[4:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) != 1 || resp.ApiKeys[0].MaxVersion != 3 {
		t.Fatalf("answer to ApiVersions v4: %+v", resp)
	}
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	full := r.roundTrip(req).(*kmsg.ApiVersionsResponse)
	var keys []string
	for _, k := range full.ApiKeys {
		keys = append(keys, kmsg.NameForKey(k.ApiKey))
	}
	for _, need := range []string{"Fetch", "Metadata", "SASLHandshake", "SASLAuthenticate", "JoinGroup", "SyncGroup", "OffsetCommit", "OffsetFetch", "FindCoordinator", "ListOffsets", "Heartbeat", "LeaveGroup", "Produce"} {
		if !strings.Contains(strings.Join(keys, ","), need) {
			t.Errorf("ApiVersions does not advertise %s", need)
		}
	}
}

func TestParseSASL(t *testing.T) {
	for _, tc := range []struct {
		note, mech, msg string
		user, secret    string
		ext             map[string]string
		err             bool
	}{
		{note: "plain", mech: "PLAIN", msg: "\x00key\x00pw", user: "key", secret: "pw"},
		{note: "plain with authzid", mech: "PLAIN", msg: "key\x00key\x00pw", user: "key", secret: "pw"},
		{note: "plain other authzid", mech: "PLAIN", msg: "admin\x00key\x00pw", err: true},
		{note: "plain empty password", mech: "PLAIN", msg: "\x00key\x00", err: true},
		{note: "plain two fields", mech: "PLAIN", msg: "key\x00pw", err: true},
		{note: "oauth", mech: "OAUTHBEARER", msg: "n,,\x01auth=Bearer abc.def.ghi\x01\x01", secret: "abc.def.ghi"},
		{note: "oauth authzid and extension", mech: "OAUTHBEARER", msg: "n,a=us=2Cer,\x01auth=Bearer t\x01traceid=7\x01\x01", user: "us,er", secret: "t", ext: map[string]string{"traceid": "7"}},
		{note: "oauth no token", mech: "OAUTHBEARER", msg: "n,,\x01auth=Bearer \x01\x01", err: true},
		{note: "oauth not bearer", mech: "OAUTHBEARER", msg: "n,,\x01auth=Basic x\x01\x01", err: true},
		{note: "oauth channel binding", mech: "OAUTHBEARER", msg: "p=tls-unique,,\x01auth=Bearer t\x01\x01", err: true},
		{note: "oauth unterminated", mech: "OAUTHBEARER", msg: "n,,\x01auth=Bearer t", err: true},
		{note: "unknown mechanism", mech: "SCRAM-SHA-256", msg: "n,,n=u,r=x", err: true},
	} {
		c, err := parseSASL(tc.mech, []byte(tc.msg))
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v, want error %v", tc.note, err, tc.err)
			continue
		}
		if err == nil && (c.Username != tc.user || c.Secret != tc.secret || len(c.Extensions) != len(tc.ext) || c.Extensions["traceid"] != tc.ext["traceid"]) {
			t.Errorf("%s: %+v", tc.note, c)
		}
	}
}

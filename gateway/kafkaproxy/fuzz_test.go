package kafkaproxy

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	fuzzOnce   sync.Once
	fuzzServer *testServer
)

// FuzzFrames feeds arbitrary bytes to a connection, before or after a
// valid login, and checks that the server neither panics (the panic would
// be logged, and fail the test, or crash the fuzzer) nor stops serving a
// second, well-behaved connection.
func FuzzFrames(f *testing.F) {
	fm := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz"))
	seed := func(login bool, reqs ...kmsg.Request) {
		var b []byte
		for i, r := range reqs {
			b = fm.AppendRequest(b, r, int32(i+1))
		}
		f.Add(login, b)
	}
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "fuzz", "1"
	seed(false, av)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, "OAUTHBEARER"
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.Version, au.SASLAuthBytes = 2, []byte("n,,\x01auth=Bearer token-a\x01\x01")
	seed(false, hs, au, metadataRequest())
	hs0 := kmsg.NewPtrSASLHandshakeRequest()
	hs0.Mechanism = "PLAIN"
	seed(false, hs0)
	seed(true, metadataRequest(), fetchRequest("cdr", 0, 0, 0), fetchRequest("cdr", 2, 150, 10*time.Millisecond))
	jg := kmsg.NewPtrJoinGroupRequest()
	jg.Version, jg.Group, jg.SessionTimeoutMillis, jg.RebalanceTimeoutMillis, jg.ProtocolType = 9, "g", 6000, 1000, "consumer"
	jg.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1}}}
	seed(true, jg)
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Version, oc.Group, oc.Generation = 8, "g", -1
	oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "cdr", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3}}}}
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Version, of.Groups = 8, []kmsg.OffsetFetchRequestGroup{{Group: "g"}}
	seed(true, oc, of)
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks = 9, -1
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "cdr", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: []byte{1, 2}}}}}
	seed(true, pr)
	// Re-authentication (KIP-368) on a logged-in connection: as the same
	// partner, as another, and with another mechanism.
	rh := kmsg.NewPtrSASLHandshakeRequest()
	rh.Version, rh.Mechanism = 1, "PLAIN"
	ra := kmsg.NewPtrSASLAuthenticateRequest()
	ra.Version, ra.SASLAuthBytes = 2, []byte("\x00key-a\x00secret-a")
	rb := kmsg.NewPtrSASLAuthenticateRequest()
	rb.Version, rb.SASLAuthBytes = 2, []byte("\x00key-b\x00secret-b")
	seed(true, rh, ra, metadataRequest())
	lg := kmsg.NewPtrListGroupsRequest()
	lg.Version, lg.StatesFilter = 4, []string{"Stable"}
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Version, dg.Groups, dg.IncludeAuthorizedOperations = 5, []string{"g", ""}, true
	seed(true, jg, lg, dg)
	seed(true, rh, rb)
	seed(true, hs)
	f.Add(false, binary.BigEndian.AppendUint32(nil, 0x7fffffff))
	f.Add(true, []byte{0, 0, 0, 3, 1, 2, 3})

	f.Fuzz(func(t *testing.T, login bool, data []byte) {
		fuzzOnce.Do(func() {
			b, _ := standardBackend()
			// Shared by every iteration of the run; its log is kept in
			// memory only and it ends with the process.
			var err error
			fuzzServer, err = launch(nil, Config{Backend: &reauthBackend{testBackend: b, lifetime: time.Minute}, Offsets: &MemoryOffsets{},
				AuthTimeout: time.Second, MaxFetchWait: 50 * time.Millisecond})
			if err != nil {
				panic(err)
			}
		})
		ts := fuzzServer
		c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := &rawClient{t: t, c: c, f: fm}
		if login {
			if code := r.login("key-a", "secret-a"); code != 0 {
				t.Fatalf("login: %d", code)
			}
		}
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		if ts.logs.contains("panic") {
			t.Fatal("the server panicked on this input")
		}
		ok := dialRaw(t, ts.addr)
		if code := ok.login("key-b", "secret-b"); code != 0 {
			t.Fatalf("a well-behaved connection: login code %d", code)
		}
		if md := ok.roundTrip(metadataRequest()).(*kmsg.MetadataResponse); len(md.Topics) != 1 {
			t.Fatalf("a well-behaved connection: %d topics", len(md.Topics))
		}
	})
}

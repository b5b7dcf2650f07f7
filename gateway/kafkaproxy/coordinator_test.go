package kafkaproxy

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func rawJoin(version int16, group, memberID, protocolType string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.Group, req.MemberID, req.ProtocolType = group, memberID, protocolType
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 1000, 2000
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", []byte("meta")
	req.Protocols = append(req.Protocols, p)
	return req
}

// TestCoordinatorRaw: join paths clients other than franz-go take (v3
// without MEMBER_ID_REQUIRED, v5 with it), leader metadata, SyncGroup,
// inconsistent protocols, and session expiry.
func TestCoordinatorRaw(t *testing.T) {
	b, _ := standardBackend()
	ts := startServer(t, Config{Backend: b, Offsets: &MemoryOffsets{}})
	r := dialRaw(t, ts.addr)
	if code := r.login("key-a", "secret-a"); code != 0 {
		t.Fatalf("login: %d", code)
	}

	// v3: the first join gets a member id at once and completes alone.
	jr := r.roundTrip(rawJoin(3, "g3", "", "consumer")).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.LeaderID != jr.MemberID || len(jr.Members) != 1 || string(jr.Members[0].ProtocolMetadata) != "meta" {
		t.Fatalf("v3 join: %+v", jr)
	}
	// Another protocol type cannot join.
	if code := r.roundTrip(rawJoin(3, "g3", "", "connect")).(*kmsg.JoinGroupResponse).ErrorCode; code != kerr.InconsistentGroupProtocol.Code {
		t.Errorf("join with another protocol type: code %d", code)
	}
	sr := kmsg.NewPtrSyncGroupRequest()
	sr.Version, sr.Group, sr.MemberID, sr.Generation = 3, "g3", jr.MemberID, jr.Generation
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = jr.MemberID, []byte("assignment")
	sr.GroupAssignment = append(sr.GroupAssignment, a)
	if s := r.roundTrip(sr).(*kmsg.SyncGroupResponse); s.ErrorCode != 0 || string(s.MemberAssignment) != "assignment" {
		t.Fatalf("sync: %+v", s)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Version, hb.Group, hb.MemberID, hb.Generation = 3, "g3", jr.MemberID, jr.Generation
	if code := r.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode; code != 0 {
		t.Fatalf("heartbeat: %d", code)
	}
	hb.Generation = 7
	if code := r.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.IllegalGeneration.Code {
		t.Errorf("heartbeat with a wrong generation: %d", code)
	}
	hb.Generation = jr.Generation
	// No heartbeat for longer than the session timeout: the member is gone.
	time.Sleep(1300 * time.Millisecond)
	if code := r.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode; code != kerr.UnknownMemberID.Code {
		t.Errorf("heartbeat after the session timeout: %d, want UNKNOWN_MEMBER_ID", code)
	}

	// v5: MEMBER_ID_REQUIRED, then the join with that id completes.
	jr5 := r.roundTrip(rawJoin(5, "g5", "", "consumer")).(*kmsg.JoinGroupResponse)
	if jr5.ErrorCode != kerr.MemberIDRequired.Code || jr5.MemberID == "" {
		t.Fatalf("first v5 join: %+v", jr5)
	}
	if unknown := r.roundTrip(rawJoin(5, "g5", "made-up", "consumer")).(*kmsg.JoinGroupResponse); unknown.ErrorCode != kerr.UnknownMemberID.Code {
		t.Errorf("join with a made-up member id: code %d", unknown.ErrorCode)
	}
	again := r.roundTrip(rawJoin(5, "g5", jr5.MemberID, "consumer")).(*kmsg.JoinGroupResponse)
	if again.ErrorCode != 0 || again.MemberID != jr5.MemberID || again.LeaderID != jr5.MemberID {
		t.Fatalf("second v5 join: %+v", again)
	}
	lv := kmsg.NewPtrLeaveGroupRequest()
	lv.Version, lv.Group = 5, "g5"
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = jr5.MemberID
	lv.Members = append(lv.Members, m)
	if l := r.roundTrip(lv).(*kmsg.LeaveGroupResponse); l.ErrorCode != 0 || l.Members[0].ErrorCode != 0 {
		t.Errorf("leave: %+v", l)
	}
}

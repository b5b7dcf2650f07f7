package kafkaproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The group coordinator: classic consumer groups (JoinGroup, SyncGroup,
// Heartbeat, LeaveGroup), in memory, namespaced by partner: the key of a
// group is (partner, group id), so two partners using the same group id
// never see each other's members, generations or offsets.
//
// State machine (Kafka's GroupCoordinator, simplified):
//
//	Empty --join--> PreparingRebalance --all joined or rebalance timeout-->
//	CompletingRebalance --leader's SyncGroup--> Stable
//	Stable|CompletingRebalance --join with new metadata, leave, expiry-->
//	PreparingRebalance; PreparingRebalance completing with no member --> Empty
//
// A JoinGroup waits (holding its connection's goroutine, as Kafka holds the
// response) until the round completes; the leader's response carries every
// member's metadata for the chosen protocol, the others' carry none. A
// SyncGroup from a follower waits for the leader's assignments. Members
// expire when no heartbeat, join, sync or commit arrives within their
// session timeout, except while their join or sync is waiting. A first join
// without a member id at v4+ is MEMBER_ID_REQUIRED (KIP-394): the id handed
// out is pending until the member joins with it or its session timeout
// passes.
//
// Not implemented: static membership (group.instance.id is accepted and
// echoed but members are treated as dynamic), KIP-848 groups (not
// advertised), and server-side assignors. DescribeGroups and ListGroups
// read the groups this coordinator holds (summaries).
//
// Concurrency: one mutex guards every group; one janitor goroutine, owned
// by the coordinator and stopped by close, expires members and ends
// rebalance rounds at their deadlines (checked every janitorTick).

type groupState uint8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
)

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable"}[s]
}

const janitorTick = 50 * time.Millisecond

type groupKey struct{ partner, id string }

type coordinator struct {
	cfg *Config

	mu     sync.Mutex
	groups map[groupKey]*group

	stop chan struct{}
	done chan struct{}
}

type group struct {
	key          groupKey
	state        groupState
	generation   int32
	protocolType string
	protocol     string // chosen for the current generation
	leader       string
	members      map[string]*member
	order        []string             // member ids in join order
	pending      map[string]time.Time // MEMBER_ID_REQUIRED ids and their expiry
	deadline     time.Time            // PreparingRebalance: round ends at the latest then
	initialDelay bool                 // the round started from Empty and waits out the delay
}

type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	protocols        []kmsg.JoinGroupRequestProtocol // metadata copied
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	expires          time.Time
	joined           bool            // joined in the current round
	join             chan joinResult // waiting JoinGroup, buffered 1
	sync             chan syncResult // waiting SyncGroup, buffered 1
	assignment       []byte
}

type joinResult struct {
	code         int16
	generation   int32
	protocolType string
	protocol     string
	leader       string
	memberID     string
	members      []kmsg.JoinGroupResponseMember // the leader's only
}

type syncResult struct {
	code         int16
	protocolType string
	protocol     string
	assignment   []byte
}

func newCoordinator(cfg *Config) *coordinator {
	co := &coordinator{cfg: cfg, groups: map[groupKey]*group{}, stop: make(chan struct{}), done: make(chan struct{})}
	go co.janitor()
	return co
}

// close stops the janitor and forgets every group. Waiting joins and syncs
// belong to connections, which the Server closed before.
func (co *coordinator) close() {
	close(co.stop)
	<-co.done
	co.mu.Lock()
	defer co.mu.Unlock()
	for _, g := range co.groups {
		for _, m := range g.members {
			m.reply(joinResult{code: kerr.CoordinatorNotAvailable.Code}, syncResult{code: kerr.CoordinatorNotAvailable.Code})
		}
	}
	clear(co.groups)
}

func (co *coordinator) janitor() {
	defer close(co.done)
	t := time.NewTicker(janitorTick)
	defer t.Stop()
	for {
		select {
		case <-co.stop:
			return
		case now := <-t.C:
			co.mu.Lock()
			for _, g := range co.groups {
				co.expire(g, now)
			}
			co.mu.Unlock()
		}
	}
}

// expire drops members and pending ids past their session timeout and
// ends a rebalance round past its deadline.
func (co *coordinator) expire(g *group, now time.Time) {
	for id, exp := range g.pending {
		if now.After(exp) {
			delete(g.pending, id)
		}
	}
	for _, id := range slices.Clone(g.order) {
		m := g.members[id]
		if !now.After(m.expires) {
			continue
		}
		if m.join != nil || m.sync != nil || (g.state == groupPreparingRebalance && m.joined) {
			m.expires = now.Add(m.sessionTimeout) // kept alive while waiting
			continue
		}
		co.remove(g, m, "session timeout")
	}
	if g.state == groupPreparingRebalance && now.After(g.deadline) {
		co.completeJoin(g)
	}
	co.gc(g)
}

// gc forgets a group with no members and no pending ids.
func (co *coordinator) gc(g *group) {
	if g.state == groupEmpty && len(g.members) == 0 && len(g.pending) == 0 {
		delete(co.groups, g.key)
	}
}

func (m *member) reply(j joinResult, s syncResult) {
	if m.join != nil {
		j.memberID = m.id
		m.join <- j
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- s
		m.sync = nil
	}
}

// remove drops m from g and rebalances what remains.
func (co *coordinator) remove(g *group, m *member, why string) {
	co.cfg.Logger.Debug("kafkaproxy: group member removed", "partner", g.key.partner, "group", g.key.id, "member", m.id, "why", why)
	m.reply(joinResult{code: kerr.UnknownMemberID.Code}, syncResult{code: kerr.UnknownMemberID.Code})
	delete(g.members, m.id)
	g.order = slices.DeleteFunc(g.order, func(id string) bool { return id == m.id })
	switch g.state {
	case groupStable, groupCompletingRebalance:
		co.prepareRebalance(g)
	case groupPreparingRebalance:
		co.maybeCompleteJoin(g)
	}
}

// prepareRebalance starts a new round: waiting syncs are told to rejoin.
func (co *coordinator) prepareRebalance(g *group) {
	if len(g.members) == 0 {
		co.completeJoin(g) // nobody to wait for: straight to Empty
		return
	}
	if g.state == groupEmpty && co.cfg.InitialRebalanceDelay > 0 {
		g.initialDelay = true
	}
	var timeout time.Duration
	for _, m := range g.members {
		m.joined = false
		timeout = max(timeout, m.rebalanceTimeout)
		if m.sync != nil {
			m.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
			m.sync = nil
		}
	}
	if g.initialDelay {
		timeout = min(timeout, co.cfg.InitialRebalanceDelay)
	}
	g.state = groupPreparingRebalance
	g.deadline = time.Now().Add(timeout)
}

func (co *coordinator) maybeCompleteJoin(g *group) {
	if g.initialDelay {
		return // the janitor completes the round at the deadline
	}
	for _, m := range g.members {
		if !m.joined {
			return
		}
	}
	co.completeJoin(g)
}

// completeJoin ends a round: members that did not join are dropped, the
// generation moves on, a protocol and a leader are chosen and every
// waiting JoinGroup is answered.
func (co *coordinator) completeJoin(g *group) {
	g.initialDelay = false
	for _, id := range slices.Clone(g.order) {
		if m := g.members[id]; !m.joined {
			m.reply(joinResult{code: kerr.UnknownMemberID.Code}, syncResult{code: kerr.UnknownMemberID.Code})
			delete(g.members, id)
			g.order = slices.DeleteFunc(g.order, func(x string) bool { return x == id })
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state, g.protocol, g.protocolType, g.leader = groupEmpty, "", "", ""
		return
	}
	g.state = groupCompletingRebalance
	g.protocol = g.chooseProtocol()
	if _, ok := g.members[g.leader]; !ok {
		g.leader = g.order[0]
	}
	now := time.Now()
	for _, id := range g.order {
		m := g.members[id]
		m.joined = false
		m.assignment = nil
		m.expires = now.Add(m.sessionTimeout)
		if m.join != nil {
			m.reply(g.joinResult(m), syncResult{})
		}
	}
}

// joinResult is the JoinGroup answer of the current generation for m.
func (g *group) joinResult(m *member) joinResult {
	r := joinResult{generation: g.generation, protocolType: g.protocolType, protocol: g.protocol, leader: g.leader, memberID: m.id}
	if m.id == g.leader {
		r.members = make([]kmsg.JoinGroupResponseMember, 0, len(g.order))
		for _, id := range g.order {
			o := g.members[id]
			jm := kmsg.NewJoinGroupResponseMember()
			jm.MemberID, jm.InstanceID = o.id, o.instanceID
			jm.ProtocolMetadata = o.metadata(g.protocol)
			r.members = append(r.members, jm)
		}
	}
	return r
}

func (m *member) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return []byte{}
}

// chooseProtocol picks the protocol every member supports that most
// members prefer (Kafka's vote); ties go to the leader's preference order.
func (g *group) chooseProtocol() string {
	var candidates []string
	first := g.members[g.order[0]]
	for _, p := range first.protocols {
		all := true
		for _, m := range g.members {
			if !m.supports(p.Name) {
				all = false
				break
			}
		}
		if all {
			candidates = append(candidates, p.Name)
		}
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (m *member) supports(protocol string) bool {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return true
		}
	}
	return false
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata)
	})
}

func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:])
}

// joinRequest is what JoinGroup asks, with bytes copied out of the frame.
type joinRequest struct {
	partner, group   string
	memberID         string
	instanceID       *string
	clientID, host   string
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	requireKnownID   bool // v4+: a first join gets MEMBER_ID_REQUIRED
}

// join handles a JoinGroup and waits for its answer.
func (co *coordinator) join(ctx context.Context, r joinRequest) joinResult {
	cfg := co.cfg
	if r.group == "" {
		return joinResult{code: kerr.InvalidGroupID.Code, memberID: r.memberID}
	}
	if r.sessionTimeout < cfg.MinSessionTimeout || r.sessionTimeout > cfg.MaxSessionTimeout {
		return joinResult{code: kerr.InvalidSessionTimeout.Code, memberID: r.memberID}
	}
	if r.protocolType == "" || len(r.protocols) == 0 {
		return joinResult{code: kerr.InconsistentGroupProtocol.Code, memberID: r.memberID}
	}
	co.mu.Lock()
	key := groupKey{r.partner, r.group}
	g := co.groups[key]
	if g == nil {
		if r.memberID != "" {
			co.mu.Unlock()
			return joinResult{code: kerr.UnknownMemberID.Code, memberID: r.memberID}
		}
		g = &group{key: key, members: map[string]*member{}, pending: map[string]time.Time{}}
		co.groups[key] = g
	}
	if len(g.members) > 0 {
		if r.protocolType != g.protocolType {
			co.mu.Unlock()
			return joinResult{code: kerr.InconsistentGroupProtocol.Code, memberID: r.memberID}
		}
		ok := false
		for _, p := range r.protocols {
			all := true
			for _, m := range g.members {
				if m.id != r.memberID && !m.supports(p.Name) {
					all = false
					break
				}
			}
			ok = ok || all
		}
		if !ok {
			co.mu.Unlock()
			return joinResult{code: kerr.InconsistentGroupProtocol.Code, memberID: r.memberID}
		}
	}

	if r.memberID == "" {
		id := newMemberID(r.clientID)
		if r.requireKnownID {
			g.pending[id] = time.Now().Add(r.sessionTimeout)
			co.mu.Unlock()
			return joinResult{code: kerr.MemberIDRequired.Code, memberID: id, generation: -1}
		}
		r.memberID = id
		g.pending[id] = time.Now().Add(r.sessionTimeout) // joins right below
	}
	m := g.members[r.memberID]
	if m == nil {
		if _, ok := g.pending[r.memberID]; !ok {
			co.mu.Unlock()
			return joinResult{code: kerr.UnknownMemberID.Code, memberID: r.memberID}
		}
		delete(g.pending, r.memberID)
		m = &member{id: r.memberID}
		g.members[m.id] = m
		g.order = append(g.order, m.id)
	} else if m.join != nil {
		// A retried join replaces the one still waiting.
		m.join <- joinResult{code: kerr.UnknownMemberID.Code, memberID: m.id}
		m.join = nil
	}
	changed := !sameProtocols(m.protocols, r.protocols)
	m.instanceID, m.clientID, m.clientHost = r.instanceID, r.clientID, r.host
	m.protocols = r.protocols
	m.sessionTimeout, m.rebalanceTimeout = r.sessionTimeout, r.rebalanceTimeout
	m.expires = time.Now().Add(r.sessionTimeout)
	g.protocolType = r.protocolType

	ch := make(chan joinResult, 1)
	switch g.state {
	case groupStable, groupCompletingRebalance:
		if !changed && (g.state == groupCompletingRebalance || m.id != g.leader) {
			// Nothing new: answer with the current generation.
			res := g.joinResult(m)
			co.mu.Unlock()
			return res
		}
		co.prepareRebalance(g)
	case groupEmpty:
		co.prepareRebalance(g)
	}
	m.joined = true
	m.join = ch
	co.maybeCompleteJoin(g)
	co.mu.Unlock()

	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		co.mu.Lock()
		if m.join == ch {
			m.join = nil // the member stays joined; its answer is lost with the connection
		}
		co.mu.Unlock()
		select {
		case res := <-ch:
			return res
		default:
		}
		return joinResult{code: kerr.RebalanceInProgress.Code, memberID: m.id}
	}
}

// lookup returns the group and member or an error code.
func (co *coordinator) lookup(partner, groupID, memberID string, generation int32) (*group, *member, int16) {
	g := co.groups[groupKey{partner, groupID}]
	if g == nil {
		return nil, nil, kerr.UnknownMemberID.Code
	}
	m := g.members[memberID]
	if m == nil {
		return g, nil, kerr.UnknownMemberID.Code
	}
	if generation != g.generation {
		return g, m, kerr.IllegalGeneration.Code
	}
	return g, m, 0
}

// syncRequest is what SyncGroup asks, with assignments copied.
type syncRequest struct {
	partner, group, memberID string
	generation               int32
	protocolType, protocol   *string // v5+
	assignments              map[string][]byte
}

func (co *coordinator) sync(ctx context.Context, r syncRequest) syncResult {
	co.mu.Lock()
	g, m, code := co.lookup(r.partner, r.group, r.memberID, r.generation)
	if code != 0 {
		co.mu.Unlock()
		return syncResult{code: code}
	}
	if (r.protocolType != nil && *r.protocolType != g.protocolType) || (r.protocol != nil && *r.protocol != g.protocol) {
		co.mu.Unlock()
		return syncResult{code: kerr.InconsistentGroupProtocol.Code}
	}
	m.expires = time.Now().Add(m.sessionTimeout)
	res := syncResult{protocolType: g.protocolType, protocol: g.protocol}
	switch g.state {
	case groupPreparingRebalance:
		co.mu.Unlock()
		return syncResult{code: kerr.RebalanceInProgress.Code}
	case groupStable:
		res.assignment = m.assignment
		co.mu.Unlock()
		return res
	}
	// CompletingRebalance.
	if m.id == g.leader {
		for id, a := range r.assignments {
			if o := g.members[id]; o != nil {
				o.assignment = a
			}
		}
		g.state = groupStable
		now := time.Now()
		for _, o := range g.members {
			o.expires = now.Add(o.sessionTimeout)
			if o.sync != nil {
				o.sync <- syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: o.assignment}
				o.sync = nil
			}
		}
		res.assignment = m.assignment
		co.mu.Unlock()
		return res
	}
	if m.sync != nil {
		m.sync <- syncResult{code: kerr.RebalanceInProgress.Code}
	}
	ch := make(chan syncResult, 1)
	m.sync = ch
	co.mu.Unlock()
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		co.mu.Lock()
		if m.sync == ch {
			m.sync = nil
		}
		co.mu.Unlock()
		select {
		case res := <-ch:
			return res
		default:
		}
		return syncResult{code: kerr.RebalanceInProgress.Code}
	}
}

func (co *coordinator) heartbeat(partner, groupID, memberID string, generation int32) int16 {
	co.mu.Lock()
	defer co.mu.Unlock()
	g, m, code := co.lookup(partner, groupID, memberID, generation)
	if code != 0 {
		return code
	}
	m.expires = time.Now().Add(m.sessionTimeout)
	if g.state == groupPreparingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// leave removes members; the answer is one code per member id.
func (co *coordinator) leave(partner, groupID string, memberIDs []string) []int16 {
	co.mu.Lock()
	defer co.mu.Unlock()
	codes := make([]int16, len(memberIDs))
	g := co.groups[groupKey{partner, groupID}]
	for i, id := range memberIDs {
		if g == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		if _, ok := g.pending[id]; ok {
			delete(g.pending, id)
			continue
		}
		m := g.members[id]
		if m == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		co.remove(g, m, "left")
	}
	if g != nil {
		co.gc(g)
	}
	return codes
}

// checkCommit says whether a member may commit offsets for the group now:
// generation -1 commits (admin tools, manual assignment) are allowed only
// when the group has no members.
func (co *coordinator) checkCommit(partner, groupID, memberID string, generation int32) int16 {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.groups[groupKey{partner, groupID}]
	if generation < 0 && memberID == "" {
		if g != nil && len(g.members) > 0 {
			return kerr.UnknownMemberID.Code
		}
		return 0
	}
	g, m, code := co.lookup(partner, groupID, memberID, generation)
	if code != 0 {
		return code
	}
	if g.state == groupCompletingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	m.expires = time.Now().Add(m.sessionTimeout)
	return 0
}

// groupSummary is a group as ListGroups and DescribeGroups show it.
type groupSummary struct {
	id, state, protocolType, protocol string
	members                           []kmsg.DescribeGroupsResponseGroupMember
}

// summaries returns partner's groups this coordinator holds, by group id.
func (co *coordinator) summaries(partner string, ids ...string) map[string]groupSummary {
	co.mu.Lock()
	defer co.mu.Unlock()
	out := map[string]groupSummary{}
	for k, g := range co.groups {
		if k.partner != partner || (len(ids) > 0 && !slices.Contains(ids, k.id)) {
			continue
		}
		s := groupSummary{id: k.id, state: g.state.String(), protocolType: g.protocolType, protocol: g.protocol}
		for _, id := range g.order {
			m := g.members[id]
			if m == nil {
				continue
			}
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
			dm.ProtocolMetadata, dm.MemberAssignment = []byte{}, bytes.Clone(m.assignment)
			if dm.MemberAssignment == nil {
				dm.MemberAssignment = []byte{}
			}
			for _, p := range m.protocols {
				if p.Name == g.protocol {
					dm.ProtocolMetadata = bytes.Clone(p.Metadata)
				}
			}
			s.members = append(s.members, dm)
		}
		out[k.id] = s
	}
	return out
}

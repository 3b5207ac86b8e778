package discovery

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/miekg/dns"
)

// scaleService is an advertising Service (not running) whose table holds
// n peers heard on eth0 at t0, with the runState its loop would have.
func scaleService(t testing.TB, n int) (*Service, *runState, *ifState) {
	t.Helper()
	s, err := New(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := range n {
		z := peerZone("peer"+strconv.Itoa(i), "id"+strconv.Itoa(i), 4000, 120, "10.77.0."+strconv.Itoa(i+2))
		src := netip.MustParseAddr("10.77.0." + strconv.Itoa(i+2))
		s.table.apply(wire(t, z.announcement()), "eth0", src, t0)
	}
	st := &ifState{info: ifaceInfo{Name: "eth0", Index: 2, MTU: 1500, Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24")}}, v4: true}
	rs := &runState{ifs: map[int]*ifState{2: st}, start: t0, queryDelay: time.Second, nextPoll: t0.Add(time.Hour),
		partial: map[partialKey]*partialQuery{}}
	return s, rs, st
}

// TestKnownAnswersSplitWithTC pins the fragments seen at a hundred agents:
// a query listing 99 known answers went out as one 2.5 KB message, in IP
// fragments. Now it is split into messages that each fit an unfragmented
// packet, all but the last with the TC bit, the question in the first,
// every known answer in one of them (RFC 6762 §7.2).
func TestKnownAnswersSplitWithTC(t *testing.T) {
	s, _, st := scaleService(t, 99)
	msgs := s.query(st, t0.Add(time.Second), false)
	if len(msgs) < 2 {
		t.Fatalf("99 known answers went out in %d message", len(msgs))
	}
	seen := map[string]bool{}
	for i, m := range msgs {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1452 {
			t.Errorf("message %d is %d bytes, more than fits an unfragmented IPv6 packet on Ethernet (1452)", i, len(b))
		}
		if last := i == len(msgs)-1; m.Truncated == last {
			t.Errorf("message %d of %d: TC %v", i+1, len(msgs), m.Truncated)
		}
		if (i == 0) != (len(m.Question) == 1) {
			t.Errorf("message %d has %d questions", i, len(m.Question))
		}
		if m.Id != s.queryID {
			t.Errorf("message %d has ID %d, not our query ID", i, m.Id)
		}
		for _, rr := range m.Answer {
			seen[rr.(*dns.PTR).Ptr] = true
		}
	}
	if len(seen) != 99 {
		t.Errorf("%d known answers across the messages, want 99", len(seen))
	}
}

// TestSplitQueryOneMessageWhenItFits: a short known-answer list is one
// message without TC.
func TestSplitQueryOneMessageWhenItFits(t *testing.T) {
	q := browseQuery(nil, false)
	msgs := splitQuery(q.Question, []dns.RR{knownPTR("a (1111)", 100), knownPTR("b (2222)", 100)}, 1452)
	if len(msgs) != 1 || msgs[0].Truncated || len(msgs[0].Answer) != 2 {
		t.Errorf("got %d messages, first TC %v", len(msgs), msgs[0].Truncated)
	}
}

// ourPTR is the PTR record the service publishes, as a known answer.
func ourPTR(s *Service) dns.RR { return knownPTR(s.instance, uint32(ServiceTTL/time.Second)) }

// TestTruncatedQueryWaitsForKnownAnswers: a query with the TC bit is not
// answered at once; the known answers of the packets that follow it count
// (ours among them: no answer), and without them we answer 400-500 ms
// later (RFC 6762 §7.2).
func TestTruncatedQueryWaitsForKnownAnswers(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	src := netip.MustParseAddrPort("10.77.0.9:5353")
	first := func() *dns.Msg {
		m := browseQuery([]dns.RR{knownPTR("other (1234)", 120)}, false)
		m.Truncated = true
		return m
	}
	s.takeQuery(rs, st, first(), src, t0)
	if st.answerPending[0] {
		t.Fatal("a truncated query was answered before its known answers came")
	}
	rest := new(dns.Msg)
	rest.Answer = []dns.RR{ourPTR(s)}
	s.takeQuery(rs, st, rest, src, t0.Add(10*time.Millisecond))
	if st.answerPending[0] || len(rs.partial) != 0 {
		t.Errorf("answered a query whose second packet listed our record (pending %v, partial %d)", st.answerPending[0], len(rs.partial))
	}

	// The same query whose rest never comes is answered after 400-500 ms.
	s.takeQuery(rs, st, first(), src, t0)
	pq := rs.partial[partialKey{src, 0}]
	if pq == nil {
		t.Fatal("truncated query not held")
	}
	if d := pq.due.Sub(t0); d < 400*time.Millisecond || d > 500*time.Millisecond {
		t.Errorf("waits %v for the rest, want 400-500ms", d)
	}
	s.due(rs, pq.due)
	if !st.answerPending[0] {
		t.Error("not answered once the wait was over")
	}
}

// TestTruncatedQueriesOfOneSourceCapped: one source address holds at most
// maxPartialPerSource of the slots for truncated queries, whatever query
// IDs it sends; the rest are answered without waiting, and another
// source still gets a slot.
func TestTruncatedQueriesOfOneSourceCapped(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	src := netip.MustParseAddrPort("10.77.0.9:5353")
	for id := range uint16(maxPartialPerSource + 3) {
		m := browseQuery([]dns.RR{knownPTR("other (1234)", 120)}, false)
		m.Truncated, m.Id = true, id+1
		s.takeQuery(rs, st, m, src, t0)
	}
	if n := rs.partialFrom(src.Addr()); n != maxPartialPerSource {
		t.Errorf("one source holds %d slots, want %d", n, maxPartialPerSource)
	}
	if !st.answerPending[0] {
		t.Error("the truncated queries beyond the cap were not answered at once")
	}
	m := browseQuery(nil, false)
	m.Truncated = true
	s.takeQuery(rs, st, m, netip.MustParseAddrPort("10.77.0.10:5353"), t0)
	if rs.partialFrom(netip.MustParseAddr("10.77.0.10")) != 1 {
		t.Error("another source got no slot")
	}
}

// TestTruncatedQueriesOfTwoAgentsOnOneHost: agents on one host (users of
// one machine) send from one address and port, so the rest of one's
// truncated query must not be taken for the rest of another's (RFC 6762
// §7.2 ties them by source; each agent keeps its query ID in all the
// packets of a query). Alice's rest, which listed us, was appended to
// bob's query, which had replaced hers, and bob, who lacked us, got no
// answer from us.
func TestTruncatedQueriesOfTwoAgentsOnOneHost(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	src := netip.MustParseAddrPort("10.77.0.9:5353")
	first := func(id uint16) *dns.Msg {
		m := browseQuery([]dns.RR{knownPTR("other (1234)", 120)}, false)
		m.Id, m.Truncated = id, true
		return m
	}
	s.takeQuery(rs, st, first(1), src, t0)                       // alice's
	s.takeQuery(rs, st, first(2), src, t0.Add(time.Millisecond)) // bob's
	rest := new(dns.Msg)
	rest.Id = 1
	rest.Answer = []dns.RR{ourPTR(s)} // alice knows us
	s.takeQuery(rs, st, rest, src, t0.Add(2*time.Millisecond))
	if st.answerPending[0] {
		t.Fatal("answered alice's query, which lists us")
	}
	if len(rs.partial) != 1 {
		t.Errorf("%d truncated queries wait for their rest, want bob's", len(rs.partial))
	}
	// Bob's rest never comes: his query is answered after 400-500 ms.
	s.due(rs, t0.Add(time.Second))
	if !st.answerPending[0] {
		t.Error("bob's query, which does not list us, got no answer")
	}
}

// TestAnswersDelayedAndAggregated: multicast answers wait a random 20-120
// ms, and queries heard meanwhile get the same single answer (RFC 6762
// §6).
func TestAnswersDelayedAndAggregated(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	for i := range 5 {
		src := netip.MustParseAddrPort("10.77.0." + strconv.Itoa(10+i) + ":5353")
		s.takeQuery(rs, st, browseQuery(nil, false), src, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if !st.answerPending[0] {
		t.Fatal("no answer pending")
	}
	if d := st.answerAt[0].Sub(t0); d < 20*time.Millisecond || d > 120*time.Millisecond {
		t.Errorf("answer delayed %v, want 20-120ms", d)
	}
	ptrs := 0
	for _, rr := range st.answerRRs[0] {
		if rr.Header().Rrtype == dns.TypePTR {
			ptrs++
		}
	}
	if ptrs != 1 {
		t.Errorf("five queries make a pending answer with %d PTR records, want 1", ptrs)
	}
}

// TestDuplicateAnswerSuppressed: a pending answer another responder sends
// first is not sent again (RFC 6762 §7.4).
func TestDuplicateAnswerSuppressed(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	s.takeQuery(rs, st, browseQuery(nil, false), netip.MustParseAddrPort("10.77.0.10:5353"), t0)
	resp := responseMsg()
	resp.Answer = []dns.RR{ourPTR(s)}
	s.suppressDuplicateAnswers(st, resp, netip.MustParseAddrPort("10.77.0.11:5353"))
	if st.answerPending[0] {
		t.Errorf("answer still pending after another responder sent it: %v", st.answerRRs[0])
	}
}

// TestDuplicateQuestionSuppressed: another host's query that lists only
// known answers we would list too (or our own record) counts as our next
// query; one that lists a record we do not hold does not (RFC 6762 §7.3).
// Without this every agent asked on its own schedule.
func TestDuplicateQuestionSuppressed(t *testing.T) {
	s, rs, st := scaleService(t, 3)
	now := t0.Add(10 * time.Second)
	rs.nextQuery, rs.queryDelay = now.Add(time.Second), 8*time.Second
	rs.refreshPending = true
	// peer2 (10.77.0.4) asks, listing peer1 and us.
	sub := browseQuery([]dns.RR{knownPTR(InstanceName("peer1", "id1"), 120), ourPTR(s)}, false)
	s.takeQuery(rs, st, sub, netip.MustParseAddrPort("10.77.0.4:5353"), now)
	if !rs.nextQuery.Equal(now.Add(8*time.Second)) || rs.refreshPending {
		t.Errorf("after a duplicate question: next query %v after it, refresh pending %v; want 8s, false", rs.nextQuery.Sub(now), rs.refreshPending)
	}
	rs.nextQuery, rs.refreshPending = now.Add(time.Second), true
	super := browseQuery([]dns.RR{knownPTR("stranger (9999)", 120)}, false)
	s.takeQuery(rs, st, super, netip.MustParseAddrPort("10.77.0.3:5353"), now)
	if !rs.nextQuery.Equal(now.Add(time.Second)) || !rs.refreshPending {
		t.Error("a query listing a record we lack suppressed ours")
	}
	// A known agent's query that lists nothing: all answer it.
	s.takeQuery(rs, st, browseQuery(nil, false), netip.MustParseAddrPort("10.77.0.4:5353"), now)
	if !rs.nextQuery.Equal(now.Add(16*time.Second)) || rs.refreshPending {
		t.Errorf("after a query listing no known answer: next query %v after it, refresh pending %v; want 16s, false", rs.nextQuery.Sub(now), rs.refreshPending)
	}
	// Its asker does not answer it: a query from a source we hold no
	// records of (an agent that announced before we started), or from
	// this host's own address (any agent beside us), does not stand for
	// ours, or we would not learn of its asker until our cache refresh.
	for _, src := range []string{"10.77.0.99:5353", "10.77.0.1:5353"} {
		rs.nextQuery, rs.refreshPending = now.Add(time.Second), true
		s.takeQuery(rs, st, browseQuery([]dns.RR{ourPTR(s)}, false), netip.MustParseAddrPort(src), now)
		if !rs.nextQuery.Equal(now.Add(time.Second)) || !rs.refreshPending {
			t.Errorf("a query from %s, whose asker we lack, suppressed ours", src)
		}
	}
}

// TestQueryOfAgentBesideKnownOneNotOurs: two agents on one host (two
// users of one machine) send from one address. A query from it that
// lists every instance we hold from there was asked by one we lack (no
// agent lists itself): it does not stand for ours, or we would not learn
// of its asker until our cache refresh. One that leaves out exactly one
// of them was asked by that one, and does.
func TestQueryOfAgentBesideKnownOneNotOurs(t *testing.T) {
	s, rs, st := scaleService(t, 1) // peer0 at 10.77.0.2
	now := t0.Add(10 * time.Second)
	src := netip.MustParseAddrPort("10.77.0.2:5353")
	peer0 := knownPTR(InstanceName("peer0", "id0"), 120)
	rs.nextQuery, rs.queryDelay, rs.refreshPending = now.Add(time.Second), 8*time.Second, true
	s.takeQuery(rs, st, browseQuery([]dns.RR{peer0, ourPTR(s)}, false), src, now)
	if !rs.nextQuery.Equal(now.Add(time.Second)) || !rs.refreshPending {
		t.Error("a query listing the one agent we hold at its source suppressed ours")
	}
	rs.nextQuery, rs.queryDelay, rs.refreshPending = now.Add(time.Second), 8*time.Second, true
	s.takeQuery(rs, st, browseQuery([]dns.RR{ourPTR(s)}, false), src, now)
	if !rs.nextQuery.Equal(now.Add(8*time.Second)) || rs.refreshPending {
		t.Error("a query leaving out the one agent we hold at its source did not count as ours")
	}
	// A second agent at the same address.
	z := peerZone("peer9", "id9", 4009, 120, "10.77.0.2")
	s.table.apply(wire(t, z.announcement()), "eth0", src.Addr(), t0)
	peer9 := knownPTR(InstanceName("peer9", "id9"), 120)
	for _, c := range []struct {
		known []dns.RR
		ours  bool
	}{
		{[]dns.RR{peer9, ourPTR(s)}, true},         // peer0 asks
		{[]dns.RR{peer0, ourPTR(s)}, true},         // peer9 asks
		{[]dns.RR{peer0, peer9, ourPTR(s)}, false}, // a third we lack asks
		{[]dns.RR{ourPTR(s)}, false},               // peer0 or peer9, or another who knows neither
	} {
		rs.nextQuery, rs.queryDelay, rs.refreshPending = now.Add(time.Second), 8*time.Second, true
		s.takeQuery(rs, st, browseQuery(c.known, false), src, now)
		if got := !rs.refreshPending; got != c.ours {
			t.Errorf("a query from the address of peer0 and peer9 listing %v: counted as ours %v, want %v", c.known, got, c.ours)
		}
	}
}

// TestQueryBackoffDoublesToAnHour: continuous browsing asks at 1 s, 2 s,
// 4 s ... and the interval stops growing at an hour (RFC 6762 §5.2), not
// at a minute, when every agent re-asked for everything.
func TestQueryBackoffDoublesToAnHour(t *testing.T) {
	s, rs, _ := scaleService(t, 0)
	now := t0
	var gaps []time.Duration
	for range 14 {
		s.planQuery(rs, now, false)
		gaps = append(gaps, rs.nextQuery.Sub(now))
		now = rs.nextQuery
	}
	if gaps[0] != time.Second || gaps[1] != 2*time.Second || gaps[2] != 4*time.Second {
		t.Errorf("first intervals %v, want 1s 2s 4s", gaps[:3])
	}
	if last := gaps[len(gaps)-1]; last != time.Hour {
		t.Errorf("interval after 14 queries %v, want the one hour cap", last)
	}
}

// TestReceiveBufferLarge: the sockets ask for a receive buffer large
// enough for the answers of hundreds of responders at once; the kernel's
// default overflowed at a hundred agents.
func TestReceiveBufferLarge(t *testing.T) {
	h := netlab.Single(t)
	err := h.Do(func() error {
		socks, err := openSockets(0)
		if err != nil {
			return err
		}
		defer socks.close()
		if n := recvBufferSize(socks.c4); n < recvBuffer {
			t.Errorf("IPv4 socket receive buffer %d, want at least %d", n, recvBuffer)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServiceRecordsLiveLong: our PTR and TXT carry 75 minutes (RFC 6762
// §10, as avahi), the host records SRV, A and AAAA the configured TTL.
func TestServiceRecordsLiveLong(t *testing.T) {
	s, _, st := scaleService(t, 0)
	for _, rr := range s.zoneFor(st.info).all() {
		want := uint32(DefaultTTL / time.Second)
		if tp := rr.Header().Rrtype; tp == dns.TypePTR || tp == dns.TypeTXT {
			want = uint32(ServiceTTL / time.Second)
		}
		if rr.Header().Ttl != want {
			t.Errorf("%s has TTL %d, want %d", dns.TypeToString[rr.Header().Rrtype], rr.Header().Ttl, want)
		}
	}
}

// longZone is a peer's zone with 75-minute PTR and TXT records and
// 120 s host records, as agents publish them.
func longZone() *zone {
	z := peerZone("bob", "b0b0b0b0", 4000, 120, "10.77.0.2")
	z.serviceTTL = uint32(ServiceTTL / time.Second)
	return z
}

// TestKilledPeerGoesWithItsSRV: a peer heard twice (so its long TTLs are
// believed) that then dies without a goodbye leaves the table when its
// 120 s SRV runs out, not when its 75-minute PTR does.
func TestKilledPeerGoesWithItsSRV(t *testing.T) {
	tb := newTable("")
	z := longZone()
	tb.apply(wire(t, z.announcement()), "eth0", src0, t0)
	tb.apply(wire(t, z.announcement()), "eth0", src0, t0.Add(time.Second))
	if evs := tb.expire(t0.Add(120 * time.Second)); len(evs) != 0 {
		t.Errorf("expired before its SRV: %v", evs)
	}
	evs := tb.expire(t0.Add(121 * time.Second))
	if len(evs) != 1 || evs[0].Kind != PeerDown {
		t.Errorf("at its SRV's end: %v, want one peer down", evs)
	}
}

// TestKnownAnswersFollowSRV: a peer is listed as a known answer, with its
// PTR's seconds left (so that its responder, whose PTR says 75 minutes,
// stays quiet), until its SRV is past half its TTL; then it is left out,
// so it answers and its SRV is refreshed.
func TestKnownAnswersFollowSRV(t *testing.T) {
	tb := newTable("")
	z := longZone()
	tb.apply(wire(t, z.announcement()), "eth0", src0, t0)
	tb.apply(wire(t, z.announcement()), "eth0", src0, t0.Add(time.Second))
	known := tb.known("eth0", t0.Add(30*time.Second))
	ttl, ok := known[z.instance]
	if !ok || ttl < uint32(ServiceTTL/time.Second)/2 {
		t.Errorf("30 s after: known answers %v, want %q with more than half of 4500 s", known, z.instance)
	}
	if known := tb.known("eth0", t0.Add(62*time.Second)); len(known) != 0 {
		t.Errorf("with its SRV past half: known answers %v, want none", known)
	}
}

// TestUnresolvedAsksForMissingRecords: avahi's reflector answers a PTR
// question from its cache with the PTR alone; the table then says what to
// ask for (SRV and TXT; then addresses with the SRV), at most every 250
// ms and three times per record.
func TestUnresolvedAsksForMissingRecords(t *testing.T) {
	tb := newTable("")
	z := longZone()
	bare := responseMsg()
	bare.Answer = []dns.RR{z.ptr()}
	tb.apply(wire(t, bare), "eth0", src0, t0)
	needs := tb.unresolved("eth0", t0)
	if len(needs) != 1 || !needs[0].srv || !needs[0].txt || needs[0].addrs {
		t.Fatalf("after a bare PTR: %+v, want SRV and TXT asked for", needs)
	}
	if n := tb.unresolved("eth0", t0.Add(100*time.Millisecond)); len(n) != 0 {
		t.Errorf("asked again after 100 ms: %+v", n)
	}
	noAddr := responseMsg()
	noAddr.Answer = []dns.RR{z.srv(), z.txtRR()}
	tb.apply(wire(t, noAddr), "eth0", src0, t0.Add(200*time.Millisecond))
	needs = tb.unresolved("eth0", t0.Add(250*time.Millisecond))
	if len(needs) != 1 || !needs[0].addrs || needs[0].host != lowerASCII(z.hostName()) {
		t.Fatalf("after SRV and TXT without addresses: %+v, want addresses of %s", needs, z.hostName())
	}
	tb.unresolved("eth0", t0.Add(500*time.Millisecond))
	if n := tb.unresolved("eth0", t0.Add(time.Second)); len(n) != 0 {
		t.Errorf("asked a fourth time: %+v", n)
	}
}

// TestLoneAddressCompletesRecordWithoutAddresses: the reflector answers
// our question for a host's addresses with the address records alone:
// they complete a record of the same source that has none, but a lone
// address record never changes a peer's addresses.
func TestLoneAddressCompletesRecordWithoutAddresses(t *testing.T) {
	tb := newTable("")
	z := longZone()
	noAddr := responseMsg()
	noAddr.Answer = []dns.RR{z.ptr(), z.srv(), z.txtRR()}
	tb.apply(wire(t, noAddr), "eth0", src0, t0)
	lone := func(ip string) *dns.Msg {
		m := responseMsg()
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: z.hostName(), Rrtype: dns.TypeA, Class: dns.ClassINET | cacheFlush, Ttl: 120}, A: netip.MustParseAddr(ip).AsSlice()}}
		return m
	}
	tb.apply(wire(t, lone("10.77.1.3")), "eth0", src0, t0.Add(100*time.Millisecond))
	ps := tb.snapshot()
	if len(ps) != 1 || !ps[0].Complete() || ps[0].Addrs[0].Addr() != netip.MustParseAddr("10.77.1.3") {
		t.Fatalf("after the lone A: %v, want bob complete at 10.77.1.3", ps)
	}
	if evs := tb.apply(wire(t, lone("10.66.6.6")), "eth0", src0, t0.Add(2*time.Second)); len(evs) != 0 {
		t.Errorf("a second lone A changed the peer: %v", evs)
	}
}

// TestKnownAnswerListsClaimedTTL: a record heard once is kept at most 2
// minutes, but listed as a known answer with what its PTR says (75
// minutes), so its responder does not answer every query of ours (a
// one-shot browse's second query made every agent answer again).
func TestKnownAnswerListsClaimedTTL(t *testing.T) {
	tb := newTable("")
	z := longZone()
	tb.apply(wire(t, z.announcement()), "eth0", src0, t0)
	ttl := tb.known("eth0", t0.Add(250*time.Millisecond))[z.instance]
	if !knownAnswer(z.ptr(), []dns.RR{knownPTR(z.instance, ttl)}) {
		t.Errorf("known answer with TTL %d does not keep a responder with a %d s PTR quiet", ttl, z.serviceTTL)
	}
}

// TestRefreshJitterBoundedByTTL: the random wait before a refresh query
// is at most 2 % of the TTL (RFC 6762 §5.2), so a peer with a 3 s TTL is
// refreshed before it expires; 2 s at most for long TTLs.
func TestRefreshJitterBoundedByTTL(t *testing.T) {
	for _, ttl := range []uint32{3, 120} {
		s, rs, _ := scaleService(t, 0)
		z := peerZone("bob", "b0b0b0b0", 4000, ttl, "10.77.0.2")
		s.table.apply(wire(t, z.announcement()), "eth0", src0, t0)
		at := t0.Add(time.Duration(ttl) * time.Second * 8 / 10)
		rs.lastQuery = at // so that this call sends nothing, however short the wait
		s.due(rs, at)
		if !rs.refreshPending {
			t.Fatalf("TTL %ds: no refresh pending at 80%%", ttl)
		}
		limit := min(2*time.Second, time.Duration(ttl)*time.Second/50)
		if d := rs.refreshAt.Sub(at); d < 0 || d > limit {
			t.Errorf("TTL %ds: refresh query %v after its point, want at most %v", ttl, d, limit)
		}
	}
}

// TestFirstQueryAsksUnicast: the first query of a one-shot browse, and
// the first two of a running agent, have the QU bit, so a hundred answers
// reach the one who asks rather than every agent on the link; every later
// query asks for multicast answers.
func TestFirstQueryAsksUnicast(t *testing.T) {
	b := newService(Config{}, false)
	b.browseOffsets = browseOffsets
	rs := &runState{start: t0, queryDelay: time.Second}
	st := &ifState{info: ifaceInfo{Name: "eth0", MTU: 1500}}
	first := b.query(st, t0, b.askUnicast(rs))[0]
	if !b.askUnicast(rs) || first.Question[0].Qclass&unicastResponse == 0 {
		t.Errorf("a one-shot browse's first query asks for multicast answers: %v", first.Question)
	}
	b.planQuery(rs, t0, false)
	if b.askUnicast(rs) {
		t.Error("a one-shot browse's second query asks for unicast answers")
	}
	s, ars, _ := scaleService(t, 0)
	if !s.askUnicast(ars) {
		t.Error("a running agent's first query asks for multicast answers")
	}
	withLabSockets(t, ars, func() {
		// Each call sends a query (the lab host has no eth0: sending
		// fails, which is all the same here).
		for i := range 3 {
			if got, want := s.askUnicast(ars), i < 2; got != want {
				t.Errorf("a running agent's query %d asks for unicast answers: %v, want %v", i+1, got, want)
			}
			s.due(ars, ars.nextQuery)
		}
	})
}

// withLabSockets runs f inside a lab host of its own (a network
// namespace), with rs sending on sockets opened there and its first
// query due at t0.
func withLabSockets(t *testing.T, rs *runState, f func()) {
	t.Helper()
	h := netlab.Single(t)
	err := h.Do(func() error {
		socks, err := openSockets(0)
		if err != nil {
			return err
		}
		defer socks.close()
		rs.socks, rs.nextQuery = socks, t0
		f()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnicastQueryGoesOverOneFamily: on an interface with IPv4 and IPv6,
// a running agent's queries that ask for unicast answers go out once,
// over IPv4, and the next one, asking for multicast answers, over both.
// Over both, each responder answered both copies by unicast, with the
// same records: at a hundred agents starting together, half the unicast
// answers and a multicast copy per query heard by every host were for
// nothing.
func TestUnicastQueryGoesOverOneFamily(t *testing.T) {
	s, rs, _ := scaleService(t, 0)
	lo := &ifState{info: ifaceInfo{Name: "lo", Index: 1, MTU: 65536,
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}}, v4: true, v6: true}
	lo.src4, lo.src6 = sources(lo.info)
	rs.ifs = map[int]*ifState{1: lo}
	withLabSockets(t, rs, func() {
		for i, want := range []uint64{1, 1, 2} {
			qu := s.askUnicast(rs)
			before := s.Stats().Sent
			s.due(rs, rs.nextQuery)
			if got := s.Stats().Sent - before; got != want {
				t.Errorf("query %d (QU %v) went out in %d packets, want %d", i+1, qu, got, want)
			}
		}
	})
}

// TestWorkWaitsForUnreadPackets pins what stopped the 200-agent start
// from collapsing: while packets we received wait to be handled, a query
// that is due waits (its known answers would leave out what they tell
// us, and every peer left out would answer it), and so does the answer
// to a query with the TC bit (its last known answers may be among them;
// every peer they list would answer it). Each waits at most maxHold, so
// a flood cannot keep us silent.
func TestWorkWaitsForUnreadPackets(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	ifs := rs.ifs
	rs.ifs = map[int]*ifState{} // the query is planned and counted, not sent
	unread := true
	rs.unread, rs.maxHold = func() bool { return unread }, maxHold
	rs.nextQuery = t0
	s.due(rs, t0)
	if rs.queries != 0 {
		t.Fatal("a query went out while packets waited to be handled")
	}
	if w := s.nextWake(rs); !w.After(t0) || w.After(t0.Add(holdStep)) {
		t.Errorf("a held query is looked at again at %v, want within %v", w.Sub(t0), holdStep)
	}
	unread = false
	s.due(rs, t0.Add(5*time.Millisecond))
	if rs.queries != 1 {
		t.Fatalf("%d queries once the packets were handled, want 1", rs.queries)
	}
	unread = true
	at := rs.nextQuery
	s.due(rs, at)
	s.due(rs, at.Add(maxHold))
	if rs.queries != 2 {
		t.Errorf("%d queries after a hold of %v, want 2: a flood must not keep us silent", rs.queries, maxHold)
	}

	rs.ifs = ifs
	src := netip.MustParseAddrPort("10.77.0.9:5353")
	m := browseQuery([]dns.RR{knownPTR("other (1234)", 120)}, false)
	m.Truncated = true
	s.takeQuery(rs, st, m, src, t0)
	due := rs.partial[partialKey{src, 0}].due
	s.due(rs, due)
	if st.answerPending[0] || rs.partial[partialKey{src, 0}] == nil {
		t.Fatal("a truncated query was answered while packets waited to be handled")
	}
	s.due(rs, due.Add(maxHold))
	if !st.answerPending[0] {
		t.Error("a truncated query was not answered after a hold of maxHold")
	}
}

// TestAnnouncementAnswersForUs: a multicast answer is not sent when our
// announcement goes within 500 ms (it carries every record to every
// host), nor one pending when it goes; when agents start a few
// milliseconds apart, each one's first queries reach many that have not
// announced yet.
func TestAnnouncementAnswersForUs(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	src := netip.MustParseAddrPort("10.77.0.9:5353")
	st.announceAt = []time.Time{t0.Add(400 * time.Millisecond)}
	s.answerQuery(rs, st, browseQuery(nil, false), src, t0)
	if st.answerPending[0] {
		t.Error("answered by multicast 400 ms before our announcement")
	}
	st.announceAt = []time.Time{t0.Add(2 * time.Second)}
	s.answerQuery(rs, st, browseQuery(nil, false), src, t0)
	if !st.answerPending[0] {
		t.Fatal("not answered with our announcement 2 s away")
	}
}

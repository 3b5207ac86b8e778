package discovery

import (
	"github.com/miekg/dns"

	"net/netip"
	"strconv"
	"testing"
	"time"
)

// BenchmarkHandleAnnouncement is what one agent pays for one peer's
// announcement with 99 peers in its table: at start-up on a LAN of a
// hundred agents, each agent handles thousands of these.
func BenchmarkHandleAnnouncement(b *testing.B) {
	s, rs, _ := scaleService(b, 99)
	z := peerZone("peer5", "id5", 4000, 120, "10.77.0.7")
	data, err := z.announcement().Pack()
	if err != nil {
		b.Fatal(err)
	}
	p := packet{data: data, src: netip.MustParseAddrPort("10.77.0.7:5353"), ifindex: 2, hops: 255}
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.handle(rs, p, now.Add(time.Duration(i)*time.Microsecond))
	}
}

// BenchmarkHandleQuery is what one agent pays for a starting peer's
// query (no known answers) with 99 peers in its table.
func BenchmarkHandleQuery(b *testing.B) {
	s, rs, _ := scaleService(b, 99)
	q := browseQuery(nil, false)
	q.Id = 77
	data, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := packet{data: data, src: netip.MustParseAddrPort("10.77.0." + strconv.Itoa(2+i%99) + ":5353"), ifindex: 2, hops: 255}
		s.handle(rs, p, now.Add(time.Duration(i)*time.Microsecond))
	}
}

// benchPacket packs m as a packet from src on the scale service's link.
func benchPacket(b *testing.B, m *dns.Msg, src string) packet {
	b.Helper()
	data, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	return packet{data: data, src: netip.MustParseAddrPort(src + ":5353"), ifindex: 2, hops: 255}
}

// BenchmarkHandleKnownAnswer is what one agent pays for a known peer's
// answer to a query (ours, unicast, or another agent's, multicast) that
// repeats the records we hold: the commonest packet at start-up, when
// each of a hundred agents answers every starting agent.
func BenchmarkHandleKnownAnswer(b *testing.B) {
	s, rs, _ := scaleService(b, 99)
	resp, _ := buildResponse(peerZone("peer5", "id5", 4000, 120, "10.77.0.7"), browseQuery(nil, false), mdnsPort)
	p := benchPacket(b, resp, "10.77.0.7")
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.handle(rs, p, now.Add(time.Duration(i)*time.Microsecond))
	}
}

// BenchmarkHandleNewPeer is what one agent pays for the announcement of
// a peer it has not heard yet, with 99 peers in its table (the peer's
// goodbye, which makes room for the next round, is not timed).
func BenchmarkHandleNewPeer(b *testing.B) {
	s, rs, _ := scaleService(b, 99)
	z := peerZone("peer200", "id200", 4000, 120, "10.77.0.202")
	p := benchPacket(b, z.announcement(), "10.77.0.202")
	bye := benchPacket(b, z.goodbye(), "10.77.0.202")
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		at := now.Add(time.Duration(i) * time.Microsecond)
		s.handle(rs, p, at)
		b.StopTimer()
		s.handle(rs, bye, at)
		b.StartTimer()
	}
	if len(s.Peers()) != 99 {
		b.Fatalf("%d peers after the last goodbye, want 99", len(s.Peers()))
	}
}

// BenchmarkHandleGoodbye is what one agent pays for a known peer's
// goodbye, with 99 peers in its table (the announcement that puts the
// peer back for the next round is not timed).
func BenchmarkHandleGoodbye(b *testing.B) {
	s, rs, _ := scaleService(b, 99)
	z := peerZone("peer5", "id5", 4000, 120, "10.77.0.7")
	hello := benchPacket(b, z.announcement(), "10.77.0.7")
	p := benchPacket(b, z.goodbye(), "10.77.0.7")
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		at := now.Add(time.Duration(i) * time.Microsecond)
		s.handle(rs, p, at)
		b.StopTimer()
		s.handle(rs, hello, at)
		b.StartTimer()
	}
}

// BenchmarkHandleQueryKnownAnswers is what one agent pays for a running
// peer's query that lists the 99 other agents and us as known answers:
// all the messages it is split into (RFC 6762 §7.2), the last of which
// completes it.
func BenchmarkHandleQueryKnownAnswers(b *testing.B) {
	s, rs, _ := scaleService(b, 99)
	var known []dns.RR
	for i := range 99 {
		if i != 5 {
			known = append(known, knownPTR(InstanceName("peer"+strconv.Itoa(i), "id"+strconv.Itoa(i)), 110))
		}
	}
	known = append(known, knownPTR(s.instance, 110))
	msgs := splitQuery(browseQuery(nil, false).Question, known, 1452)
	if len(msgs) < 2 {
		b.Fatalf("the query went out in %d message", len(msgs))
	}
	var ps []packet
	for _, m := range msgs {
		m.Id = 99
		ps = append(ps, benchPacket(b, m, "10.77.0.7"))
	}
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		at := now.Add(time.Duration(i) * time.Microsecond)
		for _, p := range ps {
			s.handle(rs, p, at)
		}
	}
	if len(rs.partial) != 0 {
		b.Fatalf("%d partial queries left", len(rs.partial))
	}
}

// BenchmarkHandleKnownAnswerFirstHeard is BenchmarkHandleKnownAnswer for
// a message not heard before byte for byte (its ID changes each time), so
// it is unpacked and parsed (see responseCache).
func BenchmarkHandleKnownAnswerFirstHeard(b *testing.B) {
	s, rs, _ := scaleService(b, 99)
	resp, _ := buildResponse(peerZone("peer5", "id5", 4000, 120, "10.77.0.7"), browseQuery(nil, false), mdnsPort)
	p := benchPacket(b, resp, "10.77.0.7")
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.data[0], p.data[1] = byte(i>>8), byte(i)
		s.handle(rs, p, now.Add(time.Duration(i)*time.Microsecond))
	}
}

// BenchmarkLoopWake is what Run's loop pays on every wake (every packet)
// besides handling it, with 99 peers in the table and nothing due.
func BenchmarkLoopWake(b *testing.B) {
	s, rs, _ := scaleService(b, 99)
	now := t0.Add(time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		at := now.Add(time.Duration(i) * time.Microsecond)
		s.due(rs, at)
		s.nextWake(rs)
	}
}

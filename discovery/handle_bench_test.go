package discovery

import (
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

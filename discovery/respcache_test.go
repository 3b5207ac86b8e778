package discovery

import (
	"net/netip"
	"testing"
	"time"
)

// TestRepeatedResponseChecked: a response heard again byte for byte (and
// so taken from the parse cache) is checked like the first: from off the
// link, with an IP TTL under 255 or from a port other than 5353 it changes
// nothing; from its source it refreshes the peer's records.
func TestRepeatedResponseChecked(t *testing.T) {
	s, rs, _ := scaleService(t, 0)
	z := peerZone("bob", "b0b", 4000, 120, "10.77.0.9")
	data, err := z.announcement().Pack()
	if err != nil {
		t.Fatal(err)
	}
	pkt := func(src string, hops int) packet {
		return packet{data: data, src: netip.MustParseAddrPort(src), ifindex: 2, hops: hops}
	}
	s.handle(rs, pkt("10.77.0.9:5353", 255), t0)
	if len(s.Peers()) != 1 {
		t.Fatalf("first announcement: peers %v", s.Peers())
	}
	if len(rs.responses.entries) != 1 {
		t.Fatalf("%d responses cached, want 1", len(rs.responses.entries))
	}
	before := s.Stats()
	s.handle(rs, pkt("10.99.0.9:5353", 255), t0.Add(time.Second))  // off the link
	s.handle(rs, pkt("10.77.0.66:5353", 64), t0.Add(time.Second))  // crossed a router
	s.handle(rs, pkt("10.77.0.66:4000", 255), t0.Add(time.Second)) // not from port 5353
	after := s.Stats()
	if after.OffLink-before.OffLink != 2 || after.Ignored-before.Ignored != 1 {
		t.Errorf("repeats from the wrong place: off-link %d, ignored %d; want 2, 1", after.OffLink-before.OffLink, after.Ignored-before.Ignored)
	}
	if ps := s.Peers(); len(ps) != 1 || len(ps[0].Addrs) != 1 {
		t.Errorf("repeats from the wrong place changed the table: %v", ps)
	}
	// Repeated by its source before the 120 s TTL ran out, it lives on.
	s.handle(rs, pkt("10.77.0.9:5353", 255), t0.Add(100*time.Second))
	s.mu.Lock()
	s.table.expire(t0.Add(150 * time.Second))
	s.mu.Unlock()
	if len(s.Peers()) != 1 {
		t.Error("a repeat from the cache did not refresh the peer")
	}
}

// TestResponseCacheBounded: a flood of distinct responses keeps at most
// maxCachedResponses of them, and none larger than maxCachedPacket.
func TestResponseCacheBounded(t *testing.T) {
	s, rs, _ := scaleService(t, 0)
	data, err := peerZone("bob", "b0b", 4000, 120, "10.77.0.9").announcement().Pack()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxCachedResponses {
		data[0], data[1] = byte(i>>8), byte(i)
		s.handle(rs, packet{data: data, src: netip.MustParseAddrPort("10.77.0.9:5353"), ifindex: 2, hops: 255}, t0)
	}
	if n := len(rs.responses.entries); n != maxCachedResponses {
		t.Errorf("%d responses cached, want %d", n, maxCachedResponses)
	}
	// A large one is parsed and applied but not kept.
	big := peerZone("bob", "b0b", 4000, 120, "10.77.0.9")
	for i := range 100 {
		big.addrs = append(big.addrs, netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + i)}))
	}
	data, err = big.announcement().Pack()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) <= maxCachedPacket {
		t.Fatalf("the large announcement is only %d bytes", len(data))
	}
	clear(rs.responses.entries)
	s.handle(rs, packet{data: data, src: netip.MustParseAddrPort("10.77.0.9:5353"), ifindex: 2, hops: 255}, t0)
	if n := len(rs.responses.entries); n != 0 {
		t.Errorf("a response of %d bytes was cached", len(data))
	}
	if ps := s.Peers(); len(ps) != 1 || len(ps[0].Addrs) < 32 {
		t.Errorf("the large announcement was not applied: %v", ps)
	}
}

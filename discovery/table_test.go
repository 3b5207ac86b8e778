package discovery

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var (
	t0      = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	src0    = netip.MustParseAddr("10.77.0.2")
	src1    = netip.MustParseAddr("10.77.1.2")
	srcEvil = netip.MustParseAddr("10.77.0.66")
)

// peerZone is a zone as a peer with this name and id would publish it.
func peerZone(name, id string, port uint16, ttl uint32, addrs ...string) *zone {
	z := &zone{
		instance: InstanceName(name, id),
		host:     "host-" + id,
		port:     port,
		txt:      encodeTXT([][2]string{{txtID, id}, {txtVersion, "1"}, {txtName, name}}),
		ttl:      ttl,
	}
	for _, a := range addrs {
		z.addrs = append(z.addrs, netip.MustParseAddr(a))
	}
	return z
}

// wire packs and unpacks m, as a receiver would see it.
func wire(t testing.TB, m *dns.Msg) response {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	back, err := unpack(b)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseResponse(back)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func kinds(evs []Event) []EventKind {
	var out []EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestTableAnnounceAndGoodbye(t *testing.T) {
	tb := newTable("self")
	z := peerZone("bob", "bbbb2222", 4242, 120, "10.77.0.2", "fe80::2")
	evs := tb.apply(wire(t, z.announcement()), "eth0", src0, t0)
	if !slices.Equal(kinds(evs), []EventKind{PeerUp}) {
		t.Fatalf("events = %v", evs)
	}
	p := evs[0].Peer
	if !p.Complete() || p.ID != "bbbb2222" || p.Name != "bob" || p.Port != 4242 || p.TTL != 120*time.Second || p.Iface != "eth0" {
		t.Errorf("peer = %+v", p)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("10.77.0.2:4242"), netip.MustParseAddrPort("[fe80::2%eth0]:4242")}
	if !slices.Equal(p.Addrs, want) {
		t.Errorf("addrs = %v, want %v (link-local with zone)", p.Addrs, want)
	}
	// The same announcement again changes nothing.
	if evs := tb.apply(wire(t, z.announcement()), "eth0", src0, t0.Add(time.Second)); len(evs) != 0 {
		t.Errorf("repeat announcement: events %v", evs)
	}
	evs = tb.apply(wire(t, z.goodbye()), "eth0", src0, t0.Add(2*time.Second))
	if !slices.Equal(kinds(evs), []EventKind{PeerDown}) || len(tb.snapshot()) != 0 {
		t.Errorf("goodbye: events %v, table %v", evs, tb.snapshot())
	}
}

// TestSpoofedGoodbyeIgnored pins the spoof protection: a goodbye for a
// known instance from another source removes nothing, and a claim of its
// instance with another id is listed apart without touching it.
func TestSpoofedGoodbyeIgnored(t *testing.T) {
	tb := newTable("")
	legit := peerZone("bob", "bbbb2222", 4242, 120, "10.77.0.2")
	tb.apply(wire(t, legit.announcement()), "eth0", src0, t0)

	// Same instance name, different id (the suffix collides by design here).
	spoof := *legit
	spoof.txt = encodeTXT([][2]string{{txtID, "evil"}, {txtVersion, "1"}, {txtName, "bob"}})
	if evs := tb.apply(wire(t, spoof.goodbye()), "eth0", srcEvil, t0.Add(time.Second)); len(evs) != 0 {
		t.Errorf("goodbye with another id: events %v", evs)
	}
	// A goodbye without TXT (only the PTR) from elsewhere removes nothing either.
	bare := responseMsg()
	bare.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: serviceFQDN, Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: legit.instanceName()}}
	if evs := tb.apply(wire(t, bare), "eth0", srcEvil, t0.Add(time.Second)); len(evs) != 0 {
		t.Errorf("goodbye without TXT: events %v", evs)
	}
	// An update claiming the instance with another id and address is
	// listed apart, flagged: its label is not the one its id makes.
	spoof.addrs = []netip.Addr{netip.MustParseAddr("10.66.6.6")}
	spoof.port = 6666
	evs := tb.apply(wire(t, spoof.announcement()), "eth0", srcEvil, t0.Add(time.Second))
	if len(evs) != 1 || evs[0].Kind != PeerUp || evs[0].Peer.ID != "evil" || !evs[0].Peer.LabelMismatch {
		t.Errorf("conflicting claim: events %v", evs)
	}
	peers := tb.snapshot()
	if len(peers) != 2 || peers[0].ID != "bbbb2222" || peers[0].Port != 4242 || len(peers[0].Addrs) != 1 || peers[0].Addrs[0].Addr().String() != "10.77.0.2" || peers[0].LabelMismatch {
		t.Errorf("legit entry changed: %+v", peers)
	}
	if tb.conflicts != 3 {
		t.Errorf("conflicts = %d, want 3", tb.conflicts)
	}
	// The real goodbye still works, and leaves the impostor alone.
	evs = tb.apply(wire(t, legit.goodbye()), "eth0", src0, t0.Add(2*time.Second))
	if !slices.Equal(kinds(evs), []EventKind{PeerDown}) || evs[0].Peer.ID != "bbbb2222" {
		t.Errorf("legit goodbye: events %v", evs)
	}
	if peers := tb.snapshot(); len(peers) != 1 || peers[0].ID != "evil" {
		t.Errorf("after the goodbye: %v", peers)
	}
}

func TestTableIgnoresSelfAndOtherServices(t *testing.T) {
	tb := newTable("self1234")
	if evs := tb.apply(wire(t, peerZone("me", "self1234", 1, 120, "10.0.0.1").announcement()), "eth0", src0, t0); len(evs) != 0 {
		t.Errorf("own announcement produced %v", evs)
	}
	// A response about another service type, shaped like ours.
	m := responseMsg()
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: dns.RR_Header{Name: "_http._tcp.local.", Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: "web._http._tcp.local."},
		&dns.SRV{Hdr: dns.RR_Header{Name: "web._http._tcp.local.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 120}, Port: 80, Target: "web.local."},
		&dns.TXT{Hdr: dns.RR_Header{Name: "web._http._tcp.local.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 120}, Txt: []string{"id=x"}},
		// PTR under our service name but pointing elsewhere.
		&dns.PTR{Hdr: dns.RR_Header{Name: serviceFQDN, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: "web._http._tcp.local."},
		// Two labels before our service type.
		&dns.SRV{Hdr: dns.RR_Header{Name: "a.b._lanshare._tcp.local.", Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 120}, Port: 80, Target: "web.local."},
	}
	r := wire(t, m)
	if len(r.claims) != 0 || r.ignored != 5 {
		t.Errorf("claims %v, ignored %d: want none and 5", r.claims, r.ignored)
	}
	if evs := tb.apply(r, "eth0", src0, t0); len(evs) != 0 || len(tb.snapshot()) != 0 {
		t.Errorf("other service types entered the table: %v", tb.snapshot())
	}
}

func TestForeignRecordNotComplete(t *testing.T) {
	tb := newTable("")
	// A _lanshare._tcp record from another stack without our TXT keys; its
	// address comes in a separate answer.
	m := responseMsg()
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: dns.RR_Header{Name: serviceFQDN, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: instanceFQDN("printer")},
		&dns.SRV{Hdr: dns.RR_Header{Name: instanceFQDN("printer"), Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 120}, Port: 9, Target: "printer.local."},
		&dns.TXT{Hdr: dns.RR_Header{Name: instanceFQDN("printer"), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 120}, Txt: []string{""}},
	}
	evs := tb.apply(wire(t, m), "eth0", src0, t0)
	if len(evs) != 1 || evs[0].Peer.Complete() || evs[0].Peer.Name != "printer" {
		t.Fatalf("events %v", evs)
	}
	a := responseMsg()
	a.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "printer.local.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 120}, A: net.IPv4(10, 77, 0, 9)}}
	evs = tb.apply(wire(t, a), "eth0", src0, t0)
	if len(evs) != 1 || evs[0].Kind != PeerUpdate || len(evs[0].Peer.Addrs) != 1 || evs[0].Peer.Complete() {
		t.Errorf("address for foreign host: %v", evs)
	}
}

func TestStandaloneAddressCannotMovePeer(t *testing.T) {
	tb := newTable("")
	z := peerZone("bob", "bbbb2222", 4242, 120, "10.77.0.2")
	tb.apply(wire(t, z.announcement()), "eth0", src0, t0)
	a := responseMsg()
	a.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: z.hostName(), Rrtype: dns.TypeA, Class: dns.ClassINET | cacheFlush, Ttl: 120}, A: net.IPv4(10, 66, 6, 6)}}
	if evs := tb.apply(wire(t, a), "eth0", src0, t0); len(evs) != 0 {
		t.Errorf("lone A record for a peer with an id changed it: %v", evs)
	}
}

func TestTableExpiryAndRefresh(t *testing.T) {
	tb := newTable("")
	z := peerZone("bob", "bbbb2222", 4242, 10, "10.77.0.2")
	tb.apply(wire(t, z.announcement()), "eth0", src0, t0)
	if n := tb.next(); !n.Equal(t0.Add(8 * time.Second)) {
		t.Errorf("next = %v, want first refresh at 80%% of 10s", n.Sub(t0))
	}
	if tb.refreshDue(t0.Add(7 * time.Second)) {
		t.Error("refresh due before 80% of the TTL")
	}
	if !tb.refreshDue(t0.Add(8 * time.Second)) {
		t.Error("no refresh at 80% of the TTL")
	}
	if tb.refreshDue(t0.Add(8 * time.Second)) {
		t.Error("refresh due twice for the same point")
	}
	if evs := tb.expire(t0.Add(9 * time.Second)); len(evs) != 0 {
		t.Errorf("expired early: %v", evs)
	}
	if known := tb.known("eth0", t0.Add(4*time.Second)); known[z.instance] != 6 {
		t.Errorf("known answers at 4s = %v", known)
	}
	if known := tb.known("eth0", t0.Add(6*time.Second)); len(known) != 0 {
		t.Errorf("known answers past half the TTL = %v", known)
	}
	evs := tb.expire(t0.Add(10 * time.Second))
	if !slices.Equal(kinds(evs), []EventKind{PeerDown}) {
		t.Errorf("at TTL: %v", evs)
	}
	if !tb.next().IsZero() {
		t.Error("empty table wants attention")
	}
}

func TestTableDropIface(t *testing.T) {
	tb := newTable("")
	z := peerZone("bob", "bbbb2222", 4242, 120, "10.77.0.2")
	tb.apply(wire(t, z.announcement()), "eth1", src1, t0)
	if evs := tb.dropIface("eth0"); len(evs) != 0 {
		t.Errorf("dropping another iface: %v", evs)
	}
	if evs := tb.dropIface("eth1"); !slices.Equal(kinds(evs), []EventKind{PeerDown}) {
		t.Errorf("dropping its iface: %v", evs)
	}
}

func itoa(i int) string {
	return netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}).String()
}

func TestSubscriberCoalesces(t *testing.T) {
	s := newSubscriber()
	p := func(inst string, port int) Peer { return Peer{Instance: inst, Port: port} }
	s.push(Event{PeerUp, p("a", 1)})
	s.push(Event{PeerUpdate, p("a", 2)})
	s.push(Event{PeerUp, p("b", 1)})
	s.push(Event{PeerDown, p("b", 1)})
	s.push(Event{PeerUpdate, p("c", 1)})
	s.push(Event{PeerDown, p("c", 1)})
	s.push(Event{PeerDown, p("d", 1)})
	s.push(Event{PeerUp, p("d", 5)})
	var got []Event
	for {
		ev, ok := s.pop()
		if !ok {
			break
		}
		got = append(got, ev)
	}
	want := []Event{{PeerUp, p("a", 2)}, {PeerDown, p("c", 1)}, {PeerUpdate, p("d", 5)}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Kind != want[i].Kind || got[i].Peer.Instance != want[i].Peer.Instance || got[i].Peer.Port != want[i].Peer.Port {
			t.Errorf("event %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// TestSubscribeSlowReaderLosesNothing: unlike mdns.Query's entries channel,
// a reader that is not reading yet still gets every peer's final state.
func TestSubscribeSlowReaderLosesNothing(t *testing.T) {
	s := newService(Config{}, false)
	events, stop := s.Subscribe()
	s.mu.Lock()
	for i := 0; i < 50; i++ {
		s.publish(s.table.apply(wire(t, peerZone("p"+itoa(i), "id"+itoa(i), uint16(i+1), 120, "10.0.0.1").announcement()), "eth0", netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)}), t0))
	}
	s.mu.Unlock()
	seen := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for len(seen) < 50 {
		select {
		case ev := <-events:
			seen[ev.Peer.ID] = true
		case <-timeout:
			t.Fatalf("got %d of 50 peers", len(seen))
		}
	}
	stop()
	if _, ok := <-events; ok {
		t.Error("channel still open after cancel")
	}
	s.Close()
	s.Close()
}

func TestSelectIfaces(t *testing.T) {
	up, mc, lo := net.FlagUp, net.FlagMulticast, net.FlagLoopback
	a := func(s string) []netip.Addr { return []netip.Addr{netip.MustParseAddr(s)} }
	all := []ifaceInfo{
		{Index: 1, Name: "lo", Flags: up | mc | lo, Addrs: a("127.0.0.1")},
		{Index: 2, Name: "eth0", Flags: up | mc, Addrs: a("10.0.0.1")},
		{Index: 3, Name: "eth1", Flags: mc, Addrs: a("10.1.0.1")},      // down
		{Index: 4, Name: "tun0", Flags: up, Addrs: a("10.2.0.1")},      // no multicast
		{Index: 5, Name: "eth2", Flags: up | mc, Addrs: nil},           // no address
		{Index: 6, Name: "wlan0", Flags: up | mc, Addrs: a("fe80::1")}, // link-local only is fine
	}
	names := func(is []ifaceInfo) []string {
		var out []string
		for _, i := range is {
			out = append(out, i.Name)
		}
		return out
	}
	if got := names(selectIfaces(all, nil)); !slices.Equal(got, []string{"eth0", "wlan0"}) {
		t.Errorf("default selection = %v", got)
	}
	if got := names(selectIfaces(all[:1], nil)); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("only loopback = %v", got)
	}
	if got := names(selectIfaces(all, []string{"lo", "eth1", "eth2", "nope"})); !slices.Equal(got, []string{"lo", "eth2"}) {
		t.Errorf("named selection = %v", got)
	}
}

func TestSortAddrs(t *testing.T) {
	ap := netip.MustParseAddrPort
	in := []netip.AddrPort{ap("[fe80::1%eth0]:1"), ap("[2001:db8::1]:1"), ap("192.168.9.9:1"), ap("10.77.0.2:1"), ap("[fd77::2]:1")}
	local := []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24"), netip.MustParsePrefix("fe80::/64")}
	want := []netip.AddrPort{ap("10.77.0.2:1"), ap("192.168.9.9:1"), ap("[2001:db8::1]:1"), ap("[fd77::2]:1"), ap("[fe80::1%eth0]:1")}
	if got := SortAddrs(in, local); !slices.Equal(got, want) {
		t.Errorf("SortAddrs = %v, want %v", got, want)
	}
	if in[0] != ap("[fe80::1%eth0]:1") {
		t.Error("SortAddrs modified its input")
	}
}

// TestPeerOnTwoInterfaces: a peer heard on two interfaces keeps the
// addresses of both, and survives losing one of them.
func TestPeerOnTwoInterfaces(t *testing.T) {
	tb := newTable("")
	on0 := peerZone("bob", "bbbb2222", 4242, 120, "10.77.0.2", "fe80::2")
	on1 := peerZone("bob", "bbbb2222", 4242, 120, "10.77.1.2", "fe80::2")
	tb.apply(wire(t, on0.announcement()), "eth0", src0, t0)
	evs := tb.apply(wire(t, on1.announcement()), "eth1", src1, t0)
	if len(evs) != 1 || evs[0].Kind != PeerUpdate {
		t.Fatalf("second interface: %v", evs)
	}
	got := evs[0].Peer.Addrs
	want := []netip.AddrPort{
		netip.MustParseAddrPort("10.77.0.2:4242"), netip.MustParseAddrPort("10.77.1.2:4242"),
		netip.MustParseAddrPort("[fe80::2%eth0]:4242"), netip.MustParseAddrPort("[fe80::2%eth1]:4242"),
	}
	if !slices.Equal(got, want) || evs[0].Peer.Iface != "eth0" {
		t.Errorf("addrs %v on %s, want %v on eth0", got, evs[0].Peer.Iface, want)
	}
	evs = tb.dropIface("eth0")
	if len(evs) != 1 || evs[0].Kind != PeerUpdate || evs[0].Peer.Iface != "eth1" || len(evs[0].Peer.Addrs) != 2 {
		t.Errorf("after losing eth0: %v", evs)
	}
}

// avahiAnswer is the answer avahi-daemon (default settings) multicasts for
// a service "plain thing" on host avahi-h0 with addresses 10.77.0.1 and
// fd77::1: over IPv4 with both A and AAAA, over IPv6 with AAAA only
// (publish-a-on-ipv6=no). Address records have the cache-flush bit.
func avahiAnswer(ipv4 bool) *dns.Msg {
	inst := instanceFQDN("plain thing")
	hdr := func(name string, t uint16, flush bool) dns.RR_Header {
		h := dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: 120}
		if flush {
			h.Class |= cacheFlush
		}
		return h
	}
	m := responseMsg()
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr(serviceFQDN, dns.TypePTR, false), Ptr: inst},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT, true), Txt: []string{"foo=bar"}},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV, true), Port: 4242, Target: "avahi-h0.local."},
		&dns.AAAA{Hdr: hdr("avahi-h0.local.", dns.TypeAAAA, true), AAAA: net.ParseIP("fd77::1")},
	}
	if ipv4 {
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr("avahi-h0.local.", dns.TypeA, true), A: net.IPv4(10, 77, 0, 1)})
	}
	return m
}

// TestAAAAFlushKeepsIPv4Address pins a bug seen with avahi: a cache-flush
// AAAA record flushed every address of the host, so when avahi's IPv6
// answer (AAAA only) was handled after its IPv4 answer (A and AAAA), the
// peer lost its IPv4 address. A cache-flush record only replaces records of
// its own type, and only those heard more than a second before.
func TestAAAAFlushKeepsIPv4Address(t *testing.T) {
	want := []netip.AddrPort{netip.MustParseAddrPort("10.77.0.1:4242"), netip.MustParseAddrPort("[fd77::1]:4242")}
	for _, order := range [][]bool{{true, false}, {false, true}} {
		tb := newTable("")
		var p Peer
		for i, ipv4 := range order {
			evs := tb.apply(wire(t, avahiAnswer(ipv4)), "eth0", src0, t0.Add(time.Duration(i)*time.Millisecond))
			if len(evs) > 0 {
				p = evs[len(evs)-1].Peer
			}
		}
		if !slices.Equal(p.Addrs, want) {
			t.Errorf("IPv4 answer first %v: addrs %v, want %v", order[0], p.Addrs, want)
		}
		// Ten seconds on, the IPv6 answer alone still leaves the A record.
		tb.apply(wire(t, avahiAnswer(false)), "eth0", src0, t0.Add(10*time.Second))
		if got := tb.snapshot()[0].Addrs; !slices.Equal(got, want) {
			t.Errorf("IPv4 answer first %v: after a later IPv6 answer, addrs %v, want %v", order[0], got, want)
		}
	}
}

// TestCacheFlushGrace: a cache-flush A record with a new address retires the
// old A record one second later (RFC 6762 §10.2), not at once and not at its
// TTL; a second A record within that second (a split record set) is kept.
func TestCacheFlushGrace(t *testing.T) {
	tb := newTable("")
	tb.apply(wire(t, avahiAnswer(true)), "eth0", src0, t0)
	moved := avahiAnswer(false)
	moved.Answer[3] = &dns.A{Hdr: dns.RR_Header{Name: "avahi-h0.local.", Rrtype: dns.TypeA, Class: dns.ClassINET | cacheFlush, Ttl: 120}, A: net.IPv4(10, 77, 0, 9)}
	at := t0.Add(5 * time.Second)
	tb.apply(wire(t, moved), "eth0", src0, at)
	split := avahiAnswer(false)
	split.Answer[3] = &dns.A{Hdr: dns.RR_Header{Name: "avahi-h0.local.", Rrtype: dns.TypeA, Class: dns.ClassINET | cacheFlush, Ttl: 120}, A: net.IPv4(10, 77, 0, 10)}
	tb.apply(wire(t, split), "eth0", src0, at.Add(500*time.Millisecond))
	addrs := func() []netip.AddrPort { return tb.snapshot()[0].Addrs }
	if got := addrs(); len(got) != 4 {
		t.Fatalf("right after the flush: %v, want the old and both new IPv4 addresses and fd77::1", got)
	}
	if evs := tb.expire(at.Add(time.Second - time.Millisecond)); len(evs) != 0 {
		t.Errorf("old address gone before the grace second: %v", evs)
	}
	evs := tb.expire(at.Add(time.Second))
	want := []netip.AddrPort{
		netip.MustParseAddrPort("10.77.0.9:4242"), netip.MustParseAddrPort("10.77.0.10:4242"),
		netip.MustParseAddrPort("[fd77::1]:4242"),
	}
	if len(evs) != 1 || evs[0].Kind != PeerUpdate || !slices.Equal(evs[0].Peer.Addrs, want) {
		t.Errorf("after the grace second: %v, want addrs %v", evs, want)
	}
}

// TestSplitAnswersRenderComplete pins a flake seen with avahi: when one
// source (say over IPv6) gave only the PTR and TXT of a service and
// another (over IPv4) the whole set, the Peer took its port and host from
// the record heard first, the incomplete one.
func TestSplitAnswersRenderComplete(t *testing.T) {
	tb := newTable("")
	partial := avahiAnswer(false)
	partial.Answer = partial.Answer[:2] // PTR and TXT
	tb.apply(wire(t, partial), "eth0", netip.MustParseAddr("fe80::1%eth0"), t0)
	tb.apply(wire(t, avahiAnswer(true)), "eth0", src0, t0.Add(time.Millisecond))
	ps := tb.snapshot()
	if len(ps) != 1 || ps[0].Port != 4242 || ps[0].Host != "avahi-h0.local" || ps[0].TXT["foo"] != "bar" {
		t.Errorf("split answers rendered as %+v", ps)
	}
}

// TestTableScansOnlyAtDeadlines pins the fix for the CPU seen at a hundred
// agents: the loop calls expire, refreshDue and next after every packet,
// and each used to walk the whole table. Now a packet that moves no
// deadline earlier costs no scan; a scan happens only once a deadline has
// passed.
func TestTableScansOnlyAtDeadlines(t *testing.T) {
	tb := newTable("")
	const peers = 100
	for i := range peers {
		z := peerZone("p"+strconv.Itoa(i), "id"+strconv.Itoa(i), 4000, 120, "10.77.0."+strconv.Itoa(i+2))
		src := netip.MustParseAddr("10.77.0." + strconv.Itoa(i+2))
		tb.apply(wire(t, z.announcement()), "eth0", src, t0)
	}
	// 1000 packets over the next minute, each a repeat of some peer's
	// answer, each followed by the loop's expire, refreshDue and next.
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * 60 * time.Millisecond)
		z := peerZone("p"+strconv.Itoa(i%peers), "id"+strconv.Itoa(i%peers), 4000, 120, "10.77.0."+strconv.Itoa(i%peers+2))
		tb.apply(wire(t, z.announcement()), "eth0", netip.MustParseAddr("10.77.0."+strconv.Itoa(i%peers+2)), now)
		tb.expire(now)
		tb.refreshDue(now)
		if n := tb.next(); n.IsZero() || n.After(t0.Add(96*time.Second)) {
			t.Fatalf("packet %d: next = %v, want no later than the first refresh point, %v", i, n, t0.Add(96*time.Second))
		}
	}
	if tb.scans != 0 {
		t.Errorf("%d full scans of the table before any deadline, want 0", tb.scans)
	}
	// Peer 0 was last heard 54 s after t0: its refresh point, 80 % of
	// 120 s later, makes one scan per call, and the table is still whole.
	at := t0.Add(150 * time.Second)
	tb.expire(at)
	if !tb.refreshDue(at) {
		t.Errorf("no refresh due at 80%% of peer 0's TTL")
	}
	if tb.scans != 2 {
		t.Errorf("%d scans at the first refresh point, want 2", tb.scans)
	}
	if got := len(tb.snapshot()); got != peers {
		t.Errorf("%d peers after the refresh point, want %d", got, peers)
	}
	// Then nothing is due until the next deadline.
	if n := tb.next(); !n.After(at) {
		t.Errorf("next = %v after the scan at %v, want later", n, at)
	}
}

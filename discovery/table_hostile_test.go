package discovery

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hear applies m as heard on eth0 from src at at.
func hear(t testing.TB, tb *table, m *dns.Msg, src netip.Addr, at time.Time) []Event {
	t.Helper()
	return tb.apply(wire(t, m), "eth0", src, at)
}

// listed returns the peers in tb's table with id.
func listed(tb *table, id string) []Peer {
	return slices.DeleteFunc(tb.snapshot(), func(p Peer) bool { return p.ID != id })
}

// hasAddr reports whether p can be dialled at ap.
func hasAddr(p Peer, ap string) bool {
	return slices.Contains(p.Addrs, netip.MustParseAddrPort(ap))
}

// bobIsListed fails t unless bob ("bob (bbbb)", id bbbb2222, version 1) is
// listed once, complete, and dialable at his own address 10.77.0.2:4242.
func bobIsListed(t testing.TB, tb *table, when string) Peer {
	t.Helper()
	var mine []Peer
	for _, p := range listed(tb, "bbbb2222") {
		if p.Instance == "bob (bbbb)" && p.Name == "bob" && p.Version == "1" {
			mine = append(mine, p)
		}
	}
	if len(mine) != 1 || !mine[0].Complete() || !hasAddr(mine[0], "10.77.0.2:4242") || mine[0].LabelMismatch {
		t.Fatalf("%s: bob is not listed as himself: %v (table %v)", when, mine, tb.snapshot())
	}
	return mine[0]
}

func bobZone() *zone { return peerZone("bob", "bbbb2222", 4242, 120, "10.77.0.2") }

// TestCopiedIDGoodbyeCannotRemovePeer: a goodbye with bob's copied id,
// label and records, from another address, leaves bob listed; bob's own
// goodbye removes him.
func TestCopiedIDGoodbyeCannotRemovePeer(t *testing.T) {
	tb := newTable("")
	bob := bobZone()
	hear(t, tb, bob.announcement(), src0, t0)
	if evs := hear(t, tb, bob.goodbye(), srcEvil, t0.Add(time.Second)); len(evs) != 0 {
		t.Errorf("copied goodbye from %v: events %v", srcEvil, evs)
	}
	bobIsListed(t, tb, "after a copied goodbye")
	if evs := hear(t, tb, bob.goodbye(), src0, t0.Add(2*time.Second)); !slices.Equal(kinds(evs), []EventKind{PeerDown}) || len(tb.snapshot()) != 0 {
		t.Errorf("bob's own goodbye: events %v, table %v", evs, tb.snapshot())
	}
}

// TestCopiedIDRecordsAddAddressesNeverRepoint: an announcement that copies
// bob's id, label, name and version but points at another host, port and
// address (with cache-flush bits) adds that address to bob's; bob's own
// address stays dialable, after the flush grace and after bob's refresh,
// and is the one left when the impostor stops.
func TestCopiedIDRecordsAddAddressesNeverRepoint(t *testing.T) {
	tb := newTable("")
	bob := bobZone()
	hear(t, tb, bob.announcement(), src0, t0)
	evil := *bob
	evil.host, evil.port, evil.addrs = "evil", 6666, []netip.Addr{netip.MustParseAddr("10.77.0.66")}
	evil.ttl = 30
	hear(t, tb, evil.announcement(), srcEvil, t0.Add(5*time.Second))
	// A lone cache-flush A record for bob's host, from the impostor.
	a := responseMsg()
	a.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: bob.hostName(), Rrtype: dns.TypeA, Class: dns.ClassINET | cacheFlush, Ttl: 120}, A: net.IPv4(10, 77, 0, 66)}}
	hear(t, tb, a, srcEvil, t0.Add(6*time.Second))
	tb.expire(t0.Add(10 * time.Second))
	p := bobIsListed(t, tb, "after the impostor's records")
	if !hasAddr(p, "10.77.0.66:6666") || p.Port != 4242 || p.Host != "host-bbbb2222.local" {
		t.Errorf("bob after the impostor's announcement: %+v; want his port and host, and both addresses to try", p)
	}
	hear(t, tb, bob.announcement(), src0, t0.Add(20*time.Second))
	tb.expire(t0.Add(40 * time.Second)) // the impostor's 30 s ran out
	p = bobIsListed(t, tb, "after the impostor stopped")
	if len(p.Addrs) != 1 {
		t.Errorf("bob's addresses once the impostor's expired: %v", p.Addrs)
	}
}

// TestConflictingClaimNeverHidesPeer: claims of bob's instance label made
// before bob arrives, with another id, without an id, or with bob's id but
// another version or name, never keep bob's own answers out.
func TestConflictingClaimNeverHidesPeer(t *testing.T) {
	for _, c := range []struct {
		name string
		txt  [][2]string
	}{
		{"another id", [][2]string{{txtID, "eeee6666"}, {txtVersion, "1"}, {txtName, "bob"}}},
		{"no id", [][2]string{{"foo", "bar"}}},
		{"another version", [][2]string{{txtID, "bbbb2222"}, {txtVersion, "999"}, {txtName, "bob"}}},
		{"another name", [][2]string{{txtID, "bbbb2222"}, {txtVersion, "1"}, {txtName, "mallory"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable("")
			bob := bobZone()
			evil := *bob
			evil.host, evil.port, evil.addrs = "evil", 6666, []netip.Addr{netip.MustParseAddr("10.77.0.66")}
			evil.txt = encodeTXT(c.txt)
			hear(t, tb, evil.announcement(), srcEvil, t0)
			hear(t, tb, bob.announcement(), src0, t0.Add(time.Second))
			hear(t, tb, evil.announcement(), srcEvil, t0.Add(2*time.Second))
			p := bobIsListed(t, tb, "bob announced after the claim")
			if hasAddr(p, "10.77.0.66:6666") {
				t.Errorf("the differing claim's address entered bob's entry: %v", p.Addrs)
			}
			// Bob's refresh is believed too: his entry lives on past the
			// first TTL while the impostor keeps claiming.
			hear(t, tb, bob.announcement(), src0, t0.Add(100*time.Second))
			hear(t, tb, evil.announcement(), srcEvil, t0.Add(100*time.Second))
			tb.expire(t0.Add(150 * time.Second))
			bobIsListed(t, tb, "after bob's refresh")
		})
	}
}

// TestRepeatedPTRCannotSilencePeer: an impostor repeating bob's PTR keeps
// bob's instance out of our known answers once bob's own record is past
// half its TTL, so bob answers our refresh query and is not left to expire.
func TestRepeatedPTRCannotSilencePeer(t *testing.T) {
	tb := newTable("")
	bob := bobZone()
	hear(t, tb, bob.announcement(), src0, t0)
	hear(t, tb, bob.announcement(), srcEvil, t0.Add(70*time.Second))
	if known := tb.known("eth0", t0.Add(70*time.Second)); len(known) != 0 {
		t.Errorf("known answers at 70 s of bob's 120 s: %v; bob would not answer", known)
	}
}

// TestFloodFromOneSourceCannotHideNewPeer pins finding 15: 1,100 made-up
// instances with 75-minute TTLs from one address leave room for bob.
func TestFloodFromOneSourceCannotHideNewPeer(t *testing.T) {
	tb := newTable("")
	for i := range 1100 {
		hear(t, tb, peerZone(fmt.Sprintf("fake%d", i), fmt.Sprintf("f%07d", i), 1, 4500, "10.77.0.66").announcement(), srcEvil, t0)
	}
	if n := len(tb.bySource[srcEvil]); n > maxPerSource {
		t.Errorf("one source holds %d records, cap %d", n, maxPerSource)
	}
	evs := hear(t, tb, bobZone().announcement(), src0, t0.Add(time.Second))
	if !slices.Equal(kinds(evs), []EventKind{PeerUp}) {
		t.Errorf("bob joining the flooded table: events %v", evs)
	}
	bobIsListed(t, tb, "while one source floods")
}

// TestFloodFromManySourcesCannotHideNewPeer: a flood from 200 addresses of
// the subnet fills the table; bob still gets in, and stays while the flood
// goes on, since a newcomer evicts a record of the source holding most.
func TestFloodFromManySourcesCannotHideNewPeer(t *testing.T) {
	tb := newTable("")
	at := t0
	flood := func(round, n int) {
		for i := range n {
			src := netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + i%200)})
			at = at.Add(time.Millisecond)
			hear(t, tb, peerZone(fmt.Sprintf("fake%d-%d", round, i), fmt.Sprintf("f%d-%06d", round, i), 1, 4500, src.String()).announcement(), src, at)
		}
	}
	flood(0, 2000)
	if tb.n != maxEntries {
		t.Fatalf("the flood left the table at %d records, want it full (%d)", tb.n, maxEntries)
	}
	hear(t, tb, bobZone().announcement(), src0, at.Add(time.Millisecond))
	bobIsListed(t, tb, "bob joining the flooded table")
	flood(1, 3000)
	bobIsListed(t, tb, "while the flood goes on")
	if tb.evicted == 0 || tb.n > maxEntries {
		t.Errorf("evicted %d, table %d records", tb.evicted, tb.n)
	}
}

// TestRecordHeardOnceKeptTwoMinutes: a record announced once with a
// 75-minute TTL is gone after two minutes; one its source repeats keeps
// its TTL.
func TestRecordHeardOnceKeptTwoMinutes(t *testing.T) {
	tb := newTable("")
	once := peerZone("once", "oooo1111", 1, 4500, "10.77.0.5")
	twice := peerZone("twice", "tttt2222", 2, 4500, "10.77.0.6")
	hear(t, tb, once.announcement(), netip.MustParseAddr("10.77.0.5"), t0)
	hear(t, tb, twice.announcement(), netip.MustParseAddr("10.77.0.6"), t0)
	hear(t, tb, twice.announcement(), netip.MustParseAddr("10.77.0.6"), t0.Add(time.Second))
	if evs := tb.expire(t0.Add(newRecordTTL - time.Millisecond)); len(evs) != 0 {
		t.Errorf("expired early: %v", evs)
	}
	evs := tb.expire(t0.Add(newRecordTTL))
	if len(evs) != 1 || evs[0].Kind != PeerDown || evs[0].Peer.ID != "oooo1111" {
		t.Errorf("at two minutes: %v, want the record heard once down", evs)
	}
	if ps := tb.snapshot(); len(ps) != 1 || ps[0].TTL != 75*time.Minute {
		t.Errorf("the repeated record: %v", ps)
	}
}

// TestLabelMismatchFlagged: a record whose instance label is not the one
// its own TXT name and id produce is flagged, whatever the label imitates.
func TestLabelMismatchFlagged(t *testing.T) {
	long := strings.Repeat("n", 80)
	for _, c := range []struct {
		label, name, id string
		want            bool
	}{
		{"bob (bbbb)", "bob", "bbbb2222", false},
		{"BOB (BBBB)", "bob", "bbbb2222", false}, // DNS labels compare case-insensitively
		{InstanceName(long, "llll3333"), long, "llll3333", false},
		{"bob", "mallory", "eeee6666", true},
		{"bob (bbbb)", "mallory", "eeee6666", true},
		{"bob (bbbb)", "bob", "eeee6666", true},
		{"bbbb", "mallory", "eeee6666", true},
		{"bbbb2222", "mallory", "eeee6666", true},
		{"bbbb2222", "", "eeee6666", true},
		{"mallory (eeee)", "mallory", "eeee6666", false},
	} {
		tb := newTable("")
		z := peerZone(c.name, c.id, 1, 120, "10.77.0.66")
		z.instance = c.label
		if c.name == "" {
			z.txt = encodeTXT([][2]string{{txtID, c.id}, {txtVersion, "1"}})
		}
		hear(t, tb, z.announcement(), srcEvil, t0)
		ps := tb.snapshot()
		if len(ps) != 1 || ps[0].LabelMismatch != c.want {
			t.Errorf("label %q, name %q, id %q: %+v, want LabelMismatch %v", c.label, c.name, c.id, ps, c.want)
		}
	}
	// A foreign record (no id) is never flagged.
	tb := newTable("")
	z := peerZone("printer", "x", 1, 120, "10.77.0.9")
	z.txt = encodeTXT(nil)
	hear(t, tb, z.announcement(), srcEvil, t0)
	if ps := tb.snapshot(); len(ps) != 1 || ps[0].ID != "" || ps[0].LabelMismatch {
		t.Errorf("foreign record: %+v", ps)
	}
}

// TestImpostorNoiseNeverRemovesPeer: thousands of random messages from
// other addresses about bob (copies of his records with any mix of his id,
// label, name, version, host and addresses, goodbyes, bare PTRs and lone
// address records, flooding or not) never take bob, refreshing as a real
// agent does, out of the table or his own address out of his entry.
func TestImpostorNoiseNeverRemovesPeer(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 3))
	tb := newTable("")
	bob := bobZone()
	at := t0
	hear(t, tb, bob.announcement(), src0, at)
	pick := func(opts ...string) string { return opts[rng.IntN(len(opts))] }
	for step := range 5000 {
		at = at.Add(time.Duration(rng.IntN(200)) * time.Millisecond)
		if step%300 == 0 {
			hear(t, tb, bob.announcement(), src0, at) // bob's refresh answer
		}
		z := *bob
		id := pick("bbbb2222", "eeee6666", "")
		name := pick("bob", "mallory")
		z.txt = encodeTXT([][2]string{{txtID, id}, {txtVersion, pick("1", "2")}, {txtName, name}})
		if id == "" {
			z.txt = encodeTXT(nil)
		}
		z.instance = pick("bob (bbbb)", "bob", "bbbb2222", InstanceName(name, id))
		z.host = pick("host-bbbb2222", "evil")
		z.port = uint16(pick2(rng, 4242, 6666))
		z.addrs = []netip.Addr{netip.MustParseAddr(pick("10.77.0.2", "10.77.0.66", "fe80::66"))}
		z.ttl = uint32(rng.IntN(5000))
		var m *dns.Msg
		switch rng.IntN(4) {
		case 0:
			m = z.goodbye()
		case 1:
			m = responseMsg()
			m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: serviceFQDN, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: uint32(rng.IntN(2))}, Ptr: z.instanceName()}}
		case 2:
			m = responseMsg()
			m.Answer = append(z.addrRRs(true), z.addrRRs(false)...)
			m.Answer[0].Header().Name = bob.hostName()
		default:
			m = z.announcement()
		}
		src := netip.AddrFrom4([4]byte{10, 77, 0, byte(3 + rng.IntN(250))})
		if src == src0 {
			continue
		}
		hear(t, tb, m, src, at)
		tb.expire(at)
		bobIsListed(t, tb, fmt.Sprintf("step %d", step))
	}
}

func pick2(rng *rand.Rand, a, b int) int {
	if rng.IntN(2) == 0 {
		return a
	}
	return b
}

// TestUnicastAnsweredPeerGoneOnlyByOwnGoodbye: a running agent's first
// query asks for unicast answers, so it may know bob from bob's unicast
// answer alone. A goodbye for bob from another address changes nothing;
// bob's own goodbye, multicast from the address his unicast answer came
// from (responders send both from one address: see sources), removes him.
func TestUnicastAnsweredPeerGoneOnlyByOwnGoodbye(t *testing.T) {
	tb := newTable("")
	bob := bobZone()
	answer, unicast := buildResponse(bob, browseQuery(nil, true), mdnsPort)
	if answer == nil || !unicast {
		t.Fatalf("bob's answer to a QU query: %v, unicast %v", answer, unicast)
	}
	if evs := hear(t, tb, answer, src0, t0); !slices.Equal(kinds(evs), []EventKind{PeerUp}) {
		t.Fatalf("bob's unicast answer: events %v", evs)
	}
	bobIsListed(t, tb, "after bob's unicast answer")
	if evs := hear(t, tb, bob.goodbye(), srcEvil, t0.Add(time.Second)); len(evs) != 0 {
		t.Errorf("copied goodbye from %v: events %v", srcEvil, evs)
	}
	bobIsListed(t, tb, "after a copied goodbye")
	if evs := hear(t, tb, bob.goodbye(), src0, t0.Add(2*time.Second)); !slices.Equal(kinds(evs), []EventKind{PeerDown}) || len(tb.snapshot()) != 0 {
		t.Errorf("bob's own goodbye: events %v, table %v", evs, tb.snapshot())
	}
}

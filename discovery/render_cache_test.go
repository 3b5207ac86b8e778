package discovery

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestRepeatedAnswerKeepsRendering pins the fast path of a response that
// repeats what the table holds (the commonest packet at start-up): no
// event and no new rendering; while every change a Peer shows (a new
// address, another TXT, another port, the TTL after confirmation) still
// gives a PeerUpdate with the new state.
func TestRepeatedAnswerKeepsRendering(t *testing.T) {
	tb := newTable("")
	bob := peerZone("bob", "b0b", 4000, 120, "10.77.0.2")
	if evs := hear(t, tb, bob.announcement(), src0, t0); !slices.Equal(kinds(evs), []EventKind{PeerUp}) {
		t.Fatalf("first announcement: %v", evs)
	}
	key := lowerASCII(instanceFQDN(bob.instance))
	first := tb.peersOf(key)
	if evs := hear(t, tb, bob.announcement(), src0, t0.Add(100*time.Millisecond)); len(evs) != 0 {
		t.Errorf("a repeat gave events %v", evs)
	}
	if tb.peersOf(key) != first {
		t.Error("a repeat rendered the peer again")
	}
	at := t0.Add(200 * time.Millisecond)
	step := func(what string, z *zone, check func(Peer) bool) {
		t.Helper()
		at = at.Add(100 * time.Millisecond)
		evs := hear(t, tb, z.announcement(), src0, at)
		if len(evs) != 1 || evs[0].Kind != PeerUpdate || !check(evs[0].Peer) {
			t.Errorf("%s: events %v", what, evs)
		}
		if ps := tb.snapshot(); len(ps) != 1 || !check(ps[0]) {
			t.Errorf("%s: table %v", what, ps)
		}
	}
	bob.addrs = append(bob.addrs, src1)
	step("second address", bob, func(p Peer) bool { return len(p.Addrs) == 2 })
	bob.txt = encodeTXT([][2]string{{txtID, "b0b"}, {txtVersion, "1"}, {txtName, "bob"}, {"note", "hi"}})
	step("another TXT", bob, func(p Peer) bool { return p.TXT["note"] == "hi" })
	bob.port = 4001
	step("new port", bob, func(p Peer) bool { return p.Port == 4001 })
	// Heard again over confirmAfter after the first: the TTL is honoured.
	bob.ttl = 600
	step("confirmed TTL", bob, func(p Peer) bool { return p.TTL == 10*time.Minute })
}

// TestSnapshotOwnsItsPeers: Peers handed out are the caller's; changing
// them changes neither the table nor later snapshots.
func TestSnapshotOwnsItsPeers(t *testing.T) {
	tb := newTable("")
	hear(t, tb, peerZone("bob", "b0b", 4000, 120, "10.77.0.2").announcement(), src0, t0)
	ps := tb.snapshot()
	ps[0].Addrs[0] = netip.AddrPortFrom(src1, 1)
	ps[0].TXT["id"] = "evil"
	again := tb.snapshot()
	if again[0].TXT["id"] != "b0b" || again[0].Addrs[0].Addr() != src0 {
		t.Errorf("a caller's change reached the table: %v", again[0])
	}
}

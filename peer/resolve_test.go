package peer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/discovery"
)

func lanPeer(name, id, addr string) discovery.Peer {
	ap := netip.MustParseAddrPort(addr)
	return discovery.Peer{
		Instance: discovery.InstanceName(name, id), Name: name, ID: id, Version: ProtocolVersion,
		Host: "h.local", Port: int(ap.Port()), Addrs: []netip.AddrPort{ap},
	}
}

func TestFindPeer(t *testing.T) {
	bob1 := lanPeer("bob", "3fa2aaaaaaaa", "10.0.0.1:52741")
	bob2 := lanPeer("bob", "77bbbbbbbbbb", "10.0.0.2:52741")
	alice := lanPeer("Alice", "a11ceeeeeeee", "10.0.0.3:52741")
	foreign := discovery.Peer{Instance: "plain thing", Name: "plain thing", Port: 4242,
		Addrs: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.4:4242")}}
	future := lanPeer("carol", "cccc00000000", "10.0.0.5:52741")
	future.Version = "2.0"
	all := []discovery.Peer{alice, bob1, bob2, foreign, future}

	for _, tc := range []struct {
		target string
		want   string // instance, or "" for an error
		err    error
		msg    []string // substrings of the error
	}{
		{target: "alice", want: alice.Instance},
		{target: "ALICE", want: alice.Instance},
		{target: "bob (3fa2)", want: bob1.Instance},
		{target: "BOB (77BB)", want: bob2.Instance},
		{target: "77bb", want: bob2.Instance},
		{target: "3fa2aaaaaaaa", want: bob1.Instance},
		{target: "3fa2-aaaa", want: bob1.Instance},
		{target: "bob", err: ErrAmbiguousPeer, msg: []string{"bob (3fa2) id 3fa2aaaa at 10.0.0.1:52741", "bob (77bb) id 77bbbbbb"}},
		{target: "3fa", err: ErrUnknownPeer, msg: []string{"3fa", "seen: Alice (a11c)"}},
		{target: "dave", err: ErrUnknownPeer, msg: []string{"dave"}},
		{target: "plain thing", err: ErrNotSendable, msg: []string{"plain thing", "HOST:PORT"}},
		{target: "carol", err: ErrNotSendable, msg: []string{"protocol 2.0"}},
		{target: "evil\x1b[2J", err: ErrUnknownPeer, msg: []string{`evil\x1b[2J`}},
	} {
		p, err := FindPeer(all, tc.target)
		if tc.err == nil {
			if err != nil || p.Instance != tc.want {
				t.Errorf("FindPeer(%q) = %q, %v; want %q", tc.target, p.Instance, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("FindPeer(%q) error %v, want %v", tc.target, err, tc.err)
			continue
		}
		for _, m := range tc.msg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("FindPeer(%q) error %q does not mention %q", tc.target, err, m)
			}
		}
		if strings.ContainsAny(err.Error(), "\x1b\n") {
			t.Errorf("FindPeer(%q) error %q holds control characters", tc.target, err)
		}
	}
	if _, err := FindPeer(nil, "bob"); !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), "no peers seen") {
		t.Errorf("FindPeer on an empty LAN: %v", err)
	}
}

func TestResolveAddressNeedsNoBrowse(t *testing.T) {
	browse := func(context.Context, []string, time.Duration, func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
		t.Error("browsed for a HOST:PORT target")
		return nil, nil
	}
	for _, target := range []string{"10.0.0.7:52741", "[fe80::1%eth0]:80", "host.example:1"} {
		got, err := Resolve(context.Background(), target, ResolveOptions{Browse: browse})
		if err != nil || len(got.Addrs) != 1 || got.Addrs[0] != target || got.ID != "" {
			t.Errorf("Resolve(%q) = %+v, %v", target, got, err)
		}
	}
}

func TestResolveByName(t *testing.T) {
	bob := lanPeer("bob", "3fa2aaaaaaaa", "10.0.0.1:52741")
	bob.Addrs = append(bob.Addrs, netip.MustParseAddrPort("[fe80::1%eth0]:52741"))
	var gotWait time.Duration
	browse := func(_ context.Context, ifaces []string, wait time.Duration, _ func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
		bob.Instance = discovery.InstanceName(bob.Name, bob.ID)
		gotWait = wait
		if len(ifaces) != 1 || ifaces[0] != "eth0" {
			t.Errorf("browse ifaces %q, want [eth0]", ifaces)
		}
		return []discovery.Peer{bob}, nil
	}
	got, err := Resolve(context.Background(), "bob", ResolveOptions{Browse: browse, Ifaces: []string{"eth0"}, Wait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if gotWait != 300*time.Millisecond {
		t.Errorf("browsed for %v, want 300ms", gotWait)
	}
	if got.ID != bob.ID || got.Name != "bob (3fa2)" || len(got.Addrs) != 2 {
		t.Errorf("Resolve = %+v", got)
	}
	_, err = Resolve(context.Background(), "nobody", ResolveOptions{Browse: browse, Ifaces: []string{"eth0"}, Wait: 300 * time.Millisecond})
	if !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), "nobody within 300ms (seen: bob (3fa2)") {
		t.Errorf("Resolve(nobody) = %v", err)
	}
	// Only a whole id is an explicit choice of key; everything else can be
	// copied or ground by an impostor and is checked against pins.
	bob.ID = strings.Repeat("b", IDLen)
	for target, byName := range map[string]bool{"bob": true, "bob (bbbb)": true, "bbbb": true, bob.ID: false, GroupID(bob.ID): false} {
		got, err := Resolve(context.Background(), target, ResolveOptions{Browse: browse, Ifaces: []string{"eth0"}})
		if err != nil || got.ByName != byName {
			t.Errorf("Resolve(%q).ByName = %v, %v; want %v", target, got.ByName, err, byName)
		}
	}
}

// TestSendTriesNextAddress pins the fallback: an address that refuses the
// connection is skipped, and the transfer goes to the next.
func TestSendTriesNextAddress(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	bob := startAgent(t, nil)
	to := bob.target()
	to.Addrs = append([]string{deadAddr}, to.Addrs...)
	rep, err := sendFile(t, testSender(t), to, "a.txt", "hello")
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if rep.Saved() != 1 {
		t.Errorf("saved %d, want 1", rep.Saved())
	}
	assertTree(t, bob.dir, map[string]string{"a.txt": "hello"})
}

// TestResolveEndsEarly pins when Resolve stops browsing: a whole id at
// once, a name once it has settled, an unknown name never before the wait.
func TestResolveEndsEarly(t *testing.T) {
	bob := lanPeer("bob", strings.Repeat("b", IDLen), "10.0.0.1:52741")
	bob2 := lanPeer("bob", strings.Repeat("c", IDLen), "10.0.0.2:52741")
	for _, c := range []struct {
		target  string
		peers   []discovery.Peer
		elapsed time.Duration
		want    bool
	}{
		{bob.ID, []discovery.Peer{bob}, 10 * time.Millisecond, true},
		{GroupID(bob.ID), []discovery.Peer{bob}, 10 * time.Millisecond, true},
		{"bob", []discovery.Peer{bob}, 100 * time.Millisecond, false},
		{"bob", []discovery.Peer{bob}, resolveSettle, true},
		{"bbbb", []discovery.Peer{bob}, 100 * time.Millisecond, false},
		{"bob", []discovery.Peer{bob, bob2}, resolveSettle, true},
		{"carol", []discovery.Peer{bob}, 900 * time.Millisecond, false},
	} {
		var got *bool
		browse := func(_ context.Context, _ []string, _ time.Duration, enough func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
			v := enough(c.peers, c.elapsed)
			got = &v
			return c.peers, nil
		}
		_, _ = Resolve(context.Background(), c.target, ResolveOptions{Browse: browse, Wait: time.Second})
		if got == nil || *got != c.want {
			t.Errorf("target %q with %d peers after %v: enough = %v, want %v", c.target, len(c.peers), c.elapsed, got, c.want)
		}
	}
}

// TestResolveFromKnownTable: a name the local agent's table knows once is
// resolved without browsing; anything else still browses.
func TestResolveFromKnownTable(t *testing.T) {
	bob := lanPeer("bob", strings.Repeat("b", IDLen), "10.0.0.1:52741")
	bob2 := lanPeer("bob", strings.Repeat("c", IDLen), "10.0.0.2:52741")
	browsed := 0
	browse := func(context.Context, []string, time.Duration, func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
		browsed++
		return []discovery.Peer{bob}, nil
	}
	for _, c := range []struct {
		table  []discovery.Peer
		browse int
	}{
		{[]discovery.Peer{bob}, 0},
		{[]discovery.Peer{bob, bob2}, 1}, // ambiguous in the table: ask the LAN
		{nil, 1},
	} {
		browsed = 0
		opt := ResolveOptions{Browse: browse, Known: func(context.Context) []discovery.Peer { return c.table }}
		got, err := Resolve(context.Background(), "bob", opt)
		if err != nil || got.ID != bob.ID || !got.ByName || browsed != c.browse {
			t.Errorf("table of %d: Resolve = %+v, %v after %d browses; want bob after %d", len(c.table), got, err, browsed, c.browse)
		}
	}
}

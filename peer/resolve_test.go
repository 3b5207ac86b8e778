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
		{target: "bob", err: ErrAmbiguousPeer, msg: []string{"bob (3fa2) id 3fa2-aaaa at 10.0.0.1:52741", "bob (77bb) id 77bb-bbbb"}},
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

// forged is a record that an attacker with id id and name name publishes
// under the instance label label, at addr.
func forged(label, name, id, addr string) discovery.Peer {
	p := lanPeer(name, id, addr)
	p.Instance = label
	return p
}

// TestSuspiciousLabelIgnoredForMatching pins finding 1 of issue 13: a
// label that is not the one the record's own name and id make (bob's
// name, instance name, id prefix or whole id over mallory's TXT) never
// matches; bob is found by what he advertises, and without bob the
// forged records match nothing.
func TestSuspiciousLabelIgnoredForMatching(t *testing.T) {
	bobID, malID := "3fa2"+strings.Repeat("b", IDLen-4), strings.Repeat("m", IDLen)
	bob := lanPeer("bob", bobID, "10.0.0.1:52741")
	var fakes []discovery.Peer
	for _, label := range []string{"bob", "BOB", bob.Instance, "3fa2", bobID, GroupID(bobID)} {
		fakes = append(fakes, forged(label, "mallory", malID, "10.0.0.66:52741"))
	}
	for _, p := range fakes {
		if !Suspicious(p) {
			t.Errorf("label %q over name mallory, id %s: not suspicious", p.Instance, ShortID(malID))
		}
	}
	if Suspicious(bob) || Suspicious(lanPeer("Bob Ünïcode", malID, "10.0.0.2:1")) {
		t.Error("a label the record's own name and id make is suspicious")
	}
	for _, target := range []string{"bob", "BOB", bob.Instance, "3fa2", "3FA2-BBBB", bobID, GroupID(bobID)} {
		for _, peers := range [][]discovery.Peer{append(fakes, bob), append([]discovery.Peer{bob}, fakes...)} {
			if p, err := FindPeer(peers, target); err != nil || p.ID != bobID {
				t.Errorf("FindPeer(%q) with forged labels and bob = %s, %v; want bob", target, p.Instance, err)
			}
		}
		if p, err := FindPeer(fakes, target); !errors.Is(err, ErrUnknownPeer) {
			t.Errorf("FindPeer(%q) among forged labels only = %q (id %s), %v; want ErrUnknownPeer", target, p.Instance, ShortID(p.ID), err)
		}
	}
	// The forged records are still mallory's, by his own name and id.
	for _, target := range []string{"mallory", "mmmm", malID} {
		if p, err := FindPeer(fakes, target); err != nil || p.ID != malID {
			t.Errorf("FindPeer(%q) = %s, %v; want mallory's id", target, p.Instance, err)
		}
	}
}

// TestWholeIDMatchesOnlyThatKey: a whole id names one key; a name or a
// label that spells it is not that key.
func TestWholeIDMatchesOnlyThatKey(t *testing.T) {
	bobID, malID := strings.Repeat("b", IDLen), strings.Repeat("m", IDLen)
	// mallory calls himself bob's id: label and name are his own.
	mal := lanPeer(bobID, malID, "10.0.0.66:52741")
	if _, err := FindPeer([]discovery.Peer{mal}, bobID); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("a peer named like bob's id matched bob's id: %v", err)
	}
	bob := lanPeer("bob", bobID, "10.0.0.1:52741")
	if p, err := FindPeer([]discovery.Peer{mal, bob}, GroupID(bobID)); err != nil || p.ID != bobID {
		t.Errorf("FindPeer(bob's id) = %s, %v; want bob", ShortID(p.ID), err)
	}
}

// pins returns a Known in a new directory with each name pinned to its id.
func pins(t testing.TB, nameID ...string) *Known {
	t.Helper()
	k, err := LoadKnown(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(nameID); i += 2 {
		if err := k.Pin(nameID[i+1], nameID[i]); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// TestResolvePinnedNameReachesPinnedKey: what the user typed names a
// pinned peer (its name, an instance name of it, a prefix of its id), so
// Resolve picks the pinned id whatever else claims the name: a peer of
// the same display name, or one that ground bob's four-character prefix.
// Without pins the same records are ambiguous, as before.
func TestResolvePinnedNameReachesPinnedKey(t *testing.T) {
	bobID := "3fa2" + strings.Repeat("b", IDLen-4)
	ground := "3fa2" + strings.Repeat("z", IDLen-4) // "bob (3fa2)" too
	bob := lanPeer("bob", bobID, "10.0.0.1:52741")
	records := []discovery.Peer{
		lanPeer("bob", ground, "10.0.0.66:52741"),
		lanPeer("bob", strings.Repeat("m", IDLen), "10.0.0.67:52741"),
		bob,
	}
	known := pins(t, "bob", bobID)
	browse := func(context.Context, []string, time.Duration, func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
		return records, nil
	}
	for _, typed := range []string{"bob", "BOB", "bob (3fa2)", "3fa2", "3fa2-bbbb"} {
		got, err := Resolve(context.Background(), typed, ResolveOptions{Browse: browse, Pins: known, Wait: time.Millisecond})
		if err != nil || got.ID != bobID || got.Typed != typed || !got.ByName {
			t.Errorf("Resolve(%q) with bob pinned = %+v, %v; want bob's id", typed, got, err)
			continue
		}
		if err := known.Check(got); err != nil {
			t.Errorf("Check(%q → bob) = %v", typed, err)
		}
		if typed == "3fa2-bbbb" {
			continue // only bob's id starts so
		}
		if _, err := Resolve(context.Background(), typed, ResolveOptions{Browse: browse, Wait: time.Millisecond}); !errors.Is(err, ErrAmbiguousPeer) {
			t.Errorf("Resolve(%q) without pins = %v, want ErrAmbiguousPeer", typed, err)
		}
	}
	// The pinned key gone, what claims the name resolves, and the pin
	// check refuses it before anything is sent.
	records = records[:1]
	for _, typed := range []string{"bob", "bob (3fa2)", "3fa2"} {
		got, err := Resolve(context.Background(), typed, ResolveOptions{Browse: browse, Pins: known, Wait: time.Millisecond})
		if err != nil || got.ID != ground {
			t.Fatalf("Resolve(%q) without bob = %+v, %v; want the ground id", typed, got, err)
		}
		if err := known.Check(got); !errors.Is(err, ErrKeyChanged) {
			t.Errorf("Check(%q → ground id) = %v, want ErrKeyChanged", typed, err)
		}
	}
}

// TestForgedLabelOfPinnedNameIsKeyChanged: bob pinned and gone, a record
// whose label (not its own) claims what the user typed makes Resolve stop
// with ErrKeyChanged (exit 6), naming both ids; unpinned, it is unknown.
func TestForgedLabelOfPinnedNameIsKeyChanged(t *testing.T) {
	bobID, malID := "3fa2"+strings.Repeat("b", IDLen-4), strings.Repeat("m", IDLen)
	known := pins(t, "bob", bobID)
	for _, label := range []string{"bob", "bob (3fa2)", "3fa2"} {
		browse := func(context.Context, []string, time.Duration, func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
			return []discovery.Peer{forged(label, "mallory", malID, "10.0.0.66:52741")}, nil
		}
		_, err := Resolve(context.Background(), label, ResolveOptions{Browse: browse, Pins: known, Wait: time.Millisecond})
		if !errors.Is(err, ErrKeyChanged) || !strings.Contains(err.Error(), GroupID(bobID)) || !strings.Contains(err.Error(), GroupID(malID)) {
			t.Errorf("send %q, bob pinned, only a forged label: %v; want ErrKeyChanged naming both ids", label, err)
		}
		_, err = Resolve(context.Background(), label, ResolveOptions{Browse: browse, Wait: time.Millisecond})
		if !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), "ignored") {
			t.Errorf("send %q, nothing pinned, only a forged label: %v; want ErrUnknownPeer saying the label was ignored", label, err)
		}
	}
}

// TestCheckHoldsWhatTheUserTyped pins the other half of finding 1: the
// pin check covers what the user typed, not only the display name the
// record gives, which is the attacker's to choose.
func TestCheckHoldsWhatTheUserTyped(t *testing.T) {
	bobID, bob2ID, malID := "3fa2"+strings.Repeat("b", IDLen-4), strings.Repeat("c", IDLen), strings.Repeat("m", IDLen)
	known := pins(t, "bob", bobID)
	if err := known.Trust(bob2ID, "bob"); err != nil { // a second device named bob
		t.Fatal(err)
	}
	for _, c := range []struct {
		typed, name, id string
		byName          bool
		want            error
	}{
		{"bob", "mallory", malID, true, ErrKeyChanged},
		{"Bob", "", malID, true, ErrKeyChanged},
		{"bob (3fa2)", "mallory", malID, true, ErrKeyChanged},
		{"bob (mmmm)", "mallory", malID, true, ErrKeyChanged}, // bob's name, another suffix
		{"3fa2", "mallory", malID, true, ErrKeyChanged},
		{"3FA2-bbbb", "mallory", malID, true, ErrKeyChanged},
		{"mallory", "bob", malID, true, ErrKeyChanged}, // the record's name is pinned
		{"mallory", "mallory", malID, true, nil},
		{"mmmm", "mallory", malID, true, nil},
		{malID, "bob", malID, false, nil}, // a whole id is the user's choice of key
		{"bob", "bob", bobID, true, nil},
		{"bob", "bob", bob2ID, true, nil},
		{"cccc", "bob", bob2ID, true, nil},
	} {
		err := known.Check(Target{Name: c.name, DisplayName: c.name, ID: c.id, ByName: c.byName, Typed: c.typed})
		if !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Errorf("Check(typed %q, record %q id %s) = %v, want %v", c.typed, c.name, ShortID(c.id), err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "lanshare trust --replace "+GroupID(c.id)) {
			t.Errorf("Check(typed %q): %q does not say how to accept the new key", c.typed, err)
		}
	}
}

// TestResolveMergesRecordsOfOneID pins finding 3's sending half: records
// that carry the same id are one peer, not an ambiguity; its addresses
// are all tried, those of records whose label is their own first.
func TestResolveMergesRecordsOfOneID(t *testing.T) {
	bobID := strings.Repeat("b", IDLen)
	bob := lanPeer("bob", bobID, "10.0.0.1:52741")
	copied := forged("bob", "bob", bobID, "10.0.0.66:52741") // label not its own
	sameLabel := lanPeer("bob", bobID, "10.0.0.67:52741")    // an exact copy elsewhere
	foreign := lanPeer("bob", bobID, "10.0.0.68:52741")      // a copy of another version
	foreign.Version = "2.0"
	browse := func(context.Context, []string, time.Duration, func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
		return []discovery.Peer{copied, foreign, bob, sameLabel}, nil
	}
	for _, typed := range []string{"bob", "bob (bbbb)", "bbbb", bobID} {
		got, err := Resolve(context.Background(), typed, ResolveOptions{Browse: browse, Wait: time.Millisecond})
		want := []string{"10.0.0.1:52741", "10.0.0.67:52741", "10.0.0.66:52741"}
		if err != nil || got.ID != bobID || got.Name != "bob (bbbb)" || strings.Join(got.Addrs, " ") != strings.Join(want, " ") {
			t.Errorf("Resolve(%q) = %+v, %v; want bob with addresses %q", typed, got, err, want)
		}
	}
}

// TestSendSkipsAddressWithAnotherKey pins finding 3: an address that
// answers with another key (someone advertising bob's id at its own
// address) is skipped, nothing sent to it, and the send reaches bob at
// the next; only when no address holds the key does it fail with
// ErrWrongKey.
func TestSendSkipsAddressWithAnotherKey(t *testing.T) {
	bob := startAgent(t, nil)
	mallory := startAgent(t, func(c *Config) { c.Name = "mallory" })
	alice := testSender(t)
	to := bob.target()
	to.Addrs = []string{mallory.Addr().String(), bob.Addr().String()}
	rep, err := sendFile(t, alice, to, "a.txt", "for bob")
	if err != nil || rep.Saved() != 1 {
		t.Fatalf("send with an impostor at the first address: %v", err)
	}
	assertTree(t, bob.dir, map[string]string{"a.txt": "for bob"})
	if in := mallory.next(t); !errors.Is(in.Err, ErrHandshake) {
		t.Errorf("impostor's side: %v, want a failed handshake", in.Err)
	}
	assertEmpty(t, mallory.dir)

	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	to.Addrs = []string{mallory.Addr().String(), deadAddr}
	if _, err := sendFile(t, alice, to, "b.txt", "for bob"); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), mallory.Addr().String()) {
		t.Errorf("no address holds bob's key: %v, want ErrWrongKey naming the impostor's address", err)
	}
	assertEmpty(t, mallory.dir)
}

// TestSendByPinnedNameNeverReachesImpostor runs finding 1's attack end to
// end over loopback: alice has sent to bob, so bob is pinned; mallory, a
// real agent with his own key, advertises bob's name, instance name,
// prefix or whole id as his label, over his own TXT name and id. Whatever
// alice types for bob, the file reaches bob, or, with bob gone, the send
// stops with ErrKeyChanged; mallory gets nothing.
func TestSendByPinnedNameNeverReachesImpostor(t *testing.T) {
	bob := startAgent(t, nil)
	mallory := startAgent(t, func(c *Config) { c.Name = "mallory" })
	alice := testSender(t)
	if _, err := sendFile(t, alice, bob.target(), "first.txt", "pin"); err != nil {
		t.Fatal(err)
	}
	bobRec := lanPeer("bob", bob.ID(), bob.Addr().String())
	for _, label := range []string{"bob", bobRec.Instance, bob.ID()[:4], bob.ID()} {
		fake := forged(label, "mallory", mallory.ID(), mallory.Addr().String())
		for _, typed := range []string{"bob", bobRec.Instance, bob.ID()[:4]} {
			for _, records := range [][]discovery.Peer{{fake, bobRec}, {fake}} {
				browse := func(context.Context, []string, time.Duration, func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
					return records, nil
				}
				to, err := Resolve(context.Background(), typed, ResolveOptions{Browse: browse, Pins: alice.Known, Wait: time.Millisecond})
				if err == nil {
					_, err = sendFile(t, alice, to, "secret.txt", "for bob")
				}
				switch {
				case len(records) == 2 && err != nil:
					t.Errorf("label %q, send %q with bob there: %v; want it sent to bob", label, typed, err)
				case len(records) == 1 && !errors.Is(err, ErrKeyChanged) && !errors.Is(err, ErrUnknownPeer):
					t.Errorf("label %q, send %q with bob gone: %v; want ErrKeyChanged or ErrUnknownPeer", label, typed, err)
				}
				if typed != bob.ID()[:4] && len(records) == 1 && label == typed && !errors.Is(err, ErrKeyChanged) {
					t.Errorf("label %q, send %q with bob gone: %v; want ErrKeyChanged (exit 6)", label, typed, err)
				}
			}
		}
	}
	assertEmpty(t, mallory.dir)
	for p, data := range tree(t, bob.dir) {
		if p != "first.txt" && data != "for bob" {
			t.Errorf("bob's folder holds %s = %q", p, data)
		}
	}
}

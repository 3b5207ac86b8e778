package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/discovery"
)

func TestParseStaticAddr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10.0.5.7", "10.0.5.7:52741"},
		{"10.0.5.7:4000", "10.0.5.7:4000"},
		{"NAS.Lan", "nas.lan:52741"},
		{"nas.lan.:80", "nas.lan:80"},
		{"fd00::7", "[fd00::7]:52741"},
		{"[fd00::7]", "[fd00::7]:52741"},
		{"[FD00:0::7]:9", "[fd00::7]:9"},
		{"fe80::1%eth0", "[fe80::1%eth0]:52741"},
		{"my_host-1", "my_host-1:52741"},
	} {
		got, err := ParseStaticAddr(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseStaticAddr(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", ":52741", "host:", "host:0", "host:65536", "host:x", "0.0.0.0", "[::]:1", "224.0.0.251",
		"-bad.lan", "bad-.lan", "a..b", "fd00::7:80:", "host name", "evil\x1b[2J", strings.Repeat("a", 64) + ".lan", "[fd00::7"} {
		if got, err := ParseStaticAddr(bad); err == nil {
			t.Errorf("ParseStaticAddr(%q) = %q, want an error", bad, got)
		} else if strings.ContainsAny(err.Error(), "\x1b") {
			t.Errorf("ParseStaticAddr(%q): error %q holds control characters", bad, err)
		}
	}
}

var (
	idA = strings.Repeat("a", IDLen)
	idB = strings.Repeat("b", IDLen)
	idC = strings.Repeat("c", IDLen)
)

func TestStaticFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := LoadStatic(dir)
	if err != nil || len(s.List()) != 0 {
		t.Fatalf("LoadStatic on an empty dir = %v, %v", s.List(), err)
	}
	for _, p := range []StaticPeer{
		{Addr: "10.0.5.7:52741", ID: idA, Name: "bob"},
		{Addr: "nas.lan:4000", ID: idB, Name: "the  nas"},
		{Addr: "10.0.9.9:52741"},
	} {
		if err := s.Put(p); err != nil {
			t.Fatal(err)
		}
	}
	// Put replaces the entry of an address in place.
	if err := s.Put(StaticPeer{Addr: "10.0.5.7:52741", ID: idC, Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	want := []StaticPeer{{Addr: "10.0.5.7:52741", ID: idC, Name: "bob"}, {Addr: "nas.lan:4000", ID: idB, Name: "the nas"}, {Addr: "10.0.9.9:52741"}}
	again, err := LoadStatic(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.List(); !slices.Equal(got, want) {
		t.Errorf("read back %+v\nwant %+v", got, want)
	}
	fi, err := os.Stat(filepath.Join(dir, staticFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("static_peers: %v, mode %v; want 0600", err, fi.Mode())
	}
	for what, addr := range map[string]string{"the NAS": "nas.lan:4000", "10.0.9.9": "10.0.9.9:52741", "cccc": "10.0.5.7:52741"} {
		gone, err := again.Remove(what)
		if err != nil || len(gone) != 1 || gone[0].Addr != addr {
			t.Errorf("Remove(%q) = %+v, %v; want the entry of %s", what, gone, err, addr)
		}
	}
	if _, err := again.Remove("bob"); !errors.Is(err, ErrNotStatic) {
		t.Errorf("Remove of what is gone: %v, want ErrNotStatic", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("config dir holds %v, want static_peers alone (no temporary files)", entries)
	}
}

// TestStaticPutKeepsOtherWriters: a change re-reads the file first, so
// what another process added since is kept.
func TestStaticPutKeepsOtherWriters(t *testing.T) {
	dir := t.TempDir()
	one, _ := LoadStatic(dir)
	two, _ := LoadStatic(dir)
	if err := one.Put(StaticPeer{Addr: "10.0.0.1:1", ID: idA, Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := two.Put(StaticPeer{Addr: "10.0.0.2:1", ID: idB, Name: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := one.Remove("b"); err != nil {
		t.Fatalf("Remove of what another writer added: %v", err)
	}
	s, _ := LoadStatic(dir)
	if got := s.List(); len(got) != 1 || got[0].Name != "a" {
		t.Errorf("after two writers: %+v, want a alone", got)
	}
}

func TestStaticFileBadLines(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "10.0.%d.%d %s n\n", i/250, i%250+1, idA)
		}
		return b.String()
	}
	for _, c := range []struct{ name, file, want string }{
		{"no id", "# c\n\n10.0.0.1:1\n", "line 3"},
		{"bad id", "10.0.0.1:1 " + idA + " a\n10.0.0.2 nope b\n", "line 2"},
		{"bad address", "10.0.0.1:99999 - x\n", "line 1"},
		{"twice", "10.0.0.1 - \n10.0.0.1:52741 " + idA + " a\n", "listed twice"},
		{"too many peers", many(MaxStaticPeers + 1), "more than 256 peers"},
		{"too many lines", strings.Repeat("#\n", maxStaticLines+1), "lines"},
		{"too large", strings.Repeat("#", maxStaticFileSize+1), "larger than"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, staticFile), []byte(c.file), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadStatic(dir)
		if !errors.Is(err, ErrStaticFile) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: LoadStatic = %v, want ErrStaticFile naming %q", c.name, err, c.want)
		}
	}
	// A full list takes no more.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, staticFile), []byte(many(MaxStaticPeers)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadStatic(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(StaticPeer{Addr: "10.9.9.9:1"}); !errors.Is(err, ErrStaticFull) {
		t.Errorf("Put into a full list: %v, want ErrStaticFull", err)
	}
}

// settlingBrowse is a Browse that returns peers once enough says so,
// calling it at growing elapsed times up to wait; it records when it
// stopped.
func settlingBrowse(peers []discovery.Peer, stopped *time.Duration) func(context.Context, []string, time.Duration, func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
	return func(_ context.Context, _ []string, wait time.Duration, enough func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error) {
		for e := time.Duration(0); e < wait; e += 50 * time.Millisecond {
			if enough(peers, e) {
				*stopped = e
				return peers, nil
			}
		}
		*stopped = wait
		return peers, nil
	}
}

func TestResolveStatic(t *testing.T) {
	bob := StaticPeer{Addr: "10.0.5.7:52741", ID: idB, Name: "bob"}
	bobVPN := StaticPeer{Addr: "10.8.0.7:52741", ID: idB, Name: "bob"}
	nas := StaticPeer{Addr: "nas.lan:52741"}
	statics := []StaticPeer{bob, nas, bobVPN}
	const wait = 3 * time.Second
	for _, c := range []struct {
		typed  string
		lan    []discovery.Peer
		want   Target
		byName bool
		err    error
	}{
		{typed: "bob", want: Target{ID: idB, Addrs: []string{bob.Addr, bobVPN.Addr}}, byName: true},
		{typed: "BOB (bbbb)", want: Target{ID: idB, Addrs: []string{bob.Addr, bobVPN.Addr}}, byName: true},
		{typed: "bbbb-bb", want: Target{ID: idB, Addrs: []string{bob.Addr, bobVPN.Addr}}, byName: true},
		{typed: GroupID(idB), want: Target{ID: idB, Addrs: []string{bob.Addr, bobVPN.Addr}}},
		// Its address reaches its pinned key only.
		{typed: "10.0.5.7:52741", want: Target{ID: idB, Addrs: []string{bob.Addr}}, byName: true},
		{typed: "10.0.5.7", want: Target{ID: idB, Addrs: []string{bob.Addr}}, byName: true},
		// An unverified peer is an address.
		{typed: "nas.lan", want: Target{Addrs: []string{nas.Addr}}, byName: true},
		// A record of its id on the LAN adds its addresses.
		{typed: "bob", lan: []discovery.Peer{lanPeer("bob", idB, "192.168.1.5:52741")},
			want: Target{ID: idB, Addrs: []string{"192.168.1.5:52741", bob.Addr, bobVPN.Addr}}, byName: true},
		// A record that only copies its name gives way to the pinned key.
		{typed: "bob", lan: []discovery.Peer{lanPeer("bob", idC, "192.168.1.6:52741")},
			want: Target{ID: idB, Addrs: []string{bob.Addr, bobVPN.Addr}}, byName: true},
		{typed: "carol", lan: []discovery.Peer{lanPeer("bob", idC, "192.168.1.6:52741")}, err: ErrUnknownPeer},
	} {
		var stopped time.Duration
		got, err := Resolve(context.Background(), c.typed, ResolveOptions{Static: statics, Wait: wait, Browse: settlingBrowse(c.lan, &stopped)})
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("Resolve(%q) = %+v, %v; want %v", c.typed, got, err, c.err)
			}
			continue
		}
		if err != nil || got.ID != c.want.ID || !slices.Equal(got.Addrs, c.want.Addrs) || got.ByName != c.byName || got.Static == "" || got.Typed != c.typed {
			t.Errorf("Resolve(%q) = %+v, %v\nwant id %q, addresses %q, by name %v, static", c.typed, got, err, c.want.ID, c.want.Addrs, c.byName)
		}
		if stopped > resolveSettle {
			t.Errorf("Resolve(%q) browsed for %v: a static peer needs no more than %v", c.typed, stopped, resolveSettle)
		}
	}
	// Two static keys under one name: the user must choose.
	carol1 := StaticPeer{Addr: "10.0.0.1:1", ID: idA, Name: "carol"}
	carol2 := StaticPeer{Addr: "10.0.0.2:1", ID: idC, Name: "carol"}
	var stopped time.Duration
	_, err := Resolve(context.Background(), "carol", ResolveOptions{Static: []StaticPeer{carol1, carol2}, Wait: wait, Browse: settlingBrowse(nil, &stopped)})
	if !errors.Is(err, ErrAmbiguousPeer) || !strings.Contains(err.Error(), "10.0.0.2:1") {
		t.Errorf("Resolve of two static carols = %v, want ErrAmbiguousPeer naming both", err)
	}
	// A pinned key on the LAN and a static one under one name: the same.
	pins, _ := LoadKnown(t.TempDir())
	for _, id := range []string{idA, idC} {
		if err := pins.Pin(id, "carol"); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Resolve(context.Background(), "carol", ResolveOptions{Static: []StaticPeer{carol2}, Pins: pins, Wait: wait,
		Browse: settlingBrowse([]discovery.Peer{lanPeer("carol", idA, "10.0.0.1:52741")}, &stopped)})
	if !errors.Is(err, ErrAmbiguousPeer) {
		t.Errorf("Resolve of a pinned carol on the LAN and a static one = %v, want ErrAmbiguousPeer", err)
	}
}

// staticOf is ta as a static peer.
func staticOf(ta *testAgent) StaticPeer {
	return StaticPeer{Addr: ta.Addr().String(), ID: ta.ID(), Name: "bob"}
}

// TestCheckStatic: a check finds a peer up with its key, reports another
// key as changed and an unverified peer's key, finds a closed port down,
// and the checked agent does not report the checks as transfers.
func TestCheckStatic(t *testing.T) {
	bob := startAgent(t, nil)
	alice := testSender(t)
	ctx := context.Background()
	wrong := staticOf(bob)
	wrong.ID = idA
	for _, c := range []struct {
		p           StaticPeer
		state, seen string
	}{
		{staticOf(bob), StaticUp, ""},
		{wrong, StaticKeyChanged, bob.ID()},
		{StaticPeer{Addr: bob.Addr().String()}, StaticUp, bob.ID()},
		{StaticPeer{Addr: closedAddr(t, "tcp4", "127.0.0.1"), ID: bob.ID()}, StaticDown, ""},
	} {
		st := CheckStatic(ctx, alice.Identity, c.p)
		if st.State != c.state || st.SeenID != c.seen || st.Checked.IsZero() || (c.state == StaticDown) != (st.Error != "") {
			t.Errorf("CheckStatic(%+v) = %+v; want state %s, seen id %q", c.p, st, c.state, c.seen)
		}
	}
	// The three probes that reached bob are not transfers: the next
	// connection it reports is this send.
	if _, err := sendFile(t, alice, bob.target(), "after.txt", "x"); err != nil {
		t.Fatal(err)
	}
	if in := bob.next(t); in.Err != nil || in.Transfer == nil || len(in.Transfer.Entries) != 1 {
		t.Errorf("bob reported %+v first, want the send after the probes", in)
	}
}

// TestProbeStaticLearnsName: an add learns the id and the name the peer
// gives in its hello, whatever the peer's accept policy.
func TestProbeStaticLearnsName(t *testing.T) {
	alice := testSender(t)
	for _, accept := range []string{AcceptEveryone, AcceptTrusted, AcceptAsk} {
		bob := startAgent(t, func(c *Config) { c.Accept = accept })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		id, name, err := ProbeStatic(ctx, alice.Identity, bob.Addr().String(), "alice")
		cancel()
		if err != nil || id != bob.ID() || name != "bob" {
			t.Errorf("--accept %s: ProbeStatic = %q, %q, %v; want bob's id and name", accept, id, name, err)
		}
		// bob is done with it (a transfer of nothing, a refusal, an
		// offer given up), and no offer is left waiting.
		bob.next(t)
		if p := bob.Pending(); len(p) != 0 {
			t.Errorf("--accept %s: an offer waits after the probe: %+v", accept, p)
		}
	}
	if _, _, err := ProbeStatic(context.Background(), alice.Identity, closedAddr(t, "tcp4", "127.0.0.1"), "alice"); err == nil {
		t.Error("ProbeStatic of a closed port succeeded")
	}
}

// TestAgentChecksStaticPeers: a running agent reads its static-peers
// file, checks each peer, reports its state (up, key-changed) in its
// Status, logs a changed key once, and follows the file as it changes.
func TestAgentChecksStaticPeers(t *testing.T) {
	bob := startAgent(t, nil)
	var mu sync.Mutex
	var logged []string
	alice := startAgent(t, func(c *Config) {
		c.Name = "alice"
		c.Logf = func(f string, args ...any) {
			mu.Lock()
			logged = append(logged, fmt.Sprintf(f, args...))
			mu.Unlock()
		}
	})
	list, err := LoadStatic(alice.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := list.Put(staticOf(bob)); err != nil {
		t.Fatal(err)
	}
	waitStatic(t, alice, bob.Addr().String(), StaticUp)
	if st := alice.Status(); len(st.Static) != 1 || st.Static[0].ID != bob.ID() || st.Static[0].Since.IsZero() {
		t.Errorf("Status().Static = %+v", st.Static)
	}
	wrong := staticOf(bob)
	wrong.ID = idA
	if err := list.Put(wrong); err != nil {
		t.Fatal(err)
	}
	got := waitStatic(t, alice, bob.Addr().String(), StaticKeyChanged)
	if got.SeenID != bob.ID() || got.ID != idA {
		t.Errorf("key-changed status %+v, want seen id %s", got, bob.ID())
	}
	mu.Lock()
	n := 0
	for _, l := range logged {
		if strings.Contains(l, "now holds key "+GroupID(bob.ID())) && strings.Contains(l, "lanshare peers add --replace "+bob.Addr().String()) {
			n++
		}
	}
	mu.Unlock()
	if n != 1 {
		t.Errorf("logged %q; want one line on the changed key", logged)
	}
	if _, err := list.Remove(bob.Addr().String()); err != nil {
		t.Fatal(err)
	}
	waitStaticList(t, alice, "the removed peer gone", func(l []StaticStatus) bool { return len(l) == 0 })
}

// waitStatic waits until a lists the static peer at addr in state.
func waitStatic(t testing.TB, a *testAgent, addr, state string) StaticStatus {
	t.Helper()
	var found StaticStatus
	waitStaticList(t, a, addr+" "+state, func(l []StaticStatus) bool {
		for _, st := range l {
			if st.Addr == addr && st.State == state {
				found = st
				return true
			}
		}
		return false
	})
	return found
}

// waitStaticList waits, on the checker's change events, until ok holds
// for a's static peers.
func waitStaticList(t testing.TB, a *testAgent, what string, ok func([]StaticStatus) bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		changed := a.static.changes()
		if ok(a.StaticPeers()) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("static peers: no %s within 10s: %+v", what, a.StaticPeers())
		}
	}
}

// TestStaticBackoff: a peer that answers is checked every 30 s or so; one
// that does not, ever less often, up to staticDownMax, with jitter.
func TestStaticBackoff(t *testing.T) {
	c := newStaticChecker(t.TempDir(), nil, nil, nil)
	e := &staticEntry{status: StaticStatus{Addr: "10.0.0.1:1", ID: idA, State: StaticUnknown}}
	c.entries = []*staticEntry{e}
	now := time.Now()
	var waits []time.Duration
	for range 8 {
		c.done(e, StaticStatus{Addr: "10.0.0.1:1", ID: idA, State: StaticDown}, now)
		waits = append(waits, e.next.Sub(now))
	}
	for i, w := range waits {
		want := min(staticUpEvery<<i, staticDownMax)
		if w < want-want/10 || w > want+want/10 {
			t.Errorf("wait after %d failures = %v, want %v give or take a tenth", i+1, w, want)
		}
	}
	c.done(e, StaticStatus{Addr: "10.0.0.1:1", ID: idA, State: StaticUp}, now)
	if w := e.next.Sub(now); w < staticUpEvery*9/10 || w > staticUpEvery*11/10 || e.fails != 0 {
		t.Errorf("after an answer: next check in %v, %d failures; want about %v, 0", w, e.fails, staticUpEvery)
	}
	// The outcome of a check of an entry changed meanwhile is dropped.
	c.done(e, StaticStatus{Addr: "10.0.0.1:1", ID: idB, State: StaticDown}, now)
	if e.status.State != StaticUp {
		t.Errorf("a stale check changed the state to %s", e.status.State)
	}
}

// TestStaticStallingPeer: a peer that takes the connection and then says
// nothing (no TLS, or TLS and no hello) holds a check or an add no longer
// than its deadline.
func TestStaticStallingPeer(t *testing.T) {
	alice := testSender(t)
	bob := testSender(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stall := func(ln net.Listener, wrap func(net.Conn) net.Conn) {
		defer wg.Done()
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c = wrap(c)
			held = append(held, c)
		}
	}
	wg.Add(2)
	go stall(ln, func(c net.Conn) net.Conn { return c })
	go stall(tlsLn, func(c net.Conn) net.Conn {
		tc := tls.Server(c, bob.Identity.ServerTLS())
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		go func() { _ = tc.Handshake() }() // then nothing, not even a hello
		return tc
	})
	t.Cleanup(func() {
		ln.Close()
		tlsLn.Close()
		wg.Wait()
	})
	const limit = 500 * time.Millisecond
	for _, addr := range []string{ln.Addr().String(), tlsLn.Addr().String()} {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		start := time.Now()
		st := CheckStatic(ctx, alice.Identity, StaticPeer{Addr: addr, ID: bob.Identity.ID})
		took := time.Since(start)
		cancel()
		if addr == ln.Addr().String() && st.State != StaticDown {
			t.Errorf("check of a peer that never answers TLS: %+v, want down", st)
		}
		if took > limit+2*time.Second {
			t.Errorf("check of %s took %v, want about %v", addr, took, limit)
		}
		ctx, cancel = context.WithTimeout(context.Background(), limit)
		start = time.Now()
		_, _, err := ProbeStatic(ctx, alice.Identity, addr, "alice")
		took = time.Since(start)
		cancel()
		if err == nil || took > limit+2*time.Second {
			t.Errorf("add of a stalling peer at %s: %v after %v; want an error within about %v", addr, err, took, limit)
		}
	}
}

// TestStaticWantedCheckedOften: a down peer that queued jobs wait for is
// checked every staticUpEvery, however long it has been down; once no
// job waits for it, its backoff is back.
func TestStaticWantedCheckedOften(t *testing.T) {
	c := newStaticChecker(t.TempDir(), nil, nil, nil)
	e := &staticEntry{status: StaticStatus{Addr: "10.0.0.1:1", ID: idA, State: StaticUnknown}}
	c.entries = []*staticEntry{e}
	now := time.Now()
	for range 8 {
		c.done(e, StaticStatus{Addr: "10.0.0.1:1", ID: idA, State: StaticDown, Checked: now}, now)
	}
	later := now.Add(staticUpEvery + time.Second)
	if got := c.due(later, 0, 1); len(got) != 0 {
		t.Fatalf("a peer down for long, no job waiting: checked %v after the last check, want its backoff (%v)", later.Sub(now), e.next.Sub(now))
	}
	c.want(map[string]bool{idA: true})
	if got := c.due(later, 0, 1); len(got) != 1 {
		t.Fatalf("a peer that a job waits for: not due %v after its last check", later.Sub(now))
	}
	c.done(e, StaticStatus{Addr: "10.0.0.1:1", ID: idA, State: StaticDown, Checked: later}, later)
	c.want(nil)
	if got := c.due(later.Add(staticUpEvery+time.Second), 0, 1); len(got) != 0 {
		t.Fatal("once no job waits, the peer was still checked every", staticUpEvery)
	}
}

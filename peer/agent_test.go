package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// testAgent is a running Agent on loopback (no discovery) and what it
// reported.
type testAgent struct {
	*Agent
	dir, config string
	mu          sync.Mutex
	incoming    []Incoming
	got         chan Incoming
}

func startAgent(t testing.TB, edit func(*Config), prep ...func(*Agent)) *testAgent {
	t.Helper()
	ta := &testAgent{dir: t.TempDir(), config: t.TempDir(), got: make(chan Incoming, 1024)}
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = ta.dir, ta.config, "bob", "127.0.0.1:0"
	cfg.SpaceMargin = 0
	// LocalSend's tests turn it on, on loopback (see startLocalSendAgent).
	cfg.LocalSend, cfg.LocalSendListen = false, "127.0.0.1:0"
	cfg.OnTransfer = func(in Incoming) {
		ta.mu.Lock()
		ta.incoming = append(ta.incoming, in)
		ta.mu.Unlock()
		ta.got <- in
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ta.Agent = a
	for _, f := range prep {
		f(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.Close()
	})
	return ta
}

// next waits for the agent's next finished connection.
func (ta *testAgent) next(t testing.TB) Incoming {
	t.Helper()
	select {
	case in := <-ta.got:
		return in
	case <-time.After(10 * time.Second):
		t.Fatal("no connection finished within 10s")
		return Incoming{}
	}
}

func (ta *testAgent) target() Target {
	return Target{Name: "bob (" + ta.ID()[:4] + ")", DisplayName: "bob", ID: ta.ID(), Addrs: []string{ta.Addr().String()}, ByName: true}
}

func sendFile(t testing.TB, s *Sender, to Target, name, content string) (*Report, error) {
	t.Helper()
	src := writeTree(t, map[string]string{name: content})
	return s.Send(context.Background(), to, collect(t, filepath.Join(src, name)), SendOptions{Name: "alice"})
}

func testSender(t testing.TB) *Sender {
	t.Helper()
	dir := t.TempDir()
	id, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	known, err := LoadKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &Sender{Identity: id, Known: known}
}

func TestAgentTLSTransferCarriesSenderID(t *testing.T) {
	bob := startAgent(t, nil)
	alice := testSender(t)
	rep, err := sendFile(t, alice, bob.target(), "a.txt", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if rep.RecordedAs != alice.Identity.ID {
		t.Errorf("receipt says bob recorded us as %q, want %q", rep.RecordedAs, alice.Identity.ID)
	}
	in := bob.next(t)
	if in.Err != nil || in.PeerID != alice.Identity.ID {
		t.Fatalf("agent saw sender id %q, err %v; want %q", in.PeerID, in.Err, alice.Identity.ID)
	}
	assertTree(t, bob.dir, map[string]string{"a.txt": "hello"})
	// The first send pinned bob's name to his id.
	if k, ok := alice.Known.ByID(bob.ID()); !ok || k.Name != "bob" || k.Level != Seen {
		t.Errorf("after the first send, known = %+v, %v", k, ok)
	}
}

// TestImpostorRefused: an agent that advertises bob's name and id but
// holds another key gets nothing.
func TestImpostorRefused(t *testing.T) {
	bob, mallory := startAgent(t, nil), startAgent(t, nil)
	alice := testSender(t)
	fake := bob.target()
	fake.Addrs = []string{mallory.Addr().String()}
	_, err := sendFile(t, alice, fake, "secret.txt", "secret")
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("send to an impostor: %v, want ErrWrongKey", err)
	}
	for _, want := range []string{GroupID(bob.ID()), GroupID(mallory.ID()), "impostor", "nothing was sent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if in := mallory.next(t); !errors.Is(in.Err, ErrHandshake) {
		t.Errorf("impostor's side: %v, want a failed handshake", in.Err)
	}
	assertEmpty(t, mallory.dir)
	if len(alice.Known.List()) != 0 {
		t.Errorf("a failed send pinned %+v", alice.Known.List())
	}
}

// TestKeyChangedAfterPin: bob's name is pinned; a bob with a new key is
// refused until the user trusts the new id.
func TestKeyChangedAfterPin(t *testing.T) {
	oldBob := startAgent(t, nil)
	alice := testSender(t)
	if _, err := sendFile(t, alice, oldBob.target(), "1.txt", "one"); err != nil {
		t.Fatal(err)
	}
	newBob := startAgent(t, nil)
	_, err := sendFile(t, alice, newBob.target(), "2.txt", "two")
	if !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("send to bob with a new key: %v, want ErrKeyChanged", err)
	}
	for _, want := range []string{GroupID(oldBob.ID()), GroupID(newBob.ID()), "lanshare trust --replace " + GroupID(newBob.ID())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	assertEmpty(t, newBob.dir)
	// Chosen by id, the new bob is the user's explicit choice.
	byID := newBob.target()
	byID.ByName = false
	if _, err := sendFile(t, alice, byID, "by-id.txt", "by id"); err != nil {
		t.Fatalf("send by id to a second bob: %v", err)
	}
	assertTree(t, newBob.dir, map[string]string{"by-id.txt": "by id"})
	if err := os.Remove(filepath.Join(newBob.dir, "by-id.txt")); err != nil {
		t.Fatal(err)
	}
	// That send pinned the second bob too, so by name both are bob now;
	// forget it to see the warning turn into trust.
	if _, err := alice.Known.Forget(newBob.ID()); err != nil {
		t.Fatal(err)
	}
	if err := alice.Known.Replace(newBob.ID(), "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := sendFile(t, alice, newBob.target(), "2.txt", "two"); err != nil {
		t.Fatalf("after trust: %v", err)
	}
	assertTree(t, newBob.dir, map[string]string{"2.txt": "two"})
	// The old key is no longer accepted for the name.
	if _, err := sendFile(t, alice, oldBob.target(), "3.txt", "three"); !errors.Is(err, ErrKeyChanged) {
		t.Errorf("send to the old key after trusting the new: %v, want ErrKeyChanged", err)
	}
}

func TestAcceptTrusted(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.Accept = AcceptTrusted })
	stranger, friend := testSender(t), testSender(t)
	_, err := sendFile(t, stranger, bob.target(), "spam.txt", "spam")
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeDenied || !strings.Contains(re.Reason, "lanshare trust "+GroupID(stranger.Identity.ID)) {
		t.Fatalf("untrusted send: %v, want a denial that says how to trust %s", err, GroupID(stranger.Identity.ID))
	}
	if in := bob.next(t); in.PeerID != stranger.Identity.ID {
		t.Errorf("agent logged sender %q, want %q", in.PeerID, stranger.Identity.ID)
	}
	assertEmpty(t, bob.dir)

	known, err := LoadKnown(bob.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := known.Trust(friend.Identity.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	// Trust takes effect without a restart.
	if _, err := sendFile(t, friend, bob.target(), "ok.txt", "welcome"); err != nil {
		t.Fatalf("trusted send: %v", err)
	}
	assertTree(t, bob.dir, map[string]string{"ok.txt": "welcome"})
}

func TestPlainTCPAndGarbageRefused(t *testing.T) {
	bob := startAgent(t, nil)
	// A pre-TLS lanshare hello, and plain garbage.
	for _, payload := range [][]byte{
		append([]byte("LS\x01\x01"), make([]byte, 64)...),
		[]byte("GET / HTTP/1.0\r\n\r\n"),
		make([]byte, 4096),
	} {
		c, err := net.Dial("tcp", bob.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(payload)
		if in := bob.next(t); !errors.Is(in.Err, ErrHandshake) {
			t.Errorf("%q: agent reported %v, want a failed handshake", payload[:4], in.Err)
		}
		c.Close()
	}
	assertEmpty(t, bob.dir)
	if _, err := sendFile(t, testSender(t), bob.target(), "after.txt", "still serving"); err != nil {
		t.Fatalf("send after garbage: %v", err)
	}
}

// TestSlowLorisDropped: connections that stall in the handshake, after it,
// or mid-stream are closed at their deadlines, while a real transfer
// succeeds meanwhile.
func TestSlowLorisDropped(t *testing.T) {
	// Long enough for the honest handshakes below (TLS, hello, offer) on
	// a loaded machine under the race detector: 300 ms failed once, with
	// the mid-file connection closed before its answer.
	bob := startAgent(t, func(c *Config) {
		c.HandshakeTimeout = 1500 * time.Millisecond
		c.IdleTimeout = 1500 * time.Millisecond
	})
	stall, err := net.Dial("tcp", bob.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	// A handshake that stops after the TLS session starts, before the offer.
	idle, _, err := testSender(t).dial(context.Background(), bob.Addr().String(), bob.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// A transfer that stops mid-file.
	mid, _, err := testSender(t).dial(context.Background(), bob.Addr().String(), bob.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer mid.Close()
	if err := proto.WriteHello(mid, proto.NewHello("loris")); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteOffer(mid, proto.Offer{Entries: []proto.Entry{{Path: "slow.bin", Kind: proto.KindFile, Size: 1 << 20, Mode: 0o644}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := proto.ReadHello(mid); err != nil {
		t.Fatal(err)
	}
	if _, err := proto.ReadAnswer(mid); err != nil {
		t.Fatal(err)
	}
	if _, err := mid.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}

	if _, err := sendFile(t, testSender(t), bob.target(), "real.txt", "real"); err != nil {
		t.Fatalf("send while three connections stall: %v", err)
	}
	var stalled, ok int
	for range 4 {
		in := bob.next(t)
		if in.Err == nil {
			ok++
			continue
		}
		stalled++
		if el := in.End.Sub(in.Start); el > 5*time.Second {
			t.Errorf("stalled connection dropped after %v", el)
		}
	}
	if ok != 1 || stalled != 3 {
		t.Errorf("%d transfers ok and %d dropped, want 1 and 3", ok, stalled)
	}
	assertTree(t, bob.dir, map[string]string{"real.txt": "real"})
	// Every stalled connection was closed by the agent.
	for _, c := range []net.Conn{stall, idle, mid} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Error("agent did not close a stalled connection")
		}
	}
}

// TestConnectionFloodCapped: hundreds of idle connections from one address
// are capped, and a transfer from another address still gets through.
func TestConnectionFloodCapped(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.HandshakeTimeout = 5 * time.Second })
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}
	var flood []net.Conn
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	for range 300 {
		c, err := d.Dial("tcp", bob.Addr().String())
		if err != nil {
			t.Fatalf("flood connection: %v", err)
		}
		flood = append(flood, c)
	}
	// The agent closes connections over its per-host cap at once.
	closed := 0
	for _, c := range flood {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if want := 300 - DefaultConfig().MaxConnsPerHost; closed < want {
		t.Errorf("%d of 300 flood connections closed, want at least %d", closed, want)
	}
	if _, err := sendFile(t, testSender(t), bob.target(), "through.txt", "made it"); err != nil {
		t.Fatalf("send during a flood: %v", err)
	}
	assertTree(t, bob.dir, map[string]string{"through.txt": "made it"})
}

func trustIn(t testing.TB, a *testAgent, s *Sender, name string) {
	t.Helper()
	known, err := LoadKnown(a.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := known.Trust(s.Identity.ID, name); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyTrustedExtras: untrusted peers get the size cap, 0644 and
// their id as folder; a trusted one a larger cap, its exec bit and its
// name as folder.
func TestPolicyTrustedExtras(t *testing.T) {
	bob := startAgent(t, func(c *Config) {
		c.MaxSize, c.TrustedMaxSize = 10, 100
		c.TrustedExec, c.PerPeerFolders = true, true
	})
	stranger, friend := testSender(t), testSender(t)
	trustIn(t, bob, friend, "alice")

	_, err := sendFile(t, stranger, bob.target(), "big.txt", strings.Repeat("x", 11))
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeTooLarge || !strings.Contains(re.Reason, "limit of 10 B") {
		t.Fatalf("untrusted 11 B over a 10 B cap: %v, want a too-large refusal naming the limit", err)
	}
	bob.next(t)
	assertEmpty(t, bob.dir)

	src := writeTree(t, map[string]string{"run.sh": "#!/bin/sh\n"})
	if err := os.Chmod(filepath.Join(src, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Sender{stranger, friend} {
		if _, err := s.Send(context.Background(), bob.target(), collect(t, filepath.Join(src, "run.sh")), SendOptions{Name: "x"}); err != nil {
			t.Fatal(err)
		}
		bob.next(t)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{ShortID(stranger.Identity.ID) + "/run.sh", 0o644},
		{"alice (" + ShortID(friend.Identity.ID) + ")/run.sh", 0o755},
	} {
		fi, err := os.Stat(filepath.Join(bob.dir, c.path))
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if fi.Mode().Perm() != c.mode {
			t.Errorf("%s has mode %v, want %v", c.path, fi.Mode().Perm(), c.mode)
		}
	}
	// The trusted cap is the larger one.
	if _, err := sendFile(t, friend, bob.target(), "mid.txt", strings.Repeat("y", 50)); err != nil {
		t.Errorf("trusted 50 B under its 100 B cap: %v", err)
	}
}

// TestFloodFromManyAddressesCannotLockOutTrusted: strangers holding every
// connection slot from several addresses do not keep a trusted peer from
// sending, though discovery knows nothing of it (an attacker can empty or
// poison the table): the reserve admits by the key proved in TLS.
func TestFloodFromManyAddressesCannotLockOutTrusted(t *testing.T) {
	friend := testSender(t)
	// No eviction: the strangers here stand for ones that cannot be
	// evicted (young, their offers accepted, moving bytes); the reserve
	// is what lets the trusted peer in.
	bob := startAgent(t, func(c *Config) { c.MaxConns, c.MaxConnsPerHost, c.EvictAfter = 4, 2, 0 })
	trustIn(t, bob, friend, "alice")
	var flood []net.Conn
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	for _, ip := range []byte{3, 4} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}}
		for range 2 {
			c, err := d.Dial("tcp", bob.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			flood = append(flood, c)
		}
	}
	// Full now: another stranger gets at most the reserve's short
	// handshake...
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 5)}}
	c, err := d.Dial("tcp", bob.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("a stranger was let in beyond the connection cap")
	}
	// A stranger with a key gets through the reserve's door but not past
	// the handshake (one try: a send that retries gets in once the flood
	// above reaches its handshake deadline, as any stranger may)...
	src := writeTree(t, map[string]string{"sneak.txt": "x"})
	_, err = testSender(t).Send(context.Background(), bob.target(), collect(t, filepath.Join(src, "sneak.txt")),
		SendOptions{Name: "mallory", Retries: -1})
	if !errors.Is(err, ErrTurnedAway) {
		t.Errorf("a stranger at a trusted peer's address used the reserve, or was not told it was turned away: %v", err)
	}
	assertEmpty(t, bob.dir)
	// ...while the trusted peer gets through.
	if _, err := sendFile(t, friend, bob.target(), "vip.txt", "trusted"); err != nil {
		t.Fatalf("trusted send while strangers hold every slot: %v", err)
	}
	assertTree(t, bob.dir, map[string]string{"vip.txt": "trusted"})
}

// TestOfferSizesThatWrapAreRefused pins a review finding: sizes summing
// past 2^64 must not wrap around to a small total that slips under the
// caps.
func TestOfferSizesThatWrapAreRefused(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	a, b := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := in.ReceiveWith(b, Policy{MaxSize: 1000})
		done <- err
	}()
	var entries []proto.Entry
	for i := range 4 {
		entries = append(entries, proto.Entry{Path: fmt.Sprintf("f%d", i), Kind: proto.KindFile, Size: 1 << 62, Mode: 0o644})
	}
	if err := proto.WriteHello(a, proto.NewHello("mallory")); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteOffer(a, proto.Offer{Entries: entries}); err != nil {
		t.Fatal(err)
	}
	if _, err := proto.ReadHello(a); err != nil {
		t.Fatal(err)
	}
	ans, err := proto.ReadAnswer(a)
	if err != nil {
		t.Fatal(err)
	}
	if ans.Code != proto.CodeTooLarge {
		t.Errorf("answer to 4 × 2^62 bytes under a 1000 B cap: code %v, want too large", ans.Code)
	}
	if err := <-done; !errors.Is(err, ErrRefused) {
		t.Errorf("receiver: %v, want a refusal", err)
	}
	assertEmpty(t, in.Dir())
}

// TestAddressSendPinsNothing: a name learned from a peer's own hello (a
// target given by address) is never pinned.
func TestAddressSendPinsNothing(t *testing.T) {
	bob := startAgent(t, nil)
	alice := testSender(t)
	to := Target{Name: bob.Addr().String(), Addrs: []string{bob.Addr().String()}}
	if _, err := sendFile(t, alice, to, "a.txt", "x"); err != nil {
		t.Fatal(err)
	}
	if got := alice.Known.List(); len(got) != 0 {
		t.Errorf("a send by address pinned %+v", got)
	}
}

// TestControlSocket: a running agent answers QueryAgent with its status
// over an owner-only socket; a second agent on the same config directory
// is refused; after Close there is no agent and no socket.
func TestControlSocket(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), t.TempDir(), "bob", "127.0.0.1:0"
	bob, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- bob.Serve(ctx) }()
	st, err := QueryAgent(context.Background(), cfg.ConfigDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != bob.ID() || st.Name != "bob" || st.Listen != bob.Addr().String() || st.Dir != cfg.Dir || st.Accept != AcceptEveryone {
		t.Errorf("status %+v", st)
	}
	if _, ok := st.Self(); ok || st.Addrs == nil || len(st.Addrs) != 0 {
		t.Errorf("an agent without discovery: Self ok %v, addrs %v; want no self and an empty list", ok, st.Addrs)
	}
	fi, err := os.Stat(filepath.Join(cfg.ConfigDir, controlSocket))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket: %v; want mode 0600", err)
	}
	second := cfg
	second.Dir, second.Name = t.TempDir(), "bob2"
	if a, err := New(second); !errors.Is(err, ErrAgentRunning) {
		if a != nil {
			a.Close()
		}
		t.Errorf("second agent on one config directory: %v, want ErrAgentRunning", err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	bob.Close()
	if _, err := QueryAgent(context.Background(), cfg.ConfigDir); !errors.Is(err, ErrNoAgent) {
		t.Errorf("after the agent stopped: %v, want ErrNoAgent", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.ConfigDir, controlSocket)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

// TestOneAgentPerConfigDir: a second agent of one config directory does
// not start even when the control socket cannot tell (two agents starting
// together each found none, and one could remove the other's) and each
// would listen on a port of its own (the default port gives way,
// ListenAnyIfTaken); once the first is closed, one starts.
func TestOneAgentPerConfigDir(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), t.TempDir(), "bob", "127.0.0.1:0"
	cfg.LocalSend = false
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	must(t, os.Remove(filepath.Join(cfg.ConfigDir, controlSocket)))
	second := cfg
	second.Dir = t.TempDir()
	if a, err := New(second); !errors.Is(err, ErrAgentRunning) {
		if a != nil {
			a.Close()
		}
		t.Fatalf("a second agent of one config directory, its control socket gone: %v, want ErrAgentRunning", err)
	}
	first.Close()
	third, err := New(second)
	if err != nil {
		t.Fatalf("after the first agent closed: %v", err)
	}
	third.Close()
}

// TestServeAfterCloseStartsNothing: Serve after Close returns ErrClosed
// and starts nothing: its static peer is not dialed (it was, briefly,
// with the checks Serve started before it found its listener closed).
func TestServeAfterCloseStartsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), t.TempDir(), "bob", "127.0.0.1:0"
	cfg.LocalSend = false
	static, err := LoadStatic(cfg.ConfigDir)
	must(t, err)
	must(t, static.Put(StaticPeer{Addr: ln.Addr().String()}))
	for range 20 {
		a, err := New(cfg)
		must(t, err)
		a.Close()
		if err := a.Serve(t.Context()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve after Close: %v, want ErrClosed", err)
		}
	}
	// Serve waits for what it starts: a dial would be in the backlog now.
	must(t, ln.(*net.TCPListener).SetDeadline(time.Now()))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("the static peer was dialed by a Serve after Close")
	}
}

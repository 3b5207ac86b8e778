package peer

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto"
)

// TestHelloNameNeverTakesOverAnotherNamesPin pins a review finding: a
// receiver found as "mallory" that calls itself "bob" in its hello was
// pinned under "bob", and `send bob` was then steered to it.
func TestHelloNameNeverTakesOverAnotherNamesPin(t *testing.T) {
	mallory := startAgent(t, func(c *Config) { c.Name = "bob" }) // the hello's name
	s := testSender(t)
	to := Target{Name: "mallory (" + mallory.ID()[:4] + ")", DisplayName: "mallory", ID: mallory.ID(),
		Addrs: []string{mallory.Addr().String()}, ByName: true, Typed: "mallory"}
	if _, err := sendFile(t, s, to, "a.txt", "hi"); err != nil {
		t.Fatal(err)
	}
	mallory.next(t)
	if ids := s.Known.PinnedTo("bob"); len(ids) > 0 {
		t.Errorf("a send to \"mallory\" pinned %v to the name bob, which the user never typed: %+v", ids, s.Known.List())
	}
}

// TestEndedConnectionIsNoVictim pins a review finding: a connection whose
// transfer ended but whose OnTransfer still ran stayed listed as a live
// stranger, so a newcomer "evicted" it and freed its slot a second time,
// letting more connections in than MaxConns.
func TestEndedConnectionIsNoVictim(t *testing.T) {
	inHook := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	bob := startAgent(t, func(c *Config) {
		c.MaxConns, c.EvictAfter = 1, time.Millisecond
		next := c.OnTransfer
		c.OnTransfer = func(in Incoming) {
			once.Do(func() {
				close(inHook)
				<-release // as a slow history append or log write would
			})
			next(in)
		}
	})
	defer close(release)
	dial := func(ip byte) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}}
		c, err := d.Dial("tcp", bob.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial(2).Close() // its handshake fails at once; its OnTransfer blocks
	<-inHook
	admitted := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for bob.seq.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("connection %d not seen by the agent", n)
			}
			time.Sleep(time.Millisecond) // polling a condition, not ordering events
		}
	}
	dial(3)
	admitted(2)
	dial(4) // every slot is taken: it evicts a stranger older than EvictAfter
	admitted(3)
	a := bob.Agent
	a.mu.Lock()
	live := 0
	for c := range a.conns {
		if !c.evicted && !c.reserved {
			live++
		}
	}
	open := a.open
	a.mu.Unlock()
	if live != open || live > 1 {
		t.Errorf("%d connections hold slots, the agent counts %d, MaxConns is 1: an ended connection's slot was freed twice", live, open)
	}
}

// TestRecycledIdleConnectionsCannotKeepNewcomerOut pins a review finding:
// strangers that connect, send nothing and reconnect whenever the
// handshake deadline drops them were never old enough to be evicted
// (EvictAfter is longer than the handshake deadline), so they held every
// slot for as long as they liked.
func TestRecycledIdleConnectionsCannotKeepNewcomerOut(t *testing.T) {
	bob := startAgent(t, func(c *Config) {
		c.MaxConns, c.MaxConnsPerHost = 2, 2
		c.HandshakeTimeout, c.EvictAfter = 3*time.Second, 5*time.Second
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}
			for {
				c, err := d.Dial("tcp", bob.Addr().String())
				if err == nil {
					done := make(chan struct{})
					go func() {
						defer close(done)
						_, _ = io.Copy(io.Discard, c) // until the agent drops it
					}()
					select {
					case <-done:
					case <-stop:
						c.Close()
						<-done
					}
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	start := time.Now()
	rep, err := sendFile(t, testSender(t), bob.target(), "new.txt", "got in")
	if err != nil {
		t.Fatalf("a new sender was kept out by idle strangers reconnecting (%v): %v", time.Since(start), err)
	}
	t.Logf("got in after %v and %d retries", time.Since(start), rep.Retries)
}

// TestAlreadyThereNeverForAnotherUsersFile pins a review finding: another
// local user who can write the shared folder deletes a received file and
// makes one of their own on the freed inode, with the same name, size and
// mtime; the sender's resend must not be told its file is there. (The
// test hands the very file to another uid, which is what the identity
// check sees in that attack.)
func TestAlreadyThereNeverForAnotherUsersFile(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	src := writeTree(t, map[string]string{"report.txt": "the sender's report"})
	if err := os.Chtimes(filepath.Join(src, "report.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, Policy{SenderID: "sender"})
	sendFiles(t, addr, filepath.Join(src, "report.txt"))
	saved := filepath.Join(in.Dir(), "report.txt")
	if err := os.Chown(saved, 54321, 54321); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(saved, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	rep := sendFiles(t, addr, filepath.Join(src, "report.txt"))
	if r := rep.Results[0]; r.Status != proto.Saved || r.SavedAs != "report (1).txt" {
		t.Fatalf("the resend: %+v, want saved as report (1).txt (report.txt belongs to another user)", r)
	}
}

// TestInstanceShapedDisplayNameMatchesOnlyItsID pins a review finding: a
// peer whose display name is "bob (ab12)" (its own label "bob (ab12)
// (zz99)" is consistent) matched `send "bob (ab12)"` by display name,
// though its id does not start with ab12.
func TestInstanceShapedDisplayNameMatchesOnlyItsID(t *testing.T) {
	id := "zz99" + strings.Repeat("a", 48)
	p := discovery.Peer{Name: "bob (ab12)", ID: id, Version: ProtocolVersion, Port: 1,
		Addrs: []netip.AddrPort{netip.MustParseAddrPort("10.77.0.9:1")}}
	p.Instance = discovery.InstanceName(p.Name, p.ID)
	if _, err := FindPeer([]discovery.Peer{p}, "bob (ab12)"); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf(`"bob (ab12)" matched a peer whose id starts with zz99: %v`, err)
	}
	if got, err := FindPeer([]discovery.Peer{p}, p.Instance); err != nil || got.ID != id {
		t.Errorf("its own instance name: %+v, %v", got, err)
	}
}

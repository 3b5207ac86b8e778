package main

// End-to-end test of issue 13's finding 3 through the real binaries on a
// lab LAN: an attacker who copies a peer's public id, TXT and instance
// label, and advertises them at its own address, can add noise but can
// neither remove the peer nor receive what is sent to it.

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// keyImpostor listens on lab host h at port with a lanshare key of its own
// (not the one the attacker advertises) and answers TLS handshakes as a
// receiving agent does, until the test ends. It returns one line per
// connection, once its handshake ended: "completed" if the sender went on
// with the key it found (it never should), else "failed: ERROR".
func keyImpostor(t testing.TB, h *netlab.Host, port uint16) *lineLog {
	t.Helper()
	id, err := peer.LoadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	err = h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("impostor's listener on %s port %d: %v", h.NS, port, err)
	}
	tries := newLineLog()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed at the end of the test
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(failAfter))
				if err := tls.Server(c, id.ServerTLS()).Handshake(); err != nil {
					tries.add("failed: " + err.Error())
					return
				}
				tries.add("completed")
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return tries
}

// waitTried waits until the impostor has logged more than n handshakes and
// fails the test if any of them completed.
func waitTried(t testing.TB, tries *lineLog, n int, what string) {
	t.Helper()
	tries.waitFor(t, "handshake with the impostor during "+what, func(ls []string) bool { return len(ls) > n })
	if ls := tries.Lines(); slices.Contains(ls, "completed") {
		t.Errorf("%s: a sender completed a handshake with the impostor's key: %q", what, ls)
	}
}

// waitAgentTable polls the agent whose config directory is config, on h,
// with `peers --json --config`, until ok holds for its table, and returns
// that table; it fails the test after failAfter. each, if set, runs
// before every poll.
func waitAgentTable(t testing.TB, h *netlab.Host, config, what string, each func(), ok func([]listedPeer) bool) []listedPeer {
	t.Helper()
	deadline := time.NewTimer(failAfter)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if each != nil {
			each()
		}
		list := peersOn(t, h, "--config", config)
		if ok(list) {
			return list
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("%s: not within %v; the agent (%s) lists %+v", what, failAfter, config, list)
		}
	}
}

// listedAs returns the entry of list for instance with id, if any.
func listedAs(list []listedPeer, instance, id string) (listedPeer, bool) {
	i := slices.IndexFunc(list, func(p listedPeer) bool { return p.Instance == instance && p.ID == id })
	if i < 0 {
		return listedPeer{}, false
	}
	return list[i], true
}

// TestCopiedIDNeverRemovesOrRedirectsPeer (issue 13, finding 3): an
// attacker copies bob's whole TXT (bob's id and name) and instance label
// and advertises them at its own address, which sorts before bob's, where
// it answers TLS with another key; it also sends a goodbye for bob's
// instance from its own address. alice (who pinned bob by sending to him)
// and carol (who never did) run agents. Neither agent ever drops bob:
// `peers` lists him with his address throughout; `send bob` from alice and
// `send BOB'S-WHOLE-ID` from carol try the attacker's address first, are
// refused there by the key check, move on and deliver to bob, exit 0. Once
// bob's agent is stopped, only the impostor answers for bob's id, and the
// same sends exit 6. No sender ever completes a handshake with the
// impostor's key.
func TestCopiedIDNeverRemovesOrRedirectsPeer(t *testing.T) {
	t.Parallel()
	// Host 0 (10.77.0.1) is the attacker's: its address sorts before
	// bob's (10.77.0.2), so a send tries it first.
	lab := netlab.New(t, 4)
	attacker := lab.Host(0)
	bob := launchAgent(t, lab.Host(1), "bob")
	alice := launchAgent(t, lab.Host(2), "alice")
	carol := launchAgent(t, lab.Host(3), "carol")
	for _, a := range []*labAgent{bob, alice, carol} {
		a.ready(t)
	}
	waitPeerUp(t, alice, bob)
	waitPeerUp(t, carol, bob)
	// alice and carol send with their agents' config directories, so that
	// send resolves in their agents' live tables, where the goodbye landed.
	aliceSends := &sender{run: alice.host.CommandContext, tmp: t.TempDir(), config: alice.config, name: "alice"}
	carolSends := &sender{run: carol.host.CommandContext, tmp: t.TempDir(), config: carol.config, name: "carol"}
	src := t.TempDir()
	first := filepath.Join(src, "first.bin")
	randomFile(t, first, 4096)
	aliceSends.sendOK(t, "bob", first) // pins the name bob to bob's key
	if got, want := aliceSends.trusted(t), []knownPeer{{"bob", peer.Seen, peer.GroupID(bob.id)}}; !slices.Equal(got, want) {
		t.Fatalf("alice's known peers after sending to bob = %q, want %q", got, want)
	}
	w := watchPeersOn(t, alice.host)
	waitEvent(t, w, 0, "peer-up", bob.instance, func(p listedPeer) bool { return p.Instance == bob.instance && p.ID == bob.id })

	// The attacker: bob's TXT (id, v, name, as bob publishes them) and
	// instance label, at its own address and bob's port.
	tries := keyImpostor(t, attacker, bob.port)
	fake := netip.AddrPortFrom(attacker.Addr(), bob.port).String()
	copied := forgedAnswer(attacker.Addr().AsSlice(), bob.port, bob.name, bob.id, []string{bob.instance})
	answer, err := copied.Pack()
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range append(copied.Answer, copied.Extra...) {
		rr.Header().Ttl = 0
	}
	goodbye, err := copied.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var advertising atomic.Bool
	pc := forgedResponder(t, attacker, func() []byte {
		if advertising.Load() {
			return answer
		}
		return nil
	})
	send := func(msg []byte) {
		if _, err := pc.WriteTo(msg, nil, mdnsGroup); err != nil {
			t.Fatalf("attacker's mDNS: %v", err)
		}
	}
	announce := func() {
		advertising.Store(true)
		send(answer) // again at each poll, as responders repeat themselves
	}
	sayGoodbye := func() {
		advertising.Store(false)
		send(goodbye)
	}

	// 1. The copy is heard: both agents list bob with both addresses.
	for _, a := range []*labAgent{alice, carol} {
		list := waitAgentTable(t, a.host, a.config, a.name+"'s agent lists the attacker's address for bob", announce, func(list []listedPeer) bool {
			p, ok := listedAs(list, bob.instance, bob.id)
			return !ok || slices.Contains(p.Addrs, fake)
		})
		if p, ok := listedAs(list, bob.instance, bob.id); !ok || !slices.Contains(p.Addrs, bob.addr.String()) {
			t.Errorf("with the copy advertised, %s's agent lists bob as %+v (found: %v), want his address %s kept next to %s",
				a.name, p, ok, bob.addr, fake)
		}
	}

	waitEvent(t, w, 0, "peer-update", "bob at the attacker's address too", func(p listedPeer) bool {
		return p.Instance == bob.instance && slices.Contains(p.Addrs, fake)
	})

	// 2. The attacker says goodbye for bob's instance: that removes what
	// it said itself, never bob.
	skip := len(w.out.Lines())
	sayGoodbye()
	var after listedPeer
	w.out.waitFor(t, "the watcher's event for bob after the attacker's goodbye", func(ls []string) bool {
		for _, l := range ls[skip:] {
			var p listedPeer
			if err := json.Unmarshal([]byte(l), &p); err == nil && p.Instance == bob.instance &&
				(p.Event == "peer-down" || !slices.Contains(p.Addrs, fake)) {
				after = p
				return true
			}
		}
		return false
	})
	if after.Event == "peer-down" || after.ID != bob.id || !slices.Contains(after.Addrs, bob.addr.String()) {
		t.Errorf("after the attacker's goodbye for %s, `peers --watch` on alice said %+v, want bob (id %s) kept at %s",
			bob.instance, after, bob.id, bob.addr)
	}
	for _, a := range []*labAgent{alice, carol} {
		list := waitAgentTable(t, a.host, a.config, a.name+"'s agent takes the attacker's goodbye", sayGoodbye, func(list []listedPeer) bool {
			p, ok := listedAs(list, bob.instance, bob.id)
			return !ok || !slices.Contains(p.Addrs, fake)
		})
		if p, ok := listedAs(list, bob.instance, bob.id); !ok || p.Name != bob.name || !slices.Contains(p.Addrs, bob.addr.String()) {
			t.Errorf("after the attacker's goodbye, `peers --json` on %s lists bob as %+v (found: %v), want bob with his address %s",
				a.name, p, ok, bob.addr)
		}
	}

	// 3. The attacker advertises bob's id again. A send tries its address
	// first, is refused there by the key check, and reaches bob.
	for _, a := range []*labAgent{alice, carol} {
		waitAgentTable(t, a.host, a.config, a.name+"'s agent lists the attacker's address for bob again", announce, func(list []listedPeer) bool {
			p, ok := listedAs(list, bob.instance, bob.id)
			return ok && slices.Contains(p.Addrs, fake) && slices.Contains(p.Addrs, bob.addr.String())
		})
	}
	for i, c := range []struct {
		who    *sender
		target string
	}{
		{aliceSends, "bob"},  // pinned to bob's key
		{carolSends, bob.id}, // no pin: the whole id
	} {
		f := filepath.Join(src, fmt.Sprintf("to-bob-%d.bin", i))
		data := randomFile(t, f, 64<<10)
		n := len(tries.Lines())
		what := fmt.Sprintf("%s: send %s", c.who.name, c.target)
		if r := c.who.send(t, c.target, f); r.code != 0 {
			t.Errorf("%s with the attacker advertising bob's id at %s: exit %d, want 0; stderr:\n%s", what, fake, r.code, r.stderr)
		}
		if got, err := os.ReadFile(filepath.Join(bob.dir, filepath.Base(f))); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: bob's copy: %d bytes (%v), want the %d sent", what, len(got), err, len(data))
		}
		// The attacker's address came first: it was dialled, and refused.
		waitTried(t, tries, n, what)
	}

	// 4. bob's agent stops: only the impostor answers for bob's id, and
	// the same sends are refused.
	bobStopped := len(w.out.Lines())
	bob.stopClean(t)
	for _, a := range []*labAgent{alice, carol} {
		waitAgentTable(t, a.host, a.config, a.name+"'s agent takes bob's goodbye", nil, func(list []listedPeer) bool {
			p, ok := listedAs(list, bob.instance, bob.id)
			return ok && slices.Equal(p.Addrs, []string{fake})
		})
	}
	late := filepath.Join(src, "late.bin")
	randomFile(t, late, 4096)
	for _, c := range []struct {
		who    *sender
		target string
	}{
		{aliceSends, "bob"},
		{carolSends, bob.id},
	} {
		n := len(tries.Lines())
		what := fmt.Sprintf("%s: send %s with bob gone", c.who.name, c.target)
		r := c.who.send(t, c.target, late)
		if r.code != exitUntrusted {
			t.Errorf("%s and the attacker advertising his id: exit %d, want %d; stderr:\n%s", what, r.code, exitUntrusted, r.stderr)
		}
		checkErrorLine(t, r.stderr, fake)
		t.Logf("%s: %s", what, strings.TrimSpace(r.stderr))
		waitTried(t, tries, n, what)
	}
	if _, err := os.Stat(filepath.Join(bob.dir, "late.bin")); err == nil {
		t.Error("late.bin reached bob's folder after bob was stopped")
	}

	t.Logf("the impostor's handshakes: %q", tries.Lines())

	// Nobody trusts the impostor's key, and the watcher never saw bob go
	// before bob's agent stopped.
	for _, s := range []*sender{aliceSends, carolSends} {
		for _, p := range s.trusted(t) {
			if p.id != peer.GroupID(bob.id) {
				t.Errorf("%s knows a key other than bob's: %+v", s.name, p)
			}
		}
	}
	for _, l := range w.out.Lines()[:bobStopped] {
		var p listedPeer
		if json.Unmarshal([]byte(l), &p) == nil && p.Event == "peer-down" && p.Instance == bob.instance {
			t.Errorf("`peers --watch` on alice reported bob down while his agent ran: %s", l)
		}
	}
}

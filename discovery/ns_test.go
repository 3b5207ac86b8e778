package discovery

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

func agentCfg(name, id string, port int) childCfg {
	return childCfg{Name: name, ID: id, Version: "1", Port: port, Host: "host-" + id}
}

// TestSingleSegmentSeeAndGoodbye: two agents on one isolated segment see
// each other within a second; one that stops cleanly is gone from the
// other's table within two seconds (goodbye).
func TestSingleSegmentSeeAndGoodbye(t *testing.T) {
	h := netlab.Single(t)
	a := startChild(t, h, "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	b := startChild(t, h, "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	ready := b.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })

	seen := a.waitFor(time.Second, "bob complete", completePeer("bbbb2222"))
	t.Logf("alice listed bob %v after bob was ready", seen.At.Sub(ready.At))
	seenB := b.waitFor(time.Second, "alice complete", completePeer("aaaa1111"))
	t.Logf("bob listed alice %v after bob was ready", seenB.At.Sub(ready.At))
	if p := seen.Peer; p.Instance != "bob (bbbb)" || p.Name != "bob" || p.Version != "1" || p.Port != 4002 || p.Host != "host-bbbb2222.local" {
		t.Errorf("alice sees bob as %+v", p)
	}

	stopAt := time.Now()
	b.stop()
	down := a.waitFor(2*time.Second, "bob down", peerEvent(PeerDown, "bbbb2222"))
	t.Logf("bob gone from alice's table %v after the stop began", down.At.Sub(stopAt))
}

// TestLabThreeHostsAndBrowse: on a three-host LAN every agent lists the two
// others, and a one-shot Browse from a fourth host without an agent lists
// all three.
func TestLabThreeHostsAndBrowse(t *testing.T) {
	lab := netlab.New(t, 4)
	var agents []*child
	var ids []string
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("id%d0000", i)
		ids = append(ids, id)
		c := startChild(t, lab.Host(i), fmt.Sprintf("agent%d", i), "agent", agentCfg(fmt.Sprintf("host%d", i), id, 5000+i))
		c.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
		agents = append(agents, c)
	}
	for i, c := range agents {
		for j, id := range ids {
			if i == j {
				continue
			}
			m := c.waitFor(3*time.Second, "peer "+id, completePeer(id))
			want := lab.Host(j).Addr()
			found := false
			for _, ap := range m.Peer.Addrs {
				if ap.Addr() == want && ap.Port() == uint16(5000+j) {
					found = true
				}
			}
			if !found || m.Peer.Iface != "eth0" {
				t.Errorf("agent%d sees %s with addrs %v on %q, want %v:%d on eth0", i, id, m.Peer.Addrs, m.Peer.Iface, want, 5000+j)
			}
		}
	}
	br := startChild(t, lab.Host(3), "browse", "browse", childCfg{WaitMillis: 1000})
	res := br.waitFor(10*time.Second, "browse result", func(m msg) bool { return m.Ev == "result" })
	t.Logf("browse took %dms and found %d peers", res.Millis, len(res.Peers))
	got := map[string]Peer{}
	for _, p := range res.Peers {
		if _, dup := got[p.ID]; dup {
			t.Errorf("browse listed %s twice", p.ID)
		}
		got[p.ID] = p
	}
	for _, id := range ids {
		if p, ok := got[id]; !ok || !p.Complete() {
			t.Errorf("browse result lacks complete peer %s: %+v", id, res.Peers)
		}
	}
}

// TestPeerExpiresAtTTL: an agent killed without goodbye leaves the other's
// table when its (short) TTL runs out, not before its last answer ages.
func TestPeerExpiresAtTTL(t *testing.T) {
	h := netlab.Single(t)
	a := startChild(t, h, "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	cfg := agentCfg("bob", "bbbb2222", 4002)
	cfg.TTLSeconds = 3
	b := startChild(t, h, "bob", "agent", cfg)
	up := a.waitFor(5*time.Second, "bob complete", completePeer("bbbb2222"))
	if up.Peer.TTL != 3*time.Second {
		t.Errorf("bob's TTL as seen by alice = %v, want 3s", up.Peer.TTL)
	}
	// Bob must outlive his 3s TTL while alive: alice refreshes his records
	// (queries at 80% of the TTL) and he answers.
	a.expectNone(4*time.Second, "bob down while alive", peerEvent(PeerDown, "bbbb2222"))
	killed := time.Now()
	b.kill()
	down := a.waitFor(5*time.Second, "bob expiry", peerEvent(PeerDown, "bbbb2222"))
	if d := down.At.Sub(killed); d > 3*time.Second+500*time.Millisecond {
		t.Errorf("bob expired %v after the kill, TTL is 3s", d)
	} else {
		t.Logf("bob expired %v after the kill (TTL 3s)", d)
	}
	a.stop()
	ps := a.cmd.ProcessState
	cpu := ps.UserTime() + ps.SystemTime()
	t.Logf("alice used %v of CPU", cpu)
	if cpu > 2*time.Second {
		t.Errorf("alice used %v of CPU in a mostly idle run", cpu)
	}
}

// TestSameDisplayName: two agents both called "bob" get distinct instance
// names and both show up, with their own ids.
func TestSameDisplayName(t *testing.T) {
	h := netlab.Single(t)
	b1 := startChild(t, h, "bob1", "agent", agentCfg("bob", "1111aaaa", 4001))
	b2 := startChild(t, h, "bob2", "agent", agentCfg("bob", "2222bbbb", 4002))
	c := startChild(t, h, "carol", "agent", agentCfg("carol", "3333cccc", 4003))
	p2 := b1.waitFor(3*time.Second, "bob2", completePeer("2222bbbb")).Peer
	p1 := b2.waitFor(3*time.Second, "bob1", completePeer("1111aaaa")).Peer
	if p1.Instance == p2.Instance || p1.Name != "bob" || p2.Name != "bob" {
		t.Errorf("bobs seen as %q/%q and %q/%q", p1.Instance, p1.Name, p2.Instance, p2.Name)
	}
	c.waitFor(3*time.Second, "bob1", completePeer("1111aaaa"))
	c.waitFor(3*time.Second, "bob2", completePeer("2222bbbb"))

	// A one-shot Browse in the same namespace shares port 5353 with the
	// three agents and lists each once.
	br := startChild(t, h, "browse", "browse", childCfg{WaitMillis: 500})
	res := br.waitFor(10*time.Second, "browse result", func(m msg) bool { return m.Ev == "result" })
	var ids []string
	for _, p := range res.Peers {
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, ",") != "1111aaaa,2222bbbb,3333cccc" {
		t.Errorf("browse in the agents' namespace found %v", ids)
	}
}

// TestWatch: Watch reports an agent coming and going without advertising
// itself.
func TestWatch(t *testing.T) {
	lab := netlab.New(t, 2)
	w := startChild(t, lab.Host(0), "watch", "watch", childCfg{})
	w.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	b := startChild(t, lab.Host(1), "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	b.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	w.waitFor(3*time.Second, "bob up", completePeer("bbbb2222"))
	b.expectNone(500*time.Millisecond, "a peer (the watcher must not advertise)", func(m msg) bool { return m.Ev == "up" })
	b.stop()
	w.waitFor(2*time.Second, "bob down", peerEvent(PeerDown, "bbbb2222"))
	w.stop()
	// Regression: a browse-only service once woke for announcements it
	// never sent, spinning a core.
	ps := w.cmd.ProcessState
	if cpu := ps.UserTime() + ps.SystemTime(); cpu > time.Second {
		t.Errorf("the watcher used %v of CPU while idle", cpu)
	}
}

// TestUnicastAnswerGoneWithGoodbye: bob starts after alice, on one host;
// when alice stops, her goodbye (multicast) removes her from bob's table.
// On loopback the kernel gives a multicast packet the source 0.0.0.0 and a
// unicast one 127.0.0.1: before our responders sent both from one address,
// bob kept alice's unicast answer after her goodbye, until its TTL. Since
// 2026-12-03 agents on one host answer each other by multicast only (see
// answerQuery), so this now checks that a goodbye removes what any answer
// told, whatever way it came.
func TestUnicastAnswerGoneWithGoodbye(t *testing.T) {
	h := netlab.Single(t)
	a := startChild(t, h, "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	b := startChild(t, h, "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	b.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	b.waitFor(time.Second, "alice complete", completePeer("aaaa1111"))
	stopAt := time.Now()
	a.stop()
	down := b.waitFor(2*time.Second, "alice down", peerEvent(PeerDown, "aaaa1111"))
	t.Logf("alice gone from bob's table %v after the stop began", down.At.Sub(stopAt))
	b.send("peers")
	if ps := b.waitFor(2*time.Second, "peers", func(m msg) bool { return m.Ev == "peers" }).Peers; len(ps) != 0 {
		t.Errorf("bob still lists %v after alice's goodbye", ps)
	}
}

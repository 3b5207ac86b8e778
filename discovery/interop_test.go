package discovery

import (
	"context"
	"io"
	"log"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/lanshare/lanshare/internal/netlab"
)

func init() {
	extraChildren["hashiquery"] = childHashiQuery
}

// childHashiQuery looks up our service type with hashicorp/mdns's own
// client and prints what it found.
func childHashiQuery(c childCfg, out *childOut) error {
	entries := make(chan *mdns.ServiceEntry, 64)
	params := mdns.DefaultParams(ServiceType)
	params.Entries = entries
	params.Timeout = time.Duration(c.WaitMillis) * time.Millisecond
	params.DisableIPv6 = true
	params.Logger = log.New(io.Discard, "", 0)
	if len(c.Ifaces) > 0 {
		ifi, err := net.InterfaceByName(c.Ifaces[0])
		if err != nil {
			return err
		}
		params.Interface = ifi
	}
	if err := mdns.QueryContext(context.Background(), params); err != nil {
		return err
	}
	close(entries)
	// Entries are read only after Query returned: the library keeps
	// writing to an entry after it sent it on the channel.
	var peers []Peer
	for e := range entries {
		p := Peer{Instance: e.Name, Host: e.Host, Port: e.Port, TXT: map[string]string{}}
		for _, f := range e.InfoFields {
			k, v, _ := strings.Cut(f, "=")
			p.TXT[k] = v
		}
		if e.AddrV4 != nil {
			p.Name = e.AddrV4.String()
		}
		peers = append(peers, p)
	}
	out.put(msg{Ev: "result", Peers: peers})
	return nil
}

// TestHashicorpClientFindsUs: hashicorp/mdns's Query, run inside the
// namespace, sees our service with its SRV, TXT and A records.
func TestHashicorpClientFindsUs(t *testing.T) {
	lab := netlab.New(t, 2)
	a := startChild(t, lab.Host(0), "alice", "agent", agentCfg("alice.smith", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	q := startChild(t, lab.Host(1), "hashicorp", "hashiquery", childCfg{WaitMillis: 1000, Ifaces: []string{"eth0"}})
	res := q.waitFor(10*time.Second, "result", func(m msg) bool { return m.Ev == "result" })
	if len(res.Peers) != 1 {
		t.Fatalf("mdns.Query found %d entries: %+v", len(res.Peers), res.Peers)
	}
	p := res.Peers[0]
	wantName := `alice\.smith\ \(aaaa\)._lanshare._tcp.local.`
	if p.Instance != wantName || p.Port != 4001 || p.Host != "host-aaaa1111.local." ||
		p.TXT["id"] != "aaaa1111" || p.TXT["v"] != "1" || p.TXT["name"] != "alice.smith" ||
		p.Name != lab.Host(0).Addr().String() {
		t.Errorf("mdns.Query entry = %+v (name %q, want %q)", p, p.Instance, wantName)
	}
}

// TestSharesPortWithAnotherStack: another mDNS stack bound to port 5353 in
// the same namespace (hashicorp/mdns's client: net.ListenMulticastUDP, which
// sets only SO_REUSEADDR, as avahi may) works next to a running agent, and
// the agent keeps answering next to it.
func TestSharesPortWithAnotherStack(t *testing.T) {
	h := netlab.Single(t)
	a := startChild(t, h, "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	q := startChild(t, h, "hashicorp", "hashiquery", childCfg{WaitMillis: 1000, Ifaces: []string{"lo"}})
	res := q.waitFor(10*time.Second, "result", func(m msg) bool { return m.Ev == "result" })
	if len(res.Peers) != 1 || res.Peers[0].TXT["id"] != "aaaa1111" {
		t.Fatalf("mdns.Query next to the agent found %+v", res.Peers)
	}
	q = startChild(t, h, "hashicorp2", "hashiquery", childCfg{WaitMillis: 1000, Ifaces: []string{"lo"}})
	res = q.waitFor(10*time.Second, "result", func(m msg) bool { return m.Ev == "result" })
	if len(res.Peers) != 1 || res.Peers[0].TXT["id"] != "aaaa1111" {
		t.Fatalf("a second mdns.Query next to the agent found %+v", res.Peers)
	}
}

// TestTwoAgentsOnOneHost: two agents in one network namespace (two users
// of one machine) find each other when the second starts after the
// first's announcements, so that only its queries can bring it the
// first. Both failed: the first's unicast answers to the second's QU
// queries went to whichever of the two sockets on port 5353 the kernel's
// hash picked, often the first's own; and the second took each of the
// first's queries for its own next one (RFC 6762 §7.3), though the first
// does not answer its own queries. Bob missed alice for 6 s and more in
// half the runs under load.
func TestTwoAgentsOnOneHost(t *testing.T) {
	h := netlab.Single(t)
	a := startChild(t, h, "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	// Alice's first second: two announcements over two families and two
	// queries over one, 6 packets; more only when her third query goes.
	a.pollStats(10*time.Second, "her announcements sent (6 packets)", func(st Stats) bool { return st.Sent >= 6 })
	b := startChild(t, h, "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	ready := b.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	up := b.waitFor(6*time.Second, "alice", completePeer("aaaa1111"))
	// Bob's first two queries go at most 1.25 s after he starts (asking
	// for multicast answers, since alice holds port 5353 too); his third
	// at least 3 s after.
	if d := up.At.Sub(ready.At); d > 2500*time.Millisecond {
		t.Errorf("bob found alice %v after he started: not from the answer to his first queries", d)
	}
	a.waitFor(3*time.Second, "bob", completePeer("bbbb2222"))
}

// TestLateAgentOnSharedHostFindsOtherHosts: bob starts on a host where
// alice runs, after carol, on another host, and alice found each other:
// he lists carol from the answer to his first queries. They asked for
// unicast answers, and the kernel gave carol's to whichever socket of
// bob's host on port 5353 its hash picked, the same for each, alice's in
// a third of the runs, two thirds under load: bob then missed carol until
// his third query, 3 s after he started. Now an agent that shares port
// 5353 asks for multicast answers.
func TestLateAgentOnSharedHostFindsOtherHosts(t *testing.T) {
	lab := netlab.New(t, 2)
	a := startChild(t, lab.Host(0), "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	c := startChild(t, lab.Host(1), "carol", "agent", agentCfg("carol", "cccc3333", 4003))
	for _, x := range []*child{a, c} {
		x.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	}
	a.waitFor(5*time.Second, "carol", completePeer("cccc3333"))
	c.waitFor(5*time.Second, "alice", completePeer("aaaa1111"))
	// Their announcements are over (see TestTwoAgentsOnOneHost).
	for _, x := range []*child{a, c} {
		x.pollStats(10*time.Second, "announcements sent (6 packets)", func(st Stats) bool { return st.Sent >= 6 })
	}
	b := startChild(t, lab.Host(0), "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	ready := b.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	for _, id := range []string{"aaaa1111", "cccc3333"} {
		up := b.waitFor(6*time.Second, id, completePeer(id))
		if d := up.At.Sub(ready.At); d > 2500*time.Millisecond {
			t.Errorf("bob found %s %v after he started: not from the answers to his first queries", id, d)
		}
	}
	c.waitFor(3*time.Second, "bob", completePeer("bbbb2222"))
}

// TestThreeAgentsOnOneHost: three users of one machine. Carol, started
// after alice's and bob's announcements, finds both from her first
// queries; bob's goodbye drops him from both tables at once, and bob
// restarted (same name and id) is back in both at once and finds both;
// carol killed and restarted finds both again, and alice never drops her.
func TestThreeAgentsOnOneHost(t *testing.T) {
	h := netlab.Single(t)
	isReady := func(m msg) bool { return m.Ev == "ready" }
	a := startChild(t, h, "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	b := startChild(t, h, "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	a.waitFor(10*time.Second, "ready", isReady)
	b.waitFor(10*time.Second, "ready", isReady)
	a.waitFor(5*time.Second, "bob", completePeer("bbbb2222"))
	b.waitFor(5*time.Second, "alice", completePeer("aaaa1111"))
	for _, x := range []*child{a, b} {
		x.pollStats(10*time.Second, "announcements sent (6 packets)", func(st Stats) bool { return st.Sent >= 6 })
	}
	// finds checks that x, ready at start, finds the agents ids from its
	// first queries (see TestTwoAgentsOnOneHost).
	finds := func(x *child, start msg, ids ...string) {
		t.Helper()
		for _, id := range ids {
			up := x.waitFor(6*time.Second, id, completePeer(id))
			if d := up.At.Sub(start.At); d > 2500*time.Millisecond {
				t.Errorf("%s found %s %v after it started", x.name, id, d)
			}
		}
	}
	c := startChild(t, h, "carol", "agent", agentCfg("carol", "cccc3333", 4003))
	finds(c, c.waitFor(10*time.Second, "ready", isReady), "aaaa1111", "bbbb2222")
	a.waitFor(3*time.Second, "carol", completePeer("cccc3333"))
	b.waitFor(3*time.Second, "carol", completePeer("cccc3333"))

	b.stop()
	for _, x := range []*child{a, c} {
		x.waitFor(2*time.Second, "bob down", peerEvent(PeerDown, "bbbb2222"))
	}
	b = startChild(t, h, "bob again", "agent", agentCfg("bob", "bbbb2222", 4002))
	ready := b.waitFor(10*time.Second, "ready", isReady)
	// His announcements, at most 250 ms after he starts, bring him back.
	for _, x := range []*child{a, c} {
		up := x.waitFor(6*time.Second, "bob back", completePeer("bbbb2222"))
		if d := up.At.Sub(ready.At); d > 1500*time.Millisecond {
			t.Errorf("%s listed bob again %v after he restarted", x.name, d)
		}
	}
	finds(b, ready, "aaaa1111", "cccc3333")

	c.kill()
	c = startChild(t, h, "carol again", "agent", agentCfg("carol", "cccc3333", 4003))
	finds(c, c.waitFor(10*time.Second, "ready", isReady), "aaaa1111", "bbbb2222")
	a.expectNone(time.Second, "carol down", peerEvent(PeerDown, "cccc3333"))
	a.send("peers")
	var ids []string
	for _, p := range a.waitFor(2*time.Second, "peers", func(m msg) bool { return m.Ev == "peers" }).Peers {
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, ",") != "bbbb2222,cccc3333" {
		t.Errorf("alice lists %v, want bob and carol", ids)
	}
}

package discovery

// Interop with avahi, the DNS-SD implementation of most Linux desktops and an
// implementation we share no code with, each avahi-daemon with its own
// private D-Bus inside a lab host (netlab.StartAvahi).
//
// The tests need the Debian packages avahi-daemon, avahi-utils and
// dbus-daemon, and skip without them. They run in parallel with each other
// (each has its own lab), after the package's other tests.

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

// named returns the services called name (as avahi-browse escapes it).
func named(svcs []netlab.AvahiService, name string) []netlab.AvahiService {
	return slices.DeleteFunc(slices.Clone(svcs), func(s netlab.AvahiService) bool { return s.Name != name })
}

// hasBothFamilies reports whether avahi resolved name over IPv4 and IPv6.
func hasBothFamilies(name string) func([]netlab.AvahiService) bool {
	return func(svcs []netlab.AvahiService) bool {
		var v4, v6 bool
		for _, s := range named(svcs, name) {
			v4 = v4 || s.Proto == "IPv4"
			v6 = v6 || s.Proto == "IPv6"
		}
		return v4 && v6
	}
}

// hostAddrs are the addresses of a lab host's first interface.
func hostAddrs(h *netlab.Host) []netip.Addr {
	ifc := h.Ifaces[0]
	return []netip.Addr{ifc.IPv4.Addr(), ifc.ULA.Addr(), ifc.LinkLocal}
}

// checkAvahiSees checks what avahi resolved for an agent advertised by
// agentCfg(name, id, port) on host h: every line for its escaped instance
// name has the agent's instance name (once unescaped), SRV target, port, TXT
// and one of h's addresses, and the IPv4 address is among them.
func checkAvahiSees(t testing.TB, svcs []netlab.AvahiService, escaped string, cfg childCfg, h *netlab.Host) {
	t.Helper()
	lines := named(svcs, escaped)
	if len(lines) == 0 {
		t.Fatalf("avahi lists no %q in %+v", escaped, svcs)
	}
	wantTXT := []string{"id=" + cfg.ID, "v=" + cfg.Version, "name=" + cfg.Name}
	instance := InstanceName(cfg.Name, cfg.ID)
	var addrs []netip.Addr
	for _, s := range lines {
		if s.Instance != instance {
			t.Errorf("avahi's %s unescapes to %q, want %q", escaped, s.Instance, instance)
		}
		if s.Iface != "eth0" || s.Type != ServiceType || s.Domain != "local" ||
			s.Host != cfg.Host+".local" || s.Port != cfg.Port ||
			!slices.Contains(hostAddrs(h), s.Addr.WithZone("")) {
			t.Errorf("avahi resolved %s as %+v; want host %s.local, port %d, one of %v",
				escaped, s, cfg.Host, cfg.Port, hostAddrs(h))
		}
		got := slices.Clone(s.TXT)
		slices.Sort(got)
		want := slices.Clone(wantTXT)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("avahi resolved %s's TXT as %q, want %q", escaped, s.TXT, wantTXT)
		}
		addrs = append(addrs, s.Addr)
	}
	if !slices.Contains(addrs, h.Addr()) {
		t.Errorf("avahi resolved %s to %v, without %v", escaped, addrs, h.Addr())
	}
}

// checkAvahiResolvesHost checks avahi's A and AAAA lookups of an agent's
// host name against the addresses of the host it runs on.
func checkAvahiResolvesHost(t testing.TB, a *netlab.Avahi, hostName string, h *netlab.Host) {
	t.Helper()
	for _, fam := range []int{4, 6} {
		addr := a.Resolve(t, fam, hostName)
		if !slices.Contains(hostAddrs(h), addr.WithZone("")) || addr.Is4() != (fam == 4) {
			t.Errorf("avahi-resolve -%d -n %s = %s, want one of %v", fam, hostName, addr, hostAddrs(h))
		}
	}
}

// TestAvahiResolvesUs: avahi-browse and avahi-resolve, through an
// avahi-daemon on host 0, list our agents on another host and on avahi's own
// host (sharing port 5353 with it) with the instance name as one label
// (dots, spaces, quotes, backslashes and UTF-8 intact), the port, the TXT
// keys, and the hosts' IPv4 and IPv6 addresses. An agent that stops is gone
// from avahi's list at once (its goodbye), not after its TTL.
func TestAvahiResolvesUs(t *testing.T) {
	netlab.SkipUnlessAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 2)
	av := netlab.StartAvahi(t, lab.Host(0), "avahi-h0")
	aliceCfg := agentCfg("alice.smith", "aaaa1111", 4001)
	bobCfg := agentCfg("bob", "bbbb2222", 4002)
	carolCfg := agentCfg(`Zoë "Z" O'Neil\; (x)`, "cccc3333", 4003)
	alice := startChild(t, lab.Host(1), "alice", "agent", aliceCfg)
	bob := startChild(t, lab.Host(0), "bob", "agent", bobCfg)
	carol := startChild(t, lab.Host(1), "carol", "agent", carolCfg)
	for _, c := range []*child{alice, bob, carol} {
		c.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	}

	// avahi escapes the dot (the label is one label, not two) and prints
	// other bytes than letters, digits, '-' and '_' as \DDD: "ë" is
	// \195\171 in UTF-8.
	aliceName, bobName := `alice\.smith\032\040aaaa\041`, `bob\032\040bbbb\041`
	carolName := `Zo\195\171\032\034Z\034\032O\039Neil\\\059\032\040x\041\032\040cccc\041`
	svcs := av.BrowseUntil(t, ServiceType, 10*time.Second, "alice, bob and carol over IPv4 and IPv6", func(s []netlab.AvahiService) bool {
		return hasBothFamilies(aliceName)(s) && hasBothFamilies(bobName)(s) && hasBothFamilies(carolName)(s)
	})
	checkAvahiSees(t, svcs, aliceName, aliceCfg, lab.Host(1))
	checkAvahiSees(t, svcs, bobName, bobCfg, lab.Host(0))
	checkAvahiSees(t, svcs, carolName, carolCfg, lab.Host(1))
	checkAvahiResolvesHost(t, av, aliceCfg.Host+".local", lab.Host(1))
	checkAvahiResolvesHost(t, av, bobCfg.Host+".local", lab.Host(0))

	alice.stop()
	bob.stop()
	av.BrowseUntil(t, ServiceType, 5*time.Second, "alice and bob gone", func(s []netlab.AvahiService) bool {
		return len(named(s, aliceName)) == 0 && len(named(s, bobName)) == 0 && hasBothFamilies(carolName)(s)
	})
}

// browseUntil runs one-shot Browses (one second each) in h until ok accepts
// what one found or timeout has passed, and returns the last result. A single
// Browse may miss an avahi service: avahi does not answer with a record it
// multicast less than half a second before (its announcements included), so
// a Browse that starts just after avahi spoke can hear nothing in its second.
func browseUntil(t testing.TB, h *netlab.Host, timeout time.Duration, what string, ok func([]Peer) bool) []Peer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i := 1; ; i++ {
		br := startChild(t, h, fmt.Sprintf("browse%d", i), "browse", childCfg{WaitMillis: 1000})
		res := br.waitFor(10*time.Second, "browse result", func(m msg) bool { return m.Ev == "result" })
		if ok(res.Peers) {
			t.Logf("Browse #%d found %s: %v", i, what, res.Peers)
			return res.Peers
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Browse found %s within %v; the last found %v", what, timeout, res.Peers)
		}
		// Each Browse takes its second, which paces the retries.
	}
}

// foreignPeer matches an up or update event about a peer without an id
// called instance.
func foreignPeer(instance string) func(msg) bool {
	return func(m msg) bool {
		return (m.Ev == "up" || m.Ev == "update") && m.Peer != nil && m.Peer.Instance == instance && m.Peer.ID == ""
	}
}

// hasPlainThing reports whether peers hold avahi-publish's service with
// the IPv4 address of h, where it runs.
func hasPlainThing(h *netlab.Host) func([]Peer) bool {
	return func(peers []Peer) bool {
		return slices.ContainsFunc(peers, func(p Peer) bool {
			return p.Instance == "plain thing" && slices.Contains(p.Addrs, netip.AddrPortFrom(h.Addr(), 4242))
		})
	}
}

// checkPlainThing checks our view of the service avahi-publish announced
// from host h: listed, not complete, with avahi's port, TXT and h's address.
func checkPlainThing(t testing.TB, p Peer, h *netlab.Host) {
	t.Helper()
	want := netip.AddrPortFrom(h.Addr(), 4242)
	if p.Complete() || p.Port != 4242 || p.Name != "plain thing" || p.Host != "avahi-h0.local" ||
		p.TXT["foo"] != "bar" || !slices.Contains(p.Addrs, want) {
		t.Errorf("avahi's service seen as %+v (complete %v); want incomplete, port 4242, foo=bar, host avahi-h0.local, address %v",
			p, p.Complete(), want)
	}
}

// TestAvahiPublishedServiceListedNotComplete: a _lanshare._tcp service that
// avahi-publish announces is found by a one-shot Browse on another host and
// by an agent on avahi's own host, as a peer without our TXT keys (listed,
// not complete); when avahi-publish ends, avahi's goodbye removes it from the
// agent's table.
func TestAvahiPublishedServiceListedNotComplete(t *testing.T) {
	netlab.SkipUnlessAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 2)
	av := netlab.StartAvahi(t, lab.Host(0), "avahi-h0")
	bob := startChild(t, lab.Host(0), "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	bob.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	pub := av.Publish(t, "plain thing", ServiceType, 4242, "foo=bar")

	peers := browseUntil(t, lab.Host(1), 10*time.Second, "avahi's service", hasPlainThing(lab.Host(0)))
	var found []Peer
	for _, p := range peers {
		if p.Instance == "plain thing" {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("Browse found %d peers called %q: %+v", len(found), "plain thing", peers)
	}
	checkPlainThing(t, found[0], lab.Host(0))

	// The agent sharing port 5353 with avahi hears it too. Wait for the
	// IPv4 address: avahi's answer over IPv6 (AAAA only) may come first.
	up := bob.waitFor(5*time.Second, "avahi's service with its IPv4 address", func(m msg) bool {
		return foreignPeer("plain thing")(m) && slices.Contains(m.Peer.Addrs, netip.AddrPortFrom(lab.Host(0).Addr(), 4242))
	})
	checkPlainThing(t, *up.Peer, lab.Host(0))

	pub.Stop(t)
	bob.waitFor(5*time.Second, "avahi's service gone", func(m msg) bool {
		return m.Ev == "down" && m.Peer != nil && m.Peer.Instance == "plain thing"
	})
}

// TestAvahiCoexistence: an agent and avahi-daemon on one host (avahi started
// second, binding port 5353 after us) both keep answering: a Browse on a
// second host, and one on their own host (lanshare peers on a desktop that
// runs avahi), find the agent and a service avahi publishes there; an
// avahi-daemon on a third host lists the agent, avahi's service and avahi's
// host name; and the agent lists avahi's service.
func TestAvahiCoexistence(t *testing.T) {
	netlab.SkipUnlessAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 3)
	aliceCfg := agentCfg("alice", "aaaa1111", 4001)
	alice := startChild(t, lab.Host(0), "alice", "agent", aliceCfg)
	alice.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	av0 := netlab.StartAvahi(t, lab.Host(0), "avahi-h0")
	av2 := netlab.StartAvahi(t, lab.Host(2), "avahi-h2")
	av0.Publish(t, "plain thing", ServiceType, 4242, "foo=bar")

	for _, h := range []*netlab.Host{lab.Host(1), lab.Host(0)} {
		peers := browseUntil(t, h, 10*time.Second, "alice and avahi's service", func(ps []Peer) bool {
			return hasPlainThing(lab.Host(0))(ps) && slices.ContainsFunc(ps, func(p Peer) bool { return p.ID == aliceCfg.ID })
		})
		var gotAlice, gotThing bool
		for _, p := range peers {
			switch {
			case p.ID == aliceCfg.ID:
				gotAlice = true
				if !p.Complete() || !slices.Contains(p.Addrs, netip.AddrPortFrom(lab.Host(0).Addr(), 4001)) {
					t.Errorf("Browse on host %d sees alice as %+v", h.Index, p)
				}
			case p.Instance == "plain thing":
				gotThing = true
				checkPlainThing(t, p, lab.Host(0))
			}
		}
		if !gotAlice || !gotThing || len(peers) != 2 {
			t.Errorf("Browse on host %d found %+v; want alice and avahi's %q, both on host 0", h.Index, peers, "plain thing")
		}
	}

	aliceName := `alice\032\040aaaa\041`
	svcs := av2.BrowseUntil(t, ServiceType, 10*time.Second, "alice and avahi's service", func(s []netlab.AvahiService) bool {
		return hasBothFamilies(aliceName)(s) && len(named(s, `plain\032thing`)) > 0
	})
	checkAvahiSees(t, svcs, aliceName, aliceCfg, lab.Host(0))
	for _, s := range named(svcs, `plain\032thing`) {
		if s.Host != "avahi-h0.local" || s.Port != 4242 || !slices.Contains(hostAddrs(lab.Host(0)), s.Addr.WithZone("")) {
			t.Errorf("avahi on host 2 resolved avahi's service on host 0 as %+v", s)
		}
	}
	checkAvahiResolvesHost(t, av2, "avahi-h0.local", lab.Host(0))
	checkAvahiResolvesHost(t, av2, aliceCfg.Host+".local", lab.Host(0))

	// The agent hears avahi's service on its own host.
	up := alice.waitFor(5*time.Second, "avahi's service with its IPv4 address", func(m msg) bool {
		return foreignPeer("plain thing")(m) && slices.Contains(m.Peer.Addrs, netip.AddrPortFrom(lab.Host(0).Addr(), 4242))
	})
	checkPlainThing(t, *up.Peer, lab.Host(0))
}

// TestAvahiKeepsItsHostName: an agent with the default Host, on a machine
// whose avahi-daemon publishes the machine's host name, does not make avahi
// see a conflict and rename the machine "<host>-2" (see Config.Host); avahi
// resolves the agent under the agent's own host name.
func TestAvahiKeepsItsHostName(t *testing.T) {
	netlab.SkipUnlessAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 1)
	machine, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	// The name avahi publishes for this machine (its first label) is the
	// one we used to publish too.
	av := netlab.StartAvahi(t, lab.Host(0), hostLabel(machine))
	cfg := agentCfg("bob", "bbbb2222", 4002)
	cfg.Host = "" // the default
	bob := startChild(t, lab.Host(0), "bob", "agent", cfg)
	bob.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	bobName := `bob\032\040bbbb\041`
	svcs := av.BrowseUntil(t, ServiceType, 10*time.Second, "bob over IPv4 and IPv6", hasBothFamilies(bobName))
	cfg.Host = hostFor(machine, cfg.ID)
	checkAvahiSees(t, svcs, bobName, cfg, lab.Host(0))
	checkAvahiResolvesHost(t, av, cfg.Host+".local", lab.Host(0))
	// avahi has our address records; a conflict would show within the
	// 750 ms of probing that precedes the rename.
	av.Daemon.ExpectNoLine(t, "conflict", 2*time.Second)
}

// TestLateAgentBesideAvahiFindsOtherHosts: an agent started on a host
// whose avahi-daemon holds port 5353 lists a peer on another host from
// the answer to its first queries. They asked for unicast answers, which
// the kernel gave to avahi's socket as often as to ours: the agent then
// missed the peer until its third query, 3 s after it started, in 6 runs
// of 10 (see TestLateAgentOnSharedHostFindsOtherHosts).
func TestLateAgentBesideAvahiFindsOtherHosts(t *testing.T) {
	netlab.SkipUnlessAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 2)
	carol := startChild(t, lab.Host(1), "carol", "agent", agentCfg("carol", "cccc3333", 4003))
	carol.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	netlab.StartAvahi(t, lab.Host(0), "avahi-h0")
	carol.pollStats(10*time.Second, "her announcements sent (6 packets)", func(st Stats) bool { return st.Sent >= 6 })
	alice := startChild(t, lab.Host(0), "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	ready := alice.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	up := alice.waitFor(6*time.Second, "carol", completePeer("cccc3333"))
	if d := up.At.Sub(ready.At); d > 2500*time.Millisecond {
		t.Errorf("alice found carol %v after she started: not from the answers to her first queries", d)
	}
}

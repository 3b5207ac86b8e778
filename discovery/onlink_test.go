package discovery

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"golang.org/x/net/ipv4"
)

func init() {
	extraChildren["offlink"] = childOffLink
	extraChildren["lowttl"] = childLowTTL
}

// childOffLink plays an attacker behind a router: it sends, by unicast to
// cfg.Target port 5353, a response announcing the peer ("evil",
// "eeee6666"), a QU query from port 5353 and a legacy query from an
// ephemeral port. When the parent writes a line it reports any answer that
// reached either socket within a second.
func childOffLink(c childCfg, out *childOut) error {
	lc := net.ListenConfig{Control: reuse}
	c5353, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5353")
	if err != nil {
		return err
	}
	p5353 := ipv4.NewPacketConn(c5353)
	if err := p5353.SetTTL(255); err != nil {
		return err
	}
	legacy, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return err
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(c.Target), mdnsPort))
	ann, err := peerZone("evil", "eeee6666", 6666, 4500, "10.77.1.3").announcement().Pack()
	if err != nil {
		return err
	}
	qu, err := browseQuery(nil, true).Pack()
	if err != nil {
		return err
	}
	lq := browseQuery(nil, false)
	lq.Id = 4242
	leg, err := lq.Pack()
	if err != nil {
		return err
	}
	for _, s := range []struct {
		c net.PacketConn
		b []byte
	}{{c5353, ann}, {c5353, qu}, {legacy, leg}} {
		if _, err := s.c.WriteTo(s.b, dst); err != nil {
			return err
		}
	}
	out.put(msg{Ev: "sent"})
	if !bufio.NewScanner(os.Stdin).Scan() {
		return nil
	}
	var (
		mu      sync.Mutex
		answers []string
		wg      sync.WaitGroup
	)
	for _, conn := range []net.PacketConn{c5353, legacy} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 9000)
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			for {
				n, from, err := conn.ReadFrom(buf)
				if err != nil {
					return
				}
				if m, err := unpack(buf[:n]); err == nil && m.Response {
					mu.Lock()
					answers = append(answers, fmt.Sprintf("%d records from %v to %v", len(m.Answer)+len(m.Extra), from, conn.LocalAddr()))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	out.put(msg{Ev: "answers", Text: strings.Join(answers, "; ")})
	return nil
}

// childLowTTL, on the victim's link, multicasts an announcement of
// ("ghost", "gggg7777") with IP TTL 64, as a packet that crossed a router
// would arrive, and then one of ("fine", "ffff8888") with IP TTL 255.
func childLowTTL(c childCfg, out *childOut) error {
	p, ifi, err := mdnsSocket(c.Ifaces[0])
	if err != nil {
		return err
	}
	dst := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: mdnsPort}
	for _, s := range []struct {
		ttl      int
		name, id string
	}{{64, "ghost", "gggg7777"}, {255, "fine", "ffff8888"}} {
		b, err := peerZone(s.name, s.id, 7777, 120, "10.77.0.3").announcement().Pack()
		if err != nil {
			return err
		}
		if err := p.SetMulticastTTL(s.ttl); err != nil {
			return err
		}
		if _, err := p.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifi.Index}, dst); err != nil {
			return err
		}
	}
	out.put(msg{Ev: "sent"})
	return nil
}

// routedLab builds a victim host (10.77.0.1) and a router (10.77.0.2 and
// 10.77.1.2) forwarding between segment 0 and segment 1, where the attacker
// (10.77.1.3) sits: the attacker is off the victim's link but can reach it.
func routedLab(t testing.TB) (victim, attacker *netlab.Host) {
	t.Helper()
	lab := netlab.New(t, 2)
	victim, router := lab.Host(0), lab.Host(1)
	seg1 := lab.AddSegment()
	lab.Attach(router, seg1)
	attacker = lab.AddHost()
	lab.Attach(attacker, seg1)
	if out, err := router.Command("sysctl", "-w", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("enabling forwarding: %v: %s", err, out)
	}
	victim.IP("route", "add", "10.77.1.0/24", "via", "10.77.0.2")
	attacker.IP("route", "add", "10.77.0.0/24", "via", "10.77.1.2")
	return victim, attacker
}

// TestOffLinkResponsesAndQueriesIgnored pins RFC 6762 §11: a response sent
// by unicast from behind a router (source port 5353, another subnet) does
// not enter the table, and queries from there (QU, legacy unicast) get no
// answer, so the agent is no amplifier for the internet.
func TestOffLinkResponsesAndQueriesIgnored(t *testing.T) {
	victimHost, atkHost := routedLab(t)
	victim := startChild(t, victimHost, "victim", "agent", agentCfg("victim", "vvvv1111", 4001))
	victim.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	atk := startChild(t, atkHost, "attacker", "offlink", childCfg{Target: victimHost.Addr().String()})
	atk.waitFor(10*time.Second, "sent", func(m msg) bool { return m.Ev == "sent" })
	victim.pollStats(5*time.Second, "3 off-link packets", func(st Stats) bool { return st.OffLink >= 3 })
	victim.expectNone(0, "the off-link peer", peerEvent(PeerUp, "eeee6666"))
	victim.send("peers")
	if peers := victim.waitFor(5*time.Second, "peers", func(m msg) bool { return m.Ev == "peers" }).Peers; len(peers) != 0 {
		t.Errorf("victim lists %+v after off-link traffic", peers)
	}
	atk.send("check")
	if a := atk.waitFor(5*time.Second, "answers", func(m msg) bool { return m.Ev == "answers" }); a.Text != "" {
		t.Errorf("the off-link querier got answers: %s", a.Text)
	}
}

// TestResponseWithLowIPTTLIgnored: a response that did not leave its sender
// with IP TTL 255 (or crossed a router) is not believed, even from an
// on-link address; the same sender's TTL-255 response right after is.
func TestResponseWithLowIPTTLIgnored(t *testing.T) {
	lab := netlab.New(t, 2)
	victim := startChild(t, lab.Host(0), "victim", "agent", agentCfg("victim", "vvvv1111", 4001))
	victim.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	snd := startChild(t, lab.Host(1), "sender", "lowttl", childCfg{Ifaces: []string{"eth0"}})
	snd.waitFor(10*time.Second, "sent", func(m msg) bool { return m.Ev == "sent" })
	// Both packets come from one socket to one group, so the victim reads
	// them in order: once "fine" is listed, "ghost" was judged.
	victim.waitFor(5*time.Second, "the TTL-255 peer", completePeer("ffff8888"))
	victim.expectNone(0, "the peer announced with IP TTL 64", peerEvent(PeerUp, "gggg7777"))
}

// TestOnLink: which sources count as on the link an interface is on.
func TestOnLink(t *testing.T) {
	eth := ifaceInfo{Name: "eth0", Flags: net.FlagUp | net.FlagMulticast,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24"), netip.MustParsePrefix("fd77::/64")}}
	lo := ifaceInfo{Name: "lo", Flags: net.FlagUp | net.FlagMulticast | net.FlagLoopback,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	for _, c := range []struct {
		i    ifaceInfo
		src  string
		want bool
	}{
		{eth, "10.77.0.9", true},
		{eth, "::ffff:10.77.0.9", true},
		{eth, "10.77.1.3", false},
		{eth, "8.8.8.8", false},
		{eth, "169.254.3.4", true},
		{eth, "fd77::9", true},
		{eth, "fd77:0:0:1::9", false},
		{eth, "fe80::9%eth0", true},
		{eth, "2001:db8::1", false},
		{eth, "0.0.0.0", false},
		{eth, "127.0.0.1", false},
		{lo, "127.0.0.1", true},
		{lo, "0.0.0.0", true},
	} {
		if got := c.i.onLink(netip.MustParseAddr(c.src)); got != c.want {
			t.Errorf("%s: onLink(%s) = %v, want %v", c.i.Name, c.src, got, c.want)
		}
	}
}

func init() {
	extraChildren["ttlflood"] = childTTLFlood
	extraChildren["sniffq"] = childSniffQueries
}

// childTTLFlood multicasts 32 announcements of made-up peers with a TTL of
// 3 s, 10 ms apart, so their refresh points (80-95 % of the TTL) fall
// on some 100 distinct instants within about a second.
func childTTLFlood(c childCfg, out *childOut) error {
	p, ifi, err := mdnsSocket(c.Ifaces[0])
	if err != nil {
		return err
	}
	dst := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: mdnsPort}
	for i := range 32 {
		b, err := peerZone(fmt.Sprintf("short%d", i), fmt.Sprintf("s%07d", i), 1, 3, "10.77.0.3").announcement().Pack()
		if err != nil {
			return err
		}
		if _, err := p.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifi.Index}, dst); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond) // pacing the flood, not ordering the test
	}
	out.put(msg{Ev: "sent"})
	return nil
}

// childSniffQueries prints every mDNS query it sees on the group.
func childSniffQueries(c childCfg, out *childOut) error {
	p, _, err := mdnsSocket(c.Ifaces[0])
	if err != nil {
		return err
	}
	out.put(msg{Ev: "ready"})
	buf := make([]byte, 9000)
	for {
		n, _, src, err := p.ReadFrom(buf)
		if err != nil {
			return err
		}
		if m, err := unpack(buf[:n]); err == nil && !m.Response {
			out.put(msg{Ev: "query", Text: src.String()})
		}
	}
}

// TestRefreshQueriesRateLimited: records whose refresh points are spread
// over a second (a flood of short TTLs) make the agent query a few times,
// at least minRefreshGap apart, not once per record and point.
func TestRefreshQueriesRateLimited(t *testing.T) {
	lab := netlab.New(t, 3)
	sn := startChild(t, lab.Host(1), "sniffer", "sniffq", childCfg{Ifaces: []string{"eth0"}})
	sn.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	w := startChild(t, lab.Host(0), "watch", "watch", childCfg{})
	w.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	fl := startChild(t, lab.Host(2), "flood", "ttlflood", childCfg{Ifaces: []string{"eth0"}})
	start := fl.waitFor(10*time.Second, "sent", func(m msg) bool { return m.Ev == "sent" })
	// The flood's records expire 3 s after they were sent; by then every
	// refresh point has passed.
	w.waitFor(5*time.Second, "the last flood record expiring", peerEvent(PeerDown, "s0000031"))
	sn.expectNone(100*time.Millisecond, "nothing", func(msg) bool { return false })
	from := lab.Host(0).Addr().String() + ":"
	var at []time.Time
	for _, m := range sn.seen {
		if m.Ev == "query" && strings.HasPrefix(m.Text, from) && m.At.After(start.At.Add(-time.Second)) {
			at = append(at, m.At)
		}
	}
	// Within 3.5 s: the browse backoff's own queries (1 s, 2 s apart) and
	// refreshes at least minRefreshGap apart.
	if limit := 2 + int(3500*time.Millisecond/minRefreshGap); len(at) > limit {
		t.Errorf("the watcher sent %d queries during a short-TTL flood, want at most %d", len(at), limit)
	}
	t.Logf("the watcher sent %d queries during the flood", len(at))
}

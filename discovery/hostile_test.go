package discovery

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

func init() {
	extraChildren["sniff"] = childSniff
	extraChildren["attack"] = childAttack
	extraChildren["queryflood"] = childQueryFlood
}

// childQueryFlood multicasts 50 browse queries from port 5353 within about
// 200ms.
func childQueryFlood(c childCfg, out *childOut) error {
	p, ifi, err := mdnsSocket(c.Ifaces[0])
	if err != nil {
		return err
	}
	b, err := browseQuery(nil, false).Pack()
	if err != nil {
		return err
	}
	out.put(msg{Ev: "start"})
	for i := 0; i < 50; i++ {
		if _, err := p.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifi.Index}, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err != nil {
			return err
		}
		time.Sleep(4 * time.Millisecond) // pacing the flood, not ordering the test
	}
	out.put(msg{Ev: "done"})
	return nil
}

// mdnsSocket binds 0.0.0.0:5353 next to the agents, joins the group on
// the named interface and sends multicast with IP TTL 255.
func mdnsSocket(ifname string) (*ipv4.PacketConn, *net.Interface, error) {
	lc := net.ListenConfig{Control: reuse}
	c, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5353")
	if err != nil {
		return nil, nil, err
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, nil, err
	}
	p := ipv4.NewPacketConn(c)
	if err := p.JoinGroup(ifi, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251)}); err != nil {
		return nil, nil, err
	}
	// As a responder on the link would: responses with less are not
	// believed (RFC 6762 §11).
	if err := p.SetMulticastTTL(255); err != nil {
		return nil, nil, err
	}
	return p, ifi, p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst, true)
}

// childSniff prints every mDNS response it sees on the group with the IP TTL
// it arrived with.
func childSniff(c childCfg, out *childOut) error {
	p, _, err := mdnsSocket(c.Ifaces[0])
	if err != nil {
		return err
	}
	out.put(msg{Ev: "ready"})
	buf := make([]byte, 9000)
	for {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := unpack(buf[:n])
		if err != nil || !m.Response || cm == nil {
			continue
		}
		out.put(msg{Ev: "response", Text: fmt.Sprintf("ttl=%d dst=%v src=%v answers=%d extra=%d", cm.TTL, cm.Dst, src, len(m.Answer), len(m.Extra))})
	}
}

// childAttack sends hostile traffic about the victim (cfg.Name, cfg.ID) from
// port 5353: garbage, a spoofed goodbye and a spoofed takeover carrying
// another id.
func childAttack(c childCfg, out *childOut) error {
	p, ifi, err := mdnsSocket(c.Ifaces[0])
	if err != nil {
		return err
	}
	dst := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	cm := &ipv4.ControlMessage{IfIndex: ifi.Index}
	send := func(b []byte) error {
		_, err := p.WriteTo(b, cm, dst)
		return err
	}
	const junkPackets = 100
	for i := 0; i < junkPackets; i++ {
		junk := []byte(strings.Repeat("\xff", 20+i))
		if err := send(junk); err != nil {
			return err
		}
	}
	out.put(msg{Ev: "junk sent"})
	// Spoof only when the parent says the junk was counted, so the two
	// phases cannot overflow the victim's socket buffer together.
	if !bufio.NewScanner(os.Stdin).Scan() {
		return nil
	}
	z := &zone{
		instance: InstanceName(c.Name, c.ID),
		host:     "evil",
		port:     6666,
		txt:      encodeTXT([][2]string{{txtID, "evil"}, {txtVersion, "1"}, {txtName, c.Name}}),
		addrs:    []netip.Addr{netip.MustParseAddr("10.77.0.66")},
		ttl:      120,
	}
	bare := responseMsg()
	bare.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: serviceFQDN, Rrtype: dns.TypePTR, Class: dns.ClassINET}, Ptr: z.instanceName()}}
	for _, m := range []*dns.Msg{z.goodbye(), z.announcement(), bare} {
		b, err := m.Pack()
		if err != nil {
			return err
		}
		if err := send(b); err != nil {
			return err
		}
	}
	out.put(msg{Ev: "done"})
	return nil
}

// TestHostileTrafficNeitherEvictsNorFloods: garbage, and spoofed goodbyes
// or takeovers of a peer's instance (with another id) from another host,
// leave the peer in the table unchanged (a takeover is listed apart,
// flagged as a label its id does not make); all is counted, and logged at
// most one line per kind.
func TestHostileTrafficNeitherEvictsNorFloods(t *testing.T) {
	lab := netlab.New(t, 3)
	victim := startChild(t, lab.Host(0), "victim", "agent", agentCfg("victim", "vvvv1111", 4001))
	victim.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	obs := startChild(t, lab.Host(1), "observer", "agent", agentCfg("observer", "oooo2222", 4002))
	obs.waitFor(5*time.Second, "victim", completePeer("vvvv1111"))

	atk := startChild(t, lab.Host(2), "attacker", "attack", childCfg{Name: "victim", ID: "vvvv1111", Ifaces: []string{"eth0"}})
	atk.waitFor(10*time.Second, "junk sent", func(m msg) bool { return m.Ev == "junk sent" })
	obs.pollStats(5*time.Second, "100 malformed", func(st Stats) bool { return st.Malformed >= 100 })
	atk.send("spoof")
	atk.waitFor(10*time.Second, "done", func(m msg) bool { return m.Ev == "done" })
	obs.pollStats(5*time.Second, "2 conflicts", func(st Stats) bool { return st.Conflicts >= 2 })
	obs.send("peers")
	peers := obs.waitFor(5*time.Second, "peers", func(m msg) bool { return m.Ev == "peers" }).Peers
	var real, fake []Peer
	for _, p := range peers {
		if p.ID == "vvvv1111" {
			real = append(real, p)
		} else {
			fake = append(fake, p)
		}
	}
	if len(real) != 1 || real[0].Port != 4001 || real[0].Host != "host-vvvv1111.local" || real[0].LabelMismatch {
		t.Fatalf("observer's table after the attack: %+v", peers)
	}
	for _, a := range real[0].Addrs {
		if a.Addr().String() == "10.77.0.66" {
			t.Fatalf("attacker's address entered the victim's entry: %v", real[0].Addrs)
		}
	}
	// The takeover was listed apart until the attacker's own bare goodbye
	// (a PTR with TTL 0) removed it; whatever is left is flagged.
	for _, p := range fake {
		if p.ID != "evil" || !p.LabelMismatch {
			t.Errorf("the takeover should be listed apart and flagged: %+v", fake)
		}
	}
	obs.expectNone(0, "victim down", peerEvent(PeerDown, "vvvv1111"))
	logs := 0
	for _, m := range obs.seen {
		if m.Ev == "log" {
			logs++
		}
	}
	if logs > 3 {
		t.Errorf("observer logged %d lines for the attack; want rate-limited (at most one per kind)", logs)
	}
}

// TestResponsesMulticastWithTTL255: our answer to someone else's query goes
// to the group (a third party on the link sees it) with IP TTL 255, where
// hashicorp/mdns answers unicast with the default TTL.
func TestResponsesMulticastWithTTL255(t *testing.T) {
	lab := netlab.New(t, 3)
	a := startChild(t, lab.Host(0), "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	sn := startChild(t, lab.Host(1), "sniffer", "sniff", childCfg{Ifaces: []string{"eth0"}})
	sn.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	br := startChild(t, lab.Host(2), "browse", "browse", childCfg{WaitMillis: 1000})
	if res := br.waitFor(10*time.Second, "result", func(m msg) bool { return m.Ev == "result" }); len(res.Peers) != 1 {
		t.Fatalf("browse found %v", res.Peers)
	}
	want := fmt.Sprintf("ttl=255 dst=224.0.0.251 src=%v:5353", lab.Host(0).Addr())
	sn.waitFor(5*time.Second, "multicast response from alice", func(m msg) bool {
		return m.Ev == "response" && strings.HasPrefix(m.Text, want)
	})
}

// TestInterfaceAppearsAndGoes: an interface plugged in while the agent runs
// is served without restart, and peers seen only there go when it goes.
func TestInterfaceAppearsAndGoes(t *testing.T) {
	lab := netlab.New(t, 2)
	seg1 := lab.AddSegment()
	carolHost := lab.AddHost()
	lab.Attach(carolHost, seg1)
	a := startChild(t, lab.Host(0), "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	b := startChild(t, lab.Host(1), "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	c := startChild(t, carolHost, "carol", "agent", agentCfg("carol", "cccc3333", 4003))
	a.waitFor(3*time.Second, "bob", completePeer("bbbb2222"))
	c.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })

	plugged := time.Now()
	ifc := lab.Attach(lab.Host(0), seg1)
	m := a.waitFor(pollInterval+3*time.Second, "carol via the new interface", completePeer("cccc3333"))
	t.Logf("alice found carol %v after %s was plugged in", m.At.Sub(plugged), ifc.Name)
	if m.Peer.Iface != ifc.Name {
		t.Errorf("carol seen on %q, want %q", m.Peer.Iface, ifc.Name)
	}
	c.waitFor(pollInterval+3*time.Second, "alice", completePeer("aaaa1111"))
	b.expectNone(0, "carol on another segment", peerEvent(PeerUp, "cccc3333"))

	unplugged := time.Now()
	lab.Host(0).IP("link", "del", ifc.Name)
	m = a.waitFor(pollInterval+3*time.Second, "carol gone with the interface", peerEvent(PeerDown, "cccc3333"))
	t.Logf("carol left alice's table %v after %s was removed", m.At.Sub(unplugged), ifc.Name)
}

// TestQueryFloodDoesNotFloodTheLink: 50 queries in 200ms get a handful of
// multicast answers (spaced by minAnswerGap), not 50.
func TestQueryFloodDoesNotFloodTheLink(t *testing.T) {
	lab := netlab.New(t, 3)
	a := startChild(t, lab.Host(0), "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	sn := startChild(t, lab.Host(1), "sniffer", "sniff", childCfg{Ifaces: []string{"eth0"}})
	sn.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	fl := startChild(t, lab.Host(2), "flood", "queryflood", childCfg{Ifaces: []string{"eth0"}})
	start := fl.waitFor(10*time.Second, "start", func(m msg) bool { return m.Ev == "start" })
	done := fl.waitFor(10*time.Second, "done", func(m msg) bool { return m.Ev == "done" })
	// Collect what the sniffer saw until well after the last held-back
	// answer was due.
	sn.expectNone(time.Until(done.At.Add(3*minAnswerGap)), "nothing", func(msg) bool { return false })
	answers := 0
	from := fmt.Sprintf("src=%v:5353", lab.Host(0).Addr())
	for _, m := range sn.seen {
		if m.Ev == "response" && strings.Contains(m.Text, from) && !strings.HasSuffix(m.Text, "extra=0") && !m.At.Before(start.At) {
			answers++
		}
	}
	t.Logf("alice answered 50 queries in %v with %d multicast responses", done.At.Sub(start.At), answers)
	if answers < 1 || answers > 2+int(done.At.Sub(start.At)/minAnswerGap) {
		for _, m := range sn.seen {
			t.Logf("sniffed at %+v: %s", m.At.Sub(start.At), m.Text)
		}
		t.Errorf("alice sent %d multicast answers to a 50-query flood", answers)
	}
}

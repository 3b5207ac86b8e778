package discovery

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"golang.org/x/net/ipv4"
)

// LocalSend over real multicast, between processes in lab hosts. Children
// use UDP port 53317 inside their namespaces.

func init() {
	extraChildren["localsend"] = childLocalSend
	extraChildren["lslook"] = childLSLook
	extraChildren["lsflood"] = childLSFlood
	extraChildren["lsunicast"] = childLSUnicast
	extraChildren["lssniff"] = childLSSniff
	extraChildren["lsportbusy"] = childLSPortBusy
}

// childLocalSend runs a LocalSend announcing (Name, ID, Port) until stdin
// closes, printing "lsannounce" for every OnAnnounce call. Lines on stdin:
// "stats", "devices", "announce". At the end it calls Close twice and
// prints "closed" with how long that took.
func childLocalSend(c childCfg, out *childOut) error {
	cfg := DefaultLocalSendConfig()
	cfg.Announcement.Alias, cfg.Announcement.Fingerprint = c.Name, c.ID
	cfg.Announcement.Port = uint16(c.Port)
	cfg.Ifaces = c.Ifaces
	cfg.Logf = func(format string, args ...any) {
		out.put(msg{Ev: "log", Text: fmt.Sprintf(format, args...)})
	}
	var l *LocalSend
	cfg.OnAnnounce = func(d LocalSendDevice) {
		out.put(msg{Ev: "lsannounce", LSDevice: &d})
		if c.AnswerMulticast {
			l.AnswerByMulticast(d)
		}
	}
	l, err := NewLocalSend(cfg)
	if err != nil {
		return err
	}
	l.onReady = func() { out.put(msg{Ev: "ready"}) }
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(context.Background()) }()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "stats":
			st := l.Stats()
			out.put(msg{Ev: "lsstats", LSStats: &st})
		case "devices":
			out.put(msg{Ev: "lsdevices", LSDevices: l.Devices()})
		case "announce":
			l.Announce()
		}
	}
	start := time.Now()
	_ = l.Close()
	_ = l.Close()
	out.put(msg{Ev: "closed", Millis: time.Since(start).Milliseconds()})
	return <-runErr
}

// childLSLook runs one LookLocalSend of WaitMillis and prints the result.
func childLSLook(c childCfg, out *childOut) error {
	cfg := DefaultLocalSendConfig()
	cfg.Announcement.Alias, cfg.Announcement.Fingerprint = c.Name, c.ID
	cfg.Announcement.Port = uint16(c.Port)
	cfg.Ifaces = c.Ifaces
	start := time.Now()
	devs, err := LookLocalSend(context.Background(), cfg, time.Duration(c.WaitMillis)*time.Millisecond)
	if err != nil {
		return err
	}
	out.put(msg{Ev: "result", LSDevices: devs, Millis: time.Since(start).Milliseconds()})
	return nil
}

// lsSender is a plain UDP socket multicasting to LocalSend's IPv4 group
// out of ifname with TTL 1, as an app does.
func lsSender(ifname string) (*ipv4.PacketConn, *net.Interface, error) {
	c, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return nil, nil, err
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, nil, err
	}
	p := ipv4.NewPacketConn(c)
	if err := p.SetMulticastTTL(1); err != nil {
		return nil, nil, err
	}
	return p, ifi, nil
}

// childLSFlood multicasts, from one socket on Ifaces[0], 10,000 valid
// announcements of made-up devices ("flood", distinct fingerprints),
// pacing itself a little so that most reach the victim's socket rather
// than overflow it, and then 100 junk and 100 oversized datagrams.
func childLSFlood(c childCfg, out *childOut) error {
	p, ifi, err := lsSender(c.Ifaces[0])
	if err != nil {
		return err
	}
	dst := &net.UDPAddr{IP: LocalSendGroup4.AsSlice(), Port: LocalSendPort}
	cm := &ipv4.ControlMessage{IfIndex: ifi.Index}
	start := time.Now()
	for i := range 10000 {
		b, err := LocalSendAnnouncement{Alias: "flood", Version: "2.2", DeviceType: LocalSendMobile,
			Fingerprint: fmt.Sprintf("%064X", i), Port: 53317, Protocol: LocalSendHTTPS, Announce: true}.Marshal()
		if err != nil {
			return err
		}
		if _, err := p.WriteTo(b, cm, dst); err != nil {
			return err
		}
		if i%20 == 19 {
			time.Sleep(time.Millisecond) // pacing the flood, not ordering the test
		}
	}
	big := []byte(`{"alias":"big","fingerprint":"ab","port":1,"protocol":"http","announce":true}` + strings.Repeat(" ", 2*MaxLocalSendDatagram))
	for i := range 200 {
		b := []byte(fmt.Sprintf("junk %d \xff", i))
		if i%2 == 1 {
			b = big
		}
		if _, err := p.WriteTo(b, cm, dst); err != nil {
			return err
		}
	}
	out.put(msg{Ev: "sent", Millis: time.Since(start).Milliseconds()})
	return nil
}

// childLSUnicast sends one valid announcement ("far", "FA4") by unicast
// to Target, port 53317.
func childLSUnicast(c childCfg, out *childOut) error {
	conn, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return err
	}
	b, err := LocalSendAnnouncement{Alias: "far", Version: "2.2", DeviceType: LocalSendDesktop,
		Fingerprint: "FA4", Port: 53317, Protocol: LocalSendHTTPS, Announce: true}.Marshal()
	if err != nil {
		return err
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(c.Target), LocalSendPort))
	if _, err := conn.WriteTo(b, dst); err != nil {
		return err
	}
	out.put(msg{Ev: "sent"})
	return nil
}

// childLSSniff shares port 53317, joins the IPv4 group on Ifaces[0] and
// prints every datagram: source, IP TTL and the datagram.
func childLSSniff(c childCfg, out *childOut) error {
	lc := net.ListenConfig{Control: reuse}
	conn, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", LocalSendPort))
	if err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(c.Ifaces[0])
	if err != nil {
		return err
	}
	p := ipv4.NewPacketConn(conn)
	if err := p.JoinGroup(ifi, &net.UDPAddr{IP: LocalSendGroup4.AsSlice()}); err != nil {
		return err
	}
	if err := p.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		return err
	}
	out.put(msg{Ev: "ready"})
	buf := make([]byte, 9000)
	for {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			return err
		}
		ttl := -1
		if cm != nil {
			ttl = cm.TTL
		}
		out.put(msg{Ev: "datagram", Text: fmt.Sprintf("%v ttl=%d %s", src.(*net.UDPAddr).IP, ttl, buf[:n])})
	}
}

// lsCfg is a LocalSend child's config: alias, fingerprint (hex), HTTP port.
func lsCfg(alias, fp string, port int) childCfg {
	return childCfg{Name: alias, ID: fp, Port: port}
}

func isReady(m msg) bool { return m.Ev == "ready" }

// lsAnnounceFrom matches an OnAnnounce call for the device with fp.
func lsAnnounceFrom(fp string) func(msg) bool {
	return func(m msg) bool { return m.Ev == "lsannounce" && m.LSDevice != nil && m.LSDevice.Fingerprint == fp }
}

// lsDevicesUntil asks c for its devices until ok holds of them or timeout
// has passed, and returns the last answer.
func (c *child) lsDevicesUntil(timeout time.Duration, ok func([]LocalSendDevice) bool) []LocalSendDevice {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		devs := c.lsDevices()
		if ok(devs) || time.Now().After(deadline) {
			return devs
		}
		<-tick.C
	}
}

func (c *child) lsDevices() []LocalSendDevice {
	c.t.Helper()
	c.send("devices")
	return c.waitFor(5*time.Second, "devices", func(m msg) bool { return m.Ev == "lsdevices" }).LSDevices
}

// lsPollStats asks a LocalSend child for its stats until ok accepts them.
func (c *child) lsPollStats(timeout time.Duration, what string, ok func(LocalSendStats) bool) LocalSendStats {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.send("stats")
		st := *c.waitFor(timeout, "stats", func(m msg) bool { return m.Ev == "lsstats" }).LSStats
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: stats %+v: want %s", c.name, st, what)
		}
	}
}

// stopLS closes a LocalSend child's stdin and checks that Close returned
// promptly (twice) and the process exited cleanly.
func (c *child) stopLS() {
	c.t.Helper()
	_ = c.stdin.Close()
	m := c.waitFor(5*time.Second, "closed", func(m msg) bool { return m.Ev == "closed" })
	if m.Millis > 1000 {
		c.t.Errorf("%s: Close took %d ms", c.name, m.Millis)
	}
	c.stop()
}

const (
	fpAlice = "A11CE00000000000000000000000000000000000000000000000000000000001"
	fpBob   = "B0B0000000000000000000000000000000000000000000000000000000000002"
)

// TestLocalSendTwoHosts: two LocalSends on two lab hosts hear each other's
// start announcements, call OnAnnounce with the other's HTTP address, list
// each other over IPv4 and IPv6 and never themselves (their own
// announcements come back by loopback and are counted as own). A third
// host sees the announcements with IP TTL 1, three of them at start.
// Close returns promptly, twice.
func TestLocalSendTwoHosts(t *testing.T) {
	lab := netlab.New(t, 3)
	sn := startChild(t, lab.Host(2), "sniffer", "lssniff", childCfg{Ifaces: []string{"eth0"}})
	sn.waitFor(10*time.Second, "ready", isReady)
	a := startChild(t, lab.Host(0), "alice", "localsend", lsCfg("alice", fpAlice, 4001))
	a.waitFor(10*time.Second, "ready", isReady)
	// The start burst (before anyone asks for more): three announcements from alice, with TTL 1.
	var fromAlice []msg
	for len(fromAlice) < 3 {
		m := sn.waitFor(5*time.Second, "alice's announcements", func(m msg) bool {
			return m.Ev == "datagram" && strings.HasPrefix(m.Text, lab.Host(0).Addr().String()+" ")
		})
		if !strings.Contains(m.Text, " ttl=1 ") || !strings.Contains(m.Text, `"fingerprint":"`+fpAlice+`"`) || !strings.Contains(m.Text, `"announce":true`) {
			t.Errorf("sniffed %s", m.Text)
		}
		fromAlice = append(fromAlice, m)
	}
	if gap := fromAlice[2].At.Sub(fromAlice[1].At); gap < time.Second || gap > 3*time.Second {
		t.Errorf("alice's second and third announcements were %v apart, want about 2s", gap)
	}
	b := startChild(t, lab.Host(1), "bob", "localsend", lsCfg("bob", fpBob, 4002))
	b.waitFor(10*time.Second, "ready", isReady)

	got := a.waitFor(5*time.Second, "bob's announcement", lsAnnounceFrom(fpBob)).LSDevice
	if got.Alias != "bob" || got.Addr.Port() != 4002 || got.Iface != "eth0" || got.Protocol != LocalSendHTTPS {
		t.Errorf("alice's OnAnnounce got %+v", got)
	}
	// Alice announced before bob listened; bob hears her when he re-asks.
	b.send("stats")
	a.send("announce")
	b.waitFor(5*time.Second, "alice's announcement", lsAnnounceFrom(fpAlice))

	for _, c := range []struct {
		who      *child
		other    *netlab.Host
		otherFP  string
		selfFP   string
		httpPort uint16
	}{{a, lab.Host(1), fpBob, fpAlice, 4002}, {b, lab.Host(0), fpAlice, fpBob, 4001}} {
		// Both families may take a moment: announcements sent while the
		// IPv6 link-local address was still in duplicate address
		// detection failed, and IPv6 is tried again at the next
		// interface poll, with an announcement.
		devs := c.who.lsDevicesUntil(5*time.Second, func(devs []LocalSendDevice) bool {
			return slices.ContainsFunc(devs, func(d LocalSendDevice) bool { return d.Addr.Addr().Is6() }) &&
				slices.ContainsFunc(devs, func(d LocalSendDevice) bool { return d.Addr.Addr().Is4() })
		})
		var v4, v6 bool
		for _, d := range devs {
			if d.Fingerprint == c.selfFP {
				t.Errorf("%s lists itself: %+v", c.who.name, d)
			}
			if d.Fingerprint != c.otherFP || d.Addr.Port() != c.httpPort {
				t.Errorf("%s lists %+v", c.who.name, d)
				continue
			}
			v4 = v4 || d.Addr.Addr() == c.other.Addr()
			v6 = v6 || d.Addr.Addr().Is6()
		}
		if !v4 {
			t.Errorf("%s does not list the other at %v: %+v", c.who.name, c.other.Addr(), devs)
		}
		if !v6 {
			t.Errorf("%s heard nothing over IPv6: %+v", c.who.name, devs)
		}
		if st := c.who.lsPollStats(5*time.Second, "own announcements seen", func(s LocalSendStats) bool { return s.Own > 0 }); st.Malformed != 0 || st.OffLink != 0 {
			t.Errorf("%s: stats %+v", c.who.name, st)
		}
	}

	a.stopLS()
	b.stopLS()
}

// TestLocalSendSameHost: two processes in one namespace share the port and
// hear each other through multicast loopback.
func TestLocalSendSameHost(t *testing.T) {
	h := netlab.Single(t)
	a := startChild(t, h, "alice", "localsend", lsCfg("alice", fpAlice, 4001))
	a.waitFor(10*time.Second, "ready", isReady)
	b := startChild(t, h, "bob", "localsend", lsCfg("bob", fpBob, 4002))
	b.waitFor(10*time.Second, "ready", isReady)
	if d := a.waitFor(5*time.Second, "bob's announcement", lsAnnounceFrom(fpBob)).LSDevice; d.Addr.Port() != 4002 || d.Alias != "bob" {
		t.Errorf("alice got %+v", d)
	}
	a.send("announce")
	b.waitFor(5*time.Second, "alice's announcement", lsAnnounceFrom(fpAlice))
	for _, c := range []*child{a, b} {
		if devs := c.lsDevices(); len(devs) == 0 {
			t.Errorf("%s lists nobody", c.name)
		}
		c.expectNone(0, "an announcement of itself", func(m msg) bool {
			return m.Ev == "lsannounce" && m.LSDevice.Fingerprint == map[*child]string{a: fpAlice, b: fpBob}[c]
		})
	}
	a.stopLS()
	b.stopLS()
}

// TestLocalSendOffLinkDropped: a valid announcement sent by unicast from
// behind a router is counted off-link, not listed, not answered.
func TestLocalSendOffLinkDropped(t *testing.T) {
	victimHost, atkHost := routedLab(t)
	v := startChild(t, victimHost, "victim", "localsend", lsCfg("victim", fpAlice, 4001))
	v.waitFor(10*time.Second, "ready", isReady)
	atk := startChild(t, atkHost, "attacker", "lsunicast", childCfg{Target: victimHost.Addr().String()})
	atk.waitFor(10*time.Second, "sent", func(m msg) bool { return m.Ev == "sent" })
	v.lsPollStats(5*time.Second, "an off-link datagram", func(s LocalSendStats) bool { return s.OffLink >= 1 })
	if devs := v.lsDevices(); len(devs) != 0 {
		t.Errorf("victim lists %+v", devs)
	}
	v.expectNone(0, "an answer to the off-link device", lsAnnounceFrom("FA4"))
	v.stopLS()
}

// TestLocalSendFlood: 10,000 forged announcements from one source (then
// junk and oversized datagrams) leave the victim's table with at most
// maxLocalSendPerSource of them and its handler called at most the
// per-source rate allows; a real device announcing afterwards is heard and
// answered at once.
func TestLocalSendFlood(t *testing.T) {
	lab := netlab.New(t, 3)
	v := startChild(t, lab.Host(0), "victim", "localsend", lsCfg("victim", fpAlice, 4001))
	v.waitFor(10*time.Second, "ready", isReady)
	start := time.Now()
	fl := startChild(t, lab.Host(1), "flood", "lsflood", childCfg{Ifaces: []string{"eth0"}})
	sent := fl.waitFor(30*time.Second, "sent", func(m msg) bool { return m.Ev == "sent" })
	// Datagrams queue in the victim's socket in arrival order, so once
	// bob's is handled the flood before it has been.
	b := startChild(t, lab.Host(2), "bob", "localsend", lsCfg("bob", fpBob, 4002))
	b.waitFor(10*time.Second, "ready", isReady)
	v.waitFor(5*time.Second, "bob's announcement after the flood", lsAnnounceFrom(fpBob))
	elapsed := time.Since(start)

	floodCalls := 0
	v.expectNone(0, "", func(m msg) bool {
		if m.Ev == "lsannounce" && m.LSDevice.Alias == "flood" {
			floodCalls++
		}
		return false
	})
	limit := lsSourceBurst + int(elapsed/lsSourceEvery) + 1
	if floodCalls > limit {
		t.Errorf("OnAnnounce called %d times for the flood, want at most %d", floodCalls, limit)
	}
	fromFlood := 0
	for _, d := range v.lsDevices() {
		if d.Alias == "flood" {
			fromFlood++
		}
	}
	if fromFlood > maxLocalSendPerSource {
		t.Errorf("the flood holds %d table entries", fromFlood)
	}
	if fromFlood == 0 {
		t.Errorf("nothing of the flood got in: the test proves nothing")
	}
	// The junk came after the flood, from the same source: rate-limited
	// undecoded, or (oversized) dropped before that.
	st := v.lsPollStats(5*time.Second, "the flood counted", func(s LocalSendStats) bool { return s.RateLimited > 0 })
	if st.Accepted > uint64(limit+4) {
		t.Errorf("accepted %d datagrams", st.Accepted)
	}
	t.Logf("flood sent in %d ms; victim: %+v; %d handler calls for it, %d entries", sent.Millis, st, floodCalls, fromFlood)
	v.stopLS()
	ps := v.cmd.ProcessState
	t.Logf("victim used %v of CPU", ps.UserTime()+ps.SystemTime())
	b.stopLS()
}

// TestLocalSendLookHearsMulticastAnswers: a one-shot look from a host
// without an agent announces, and an agent answering by multicast (as apps
// up to 1.17 do) is in its result; the agent's OnAnnounce saw the look.
func TestLocalSendLookHearsMulticastAnswers(t *testing.T) {
	lab := netlab.New(t, 2)
	cfg := lsCfg("agent", fpAlice, 4001)
	cfg.AnswerMulticast = true
	ag := startChild(t, lab.Host(0), "agent", "localsend", cfg)
	ag.waitFor(10*time.Second, "ready", isReady)
	look := startChild(t, lab.Host(1), "look", "lslook", childCfg{Name: "peers", ID: fpBob, Port: 4002, WaitMillis: 1500})
	res := look.waitFor(10*time.Second, "look result", func(m msg) bool { return m.Ev == "result" })
	found := false
	for _, d := range res.LSDevices {
		if d.Fingerprint == fpAlice && d.Addr == netip.AddrPortFrom(lab.Host(0).Addr(), 4001) {
			found = true
		}
	}
	if !found {
		t.Errorf("look found %+v, want the agent at %v:4001", res.LSDevices, lab.Host(0).Addr())
	}
	if res.Millis < 1400 || res.Millis > 3000 {
		t.Errorf("look took %d ms, want about 1500", res.Millis)
	}
	ag.waitFor(time.Second, "the look's announcement", lsAnnounceFrom(fpBob))
	ag.stopLS()
}

// TestLocalSendFollowsInterfaces: a LocalSend told to serve eth1 before
// eth1 exists joins it when it appears and announces there, as the mDNS
// side does.
func TestLocalSendFollowsInterfaces(t *testing.T) {
	lab := netlab.New(t, 2)
	seg1 := lab.AddSegment()
	ca := lsCfg("alice", fpAlice, 4001)
	ca.Ifaces = []string{"eth1"}
	a := startChild(t, lab.Host(0), "alice", "localsend", ca)
	a.waitFor(10*time.Second, "ready", isReady)
	ifa := lab.Attach(lab.Host(0), seg1)
	lab.Attach(lab.Host(1), seg1)
	cb := lsCfg("bob", fpBob, 4002)
	cb.Ifaces = []string{"eth1"}
	b := startChild(t, lab.Host(1), "bob", "localsend", cb)
	b.waitFor(10*time.Second, "ready", isReady)
	d := b.waitFor(6*time.Second, "alice's announcement on eth1", lsAnnounceFrom(fpAlice)).LSDevice
	if d.Iface != "eth1" || d.Addr != netip.AddrPortFrom(ifa.IPv4.Addr(), 4001) && !d.Addr.Addr().Is6() {
		t.Errorf("bob heard alice as %+v, want on eth1 at %v:4001", d, ifa.IPv4.Addr())
	}
	a.stopLS()
	b.stopLS()
}

// childLSPortBusy holds UDP port 53317 exclusively (no SO_REUSEADDR), then
// reports what Run and Look of a LocalSend make of it.
func childLSPortBusy(c childCfg, out *childOut) error {
	c4, err := net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", LocalSendPort))
	if err != nil {
		return err
	}
	defer c4.Close()
	c6, err := net.ListenPacket("udp6", fmt.Sprintf("[::]:%d", LocalSendPort))
	if err == nil {
		defer c6.Close()
	}
	cfg := DefaultLocalSendConfig()
	cfg.Announcement.Alias, cfg.Announcement.Fingerprint = c.Name, c.ID
	l, err := NewLocalSend(cfg)
	if err != nil {
		return err
	}
	runErr := l.Run(context.Background())
	_, lookErr := l.Look(context.Background(), 200*time.Millisecond)
	sent := l.Stats().Sent
	out.put(msg{Ev: "result", Text: fmt.Sprintf("run=%v look=%v sent=%d", runErr, lookErr, sent)})
	return l.Close()
}

// TestLocalSendPortBusy: when another program holds the port exclusively,
// Run fails with ErrNoSocket, and a one-shot Look still announces (from an
// ephemeral port; 1.18 apps answer over HTTP).
func TestLocalSendPortBusy(t *testing.T) {
	h := netlab.Single(t)
	c := startChild(t, h, "busy", "lsportbusy", lsCfg("look", fpBob, 4002))
	res := c.waitFor(10*time.Second, "result", func(m msg) bool { return m.Ev == "result" }).Text
	if !strings.HasPrefix(res, "run="+ErrNoSocket.Error()) || !strings.Contains(res, " look=<nil> ") || strings.HasSuffix(res, " sent=0") {
		t.Errorf("got %s; want Run to fail with ErrNoSocket, Look to succeed and send", res)
	}
}

// npmLocalSend returns the npm package localsend's command (LocalSend JS
// CLI, an independent implementation), or skips t.
func npmLocalSend(t *testing.T, h *netlab.Host) string {
	t.Helper()
	bin, err := exec.LookPath("localsend")
	if err != nil {
		t.Skip("needs the npm package localsend (npm install -g localsend)")
	}
	// Even --help runs inside the lab (the network rule).
	if out, err := h.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "LocalSend JS CLI") {
		t.Skipf("%s is not the npm localsend CLI: %v: %s", bin, err, out)
	}
	return bin
}

// TestLocalSendInteropNPMDiscover: the npm localsend CLI's discover (its
// own multicast code) and our LocalSend find each other: it lists us from
// our announcement, and we hear its announcement (OnAnnounce) and, since
// nobody serves HTTP on our announced port, its multicast answer.
func TestLocalSendInteropNPMDiscover(t *testing.T) {
	lab := netlab.New(t, 2)
	bin := npmLocalSend(t, lab.Host(1))
	ag := startChild(t, lab.Host(0), "agent", "localsend", lsCfg("lanshare-agent", fpAlice, 4001))
	ag.waitFor(10*time.Second, "ready", isReady)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := lab.Host(1).CommandContext(ctx, bin, "discover", "--timeout", "4", "--json", "--alias", "npm scanner")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan []byte, 1)
	go func() {
		out, _ := cmd.Output()
		done <- out
	}()
	seen := ag.waitFor(10*time.Second, "the npm CLI's announcement", func(m msg) bool {
		return m.Ev == "lsannounce" && m.LSDevice.Alias == "npm scanner"
	}).LSDevice
	if seen.Addr.Addr() != lab.Host(1).Addr() && !seen.Addr.Addr().Is6() {
		t.Errorf("heard the npm CLI at %v", seen.Addr)
	}
	ag.send("announce")
	out := <-done
	t.Logf("npm localsend discover printed: %s", out)
	if !strings.Contains(string(out), fpAlice) || !strings.Contains(string(out), "lanshare-agent") {
		t.Errorf("npm localsend discover did not list us; its stderr: %s", stderr.String())
	}
	var devs []LocalSendDevice
	for _, d := range ag.lsDevices() {
		if d.Alias == "npm scanner" {
			devs = append(devs, d)
		}
	}
	if len(devs) == 0 {
		t.Errorf("we do not list the npm CLI")
	}
	ag.stopLS()
}

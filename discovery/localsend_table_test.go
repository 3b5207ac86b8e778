package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// These tests drive LocalSend's packet handling and table directly, with
// a made-up interface and clock: no sockets.

const ownFP = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"

func testLocalSend(t testing.TB, handler bool) *LocalSend {
	t.Helper()
	cfg := DefaultLocalSendConfig()
	cfg.Announcement.Alias, cfg.Announcement.Fingerprint = "me", ownFP
	cfg.Lifetime = time.Minute
	if handler {
		cfg.OnAnnounce = func(LocalSendDevice) {}
	}
	l, err := NewLocalSend(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if handler {
		// What Run would start; the tests read the queue themselves.
		l.handlerQ = make(chan LocalSendDevice, lsHandlerQueue)
	}
	return l
}

var testEth = &lsIface{info: ifaceInfo{Index: 2, Name: "eth0", Flags: net.FlagUp | net.FlagMulticast,
	Addrs:    []netip.Addr{netip.MustParseAddr("10.77.0.1")},
	Prefixes: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24")}}}

func lsDatagram(t testing.TB, alias, fp string, port uint16, announce bool) []byte {
	t.Helper()
	b, err := LocalSendAnnouncement{Alias: alias, Version: "2.2", DeviceType: LocalSendMobile, Fingerprint: fp,
		Port: port, Protocol: LocalSendHTTPS, Announce: announce}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lsPacket(b []byte, src string) packet {
	return packet{data: b, src: netip.MustParseAddrPort(src), ifindex: 2, hops: -1}
}

func fpN(i int) string { return fmt.Sprintf("%064X", i) }

// drain empties the handler queue and returns what was in it.
func drain(l *LocalSend) []LocalSendDevice {
	var out []LocalSendDevice
	for {
		select {
		case d := <-l.handlerQ:
			out = append(out, d)
		default:
			return out
		}
	}
}

func TestLocalSendHandleAcceptsAndCallsHandler(t *testing.T) {
	l := testLocalSend(t, true)
	now := time.Now()
	l.handle(testEth, lsPacket(lsDatagram(t, "phone", fpN(1), 53317, true), "10.77.0.9:53317"), now)
	l.handle(testEth, lsPacket(lsDatagram(t, "laptop", fpN(2), 53318, false), "10.77.0.10:53317"), now)
	calls := drain(l)
	if len(calls) != 1 || calls[0].Alias != "phone" || calls[0].Addr != netip.MustParseAddrPort("10.77.0.9:53317") || calls[0].Iface != "eth0" {
		t.Errorf("handler calls: %+v; want one, for the announcement of phone", calls)
	}
	devs := l.Devices()
	if len(devs) != 2 || devs[0].Alias != "laptop" || devs[1].Alias != "phone" || devs[0].Addr.Port() != 53318 {
		t.Errorf("Devices = %+v", devs)
	}
	if st := l.Stats(); st.Accepted != 2 || st.Handled != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestLocalSendDualStackAnnouncementAnsweredOnce: one announcement heard
// over IPv4 and IPv6 calls the handler once and lists both addresses; the
// device's next announcement (500 ms later) calls it again.
func TestLocalSendDualStackAnnouncementAnsweredOnce(t *testing.T) {
	l := testLocalSend(t, true)
	eth := *testEth
	eth.info.Prefixes = append(eth.info.Prefixes, netip.MustParsePrefix("fd77::/64"))
	now := time.Now()
	b := lsDatagram(t, "phone", fpN(1), 53317, true)
	l.handle(&eth, lsPacket(b, "10.77.0.9:53317"), now)
	l.handle(&eth, lsPacket(b, "[fe80::9%eth0]:53317"), now.Add(time.Millisecond))
	if calls := drain(l); len(calls) != 1 || calls[0].Addr.Addr() != netip.MustParseAddr("10.77.0.9") {
		t.Errorf("handler calls %+v, want one, for the IPv4 address", calls)
	}
	if devs := l.Devices(); len(devs) != 2 || devs[1].Addr.String() != "[fe80::9%eth0]:53317" {
		t.Errorf("Devices = %+v, want both addresses", devs)
	}
	l.handle(&eth, lsPacket(b, "[fe80::9%eth0]:53317"), now.Add(500*time.Millisecond))
	if calls := drain(l); len(calls) != 1 {
		t.Errorf("the next announcement: %d calls", len(calls))
	}
}

// TestLocalSendHandleDrops: own datagrams (looped back, or with our
// fingerprint), off-link sources, oversized and malformed datagrams leave
// no entry and call no handler.
func TestLocalSendHandleDrops(t *testing.T) {
	l := testLocalSend(t, true)
	now := time.Now()
	big := append(lsDatagram(t, "big", fpN(3), 1, true), []byte(strings.Repeat(" ", MaxLocalSendDatagram))...)
	cases := []struct {
		name string
		p    packet
		stat func(LocalSendStats) uint64
	}{
		{"own, looped back", lsPacket(l.announce, "10.77.0.1:53317"), func(s LocalSendStats) uint64 { return s.Own }},
		{"own answer", lsPacket(l.answer, "10.77.0.1:53317"), func(s LocalSendStats) uint64 { return s.Own }},
		{"our fingerprint, other bytes", lsPacket(lsDatagram(t, "evil twin", ownFP, 1, true), "10.77.0.9:53317"), func(s LocalSendStats) uint64 { return s.Own }},
		{"off-link", lsPacket(lsDatagram(t, "far", fpN(4), 1, true), "10.77.1.3:53317"), func(s LocalSendStats) uint64 { return s.OffLink }},
		{"public source", lsPacket(lsDatagram(t, "far", fpN(4), 1, true), "8.8.8.8:53317"), func(s LocalSendStats) uint64 { return s.OffLink }},
		{"oversized", lsPacket(big, "10.77.0.9:53317"), func(s LocalSendStats) uint64 { return s.Malformed }},
		{"junk", lsPacket([]byte("\xff\x00junk"), "10.77.0.9:53317"), func(s LocalSendStats) uint64 { return s.Malformed }},
		{"bad port", lsPacket([]byte(`{"alias":"a","fingerprint":"ab","port":0,"protocol":"http","announce":true}`), "10.77.0.9:53317"), func(s LocalSendStats) uint64 { return s.Malformed }},
	}
	for _, c := range cases {
		before := c.stat(l.Stats())
		l.handle(testEth, c.p, now)
		if got := c.stat(l.Stats()); got != before+1 {
			t.Errorf("%s: counter went from %d to %d", c.name, before, got)
		}
		if devs := l.Devices(); len(devs) != 0 {
			t.Errorf("%s: listed %+v", c.name, devs)
		}
		if calls := drain(l); len(calls) != 0 {
			t.Errorf("%s: handler called for %+v", c.name, calls)
		}
	}
	if st := l.Stats(); st.Accepted != 0 || st.Received != uint64(len(cases)) {
		t.Errorf("stats %+v", st)
	}
}

// TestLocalSendFloodFromOneSource: 10,000 forged announcements from one
// address within a tenth of a second get a burst through, leave at most
// maxLocalSendPerSource entries and as many handler calls, and a real
// device from elsewhere still gets in and answered.
func TestLocalSendFloodFromOneSource(t *testing.T) {
	l := testLocalSend(t, true)
	start := time.Now()
	now := start
	for i := range 10000 {
		now = start.Add(time.Duration(i) * 10 * time.Microsecond)
		l.handle(testEth, lsPacket(lsDatagram(t, "flood", fpN(i), 53317, true), "10.77.0.66:53317"), now)
	}
	st := l.Stats()
	if limit := uint64(lsSourceBurst + 1); st.Accepted > limit {
		t.Errorf("accepted %d of the flood, want at most %d", st.Accepted, limit)
	}
	if st.RateLimited < 10000-uint64(lsSourceBurst+1) {
		t.Errorf("rate-limited only %d", st.RateLimited)
	}
	if n := len(l.Devices()); n > maxLocalSendPerSource {
		t.Errorf("the flood holds %d entries", n)
	}
	if calls := drain(l); len(calls) > lsSourceBurst+1 {
		t.Errorf("handler called %d times for the flood", len(calls))
	}
	l.handle(testEth, lsPacket(lsDatagram(t, "real", fpN(99999), 53317, true), "10.77.0.7:53317"), now)
	if calls := drain(l); len(calls) != 1 || calls[0].Alias != "real" {
		t.Errorf("the real device after the flood: handler calls %+v", calls)
	}
	// The flooding source gets through again once a second.
	before := l.Stats().Accepted
	l.handle(testEth, lsPacket(lsDatagram(t, "flood", fpN(123456), 53317, true), "10.77.0.66:53317"), now.Add(lsSourceEvery))
	if l.Stats().Accepted != before+1 {
		t.Errorf("the source is still refused a second later")
	}
}

// TestLocalSendFloodFromManySources: forged link-local sources, each
// sending once, are bounded by the overall rates: the table stays at its
// cap, the handler is called at most the overall burst and rate, and the
// per-source limiters stay capped.
func TestLocalSendFloodFromManySources(t *testing.T) {
	l := testLocalSend(t, true)
	calls := 0
	start := time.Now()
	const n = 10000
	const span = time.Second
	for i := range n {
		now := start.Add(span * time.Duration(i) / n)
		src := netip.AddrPortFrom(netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 14: byte(i >> 8), 15: byte(i)}).WithZone("eth0"), 53317)
		l.handle(testEth, packet{data: lsDatagram(t, "many", fpN(i), 1, true), src: src, ifindex: 2}, now)
		calls += len(drain(l))
	}
	st := l.Stats()
	if limit := uint64(lsAllBurst) + uint64(span/lsAllEvery) + 1; st.Accepted > limit {
		t.Errorf("accepted %d, want at most %d", st.Accepted, limit)
	}
	if limit := lsHandlerBurst + int(span/lsHandlerEvery) + 1; calls > limit {
		t.Errorf("handler called %d times, want at most %d", calls, limit)
	}
	if d := len(l.Devices()); d > maxLocalSendDevices {
		t.Errorf("table holds %d", d)
	}
	if s := len(l.limits.sources); s > lsMaxSources {
		t.Errorf("%d per-source limiters", s)
	}
	t.Logf("accepted %d of %d, %d handler calls, %d evicted", st.Accepted, n, calls, st.Evicted)
}

// TestLocalSendHandlerLagging: with the handler stuck, calls beyond the
// queue are dropped and counted, not blocking the reader.
func TestLocalSendHandlerLagging(t *testing.T) {
	l := testLocalSend(t, true)
	now := time.Now()
	for i := range lsHandlerQueue + 5 {
		src := fmt.Sprintf("10.77.0.%d:53317", 10+i)
		l.handle(testEth, lsPacket(lsDatagram(t, "d", fpN(i), 1, true), src), now.Add(time.Duration(i)*time.Second))
	}
	if st := l.Stats(); st.Handled != lsHandlerQueue || st.HandlerDropped != 5 {
		t.Errorf("stats %+v: want %d handled, 5 dropped", st, lsHandlerQueue)
	}
}

func TestLocalSendTableCaps(t *testing.T) {
	tb := newLSTable(ownFP, time.Minute)
	start := time.Now()
	dev := func(i int, src string, at time.Time) LocalSendDevice {
		return LocalSendDevice{Alias: fmt.Sprint("d", i), Version: "2.2", DeviceType: LocalSendDesktop, Fingerprint: fpN(i),
			Addr: netip.AddrPortFrom(netip.MustParseAddr(src), 53317), Protocol: LocalSendHTTPS, LastSeen: at}
	}
	// Per source: the ninth evicts that source's least recently heard.
	for i := range maxLocalSendPerSource + 1 {
		tb.put(dev(i, "10.0.0.1", start.Add(time.Duration(i)*time.Millisecond)), start)
	}
	if len(tb.devs) != maxLocalSendPerSource || tb.devs[lsKey{fpN(0), netip.MustParseAddr("10.0.0.1")}] != nil {
		t.Errorf("per-source cap: %d entries, first kept: %v", len(tb.devs), tb.devs[lsKey{fpN(0), netip.MustParseAddr("10.0.0.1")}] != nil)
	}
	// Overall: fill from distinct sources; the next evicts the oldest.
	tb = newLSTable(ownFP, time.Minute)
	for i := range maxLocalSendDevices {
		tb.put(dev(i, fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), start.Add(time.Duration(i)*time.Millisecond)), start)
	}
	tb.put(dev(9999, "10.9.9.9", start.Add(time.Second)), start.Add(time.Second))
	if len(tb.devs) != maxLocalSendDevices || tb.evicted != 1 || tb.devs[lsKey{fpN(0), netip.MustParseAddr("10.0.0.1")}] != nil {
		t.Errorf("overall cap: %d entries, %d evicted", len(tb.devs), tb.evicted)
	}
	// Refreshing an entry keeps one entry, with the new data.
	d := dev(9999, "10.9.9.9", start.Add(2*time.Second))
	d.Alias = "renamed"
	tb.put(d, start.Add(2*time.Second))
	if got := tb.devs[lsKey{fpN(9999), netip.MustParseAddr("10.9.9.9")}]; len(tb.devs) != maxLocalSendDevices || got.Alias != "renamed" {
		t.Errorf("refresh: %d entries, %+v", len(tb.devs), got)
	}
	// Our own fingerprint never enters.
	own := dev(0, "10.1.1.1", start)
	own.Fingerprint = ownFP
	tb.put(own, start)
	if tb.devs[lsKey{ownFP, netip.MustParseAddr("10.1.1.1")}] != nil {
		t.Error("own fingerprint listed")
	}
}

// TestLocalSendLifetime: a device not heard for the lifetime is no longer
// listed; one heard again is.
func TestLocalSendLifetime(t *testing.T) {
	tb := newLSTable(ownFP, 10*time.Minute)
	start := time.Now()
	mk := func(fp, src string, at time.Time) LocalSendDevice {
		return LocalSendDevice{Alias: fp, Version: "2.2", DeviceType: LocalSendDesktop, Fingerprint: fp,
			Addr: netip.MustParseAddrPort(src), Protocol: LocalSendHTTP, LastSeen: at}
	}
	tb.put(mk("aa", "10.0.0.1:1", start), start)
	tb.put(mk("bb", "10.0.0.2:1", start), start)
	tb.put(mk("bb", "10.0.0.2:1", start.Add(9*time.Minute)), start.Add(9*time.Minute))
	if got := tb.list(start.Add(10*time.Minute - time.Nanosecond)); len(got) != 2 {
		t.Errorf("before the lifetime: %+v", got)
	}
	got := tb.list(start.Add(10 * time.Minute))
	if len(got) != 1 || got[0].Fingerprint != "bb" {
		t.Errorf("after aa's lifetime: %+v", got)
	}
	if got := tb.list(start.Add(19 * time.Minute)); len(got) != 0 {
		t.Errorf("after bb's: %+v", got)
	}
}

func TestLocalSendDevicesSorted(t *testing.T) {
	l := testLocalSend(t, false)
	for _, d := range []struct{ alias, fp, addr string }{
		{"bob", "02", "10.0.0.2:1"}, {"Alice", "03", "10.0.0.3:1"}, {"alice", "01", "10.0.0.1:1"},
		{"bob", "02", "10.0.0.1:1"}, {"bob", "01", "10.0.0.9:1"},
	} {
		if err := l.Add(LocalSendDevice{Alias: d.alias, Version: "2.2", DeviceType: LocalSendDesktop, Fingerprint: d.fp,
			Addr: netip.MustParseAddrPort(d.addr), Protocol: LocalSendHTTP}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, d := range l.Devices() {
		got = append(got, d.Alias+"/"+d.Fingerprint+"/"+d.Addr.String())
	}
	want := "Alice/03/10.0.0.3:1 alice/01/10.0.0.1:1 bob/01/10.0.0.9:1 bob/02/10.0.0.1:1 bob/02/10.0.0.2:1"
	if strings.Join(got, " ") != want {
		t.Errorf("Devices order:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
}

func TestLocalSendAdd(t *testing.T) {
	l := testLocalSend(t, false)
	good := LocalSendDevice{Alias: "p", Version: "2.2", DeviceType: LocalSendMobile, Fingerprint: fpN(7),
		Addr: netip.MustParseAddrPort("[::ffff:192.168.1.5]:53317"), Protocol: LocalSendHTTPS}
	if err := l.Add(good); err != nil {
		t.Fatal(err)
	}
	devs := l.Devices()
	if len(devs) != 1 || devs[0].Addr.String() != "192.168.1.5:53317" || devs[0].LastSeen.IsZero() {
		t.Errorf("Devices after Add: %+v", devs)
	}
	for name, mut := range map[string]func(*LocalSendDevice){
		"no alias":       func(d *LocalSendDevice) { d.Alias = "" },
		"no address":     func(d *LocalSendDevice) { d.Addr = netip.AddrPort{} },
		"port 0":         func(d *LocalSendDevice) { d.Addr = netip.MustParseAddrPort("10.0.0.1:0") },
		"multicast addr": func(d *LocalSendDevice) { d.Addr = netip.MustParseAddrPort("224.0.0.167:53317") },
		"bad fp":         func(d *LocalSendDevice) { d.Fingerprint = "not hex!" },
		"control alias":  func(d *LocalSendDevice) { d.Alias = "a\rb" },
	} {
		d := good
		d.Fingerprint = fpN(8)
		mut(&d)
		if err := l.Add(d); !errors.Is(err, ErrMalformedAnnouncement) {
			t.Errorf("%s: Add = %v", name, err)
		}
	}
	own := good
	own.Fingerprint = ownFP
	if err := l.Add(own); err != nil {
		t.Errorf("Add(own) = %v, want nil (ignored)", err)
	}
	if n := len(l.Devices()); n != 1 {
		t.Errorf("%d devices after refused and own Adds", n)
	}
}

func TestLocalSendConfigValidate(t *testing.T) {
	good := DefaultLocalSendConfig()
	good.Announcement.Alias, good.Announcement.Fingerprint = "a", ownFP
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*LocalSendConfig){
		"no alias":       func(c *LocalSendConfig) { c.Announcement.Alias = "" },
		"no fingerprint": func(c *LocalSendConfig) { c.Announcement.Fingerprint = "" },
		"port":           func(c *LocalSendConfig) { c.Port = 70000 },
		"lifetime":       func(c *LocalSendConfig) { c.Lifetime = -1 },
		"iface":          func(c *LocalSendConfig) { c.Ifaces = []string{""} },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
		if _, err := NewLocalSend(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewLocalSend = %v", name, err)
		}
	}
}

// TestLocalSendCloseWithoutRun: Close before (or without) Run is fine,
// twice, and Run after Close refuses.
func TestLocalSendCloseWithoutRun(t *testing.T) {
	l := testLocalSend(t, false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Run(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v", err)
	}
}

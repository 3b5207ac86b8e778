package peer

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLimitKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                      "192.0.2.7",
		"::ffff:192.0.2.7":               "192.0.2.7",
		"2001:db8:1:2:aaaa:bbbb:cccc:d":  "2001:db8:1:2::",
		"2001:db8:1:2::1":                "2001:db8:1:2::",
		"fe80::1234:5678%eth0":           "fe80::%eth0",
		"fe80::9%eth1":                   "fe80::%eth1",
		"fd00:1:2:3:ffff:ffff:ffff:ffff": "fd00:1:2:3::",
	} {
		if got := limitKey(netip.MustParseAddr(in)); got.String() != want {
			t.Errorf("limitKey(%s) = %s, want %s", in, got, want)
		}
	}
	if got := limitWho(limitKey(netip.MustParseAddr("2001:db8::5"))); got != "2001:db8::/64" {
		t.Errorf("limitWho = %q", got)
	}
}

// v6 returns the i-th address of 2001:db8:1:2::/64 (one host's, as far
// as the limits go).
func v6(i int) netip.Addr {
	b := netip.MustParseAddr("2001:db8:1:2::").As16()
	b[13], b[14], b[15] = byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(b)
}

// TestTextLimitOneSlotPerIPv6Host: the addresses of one /64 share one
// minute's allowance and one slot of the table, so one host cannot fill
// it with made-up addresses and keep everyone else's messages out.
func TestTextLimitOneSlotPerIPv6Host(t *testing.T) {
	var log lineLog
	l := newTextLimiter(log.logf)
	l.setClock(newFakeClock().Now)
	taken := 0
	for i := range maxTextAddrs + 10 {
		if l.allow(v6(i)) {
			taken++
		}
	}
	if taken != TextsPerMinute {
		t.Errorf("one /64 sent %d messages in a minute, want %d", taken, TextsPerMinute)
	}
	if !l.allow(netip.MustParseAddr("192.0.2.1")) {
		t.Error("another host refused after one /64's flood")
	}
	l.flush()
	if lines := log.about("2001:db8:1:2::/64"); len(lines) == 0 || !strings.Contains(lines[len(lines)-1], "from 2001:db8:1:2::/64") {
		t.Errorf("the refusals' lines do not name the /64: %q", log.about("refused"))
	}
}

// TestLocalSendPINTriesPerHostAndFailClosed: wrong PINs from the
// addresses of one /64 count together; and once lsMaxPINAddrs addresses
// are counted, a new one may not try at all (it could otherwise try
// without end), while a counted one keeps its tries; a right PIN costs
// no try.
func TestLocalSendPINTriesPerHostAndFailClosed(t *testing.T) {
	s := &lsServer{pinFails: map[netip.Addr]int{}}
	s.pinTry(v6(0), true)
	s.pinRight(v6(0)) // a right PIN
	for i := range lsPINTries {
		if !s.pinTry(v6(i), true) {
			t.Fatalf("address %d of the /64 refused after %d wrong PINs", i, i)
		}
	}
	if s.pinTry(v6(1000), true) || s.pinTry(v6(1000), false) {
		t.Errorf("a fresh address of the same /64 may try after %d wrong PINs from it", lsPINTries)
	}
	if !s.pinTry(netip.MustParseAddr("2001:db8:1:3::1"), false) {
		t.Error("the next /64 refused")
	}

	s = &lsServer{pinFails: map[netip.Addr]int{}}
	a := netip.MustParseAddr("10.0.0.0")
	for range lsMaxPINAddrs {
		a = a.Next()
		s.pinTry(a, true)
	}
	newcomer := netip.MustParseAddr("192.0.2.1")
	if s.pinTry(newcomer, true) {
		t.Error("a new address may try a PIN with the table full")
	}
	if _, counted := s.pinFails[newcomer]; counted || len(s.pinFails) != lsMaxPINAddrs {
		t.Errorf("the table grew past %d: %d", lsMaxPINAddrs, len(s.pinFails))
	}
	if !s.pinTry(a, true) {
		t.Error("a counted address with tries left refused")
	}
}

// TestLocalSendPINTriesHoldUnderRace: PINs tried at once from one
// address get lsPINTries checks, no more: each is counted under the lock
// that lets it be checked. (Before, the check and the count of a wrong
// PIN were two steps, and PINs checked at once all passed the first.)
func TestLocalSendPINTriesHoldUnderRace(t *testing.T) {
	s := &lsServer{pinFails: map[netip.Addr]int{}}
	remote := netip.MustParseAddr("192.0.2.7")
	const tries = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	let := 0
	start := make(chan struct{})
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if s.pinTry(remote, true) {
				mu.Lock()
				let++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if let != lsPINTries {
		t.Errorf("%d PINs tried at once: %d checked, want %d", tries, let, lsPINTries)
	}
}

// TestWebPINTriesPerHost: the drop page's gate counts the wrong PINs of
// one /64 together, and a right PIN from it forgets them.
func TestWebPINTriesPerHost(t *testing.T) {
	g := &webGate{pin: "482193", fails: map[pinKey]*webFails{}, tokens: map[string]webToken{}}
	now := time.Now()
	for i := range webPINTries {
		if wait, _ := g.try(pinKey{addr: v6(i)}, now); wait > 0 {
			t.Fatalf("address %d locked after %d wrong PINs", i, i)
		}
	}
	if wait := g.locked(pinKey{addr: v6(99)}, now); wait == 0 {
		t.Errorf("a fresh address of the same /64 not locked after %d wrong PINs from it", webPINTries)
	}
	if wait := g.locked(pinKey{addr: netip.MustParseAddr("2001:db8:1:3::1")}, now); wait > 0 {
		t.Errorf("the next /64 locked")
	}
	g.grant(pinKey{addr: v6(7)}, "", now.Add(time.Hour), now)
	if len(g.fails) != 0 {
		t.Errorf("a right PIN from the /64 left %d counts", len(g.fails))
	}
}

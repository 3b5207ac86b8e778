//go:build linux

package lsdouble

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/lanshare/lanshare/internal/netlab"
)

func announcedBy(fp string, group netip.Addr) func(Snapshot) bool {
	return func(s Snapshot) bool {
		return slices.ContainsFunc(s.Announcements, func(a Announcement) bool {
			return a.Info.Fingerprint == fp && a.Group == group
		})
	}
}

func registeredBy(fp string) func(Snapshot) bool {
	return func(s Snapshot) bool {
		return slices.ContainsFunc(s.Registrations, func(r Registration) bool { return r.Valid && r.ClientFingerprint == fp })
	}
}

// TestDiscovery: two devices on one (namespaced) loopback segment; one
// announces, the other hears it on both groups and answers with /register
// to the announcer's address and announced port, as 1.18 does.
func TestDiscovery(t *testing.T) {
	netlab.SkipUnlessIsolated(t)
	a := Start(t, Config{Alias: "a", Multicast: true, Addr: ":0", DeviceModel: "Pixel"})
	b := Start(t, Config{Alias: "b", Multicast: true, Addr: ":0"})
	t.Logf("a joined %q", a.MulticastInterfaces())
	if err := a.AnnounceOnce(); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	s, err := b.Wait(ctx, announcedBy(a.Fingerprint(), GroupV4))
	if err != nil {
		t.Fatalf("b heard no announcement of a: %+v", s.Announcements)
	}
	ann := s.Announcements[slices.IndexFunc(s.Announcements, func(x Announcement) bool { return x.Group == GroupV4 })]
	if ann.Announce == nil || !*ann.Announce || ann.Announcement != nil || ann.Info.Port != int(a.Addr().Port()) ||
		ann.Info.Alias != "a" || ann.Info.Version != "2.2" || ann.Info.Protocol != "https" ||
		ann.Info.DeviceModel == nil || *ann.Info.DeviceModel != "Pixel" || ann.From.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("announcement %+v", ann)
	}
	if _, err := a.Wait(ctx, registeredBy(b.Fingerprint())); err != nil {
		t.Fatalf("b did not register with a: %+v", a.Snapshot().Registrations)
	}
	s, err = b.Wait(ctx, func(s Snapshot) bool {
		return slices.ContainsFunc(s.Answers, func(x Answer) bool {
			return x.Via == "register" && x.Err == "" && x.Answer.Fingerprint == a.Fingerprint()
		})
	})
	if err != nil {
		t.Fatalf("answers %+v", s.Answers)
	}
	if len(a.Snapshot().Announcements) != 0 {
		t.Fatalf("a recorded its own announcement: %+v", a.Snapshot().Announcements)
	}
	// IPv6 is not checked here: the kernel finds no route for IPv6
	// multicast out of lo (Ip6OutNoRoutes grows, the send reports no
	// error). TestDiscoveryLab covers it on veth links.
}

// TestAnswerModes: 1.18 answers any datagram that parses, announce false
// included; the 1.17 multicast answer is a datagram with announce and
// announcement false, and only announcements get one.
func TestAnswerModes(t *testing.T) {
	netlab.SkipUnlessIsolated(t)
	const port = 53318
	a := Start(t, Config{Alias: "a", Multicast: true, MulticastPort: port, NoIPv6: true, Answer: AnswerNone})
	old := Start(t, Config{Alias: "old", Multicast: true, MulticastPort: port, NoIPv6: true, Answer: AnswerMulticast})
	ctx := testCtx(t)

	if err := a.AnnounceOnce(); err != nil {
		t.Fatal(err)
	}
	s, err := a.Wait(ctx, announcedBy(old.Fingerprint(), GroupV4))
	if err != nil {
		t.Fatalf("no multicast answer: %+v", s)
	}
	ans := s.Announcements[0]
	if ans.Announce == nil || *ans.Announce || ans.Announcement == nil || *ans.Announcement {
		t.Fatalf("1.17 answer %+v: want announce and announcement false", ans)
	}

	// A datagram with announce false: 1.18 registers anyway, 1.17 does not
	// answer. Bad datagrams are recorded and ignored.
	neu := Start(t, Config{Alias: "new", Multicast: true, MulticastPort: port, NoIPv6: true})
	info := a.Info()
	info.Alias = "quiet"
	f := false
	if err := a.SendDatagram(a.announcementWith(info, false, &f)); err != nil {
		t.Fatal(err)
	}
	// Each socket handles its datagrams in order: once this one is
	// recorded, the one before was answered or not.
	if err := a.SendDatagram([]byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(ctx, registeredBy(neu.Fingerprint())); err != nil {
		t.Fatalf("1.18 did not register after an announce:false datagram")
	}
	if s, err := neu.Wait(ctx, func(s Snapshot) bool { return len(s.BadDatagrams) > 0 }); err != nil {
		t.Fatalf("bad datagram not recorded: %+v", s)
	}
	if _, err := old.Wait(ctx, func(s Snapshot) bool { return len(s.BadDatagrams) > 0 }); err != nil {
		t.Fatal("1.17 did not see the bad datagram")
	}
	if n := len(old.Snapshot().Answers); n != 1 {
		t.Fatalf("1.17 answered %d times, want once (the announcement only)", n)
	}
}

// TestDiscoveryLab: two devices in two lab hosts on one bridge, IPv4 and
// IPv6 (link-local sources): each announcement is heard on both groups and
// answered with /register over both families; then a Send crosses the lab.
func TestDiscoveryLab(t *testing.T) {
	netlab.SkipUnlessIsolated(t)
	lab := netlab.New(t, 2)
	h0, h1 := lab.Host(0), lab.Host(1)
	a := StartIn(t, h0, Config{Alias: "a", Multicast: true, Addr: ":0", Interfaces: []string{"eth0"}})
	b := StartIn(t, h1, Config{Alias: "b", Multicast: true, Addr: ":0", Interfaces: []string{"eth0"}, Dir: t.TempDir()})
	t.Logf("a joined %q", a.MulticastInterfaces())
	ctx := testCtx(t)
	// The app's burst of three: a fresh link may lose the first datagram.
	bctx, stop := context.WithCancel(ctx)
	burst := make(chan error, 1)
	go func() { burst <- a.Announce(bctx) }()
	t.Cleanup(func() { stop(); <-burst })
	for _, g := range []netip.Addr{GroupV4, GroupV6} {
		if s, err := b.Wait(ctx, announcedBy(a.Fingerprint(), g)); err != nil {
			t.Fatalf("b heard nothing on %v: %+v", g, s.Announcements)
		}
	}
	s, err := a.Wait(ctx, func(s Snapshot) bool {
		var v4, v6 bool
		for _, r := range s.Registrations {
			if r.Valid && r.ClientFingerprint == b.Fingerprint() {
				v4 = v4 || r.From.Addr() == h1.Addr()
				v6 = v6 || r.From.Addr().WithZone("") == h1.Ifaces[0].LinkLocal
			}
		}
		return v4 && v6
	})
	if err != nil {
		t.Fatalf("want registrations of b from %v and %v: %+v; b answered %+v", h1.Addr(), h1.Ifaces[0].LinkLocal, s.Registrations, b.Snapshot().Answers)
	}
	target := Target{Addr: netip.AddrPortFrom(h1.Addr(), b.Addr().Port()), Fingerprint: b.Fingerprint()}
	if _, err := a.Send(ctx, target, []File{{Name: "x/y.txt", Data: []byte("across the lab")}}, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := b.Snapshot(); len(s.Files) != 1 || s.Uploads[0].From != h0.Addr() {
		t.Fatalf("b received %+v", s.Uploads)
	}
}

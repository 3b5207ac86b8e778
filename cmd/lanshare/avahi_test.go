package main

// Interop through the real binary with avahi, the DNS-SD implementation of
// most Linux desktops, which shares no code with ours: each avahi-daemon
// runs in a lab host with its own private D-Bus (netlab.StartAvahi). The
// tests skip, with the reason, where avahi is not installed or cannot run.

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// serviceType is the DNS-SD service type lanshare agents advertise.
const serviceType = "_lanshare._tcp"

// avahiInstance returns the lines of avahi-browse's list for instance.
func avahiInstance(svcs []netlab.AvahiService, instance string) []netlab.AvahiService {
	return slices.DeleteFunc(slices.Clone(svcs), func(s netlab.AvahiService) bool { return s.Instance != instance })
}

// avahiHasAgent reports whether avahi resolved a's instance to the IPv4
// address of a's host.
func avahiHasAgent(a *labAgent) func([]netlab.AvahiService) bool {
	return func(svcs []netlab.AvahiService) bool {
		return slices.ContainsFunc(avahiInstance(svcs, a.instance), func(s netlab.AvahiService) bool {
			return s.Addr == a.host.Addr()
		})
	}
}

// checkAvahiSeesAgent checks what avahi (av, whose list is svcs) resolved for
// the agent a: every line for a's instance has the service type, a's port,
// a TXT record with a's full id, our protocol version and a's name, a
// ".local" host name and one of the addresses of a's host; the host's IPv4
// address is among them, and avahi resolves the host name to it.
func checkAvahiSeesAgent(t testing.TB, av *netlab.Avahi, svcs []netlab.AvahiService, a *labAgent) {
	t.Helper()
	lines := avahiInstance(svcs, a.instance)
	if len(lines) == 0 {
		t.Fatalf("avahi lists no %q: %+v", a.instance, svcs)
	}
	ifc := a.host.Ifaces[0]
	hostAddrs := []netip.Addr{ifc.IPv4.Addr(), ifc.ULA.Addr(), ifc.LinkLocal}
	wantTXT := map[string]string{"id": a.id, "v": peer.ProtocolVersion, "name": a.name}
	var addrs []netip.Addr
	for _, s := range lines {
		if s.Type != serviceType || s.Domain != "local" || s.Port != int(a.port) ||
			!strings.HasSuffix(s.Host, ".local") || s.Host != lines[0].Host ||
			!slices.Contains(hostAddrs, s.Addr.WithZone("")) {
			t.Errorf("avahi resolved %s as %+v; want type %s, port %d, one .local host name, one of %v",
				a.instance, s, serviceType, a.port, hostAddrs)
		}
		txt := map[string]string{}
		for _, kv := range s.TXT {
			k, v, _ := strings.Cut(kv, "=")
			if _, dup := txt[k]; dup {
				t.Errorf("avahi resolved %s's TXT as %q: key %q twice", a.instance, s.TXT, k)
			}
			txt[k] = v
		}
		for k, v := range wantTXT {
			if txt[k] != v {
				t.Errorf("avahi resolved %s's TXT as %q; want %s=%s", a.instance, s.TXT, k, v)
			}
		}
		addrs = append(addrs, s.Addr)
	}
	if !slices.Contains(addrs, a.host.Addr()) {
		t.Errorf("avahi resolved %s to %v, without %v", a.instance, addrs, a.host.Addr())
	}
	if got := av.Resolve(t, 4, lines[0].Host); got != a.host.Addr() {
		t.Errorf("avahi resolves %s's host name %s to %v, want %v", a.instance, lines[0].Host, got, a.host.Addr())
	}
}

// untilFound calls find, a one-shot browse that takes about a second (a
// `lanshare peers` or `send`), until it reports done, and returns its
// last result; it fails t, with that result, if failAfter passes first. One
// browse may miss an avahi service: avahi, like any mDNS responder, does not
// multicast a record again within a second of the last time, so a browse
// that starts just after another one can hear nothing.
func untilFound[T any](t testing.TB, what string, find func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for i := 1; ; i++ {
		got, done := find()
		if done {
			t.Logf("found %s on try %d", what, i)
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v (%d tries); the last found:\n%v", what, failAfter, i, got)
		}
		// Each try takes its browse's second, which paces the retries.
	}
}

// TestAvahiResolvesServe: avahi-browse, through an avahi-daemon on another
// host, resolves a running `lanshare serve`: its instance name, the port of
// serve's first line, the full id of serve's second line (and of `lanshare
// id`), our protocol version and the display name in the TXT record, and
// the lab address of the agent's host.
func TestAvahiResolvesServe(t *testing.T) {
	netlab.SkipUnlessAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 2)
	alice := launchAgent(t, lab.Host(0), "alice")
	alice.ready(t)
	av := netlab.StartAvahi(t, lab.Host(1), "avahi-h1")

	svcs := av.BrowseUntil(t, serviceType, failAfter, alice.instance+" at "+alice.host.Addr().String(), avahiHasAgent(alice))
	checkAvahiSeesAgent(t, av, svcs, alice)

	// `lanshare id` tells the user the same instance and id avahi shows.
	r := runLanshareOn(t, alice.host.CommandContext, alice.tmp, nil, "id", "--config", alice.config, "--name", "alice")
	want := fmt.Sprintf("name: alice\ninstance: %s\nid: %s\n", alice.instance, peer.GroupID(alice.id))
	if r.code != 0 || r.stdout != want {
		t.Errorf("lanshare id: exit %d, output:\n%s\nwant exit 0 and:\n%s", r.code, r.stdout, want)
	}
}

// TestAvahiPublishedServiceNotSendable: a _lanshare._tcp service that
// avahi-publish announces, without our TXT keys, is listed by `lanshare
// peers` on another host as a peer without an id that cannot receive from
// us, and `lanshare send` to it fails as unreachable with one line that
// says to send to HOST:PORT instead.
func TestAvahiPublishedServiceNotSendable(t *testing.T) {
	netlab.SkipUnlessAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 3)
	av := netlab.StartAvahi(t, lab.Host(1), "avahi-h1")
	av.Publish(t, "plain thing", serviceType, 4242, "foo=bar")
	from := lab.Host(2)
	thingAddr := netip.AddrPortFrom(lab.Host(1).Addr(), 4242).String()

	list := untilFound(t, "plain thing in peers --json", func() ([]listedPeer, bool) {
		list := peersOn(t, from)
		return list, slices.ContainsFunc(list, func(p listedPeer) bool {
			return p.Instance == "plain thing" && slices.Contains(p.Addrs, thingAddr)
		})
	})
	t.Logf("peers --json on host 2: %+v", list)
	if len(list) != 1 {
		t.Errorf("peers --json lists %d peers, want only avahi's plain thing: %+v", len(list), list)
	}
	for _, p := range list {
		if p.Instance == "plain thing" && (p.Sendable || p.ID != "" || p.Self || p.Version != "" ||
			p.Name != "plain thing" || p.Host != "avahi-h1.local") {
			t.Errorf("peers --json lists avahi's service as %+v; want name %q, no id or version, host avahi-h1.local, not sendable, not self",
				p, "plain thing")
		}
	}

	// The table: NAME ID ADDRESSES VERSION, and a note.
	line := untilFound(t, "plain thing in peers", func() (string, bool) {
		r := runLanshareOn(t, from.CommandContext, t.TempDir(), nil, "peers")
		if r.code != 0 {
			t.Fatalf("lanshare peers: exit %d; stderr:\n%s", r.code, r.stderr)
		}
		for _, l := range lines(r.stdout) {
			if strings.HasPrefix(l, "plain thing ") && strings.Contains(l, thingAddr) {
				return l, true
			}
		}
		return r.stdout, false
	})
	t.Logf("peers on host 2: %q", line)
	// No id, no version, and the note.
	f := strings.Fields(line)
	if n := len(f); n < 9 || f[2] != "-" || f[n-5] != "-" || !slices.Contains(f[3:n-5], thingAddr) ||
		strings.Join(f[n-4:], " ") != "(cannot receive from us)" {
		t.Errorf("peers lists avahi's service as %q; want \"plain thing  -  ADDRESSES  -  (cannot receive from us)\" with %s among the addresses",
			line, thingAddr)
	}

	src := filepath.Join(t.TempDir(), "note.txt")
	writeFile(t, src, []byte("for a stranger\n"), 0o644, time.Now())
	r := untilFound(t, "plain thing for send", func() (runResult, bool) {
		r := runLanshareOn(t, from.CommandContext, t.TempDir(), nil, "send", "plain thing", src)
		return r, !strings.Contains(r.stderr, "no peer named")
	})
	t.Logf("send \"plain thing\" on host 2: exit %d, stderr %q", r.code, r.stderr)
	if r.code != 4 {
		t.Errorf("send to avahi's plain thing: exit %d, want 4 (cannot reach it); stderr:\n%s", r.code, r.stderr)
	}
	checkErrorLine(t, r.stderr, "plain thing", "HOST:PORT")
}

// TestAvahiAndServeOnOneHost: on a host where avahi-daemon already runs (a
// Linux desktop), `lanshare serve` starts and shares port 5353 with it, and
// both keep working: avahi-browse there lists the agent, `lanshare peers`
// on another host lists it sendable with its address, and a file sent from
// there arrives.
func TestAvahiAndServeOnOneHost(t *testing.T) {
	netlab.SkipUnlessAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 2)
	av := netlab.StartAvahi(t, lab.Host(0), "avahi-h0")
	alice := launchAgent(t, lab.Host(0), "alice")
	alice.ready(t)

	svcs := av.BrowseUntil(t, serviceType, failAfter, alice.instance+" at "+alice.host.Addr().String(), avahiHasAgent(alice))
	checkAvahiSeesAgent(t, av, svcs, alice)

	other := lab.Host(1)
	checkListed(t, peersOn(t, other), []*labAgent{alice}, nil)
	src := filepath.Join(t.TempDir(), "hello.bin")
	data := randomFile(t, src, 10<<10)
	r := runLanshareOn(t, other.CommandContext, t.TempDir(), nil, "send", "--name", "bob", "alice", src)
	if r.code != 0 {
		t.Fatalf("send alice from host 1: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	alice.out.waitFor(t, "alice's \"received\" line", func(ls []string) bool {
		return slices.Contains(received(ls), "hello.bin")
	})
	if got := readTree(t, alice.dir); got["hello.bin"].data != string(data) {
		t.Errorf("alice's copy of hello.bin differs from the %d bytes sent", len(data))
	}
}

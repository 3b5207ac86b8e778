package main

// Lab tests: real lanshare processes on virtual LANs (internal/netlab), one
// network namespace per host, finding each other over real multicast.
// Everything runs inside the private namespace TestMain made, so nothing
// reaches the machine's own network.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// labAgent is a `lanshare serve` running on a lab host.
type labAgent struct {
	*server
	host      *netlab.Host
	name      string
	tmp       string    // its own temporary directory (HOME and the like)
	dir       string    // shared folder
	config    string    // config directory
	launched  time.Time // when the process was started
	listening time.Time // when its "listening on" line was read
	port      uint16
	instance  string // from the "sharing" line
	id        string // from the "sharing" line, without the dashes
	// addr is the IPv4 address and port peers must list it with: the
	// host's first lab address, unless the test says otherwise.
	addr netip.AddrPort
}

// launchAgent starts `lanshare serve --name name` on h, on a free port and
// with its folders in a new temporary directory, with extra flags added,
// and returns at once; call ready before using the agent. The process is
// killed when the test ends, so the lab must have been made before.
// "ip netns exec" execs lanshare in its own place, so a signal sent to the
// process reaches the agent itself.
func launchAgent(t testing.TB, h *netlab.Host, name string, extra ...string) *labAgent {
	t.Helper()
	a := newLabAgent(t, h, name)
	a.launch(t, extra...)
	return a
}

// newLabAgent makes the folders of an agent named name on h, without
// starting it: launch does.
func newLabAgent(t testing.TB, h *netlab.Host, name string) *labAgent {
	t.Helper()
	tmp := t.TempDir()
	return &labAgent{host: h, name: name, tmp: tmp,
		dir: filepath.Join(tmp, "share"), config: filepath.Join(tmp, "config")}
}

// launch starts the agent a made by newLabAgent, with extra flags added,
// and returns at once; call ready before using it.
func (a *labAgent) launch(t testing.TB, extra ...string) {
	t.Helper()
	args := append([]string{"serve", "--dir", a.dir, "--config", a.config, "--name", a.name, "--listen", ":0"}, extra...)
	a.launched = time.Now()
	a.server = startLanshare(t, a.host.CommandContext, a.tmp, nil, args...)
}

// ready waits for the agent's first two lines, "listening on ADDR" and
// "TIME sharing DIR as INSTANCE, id GROUPED-ID", and records what they say.
func (a *labAgent) ready(t testing.TB) {
	t.Helper()
	a.waitListening(t)
	a.listening = time.Now()
	ap, err := netip.ParseAddrPort(a.server.addr)
	if err != nil {
		t.Fatalf("%s: serve listens on %q: %v", a.name, a.server.addr, err)
	}
	a.port = ap.Port()
	a.addr = netip.AddrPortFrom(a.host.Addr(), a.port)

	a.out.waitFor(t, a.name+"'s \"sharing\" line", func(ls []string) bool { return len(ls) >= 2 })
	line := a.out.Lines()[1]
	_, rest, ok := strings.Cut(line, " sharing "+a.dir+" as ")
	i := strings.LastIndex(rest, ", id ")
	if !ok || i < 0 {
		t.Fatalf("%s: serve's second line = %q, want \"TIME sharing %s as INSTANCE, id ID\"", a.name, line, a.dir)
	}
	a.instance, a.id = rest[:i], strings.ReplaceAll(rest[i+len(", id "):], "-", "")
	// The instance is the name and the id's first four characters.
	if len(a.id) < 4 || a.instance != fmt.Sprintf("%s (%s)", a.name, a.id[:4]) {
		t.Fatalf("%s: serve shares as instance %q with id %q; want \"%[1]s (FIRST 4 OF ID)\"", a.name, a.instance, a.id)
	}
}

// listedPeer is one peer as `peers --json` prints it, and, with Event set,
// one line of `peers --watch --json`. The JSON names are what scripts rely
// on, so they are spelled out here rather than taken from peers.go.
type listedPeer struct {
	Event    string   `json:"event"`
	Name     string   `json:"name"`
	Instance string   `json:"instance"`
	ID       string   `json:"id"`
	Addrs    []string `json:"addrs"`
	Version  string   `json:"version"`
	Host     string   `json:"host"`
	Self     bool     `json:"self"`
	Sendable bool     `json:"sendable"`
}

// peersOn runs `lanshare peers --json args...` on h and returns the list,
// failing the test unless it exits 0 with a JSON array.
func peersOn(t testing.TB, h *netlab.Host, args ...string) []listedPeer {
	t.Helper()
	r := runLanshareOn(t, h.CommandContext, t.TempDir(), nil, append([]string{"peers", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("lanshare peers --json %q on %s: exit %d; stderr:\n%s", args, h.NS, r.code, r.stderr)
	}
	var list []listedPeer
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("lanshare peers --json %q: %v; stdout:\n%s", args, err, r.stdout)
	}
	return list
}

func instances(list []listedPeer) []string {
	var s []string
	for _, p := range list {
		s = append(s, p.Instance)
	}
	sort.Strings(s)
	return s
}

// checkListed fails the test unless list holds exactly the agents want,
// each with its name, id, version, its address and port, and marked self
// only if it is self (which may be nil).
func checkListed(t testing.TB, list []listedPeer, want []*labAgent, self *labAgent) {
	t.Helper()
	var wantInst []string
	for _, a := range want {
		wantInst = append(wantInst, a.instance)
	}
	sort.Strings(wantInst)
	if got := instances(list); !slices.Equal(got, wantInst) {
		t.Errorf("peers lists %d: %q\nwant %d: %q", len(got), got, len(wantInst), wantInst)
	}
	for _, a := range want {
		i := slices.IndexFunc(list, func(p listedPeer) bool { return p.Instance == a.instance })
		if i < 0 {
			continue
		}
		p := list[i]
		if p.Name != a.name || p.ID != a.id || p.Version != peer.ProtocolVersion || !p.Sendable || p.Self != (a == self) {
			t.Errorf("%s listed as %+v\nwant name %q, id %q, version %q, sendable, self %v",
				a.instance, p, a.name, a.id, peer.ProtocolVersion, a == self)
		}
		if !slices.Contains(p.Addrs, a.addr.String()) {
			t.Errorf("%s listed with addresses %q, want %s among them", a.instance, p.Addrs, a.addr)
		}
		for _, s := range p.Addrs {
			if ap, err := netip.ParseAddrPort(s); err != nil || ap.Port() != a.port {
				t.Errorf("%s listed with address %q, want one with port %d", a.instance, s, a.port)
			}
		}
	}
}

// watchPeersOn starts `lanshare peers --watch --json` on h; it runs until
// the test ends (or is stopped).
func watchPeersOn(t testing.TB, h *netlab.Host, args ...string) *server {
	t.Helper()
	return startLanshare(t, h.CommandContext, t.TempDir(), nil, append([]string{"peers", "--watch", "--json"}, args...)...)
}

// waitEvent waits until the watcher w has printed event ("peer-up",
// "peer-down") for a peer that match accepts, after its first skip lines,
// and returns that event.
func waitEvent(t testing.TB, w *server, skip int, event, what string, match func(listedPeer) bool) listedPeer {
	t.Helper()
	var found listedPeer
	w.out.waitFor(t, event+" event for "+what, func(ls []string) bool {
		for i := skip; i < len(ls); i++ {
			var p listedPeer
			if json.Unmarshal([]byte(ls[i]), &p) == nil && p.Event == event && match(p) {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// waitPeerUp waits until a's log has a "peer up" line for each of others,
// naming it with its short id, address and version.
func waitPeerUp(t testing.TB, a *labAgent, others ...*labAgent) {
	t.Helper()
	for _, o := range others {
		want := " peer up: " + o.instance + " id " + peer.ShortID(o.id) + " at "
		a.out.waitFor(t, a.name+"'s \"peer up\" line for "+o.instance, func(ls []string) bool {
			return slices.ContainsFunc(ls, func(l string) bool {
				return strings.Contains(l, want) && strings.Contains(l, " "+o.addr.String()) &&
					strings.Contains(l, " v"+peer.ProtocolVersion)
			})
		})
	}
}

// randomFile writes n random bytes to path and returns them.
func randomFile(t testing.TB, path string, n int) []byte {
	t.Helper()
	data := make([]byte, n)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, data, 0o644, time.Now())
	return data
}

// TestLabThreeAgents runs three agents on one LAN and a fourth host without
// one: they find each other, `peers` lists them, they send to each other by
// name, and they leave the lists when stopped or killed. It is not
// parallel, so that its time bounds are measured on a quiet machine.
func TestLabThreeAgents(t *testing.T) {
	lab := netlab.New(t, 4)
	alice := launchAgent(t, lab.Host(0), "alice")
	bob := launchAgent(t, lab.Host(1), "bob")
	// carol is SIGKILLed at the end and must vanish within her short TTL.
	const carolTTL = 3 * time.Second
	carol := launchAgent(t, lab.Host(2), "carol", "--ttl", carolTTL.String())
	agents := []*labAgent{alice, bob, carol}
	var last time.Time
	for _, a := range agents {
		a.ready(t)
		if a.listening.After(last) {
			last = a.listening
		}
	}
	observer := lab.Host(3)

	// Every agent logs the other two within a second of the last one's
	// start.
	for _, a := range agents {
		var others []*labAgent
		for _, o := range agents {
			if o != a {
				others = append(others, o)
			}
		}
		waitPeerUp(t, a, others...)
	}
	el := time.Since(last)
	t.Logf("agents saw each other %v after the last one started", el)
	if el > time.Second {
		t.Errorf("agents saw each other %v after the last one started, want within 1s", el)
	}
	for _, a := range agents {
		for _, l := range a.out.Lines() {
			if strings.Contains(l, " peer up: "+a.instance) {
				t.Errorf("%s logged itself as a peer: %q", a.name, l)
			}
		}
	}

	t.Run("peers and send", func(t *testing.T) {
		t.Run("peers from a host without agent", func(t *testing.T) {
			t.Parallel()
			checkListed(t, peersOn(t, observer), agents, nil)
		})
		t.Run("peers with the agent's config marks it self", func(t *testing.T) {
			t.Parallel()
			checkListed(t, peersOn(t, alice.host, "--config", alice.config), agents, alice)
		})
		for _, from := range agents {
			for _, to := range agents {
				if from == to {
					continue
				}
				t.Run("send "+from.name+" to "+to.name, func(t *testing.T) {
					t.Parallel()
					base := "from-" + from.name + ".bin"
					src := filepath.Join(t.TempDir(), base)
					data := randomFile(t, src, 256<<10+len(from.name))
					r := runLanshareOn(t, from.host.CommandContext, from.tmp, nil, "send", "--name", from.name, to.name, src)
					if r.code != 0 {
						t.Fatalf("send %s %s on %s: exit %d; stderr:\n%s", to.name, src, from.name, r.code, r.stderr)
					}
					got, err := os.ReadFile(filepath.Join(to.dir, base))
					if err != nil || !bytes.Equal(got, data) {
						t.Errorf("%s's copy of %s: %d bytes (%v), want the %d sent, byte for byte", to.name, base, len(got), err, len(data))
					}
					logged := fmt.Sprintf(" received %s from %s (%s:", base, from.name, from.host.Addr())
					to.out.waitFor(t, to.name+"'s \"received\" line", func(ls []string) bool {
						return slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(l, logged) })
					})
				})
			}
		}
	})

	w := watchPeersOn(t, observer)
	var ups []listedPeer
	for _, a := range agents {
		p := waitEvent(t, w, 0, "peer-up", a.instance, func(p listedPeer) bool { return p.Instance == a.instance })
		ups = append(ups, p)
	}
	checkListed(t, ups, agents, nil)

	// A clean stop says goodbye: gone from the watcher at once.
	bobStopped := len(w.out.Lines())
	stopped := time.Now()
	bob.stopClean(t)
	waitEvent(t, w, bobStopped, "peer-down", bob.instance, func(p listedPeer) bool { return p.Instance == bob.instance })
	el = time.Since(stopped)
	t.Logf("bob left the watcher's list %v after SIGTERM", el)
	if el > 2*time.Second {
		t.Errorf("bob left the watcher's list %v after SIGTERM, want within 2s", el)
	}
	for _, a := range []*labAgent{alice, carol} {
		a.out.waitFor(t, a.name+"'s \"peer down\" line for bob", func(ls []string) bool {
			return slices.ContainsFunc(ls, func(l string) bool { return strings.HasSuffix(l, " peer down: "+bob.instance) })
		})
	}

	// A killed agent says nothing: gone when its TTL runs out.
	carolKilled := len(w.out.Lines())
	killed := time.Now()
	carol.stop(t, syscall.SIGKILL)
	waitEvent(t, w, carolKilled, "peer-down", carol.instance, func(p listedPeer) bool { return p.Instance == carol.instance })
	el = time.Since(killed)
	t.Logf("carol (TTL %v) left the watcher's list %v after SIGKILL", carolTTL, el)
	if limit := carolTTL + time.Second; el > limit {
		t.Errorf("carol (TTL %v) left the watcher's list %v after SIGKILL, want within %v", carolTTL, el, limit)
	}

	// Nobody came and went meanwhile: one peer-up each, and a peer-down
	// only for bob and carol, after they were stopped.
	mayLeave := map[string]int{bob.instance: bobStopped, carol.instance: carolKilled}
	upCount := map[string]int{}
	for i, l := range w.out.Lines() {
		var p listedPeer
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Errorf("peers --watch --json printed %q: %v", l, err)
			continue
		}
		switch p.Event {
		case "peer-up":
			upCount[p.Instance]++
		case "peer-down":
			if after, ok := mayLeave[p.Instance]; !ok || i < after {
				t.Errorf("peers --watch --json line %d: %s went down before it was stopped: %q", i+1, p.Instance, l)
			}
		}
	}
	for _, a := range agents {
		if upCount[a.instance] != 1 {
			t.Errorf("peers --watch --json reported %s up %d times, want once; output:\n%s", a.instance, upCount[a.instance], w.out)
		}
	}

	// Sending to her now fails fast, with one line that names her.
	src := filepath.Join(t.TempDir(), "late.txt")
	writeFile(t, src, []byte("too late\n"), 0o644, time.Now())
	start := time.Now()
	r := runLanshareOn(t, alice.host.CommandContext, alice.tmp, nil, "send", "--wait", "1s", "carol", src)
	if r.code != 4 {
		t.Errorf("send to the killed carol: exit %d, want 4 (unreachable); stderr:\n%s", r.code, r.stderr)
	}
	checkErrorLine(t, r.stderr, "carol")
	el = time.Since(start)
	t.Logf("send to the killed carol failed after %v", el)
	if el > 3*time.Second {
		t.Errorf("send to the killed carol took %v with --wait 1s, want under 3s", el)
	}
	if _, err := os.Stat(filepath.Join(carol.dir, "late.txt")); err == nil {
		t.Errorf("late.txt reached carol's folder after she was killed")
	}
}

// TestLabTwentyAgents lists twenty agents on one bridge from one more host,
// five times over: a single lost or late answer shows.
func TestLabTwentyAgents(t *testing.T) {
	t.Parallel()
	const n = 20
	lab := netlab.New(t, n+1)
	agents := make([]*labAgent, n)
	for i := range agents {
		agents[i] = launchAgent(t, lab.Host(i), fmt.Sprintf("agent%02d", i))
	}
	for _, a := range agents {
		a.ready(t)
	}
	for run := range 5 {
		list := peersOn(t, lab.Host(n))
		if len(list) != n {
			t.Errorf("run %d: peers listed %d agents, want %d", run+1, len(list), n)
		}
		checkListed(t, list, agents, nil)
	}
}

// TestLabTwoSegments puts an observer on two bridges: it sees both, or the
// one it is told to use, and an agent told to use one interface is seen
// only on that interface's segment, with that segment's addresses.
func TestLabTwoSegments(t *testing.T) {
	t.Parallel()
	// h0: seg 0 only, runs west. h1: seg 0 (eth0) and seg 1 (eth1), the
	// observer. h2: seg 1 only, runs east. h3: seg 0 (eth0) and seg 1
	// (eth1), runs eastonly with --iface eth1.
	lab := netlab.New(t, 2)
	seg1 := lab.AddSegment()
	observer := lab.Host(1)
	lab.Attach(observer, seg1)
	h2 := lab.AddHost()
	lab.Attach(h2, seg1)
	h3 := lab.AddHost()
	lab.Attach(h3, 0)
	eth1 := lab.Attach(h3, seg1)

	west := launchAgent(t, lab.Host(0), "west")
	east := launchAgent(t, h2, "east")
	eastOnly := launchAgent(t, h3, "eastonly", "--iface", eth1.Name)
	for _, a := range []*labAgent{west, east, eastOnly} {
		a.ready(t)
	}
	eastOnly.addr = netip.AddrPortFrom(eth1.IPv4.Addr(), eastOnly.port)

	cases := []struct {
		name string
		host *netlab.Host
		args []string
		want []*labAgent
	}{
		{"both segments", observer, nil, []*labAgent{west, east, eastOnly}},
		{"--iface eth0", observer, []string{"--iface", "eth0"}, []*labAgent{west}},
		{"--iface eth1", observer, []string{"--iface", "eth1"}, []*labAgent{east, eastOnly}},
		{"segment 0 only", lab.Host(0), nil, []*labAgent{west}},
		{"segment 1 only", h2, nil, []*labAgent{east, eastOnly}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			list := peersOn(t, c.host, c.args...)
			checkListed(t, list, c.want, nil)
			// eastonly advertises only its segment-1 addresses.
			seg0 := []netip.Addr{h3.Ifaces[0].IPv4.Addr(), h3.Ifaces[0].ULA.Addr(), h3.Ifaces[0].LinkLocal}
			for _, p := range list {
				if p.Instance != eastOnly.instance {
					continue
				}
				for _, s := range p.Addrs {
					if ap, err := netip.ParseAddrPort(s); err == nil && slices.Contains(seg0, ap.Addr().WithZone("")) {
						t.Errorf("eastonly (--iface eth1) listed with its segment-0 address %s: %q", s, p.Addrs)
					}
				}
			}
		})
	}
}

// TestLabSameDisplayName runs two agents with the same display name: both
// are listed, a send by the bare name is refused as ambiguous and lists
// both, one is reached by instance name, and then the other, whose key the
// name is not pinned to, by its whole id only.
func TestLabSameDisplayName(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	twins := []*labAgent{launchAgent(t, lab.Host(0), "twin"), launchAgent(t, lab.Host(1), "twin")}
	for _, a := range twins {
		a.ready(t)
	}
	if twins[0].instance == twins[1].instance || twins[0].id == twins[1].id {
		t.Fatalf("two agents share instance %q or id %q", twins[0].instance, twins[0].id)
	}
	sender := lab.Host(2)
	tmp := t.TempDir()
	send := func(t *testing.T, target, src string) runResult {
		t.Helper()
		return runLanshareOn(t, sender.CommandContext, tmp, nil, "send", "--name", "sender", target, src)
	}

	checkListed(t, peersOn(t, sender), twins, nil)

	t.Run("by display name", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "which.txt")
		writeFile(t, src, []byte("which twin?\n"), 0o644, time.Now())
		r := send(t, "twin", src)
		if r.code != 2 {
			t.Errorf("send twin: exit %d, want 2 (ambiguous); stderr:\n%s", r.code, r.stderr)
		}
		checkErrorLine(t, r.stderr, twins[0].instance, twins[1].instance)
		for _, a := range twins {
			if got := readTree(t, a.dir); len(got) != 0 {
				t.Errorf("%s received %v from an ambiguous send", a.instance, got)
			}
		}
	})

	// The first send by instance pins the name "twin" to twins[0]'s key.
	// An id prefix of the other twin is no explicit choice of key (it can
	// be ground), so it is refused as a changed key; its whole id works.
	for i, c := range []struct {
		target string
		to     int
		code   int
	}{
		{twins[0].instance, 0, 0},
		{twins[1].id[:6], 1, 6},
		{twins[1].id, 1, 0},
	} {
		to, other := twins[c.to], twins[1-c.to]
		t.Run(fmt.Sprintf("by %s", c.target), func(t *testing.T) {
			base := fmt.Sprintf("for-%d.txt", i)
			src := filepath.Join(t.TempDir(), base)
			data := randomFile(t, src, 1000+i)
			r := send(t, c.target, src)
			if r.code != c.code {
				t.Fatalf("send %q: exit %d, want %d; stderr:\n%s", c.target, r.code, c.code, r.stderr)
			}
			if c.code != 0 {
				checkErrorLine(t, r.stderr, "key changed")
				if _, err := os.Stat(filepath.Join(to.dir, base)); err == nil {
					t.Errorf("%s reached %s despite the refusal", base, to.instance)
				}
				return
			}
			if got, err := os.ReadFile(filepath.Join(to.dir, base)); err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s's copy of %s: %d bytes (%v), want the %d sent", to.instance, base, len(got), err, len(data))
			}
			if _, err := os.Stat(filepath.Join(other.dir, base)); err == nil {
				t.Errorf("%s reached %s too", base, other.instance)
			}
		})
	}
}

// BenchmarkLabPeerUp measures how long a new agent takes to appear in a
// running `peers --watch` on another host: from starting `lanshare serve`
// to reading the watcher's peer-up event for it. It reports the median,
// minimum and maximum over b.N agents (ns/op is meaningless here and
// zeroed). Run it with
//
//	go test -run '^$' -bench BenchmarkLabPeerUp -benchtime 10x ./cmd/lanshare/
func BenchmarkLabPeerUp(b *testing.B) {
	lab := netlab.New(b, 2)
	w := watchPeersOn(b, lab.Host(1))
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench%d", i)
		skip := len(w.out.Lines())
		a := launchAgent(b, lab.Host(0), name)
		waitEvent(b, w, skip, "peer-up", name, func(p listedPeer) bool { return p.Name == name })
		took = append(took, time.Since(a.launched))
		// Leave the LAN as it was for the next agent.
		a.ready(b)
		a.stopClean(b)
		waitEvent(b, w, skip, "peer-down", a.instance, func(p listedPeer) bool { return p.Instance == a.instance })
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	median := took[len(took)/2]
	if len(took)%2 == 0 {
		median = (took[len(took)/2-1] + median) / 2
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(median), "ms-median")
	b.ReportMetric(ms(took[0]), "ms-min")
	b.ReportMetric(ms(took[len(took)-1]), "ms-max")
	b.Logf("serve start to peer-up in a watcher on another host, N=%d: median %v, min %v, max %v",
		len(took), median, took[0], took[len(took)-1])
}

// TestLabPeersFromLocalAgent: with an agent running on the host (same
// config directory), `peers` answers from the agent's live table instead
// of browsing: even with --wait 1h it returns at once, listing the other
// agent and this one, marked, with their lab addresses.
func TestLabPeersFromLocalAgent(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	agents := []*labAgent{launchAgent(t, lab.Host(0), "here"), launchAgent(t, lab.Host(1), "there")}
	for _, a := range agents {
		a.ready(t)
	}
	waitPeerUp(t, agents[0], agents[1])
	checkListed(t, peersOn(t, lab.Host(0), "--wait", "1h", "--config", agents[0].config), agents, agents[0])
}

package discovery

// Interop with avahi, the DNS-SD implementation of most Linux desktops and an
// implementation we share no code with. Each avahi-daemon runs inside a lab
// host with its own D-Bus system bus (a dbus-daemon listening on a socket in
// the test's temporary directory); avahi's command-line tools reach it
// through DBUS_SYSTEM_BUS_ADDRESS. avahi-daemon keeps its pid file and socket
// in the compiled-in /run/avahi-daemon, so it runs in a private mount
// namespace with a tmpfs on /run: two daemons never see each other's files
// and nothing is written to the machine's /run.
//
// The tests need the Debian packages avahi-daemon, avahi-utils and
// dbus-daemon, and skip without them. They run in parallel with each other
// (each has its own lab), after the package's other tests.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

// avahiPrograms are the programs the avahi tests run, with where to get
// them.
var avahiPrograms = map[string]string{
	"dbus-daemon":   "Debian package dbus-daemon",
	"avahi-daemon":  "Debian package avahi-daemon",
	"avahi-browse":  "Debian package avahi-utils",
	"avahi-publish": "Debian package avahi-utils",
	"avahi-resolve": "Debian package avahi-utils",
	"unshare":       "Debian package util-linux",
	"mount":         "Debian package mount",
}

// needAvahi skips t unless labs can be built and every avahi program is
// installed; it returns the programs' paths.
func needAvahi(t testing.TB) map[string]string {
	t.Helper()
	netlab.Skip(t)
	paths := map[string]string{}
	for prog, pkg := range avahiPrograms {
		p, err := exec.LookPath(prog)
		if err != nil {
			t.Skipf("needs %s (%s): %v", prog, pkg, err)
		}
		paths[prog] = p
	}
	if err := avahiUserMapped(); err != nil {
		t.Skipf("avahi-daemon cannot run here: %v", err)
	}
	return paths
}

// avahiUserMapped checks that the avahi user and group exist and are
// mapped in our user namespace: avahi-daemon, even as root, makes
// /run/avahi-daemon owned by them and gives up if it cannot. They are not
// mapped in the one-user namespace netlab.Main runs unprivileged tests in.
func avahiUserMapped() error {
	u, err := user.Lookup("avahi")
	if err != nil {
		return err
	}
	for _, c := range []struct{ id, mapFile string }{{u.Uid, "/proc/self/uid_map"}, {u.Gid, "/proc/self/gid_map"}} {
		id, err := strconv.ParseUint(c.id, 10, 32)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(c.mapFile)
		if err != nil {
			return err
		}
		mapped := false
		for _, line := range strings.Split(string(b), "\n") {
			var inside, outside, n uint64
			if _, err := fmt.Sscan(line, &inside, &outside, &n); err == nil && inside <= id && id-inside < n {
				mapped = true
			}
		}
		if !mapped {
			return fmt.Errorf("id %d of user avahi is not mapped in this user namespace (%s: %q); run the tests as root", id, c.mapFile, strings.TrimSpace(string(b)))
		}
	}
	return nil
}

// proc is a long-running program inside a lab host whose output lines (stdout
// and stderr) the test can wait for. It is killed in t.Cleanup.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string
	exited  bool
	changed chan struct{} // closed (and replaced) on a new line or exit
}

func startProc(t testing.TB, h *netlab.Host, name string, env []string, prog string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, changed: make(chan struct{})}
	p.cmd = h.Command(prog, args...)
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	var readers sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				t.Logf("%s: %s", name, sc.Text())
				p.mu.Lock()
				p.lines = append(p.lines, sc.Text())
				close(p.changed)
				p.changed = make(chan struct{})
				p.mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		readers.Wait()
		_ = p.cmd.Wait()
		p.mu.Lock()
		p.exited = true
		close(p.changed)
		p.mu.Unlock()
		close(done)
	}()
	t.Cleanup(func() {
		// "ip netns exec", unshare and sh all exec the next program, so
		// the process is the program itself.
		_ = p.cmd.Process.Kill()
		<-done
	})
	return p
}

// waitLine waits up to timeout for an output line containing s and returns
// it; it fails the test if the program exits or the time runs out first.
func (p *proc) waitLine(s string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				p.mu.Unlock()
				return l
			}
		}
		exited, changed := p.exited, p.changed
		p.mu.Unlock()
		if exited {
			p.t.Fatalf("%s exited (%v) before printing %q", p.name, p.cmd.ProcessState, s)
		}
		select {
		case <-changed:
		case <-deadline.C:
			p.t.Fatalf("%s: no %q within %v", p.name, s, timeout)
		}
	}
}

// expectNoLine fails the test if an output line, printed so far or within
// d, contains s.
func (p *proc) expectNoLine(s string, d time.Duration) {
	p.t.Helper()
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, s) {
				p.mu.Unlock()
				p.t.Fatalf("%s printed %q", p.name, l)
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-end.C:
			return
		}
	}
}

// stop kills the program and waits until it has exited.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Kill()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		exited, changed := p.exited, p.changed
		p.mu.Unlock()
		if exited {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			p.t.Fatalf("%s did not exit", p.name)
		}
	}
}

// avahi is an avahi-daemon in a lab host, reachable by avahi's tools through
// its private D-Bus system bus.
type avahi struct {
	t      testing.TB
	host   *netlab.Host
	name   string // avahi's host name, without ".local"
	progs  map[string]string
	env    []string // DBUS_SYSTEM_BUS_ADDRESS for avahi's tools
	daemon *proc
}

// busConf is a D-Bus system bus that listens only on its own socket and lets
// everyone do everything (root runs every process of the test anyway).
const busConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// avahiConf serves one interface, announces nothing about the host but its
// addresses, and does no wide-area (unicast DNS) lookups.
const avahiConf = `[server]
host-name=%s
domain-name=local
use-ipv4=yes
use-ipv6=yes
allow-interfaces=%s
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
[reflector]
enable-reflector=no
[rlimits]
`

// startAvahi starts a dbus-daemon and an avahi-daemon called name serving
// iface inside h, and returns once avahi says its startup is complete (its
// host name, name, probed and announced).
func startAvahi(t testing.TB, progs map[string]string, h *netlab.Host, name, iface string) *avahi {
	t.Helper()
	dir := t.TempDir()
	if strings.HasPrefix(dir, "/run/") {
		// The daemon gets a fresh /run (see the top of this file), which
		// would hide its configuration.
		t.Fatalf("temporary directory %s is under /run; set TMPDIR elsewhere", dir)
	}
	bus := filepath.Join(dir, "bus")
	busFile, avahiFile := filepath.Join(dir, "bus.conf"), filepath.Join(dir, "avahi-daemon.conf")
	if err := os.WriteFile(busFile, []byte(fmt.Sprintf(busConf, bus)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(avahiFile, []byte(fmt.Sprintf(avahiConf, name, iface)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startProc(t, h, "dbus-daemon@"+name, nil, progs["dbus-daemon"],
		"--config-file="+busFile, "--nofork", "--nopidfile", "--print-address")
	// dbus-daemon prints its address once it listens.
	d.waitLine("unix:path=", 10*time.Second)
	a := &avahi{t: t, host: h, name: name, progs: progs, env: []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + bus}}
	// mount -n: without it libmount records the mount in /run/mount,
	// which is still the machine's /run at that point.
	a.daemon = startProc(t, h, "avahi-daemon@"+name, a.env, progs["unshare"],
		"--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -n -t tmpfs lanshare-test /run && exec "$0" "$@"`,
		progs["avahi-daemon"], "-f", avahiFile, "--no-rlimits", "--no-chroot", "--no-drop-root", "--no-proc-title")
	a.daemon.waitLine("Server startup complete. Host name is "+name+".local.", 10*time.Second)
	return a
}

// run runs one of avahi's tools to completion against this daemon, inside
// the daemon's host, and returns its standard output.
func (a *avahi) run(prog string, args ...string) string {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := a.host.CommandContext(ctx, a.progs[prog], args...)
	cmd.Env = append(os.Environ(), a.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		a.t.Fatalf("%s %s: %v: %s", prog, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// publish runs avahi-publish with args until the test ends, and returns once
// avahi has established the service.
func (a *avahi) publish(instance string, args ...string) *proc {
	a.t.Helper()
	p := startProc(a.t, a.host, "avahi-publish@"+a.name, a.env, a.progs["avahi-publish"], append([]string{"-s", instance}, args...)...)
	p.waitLine(fmt.Sprintf("Established under name '%s'", instance), 10*time.Second)
	return p
}

// avahiService is one resolved line of "avahi-browse -p -r".
type avahiService struct {
	Iface, Proto, Name, Type, Domain, Host string
	Addr                                   netip.Addr
	Port                                   int
	TXT                                    []string // unquoted strings
}

// parseAvahiBrowse reads the resolved ("=") lines of avahi-browse's
// parsable output:
//
//	=;eth0;IPv4;bob\032\040bbbb\041;_lanshare._tcp;local;host-bbbb2222.local;10.77.0.1;4002;"name=bob" "v=1" "id=bbbb2222"
func parseAvahiBrowse(out string) ([]avahiService, error) {
	var svcs []avahiService
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "=;") {
			continue
		}
		f := strings.SplitN(line, ";", 10)
		if len(f) != 10 {
			return nil, fmt.Errorf("short avahi-browse line %q", line)
		}
		addr, err := netip.ParseAddr(f[7])
		if err != nil {
			return nil, fmt.Errorf("avahi-browse line %q: %v", line, err)
		}
		port, err := strconv.Atoi(f[8])
		if err != nil {
			return nil, fmt.Errorf("avahi-browse line %q: %v", line, err)
		}
		txt, err := parseAvahiTXT(f[9])
		if err != nil {
			return nil, fmt.Errorf("avahi-browse line %q: %v", line, err)
		}
		svcs = append(svcs, avahiService{
			Iface: f[1], Proto: f[2], Name: f[3], Type: f[4], Domain: f[5], Host: f[6],
			Addr: addr, Port: port, TXT: txt,
		})
	}
	return svcs, nil
}

// parseAvahiTXT splits avahi's rendering of a TXT record: quoted strings
// separated by spaces, with '"' and '\' escaped by a backslash and bytes
// outside printable ASCII as \DDD (decimal).
func parseAvahiTXT(s string) ([]string, error) {
	var out []string
	for s != "" {
		if s[0] == ' ' {
			s = s[1:]
			continue
		}
		if s[0] != '"' {
			return nil, fmt.Errorf("TXT %q: want a quoted string", s)
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && isDigit3(s[i+1:]) {
				v, _ := strconv.Atoi(s[i+1 : i+4])
				b.WriteByte(byte(v))
				i += 3
				continue
			}
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, errors.New("unterminated TXT string")
		}
		out = append(out, b.String())
		s = s[i+1:]
	}
	return out, nil
}

// browseUntil runs "avahi-browse -rpt _lanshare._tcp" (resolve, parsable,
// stop once the list is more or less complete: about a second) until ok
// accepts what it lists or timeout has passed, and returns the last list.
func (a *avahi) browseUntil(timeout time.Duration, what string, ok func([]avahiService) bool) []avahiService {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := a.run("avahi-browse", "-rpt", ServiceType)
		svcs, err := parseAvahiBrowse(out)
		if err != nil {
			a.t.Fatal(err)
		}
		if ok(svcs) {
			a.t.Logf("avahi-browse -rpt %s on %s:\n%s", ServiceType, a.name, out)
			return svcs
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("avahi-browse on %s: no %s within %v; it printed:\n%s", a.name, what, timeout, out)
		}
		// Each run takes about a second (avahi's "all for now"), which
		// paces the polling.
	}
}

// named returns the services called name (as avahi-browse escapes it).
func named(svcs []avahiService, name string) []avahiService {
	var out []avahiService
	for _, s := range svcs {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// hasBothFamilies reports whether avahi resolved name over IPv4 and IPv6.
func hasBothFamilies(name string) func([]avahiService) bool {
	return func(svcs []avahiService) bool {
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
// name has the agent's SRV target, port, TXT and one of h's addresses, and
// the IPv4 address is among them.
func checkAvahiSees(t testing.TB, svcs []avahiService, escaped string, cfg childCfg, h *netlab.Host) {
	t.Helper()
	lines := named(svcs, escaped)
	if len(lines) == 0 {
		t.Fatalf("avahi lists no %q in %+v", escaped, svcs)
	}
	wantTXT := []string{"id=" + cfg.ID, "v=" + cfg.Version, "name=" + cfg.Name}
	var addrs []netip.Addr
	for _, s := range lines {
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
func checkAvahiResolvesHost(t testing.TB, a *avahi, hostName string, h *netlab.Host) {
	t.Helper()
	for _, fam := range []string{"-4", "-6"} {
		out := a.run("avahi-resolve", fam, "-n", hostName)
		f := strings.Fields(out)
		if len(f) != 2 || f[0] != hostName {
			t.Errorf("avahi-resolve %s -n %s printed %q", fam, hostName, out)
			continue
		}
		t.Logf("avahi-resolve %s -n %s on %s: %s", fam, hostName, a.name, strings.TrimSpace(out))
		addr, err := netip.ParseAddr(f[1])
		if err != nil || !slices.Contains(hostAddrs(h), addr.WithZone("")) || addr.Is4() != (fam == "-4") {
			t.Errorf("avahi-resolve %s -n %s = %s, want one of %v", fam, hostName, f[1], hostAddrs(h))
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
	progs := needAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 2)
	av := startAvahi(t, progs, lab.Host(0), "avahi-h0", "eth0")
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
	svcs := av.browseUntil(10*time.Second, "alice, bob and carol over IPv4 and IPv6", func(s []avahiService) bool {
		return hasBothFamilies(aliceName)(s) && hasBothFamilies(bobName)(s) && hasBothFamilies(carolName)(s)
	})
	checkAvahiSees(t, svcs, aliceName, aliceCfg, lab.Host(1))
	checkAvahiSees(t, svcs, bobName, bobCfg, lab.Host(0))
	checkAvahiSees(t, svcs, carolName, carolCfg, lab.Host(1))
	checkAvahiResolvesHost(t, av, aliceCfg.Host+".local", lab.Host(1))
	checkAvahiResolvesHost(t, av, bobCfg.Host+".local", lab.Host(0))

	alice.stop()
	bob.stop()
	av.browseUntil(5*time.Second, "alice and bob gone", func(s []avahiService) bool {
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
	progs := needAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 2)
	av := startAvahi(t, progs, lab.Host(0), "avahi-h0", "eth0")
	bob := startChild(t, lab.Host(0), "bob", "agent", agentCfg("bob", "bbbb2222", 4002))
	bob.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	pub := av.publish("plain thing", ServiceType, "4242", "foo=bar")

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

	pub.stop()
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
	progs := needAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 3)
	aliceCfg := agentCfg("alice", "aaaa1111", 4001)
	alice := startChild(t, lab.Host(0), "alice", "agent", aliceCfg)
	alice.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	av0 := startAvahi(t, progs, lab.Host(0), "avahi-h0", "eth0")
	av2 := startAvahi(t, progs, lab.Host(2), "avahi-h2", "eth0")
	av0.publish("plain thing", ServiceType, "4242", "foo=bar")

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
	svcs := av2.browseUntil(10*time.Second, "alice and avahi's service", func(s []avahiService) bool {
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
	progs := needAvahi(t)
	t.Parallel()
	lab := netlab.New(t, 1)
	machine, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	// The name avahi publishes for this machine (its first label) is the
	// one we used to publish too.
	av := startAvahi(t, progs, lab.Host(0), hostLabel(machine), "eth0")
	cfg := agentCfg("bob", "bbbb2222", 4002)
	cfg.Host = "" // the default
	bob := startChild(t, lab.Host(0), "bob", "agent", cfg)
	bob.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	bobName := `bob\032\040bbbb\041`
	svcs := av.browseUntil(10*time.Second, "bob over IPv4 and IPv6", hasBothFamilies(bobName))
	cfg.Host = hostFor(machine, cfg.ID)
	checkAvahiSees(t, svcs, bobName, cfg, lab.Host(0))
	checkAvahiResolvesHost(t, av, cfg.Host+".local", lab.Host(0))
	// avahi has our address records; a conflict would show within the
	// 750 ms of probing that precedes the rename.
	av.daemon.expectNoLine("conflict", 2*time.Second)
}

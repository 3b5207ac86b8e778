package netlab

// Avahi, the DNS-SD implementation of most Linux desktops, inside lab hosts:
// a second, independent mDNS stack for interop tests.
//
// Each avahi-daemon runs inside a lab host with its own D-Bus system bus (a
// dbus-daemon listening on a socket in the test's temporary directory);
// avahi's command-line tools reach it through DBUS_SYSTEM_BUS_ADDRESS.
// avahi-daemon keeps its pid file and socket in the compiled-in
// /run/avahi-daemon, so it runs in a private mount namespace with a tmpfs on
// /run: two daemons never see each other's files and nothing is written to
// the machine's /run. The machine's own avahi-daemon and system bus, if any,
// are never involved.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
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
)

// avahiPrograms are the programs StartAvahi and its methods run, with where
// to get them.
var avahiPrograms = map[string]string{
	"dbus-daemon":   "Debian package dbus-daemon",
	"avahi-daemon":  "Debian package avahi-daemon",
	"avahi-browse":  "Debian package avahi-utils",
	"avahi-publish": "Debian package avahi-utils",
	"avahi-resolve": "Debian package avahi-utils",
	"unshare":       "Debian package util-linux",
	"mount":         "Debian package mount",
	"sh":            "Debian package dash",
}

var (
	avahiOnce  sync.Once
	avahiPaths map[string]string
	avahiErr   error
)

// AvahiAvailable reports whether StartAvahi can work here: labs can be
// built (see Available), every program it runs is installed, and the avahi
// user and group are mapped in this process's user namespace (avahi-daemon,
// even as root, makes /run/avahi-daemon owned by them and gives up if it
// cannot; they are not mapped in the one-user namespace Main runs
// unprivileged tests in). The error says what is missing. The result is
// cached.
func AvahiAvailable() error {
	avahiOnce.Do(func() { avahiPaths, avahiErr = probeAvahi() })
	return avahiErr
}

func probeAvahi() (map[string]string, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for _, prog := range slices.Sorted(maps.Keys(avahiPrograms)) {
		p, err := exec.LookPath(prog)
		if err != nil {
			return nil, fmt.Errorf("needs %s (%s): %v", prog, avahiPrograms[prog], err)
		}
		paths[prog] = p
	}
	if err := avahiUserMapped(); err != nil {
		return nil, fmt.Errorf("avahi-daemon cannot run here: %v", err)
	}
	return paths, nil
}

// avahiUserMapped checks that the avahi user and group exist and are mapped
// in our user namespace.
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
			return fmt.Errorf("id %d of user avahi is not mapped in this user namespace (%s: %q); run the tests as root",
				id, c.mapFile, strings.TrimSpace(string(b)))
		}
	}
	return nil
}

// SkipUnlessAvahi skips t, with the reason, unless StartAvahi can work here
// (see AvahiAvailable).
func SkipUnlessAvahi(t testing.TB) {
	t.Helper()
	if err := AvahiAvailable(); err != nil {
		t.Skipf("needs avahi in a lab: %v", err)
	}
}

// Process is a long-running program inside a lab host, started by
// Host.Start, whose output lines (stdout and stderr, interleaved) a test can
// wait for. Every line is logged with t.Logf of the test that started it.
// It is killed, and waited for, in that test's cleanup.
//
// Its methods take the test calling them, which may be a subtest of the
// one that started the process.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and its output is read

	mu      sync.Mutex
	lines   []string
	exited  bool
	changed chan struct{} // closed (and replaced) on a new line or exit
}

// Start starts prog with args inside h, with env added to this process's
// environment, and returns at once. name is how logs and failures call it.
// Since "ip netns exec" execs prog in its own place, a signal sent to the
// process reaches prog itself (and a prog that execs further, as unshare
// and "sh -c 'exec ...'" do, keeps that property).
func (h *Host) Start(t testing.TB, name string, env []string, prog string, args ...string) *Process {
	t.Helper()
	p := &Process{name: name, changed: make(chan struct{}), done: make(chan struct{})}
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
	go func() {
		readers.Wait()
		_ = p.cmd.Wait()
		p.mu.Lock()
		p.exited = true
		close(p.changed)
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Lines returns a copy of the output lines so far.
func (p *Process) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// WaitLine blocks until an output line contains s, and returns the first
// that does; it fails t if the program exits or timeout passes first.
func (p *Process) WaitLine(t testing.TB, s string, timeout time.Duration) string {
	t.Helper()
	line, found, exited := p.await(s, timeout)
	switch {
	case found:
		return line
	case exited:
		t.Fatalf("%s exited (%v) before printing %q", p.name, p.cmd.ProcessState, s)
	default:
		t.Fatalf("%s: no %q within %v", p.name, s, timeout)
	}
	return ""
}

// ExpectNoLine watches the output for d and fails t if a line, printed
// before or during that time, contains s. It blocks for d, unless it fails
// sooner or the program exits.
func (p *Process) ExpectNoLine(t testing.TB, s string, d time.Duration) {
	t.Helper()
	if line, found, _ := p.await(s, d); found {
		t.Fatalf("%s printed %q", p.name, line)
	}
}

// await blocks until an output line contains s (found, and the first such
// line), the program has exited and its output is read (exited), or
// timeout has passed.
func (p *Process) await(s string, timeout time.Duration) (line string, found, exited bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		lines, exited, changed := p.lines[seen:], p.exited, p.changed
		p.mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, s) {
				return l, true, exited
			}
		}
		seen += len(lines)
		if exited {
			return "", false, true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "", false, false
		}
	}
}

// Stop kills the program and blocks until it has exited and its output
// is read; it fails t if that takes more than five seconds.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not exit", p.name)
	}
}

// Avahi is an avahi-daemon running in a lab host, made by StartAvahi, that
// avahi's tools reach through its private D-Bus system bus. Its methods run
// those tools inside the same host and take the test calling them.
type Avahi struct {
	// HostName is the host name the daemon publishes, without ".local".
	HostName string
	// Daemon is the avahi-daemon process; its lines are avahi's log.
	Daemon *Process

	host  *Host
	env   []string // DBUS_SYSTEM_BUS_ADDRESS for avahi's tools
	progs map[string]string
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

// avahiConf serves the given interfaces, announces nothing about the host
// but its addresses, and does no wide-area (unicast DNS) lookups.
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
enable-reflector=%s
[rlimits]
`

// StartAvahi starts a private dbus-daemon and an avahi-daemon inside h that
// publishes hostName (without ".local") and serves every lab interface h has
// now, and returns once avahi says its startup is complete (its host name
// probed and announced: it fails t if avahi had to take another name).
// Both are stopped in t.Cleanup, so h's lab must have been made before. It
// skips t when avahi cannot run here (see SkipUnlessAvahi), and fails it
// for a host without lab interfaces: avahi does not use loopback.
func StartAvahi(t testing.TB, h *Host, hostName string) *Avahi {
	t.Helper()
	return startAvahi(t, h, hostName, false)
}

// StartAvahiReflector is StartAvahi with avahi's reflector on
// (enable-reflector=yes): the daemon repeats the mDNS queries and answers
// it hears on each of h's lab interfaces on the others, from its own
// address there, as routers joining two LANs (VLANs) are set up. It also
// turns on IPv4 and IPv6 forwarding in h, so h routes between its
// segments; the hosts on each segment need a route through h to the
// other (see Host.RouteVia).
func StartAvahiReflector(t testing.TB, h *Host, hostName string) *Avahi {
	t.Helper()
	SkipUnlessAvahi(t)
	h.lab.run("ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	h.lab.run("ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")
	return startAvahi(t, h, hostName, true)
}

// RouteVia routes h's traffic to segment seg (its IPv4 and ULA prefixes)
// through router, which must share a segment with h's first interface.
func (h *Host) RouteVia(router *Host, seg int) {
	h.t.Helper()
	var via Iface
	found := false
	for _, ifc := range router.Ifaces {
		if ifc.Segment == h.Ifaces[0].Segment {
			via, found = ifc, true
		}
	}
	if !found {
		h.t.Fatalf("netlab: %s and %s share no segment", h.NS, router.NS)
	}
	v4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(seg), 0}), 24)
	ula := netip.MustParsePrefix(fmt.Sprintf("fd77:0:0:%x::/64", seg))
	h.IP("route", "add", v4.String(), "via", via.IPv4.Addr().String())
	h.IP("-6", "route", "add", ula.String(), "via", via.ULA.Addr().String())
}

func startAvahi(t testing.TB, h *Host, hostName string, reflect bool) *Avahi {
	t.Helper()
	SkipUnlessAvahi(t)
	if len(h.Ifaces) == 0 {
		t.Fatalf("netlab: StartAvahi in %s: no lab interface (avahi ignores loopback)", h.NS)
	}
	var ifaces []string
	for _, ifc := range h.Ifaces {
		ifaces = append(ifaces, ifc.Name)
	}
	dir := t.TempDir()
	if strings.HasPrefix(dir, "/run/") {
		// The daemon gets a fresh /run, which would hide its
		// configuration.
		t.Fatalf("netlab: temporary directory %s is under /run; set TMPDIR elsewhere", dir)
	}
	bus := filepath.Join(dir, "bus")
	busFile, avahiFile := filepath.Join(dir, "bus.conf"), filepath.Join(dir, "avahi-daemon.conf")
	if err := os.WriteFile(busFile, fmt.Appendf(nil, busConf, bus), 0o644); err != nil {
		t.Fatal(err)
	}
	reflector := "no"
	if reflect {
		reflector = "yes"
	}
	if err := os.WriteFile(avahiFile, fmt.Appendf(nil, avahiConf, hostName, strings.Join(ifaces, ","), reflector), 0o644); err != nil {
		t.Fatal(err)
	}
	progs := avahiPaths
	d := h.Start(t, "dbus-daemon@"+hostName, nil, progs["dbus-daemon"],
		"--config-file="+busFile, "--nofork", "--nopidfile", "--print-address")
	// dbus-daemon prints its address once it listens.
	d.WaitLine(t, "unix:path=", 10*time.Second)
	a := &Avahi{HostName: hostName, host: h, progs: progs, env: []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + bus}}
	// mount -n: without it libmount records the mount in /run/mount,
	// which is still the machine's /run at that point.
	a.Daemon = h.Start(t, "avahi-daemon@"+hostName, a.env, progs["unshare"],
		"--mount", "--propagation", "private", "--",
		progs["sh"], "-c", `mount=$1; shift; "$mount" -n -t tmpfs netlab-avahi /run && exec "$@"`, "sh", progs["mount"],
		progs["avahi-daemon"], "-f", avahiFile, "--no-rlimits", "--no-chroot", "--no-drop-root", "--no-proc-title")
	a.Daemon.WaitLine(t, "Server startup complete. Host name is "+hostName+".local.", 10*time.Second)
	return a
}

// Env returns what a program needs in its environment to reach this daemon
// (its D-Bus system bus address), for running other avahi clients with
// Host.Command or Host.Start.
func (a *Avahi) Env() []string { return slices.Clone(a.env) }

// Run runs one of avahi's tools (a program name, such as "avahi-resolve")
// to completion against this daemon, inside the daemon's host, and returns
// its standard output. It fails t if the tool fails or takes more than ten
// seconds.
func (a *Avahi) Run(t testing.TB, prog string, args ...string) string {
	t.Helper()
	path := a.progs[prog]
	if path == "" {
		var err error
		if path, err = exec.LookPath(prog); err != nil {
			t.Fatalf("netlab: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := a.host.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), a.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s on %s: %v: %s", prog, strings.Join(args, " "), a.HostName, err, stderr.String())
	}
	return string(out)
}

// Publish runs "avahi-publish -s instance serviceType port txt..." until the
// test ends (or the returned Process is stopped, which withdraws the
// service with a goodbye), and returns once avahi has established the
// service under that name; it fails t if avahi renames it.
func (a *Avahi) Publish(t testing.TB, instance, serviceType string, port int, txt ...string) *Process {
	t.Helper()
	args := append([]string{"-s", instance, serviceType, strconv.Itoa(port)}, txt...)
	p := a.host.Start(t, "avahi-publish@"+a.HostName, a.env, a.progs["avahi-publish"], args...)
	p.WaitLine(t, fmt.Sprintf("Established under name '%s'", instance), 10*time.Second)
	return p
}

// Browse runs "avahi-browse -rpt serviceType" once (resolve, parsable,
// terminate once avahi's list is more or less complete: about a second)
// and returns what it resolved. The output is logged.
func (a *Avahi) Browse(t testing.TB, serviceType string) []AvahiService {
	t.Helper()
	out := a.Run(t, "avahi-browse", "-rpt", serviceType)
	t.Logf("avahi-browse -rpt %s on %s:\n%s", serviceType, a.HostName, out)
	svcs, err := ParseAvahiBrowse(out)
	if err != nil {
		t.Fatal(err)
	}
	return svcs
}

// BrowseUntil runs Browse until ok accepts what it resolved, and returns
// that; it fails t, saying it saw no what, once timeout has passed. A
// single browse can miss a service: avahi, like any mDNS responder, does
// not multicast a record again within a second of the last time, so a
// browse that starts just after another client's can hear nothing.
func (a *Avahi) BrowseUntil(t testing.TB, serviceType string, timeout time.Duration, what string, ok func([]AvahiService) bool) []AvahiService {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		svcs := a.Browse(t, serviceType)
		if ok(svcs) {
			return svcs
		}
		if time.Now().After(deadline) {
			t.Fatalf("avahi-browse %s on %s: no %s within %v", serviceType, a.HostName, what, timeout)
		}
		// Each browse takes about a second (avahi's "all for now"),
		// which paces the polling.
	}
}

// Resolve runs "avahi-resolve -4 -n hostName" (family 4) or "-6" (family
// 6) and returns the address avahi found. It fails t if avahi finds none or
// prints something else than "hostName ADDRESS".
func (a *Avahi) Resolve(t testing.TB, family int, hostName string) netip.Addr {
	t.Helper()
	if family != 4 && family != 6 {
		t.Fatalf("netlab: Resolve: family %d, want 4 or 6", family)
	}
	fam := "-" + strconv.Itoa(family)
	out := a.Run(t, "avahi-resolve", fam, "-n", hostName)
	t.Logf("avahi-resolve %s -n %s on %s: %s", fam, hostName, a.HostName, strings.TrimSpace(out))
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != hostName {
		t.Fatalf("avahi-resolve %s -n %s on %s printed %q", fam, hostName, a.HostName, out)
	}
	addr, err := netip.ParseAddr(f[1])
	if err != nil {
		t.Fatalf("avahi-resolve %s -n %s on %s: %v", fam, hostName, a.HostName, err)
	}
	return addr
}

// AvahiService is one resolved service, one line of "avahi-browse -p -r".
// avahi lists a service once per interface and address family it was
// found on.
type AvahiService struct {
	Iface  string // interface, e.g. "eth0"
	Proto  string // "IPv4" or "IPv6": the family avahi heard it over
	Name   string // the instance name as avahi printed it (escaped)
	Type   string // e.g. "_lanshare._tcp"
	Domain string // e.g. "local"
	Host   string // the SRV target, e.g. "host-bbbb2222.local"
	// Instance is Name unescaped: the instance name itself.
	Instance string
	Addr     netip.Addr // the address the host name resolved to
	Port     int
	TXT      []string // the TXT strings, unescaped, in avahi's order
}

// ParseAvahiBrowse reads the resolved ("=") lines of avahi-browse's
// parsable output and ignores the others:
//
//	=;eth0;IPv4;bob\032\040bbbb\041;_lanshare._tcp;local;host-bbbb2222.local;10.77.0.1;4002;"name=bob" "v=1" "id=bbbb2222"
//
// avahi escapes the instance name as a DNS label in presentation format:
// '.' and '\' after a backslash, and bytes other than letters, digits, '-'
// and '_' as \DDD (decimal).
func ParseAvahiBrowse(out string) ([]AvahiService, error) {
	var svcs []AvahiService
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "=;") {
			continue
		}
		f := strings.SplitN(line, ";", 10)
		if len(f) != 10 {
			return nil, fmt.Errorf("short avahi-browse line %q", line)
		}
		instance, err := unescapeAvahi(f[3])
		if err != nil {
			return nil, fmt.Errorf("avahi-browse line %q: %v", line, err)
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
		svcs = append(svcs, AvahiService{
			Iface: f[1], Proto: f[2], Name: f[3], Type: f[4], Domain: f[5], Host: f[6],
			Instance: instance, Addr: addr, Port: port, TXT: txt,
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
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' {
				i++ // whatever follows is not the closing quote
			}
		}
		if i >= len(s) {
			return nil, errors.New("unterminated TXT string")
		}
		str, err := unescapeAvahi(s[1:i])
		if err != nil {
			return nil, fmt.Errorf("TXT %q: %v", s[:i+1], err)
		}
		out = append(out, str)
		s = s[i+1:]
	}
	return out, nil
}

// unescapeAvahi undoes avahi's escaping: \DDD is the byte of that decimal
// value, a backslash before anything else stands for that character.
func unescapeAvahi(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		switch {
		case len(rest) >= 3 && isDigit(rest[0]) && isDigit(rest[1]) && isDigit(rest[2]):
			v, _ := strconv.Atoi(rest[:3])
			if v > 255 {
				return "", fmt.Errorf("%q: escape \\%s is not a byte", s, rest[:3])
			}
			b.WriteByte(byte(v))
			i += 3
		case rest != "":
			b.WriteByte(rest[0])
			i++
		default:
			return "", fmt.Errorf("%q ends in a backslash", s)
		}
	}
	return b.String(), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

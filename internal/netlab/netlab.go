// Package netlab builds throwaway virtual LANs out of Linux network
// namespaces, so tests can send real multicast between real processes without
// ever touching the machine's own interfaces.
//
// A Lab is a set of hosts. Each host is a network namespace ("ip netns add")
// with loopback up. Hosts are joined into segments: a segment is a Linux
// bridge living in the lab's private switch namespace, and each host attached
// to it gets one end of a veth pair (named eth0, eth1, ... inside the host)
// while the other end is enslaved to the bridge. Nothing is created in the
// root namespace, so the lab cannot leak traffic onto the real network.
//
// Addressing is fixed and predictable: on segment s, host i gets
// 10.77.s.(i+1)/24, the link-local fe80::77:s:(i+1)/64 and the ULA
// fd77:0:0:s::(i+1)/64 (all without duplicate address detection, so they are
// usable at once). The first interface of a host also carries the multicast
// route 224.0.0.0/4. Bridges have multicast snooping off, so multicast floods
// every port like a dumb switch.
//
// Single returns one isolated namespace with only loopback, multicast-enabled,
// for tests that need several processes on one segment.
//
// A host's link can be made to look like a real one: Host.LimitRate caps
// its sending rate (tc htb) and Lab.Delay adds latency each way (a delay
// line of taps in the switch namespace, since netem is often not built).
// Host.Do runs code of this process inside a host, so that sockets it
// makes belong there.
//
// All names carry the test process id and a counter, so labs in parallel
// tests and packages never clash; everything is removed in t.Cleanup, and
// namespaces left behind by a test process that was killed are removed by
// the next lab. Tests
// that start processes inside a host must stop them in a cleanup registered
// after the lab was made (cleanups run last-in first-out).
//
// Labs need root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the ip(8) tool; Skip
// skips a test with the reason when they are missing. A package whose
// TestMain calls Main also runs its labs for an unprivileged user, inside a
// user namespace (see Main).
package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrUnavailable is returned by Available when this process cannot build
// labs; the wrapping error says why.
var ErrUnavailable = errors.New("netlab: network namespaces unavailable")

var (
	availOnce sync.Once
	availErr  error
	labSeq    atomic.Int64
)

// Available reports whether labs can be built here: it needs root, the ip
// tool and permission to create a network namespace (it creates and removes
// one probe namespace the first time it is called). The result is cached.
func Available() error {
	availOnce.Do(func() { availErr = probe() })
	return availErr
}

func probe() error {
	if err := platformErr(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		why := "not root (labs need CAP_NET_ADMIN and CAP_SYS_ADMIN)"
		if err := userNSUsable(); err != nil {
			why += ", and no user namespaces either: " + err.Error()
		} else {
			why += "; call netlab.Main from TestMain to run the tests in a user namespace"
		}
		return fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("%w: ip(8) not found: %v", ErrUnavailable, err)
	}
	name := fmt.Sprintf("lslab%d-probe", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: ip netns add: %v: %s", ErrUnavailable, err, bytes.TrimSpace(out))
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("%w: ip netns del: %v: %s", ErrUnavailable, err, bytes.TrimSpace(out))
	}
	return nil
}

var sweepOnce sync.Once

// sweepStale removes namespaces left by lab users that died without cleaning
// up (a test binary killed on timeout): names "lslab<pid>-..." whose process
// no longer exists. Names of live processes, and any other names, are left
// alone.
func sweepStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "lslab") {
			continue
		}
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(f[0], "lslab"), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if processGone(pid) {
			_ = exec.Command("ip", "netns", "del", f[0]).Run()
		}
	}
}

// TB is the part of testing.TB that labs use: *testing.T and *testing.B
// satisfy it, and so can a program that builds labs outside a test (a
// benchmark command). Fatalf and Skipf must not return (testing's call
// runtime.Goexit); Errorf reports a failure and returns; Cleanup registers
// a function to run, last-in first-out, once the lab's user is done.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Skip skips t, with the reason, when labs cannot be built here.
func Skip(t TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("needs network namespaces: %v", err)
	}
}

// Lab is a virtual LAN of hosts and segments. Its methods must be called
// from the test goroutine (they fail the test with t.Fatal).
type Lab struct {
	t      TB
	prefix string
	sw     string // switch namespace holding the bridges
	segs   int
	hosts  []*Host
	//lint:ignore U1000 used by Delay, which exists on Linux only
	delays int // delay lines made so far (see Delay)
}

// Host is one network namespace of a Lab (or made by Single).
type Host struct {
	// NS is the network namespace name, as for "ip netns exec".
	NS string
	// Index is the host's position in its lab (0 for Single).
	Index int
	// Ifaces lists the interfaces attached by the lab, in attach order.
	Ifaces []Iface

	t    TB
	lab  *Lab
	next int // next ethN
}

// Iface describes one lab interface inside a host.
type Iface struct {
	Name      string       // interface name inside the host, e.g. "eth0"
	Segment   int          // segment (bridge) index it is attached to
	IPv4      netip.Prefix // 10.77.seg.(i+1)/24
	LinkLocal netip.Addr   // fe80::77:seg:(i+1)
	ULA       netip.Prefix // fd77:0:0:seg::(i+1)/64

	port string // the other end of the veth, in the switch namespace
}

// New builds a lab of n hosts all attached to segment 0 and registers its
// removal with t.Cleanup. It skips t when labs are unavailable.
func New(t TB, n int) *Lab {
	t.Helper()
	Skip(t)
	sweepOnce.Do(sweepStale)
	l := &Lab{t: t, prefix: fmt.Sprintf("lslab%d-%d", os.Getpid(), labSeq.Add(1))}
	l.sw = l.prefix + "-sw"
	l.addNS(l.sw)
	l.ip(l.sw, "link", "set", "lo", "up")
	seg := l.AddSegment()
	for i := 0; i < n; i++ {
		l.Attach(l.AddHost(), seg)
	}
	return l
}

// Host returns host i.
func (l *Lab) Host(i int) *Host { return l.hosts[i] }

// Hosts returns all hosts in creation order.
func (l *Lab) Hosts() []*Host { return append([]*Host(nil), l.hosts...) }

// AddSegment creates a new bridge and returns its segment index.
func (l *Lab) AddSegment() int {
	l.t.Helper()
	s := l.segs
	if s > 255 {
		l.t.Fatalf("netlab: too many segments")
	}
	l.segs++
	br := fmt.Sprintf("br%d", s)
	l.ip(l.sw, "link", "add", br, "type", "bridge", "mcast_snooping", "0")
	l.ip(l.sw, "link", "set", br, "up")
	return s
}

// AddHost creates a new host with loopback up and no other interface; use
// Attach to plug it into a segment.
func (l *Lab) AddHost() *Host {
	l.t.Helper()
	i := len(l.hosts)
	if i > 250 {
		l.t.Fatalf("netlab: too many hosts")
	}
	h := &Host{NS: fmt.Sprintf("%s-h%d", l.prefix, i), Index: i, t: l.t, lab: l}
	l.addNS(h.NS)
	l.ip(h.NS, "link", "set", "lo", "up")
	l.hosts = append(l.hosts, h)
	return h
}

// Attach plugs host h into segment seg with a new interface and returns it.
// It may be called while processes run inside h (to test interfaces that
// appear at run time).
func (l *Lab) Attach(h *Host, seg int) Iface {
	l.t.Helper()
	if seg < 0 || seg >= l.segs {
		l.t.Fatalf("netlab: no segment %d", seg)
	}
	name := fmt.Sprintf("eth%d", h.next)
	h.next++
	port := fmt.Sprintf("h%ds%de%d", h.Index, seg, h.next-1)
	hostNum := h.Index + 1
	ifc := Iface{
		Name:      name,
		Segment:   seg,
		IPv4:      netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(seg), byte(hostNum)}), 24),
		LinkLocal: netip.MustParseAddr(fmt.Sprintf("fe80::77:%x:%x", seg, hostNum)),
		ULA:       netip.MustParsePrefix(fmt.Sprintf("fd77:0:0:%x::%x/64", seg, hostNum)),
		port:      port,
	}
	l.ip(l.sw, "link", "add", port, "type", "veth", "peer", "name", name, "netns", h.NS)
	l.ip(l.sw, "link", "set", port, "master", fmt.Sprintf("br%d", seg))
	l.ip(l.sw, "link", "set", port, "up")
	// Our own link-local address without DAD instead of a kernel-generated,
	// tentative one: usable at once and predictable.
	l.ip(h.NS, "link", "set", name, "addrgenmode", "none")
	l.ip(h.NS, "addr", "add", ifc.IPv4.String(), "dev", name)
	l.ip(h.NS, "addr", "add", ifc.LinkLocal.String()+"/64", "dev", name, "nodad")
	l.ip(h.NS, "addr", "add", ifc.ULA.String(), "dev", name, "nodad")
	l.ip(h.NS, "link", "set", name, "multicast", "on", "up")
	if len(h.Ifaces) == 0 {
		l.ip(h.NS, "route", "add", "224.0.0.0/4", "dev", name)
	}
	h.Ifaces = append(h.Ifaces, ifc)
	return ifc
}

// Single makes one isolated namespace with only loopback, up and
// multicast-capable, with IPv4 and IPv6 multicast routes on lo: one segment on which
// several processes started with Host.Command can reach each other. It skips
// t when namespaces are unavailable and is removed in t.Cleanup.
func Single(t TB) *Host {
	t.Helper()
	Skip(t)
	sweepOnce.Do(sweepStale)
	l := &Lab{t: t, prefix: fmt.Sprintf("lslab%d-%d", os.Getpid(), labSeq.Add(1))}
	h := &Host{NS: l.prefix + "-lo", t: t, lab: l}
	l.addNS(h.NS)
	l.ip(h.NS, "link", "set", "lo", "up", "multicast", "on")
	// src: without it the kernel picks 0.0.0.0, since 127.0.0.1 has host
	// scope and the route link scope.
	l.ip(h.NS, "route", "add", "224.0.0.0/4", "dev", "lo", "src", "127.0.0.1")
	// Loopback gets no IPv6 multicast route of its own.
	l.ip(h.NS, "-6", "route", "add", "ff00::/8", "dev", "lo", "table", "local")
	l.hosts = append(l.hosts, h)
	return h
}

// Command returns a command that runs name inside the host's namespace
// (through "ip netns exec"). The caller starts and waits for it.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// CommandContext is Command with a context that kills the process.
func (h *Host) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// IP runs "ip -n NS args..." for the host, failing the test on error; use it
// to change the host's links while a test runs (e.g. "link", "set", "eth1",
// "down").
func (h *Host) IP(args ...string) string {
	h.t.Helper()
	return h.lab.ip(h.NS, args...)
}

// Addr returns the host's first IPv4 address (the zero Addr for a host
// without lab interfaces).
func (h *Host) Addr() netip.Addr {
	if len(h.Ifaces) == 0 {
		return netip.Addr{}
	}
	return h.Ifaces[0].IPv4.Addr()
}

func (l *Lab) addNS(name string) {
	l.t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: ip netns add %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	l.t.Cleanup(func() {
		// Deleting the namespace destroys its veths and bridges with it
		// (once no process is left inside).
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			l.t.Errorf("netlab: ip netns del %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
	})
}

func (l *Lab) ip(ns string, args ...string) string {
	l.t.Helper()
	return l.run("ip", append([]string{"-n", ns}, args...)...)
}

// run runs prog (ip or tc) to completion, failing the lab's user on error,
// and returns its output.
func (l *Lab) run(prog string, args ...string) string {
	l.t.Helper()
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netlab: %s %s: %v: %s", prog, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out)
}

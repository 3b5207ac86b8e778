//go:build linux

package netlab

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The test binary re-executes itself inside lab hosts; these variables select
// what the child does.
const (
	envMode = "NETLAB_TEST_CHILD"
	envAddr = "NETLAB_TEST_ADDR"
)

func TestMain(m *testing.M) {
	switch os.Getenv(envMode) {
	case "":
		os.Exit(Main(m))
	case "listen":
		os.Exit(childListen(os.Getenv(envAddr)))
	case "send":
		os.Exit(childSend(os.Getenv(envAddr)))
	default:
		fmt.Fprintln(os.Stderr, "unknown child mode")
		os.Exit(2)
	}
}

// childListen prints "ready", then prints the first datagram it receives on
// addr (a multicast group is joined on the default interface).
func childListen(addr string) int {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var c *net.UDPConn
	if ua.IP.IsMulticast() {
		c, err = net.ListenMulticastUDP("udp4", nil, ua)
	} else {
		c, err = net.ListenUDP("udp4", ua)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	fmt.Println("ready")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("got %s from %s\n", buf[:n], from.IP)
	return 0
}

// childSend sends a few datagrams to addr, 100ms apart (the listener may
// still be joining the group).
func childSend(addr string) int {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	for i := 0; i < 20; i++ {
		if _, err := c.Write([]byte("hello")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(100 * time.Millisecond) // pacing a retry, not ordering the test
	}
	return 0
}

// child starts this test binary in h with the given mode and returns its
// stdout lines.
func child(t *testing.T, h *Host, mode, addr string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := h.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMode+"="+mode, envAddr+"="+addr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	return cmd, lines
}

func expectLine(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child exited before printing %q", prefix)
			}
			t.Logf("child: %s", l)
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %q", prefix)
		}
	}
}

func nsExists(t *testing.T, name string) bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

func TestLabUnicastBetweenHosts(t *testing.T) {
	lab := New(t, 2)
	h0, h1 := lab.Host(0), lab.Host(1)
	if got, want := h1.Addr().String(), "10.77.0.2"; got != want {
		t.Fatalf("host 1 address = %s, want %s", got, want)
	}
	_, lines := child(t, h1, "listen", h1.Addr().String()+":7777")
	expectLine(t, lines, "ready")
	child(t, h0, "send", h1.Addr().String()+":7777")
	if l := expectLine(t, lines, "got"); l != "got hello from 10.77.0.1" {
		t.Fatalf("listener printed %q", l)
	}
}

func TestLabMulticastBetweenHosts(t *testing.T) {
	lab := New(t, 3)
	var all []<-chan string
	for _, h := range []*Host{lab.Host(1), lab.Host(2)} {
		_, lines := child(t, h, "listen", "239.77.0.1:7777")
		expectLine(t, lines, "ready")
		all = append(all, lines)
	}
	child(t, lab.Host(0), "send", "239.77.0.1:7777")
	for _, lines := range all {
		if l := expectLine(t, lines, "got"); l != "got hello from 10.77.0.1" {
			t.Fatalf("listener printed %q", l)
		}
	}
}

func TestLabTwoSegments(t *testing.T) {
	lab := New(t, 2)
	seg := lab.AddSegment()
	router := lab.Host(1)
	ifc := lab.Attach(router, seg)
	if ifc.Name != "eth1" || ifc.IPv4.String() != "10.77.1.2/24" {
		t.Fatalf("second interface = %+v", ifc)
	}
	other := lab.AddHost()
	lab.Attach(other, seg)
	// other (10.77.1.3) reaches host 1 on segment 1 ...
	_, lines := child(t, router, "listen", "10.77.1.2:7777")
	expectLine(t, lines, "ready")
	child(t, other, "send", "10.77.1.2:7777")
	expectLine(t, lines, "got hello from 10.77.1.3")
	// ... but segment 1 and segment 0 are separate links: host 0 has no
	// interface there.
	if out := lab.Host(0).IP("-br", "addr"); strings.Contains(out, "10.77.1.") {
		t.Fatalf("host 0 has a segment 1 address: %s", out)
	}
}

func TestSingleLoopbackMulticast(t *testing.T) {
	h := Single(t)
	if out := h.IP("link", "show", "lo"); !strings.Contains(out, "MULTICAST") || !strings.Contains(out, "UP") {
		t.Fatalf("lo not up and multicast: %s", out)
	}
	_, lines := child(t, h, "listen", "239.77.0.1:7777")
	expectLine(t, lines, "ready")
	child(t, h, "send", "239.77.0.1:7777")
	expectLine(t, lines, "got hello from 127.0.0.1")
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	Skip(t)
	var names []string
	t.Run("lab", func(t *testing.T) {
		lab := New(t, 2)
		for _, h := range lab.Hosts() {
			names = append(names, h.NS)
		}
		names = append(names, lab.sw, Single(t).NS)
		for _, n := range names {
			if !nsExists(t, n) {
				t.Fatalf("namespace %s missing while the lab is alive", n)
			}
		}
	})
	for _, n := range names {
		if nsExists(t, n) {
			t.Errorf("namespace %s left behind after cleanup", n)
		}
	}
}

func TestAvailableExplainsWhy(t *testing.T) {
	err := Available()
	if os.Geteuid() != 0 && err == nil {
		t.Fatal("Available() = nil for a non-root user")
	}
	if err != nil && !strings.Contains(err.Error(), "netlab") {
		t.Fatalf("Available() = %v: want an error naming netlab", err)
	}
}

func TestSweepRemovesOnlyDeadOwners(t *testing.T) {
	Skip(t)
	// A pid that cannot exist (above pid_max) stands for a dead test process.
	dead := "lslab999999999-1-sw"
	mine := fmt.Sprintf("lslab%d-sweeptest", os.Getpid())
	for _, n := range []string{dead, mine} {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", n, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
	}
	sweepStale()
	if nsExists(t, dead) {
		t.Error("namespace of a dead process survived the sweep")
	}
	if !nsExists(t, mine) {
		t.Error("the sweep removed a live process's namespace")
	}
}

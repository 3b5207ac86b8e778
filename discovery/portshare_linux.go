package discovery

import (
	"bytes"
	"net"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// shared reports whether a socket other than ours is bound to our UDP
// port in this network namespace: another mDNS stack beside us (another
// agent, avahi, a one-shot browse). The kernel gives a unicast datagram
// to the port to one socket of those bound to it (SO_REUSEPORT picks one
// by a hash of the addresses), so a unicast answer to our query may reach
// theirs, not ours (RFC 6762 §15.1). It reads the kernel's socket tables
// (/proc/thread-self/net/udp and udp6); when they cannot be read it reports
// false, as when we are alone. A legacy querier's ephemeral port, and no
// sockets (nil), are never shared.
func (s *sockets) shared() bool {
	if s == nil || s.port != mdnsPort {
		return false
	}
	ours := map[uint64]bool{}
	for _, c := range []net.PacketConn{s.c4, s.c6} {
		if ino, ok := socketInode(c); ok {
			ours[ino] = true
		}
	}
	// The calling thread's namespace, which is the sockets' unless a test
	// moved one thread into a lab host (netlab's Host.Do): tables that do
	// not list our own sockets are another namespace's, and tell nothing.
	others, seen := false, 0
	for _, f := range []string{"udp", "udp6"} {
		b, err := os.ReadFile("/proc/thread-self/net/" + f)
		if err != nil {
			b, err = os.ReadFile("/proc/self/net/" + f) // before Linux 3.17
		}
		if err != nil {
			continue
		}
		for _, ino := range portHolders(b, s.port) {
			if ours[ino] {
				seen++
			} else {
				others = true
			}
		}
	}
	return others && seen > 0
}

// socketInode returns the inode number of c's socket, which the kernel's
// socket tables list it by.
func socketInode(c net.PacketConn) (uint64, bool) {
	sc, ok := c.(syscall.Conn)
	if c == nil || !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		return 0, false
	}
	return st.Ino, true
}

// portHolders returns the inodes of the sockets a kernel socket table
// (the text of /proc/net/udp or udp6) lists as bound to local port port.
// Lines it cannot read are skipped.
func portHolders(table []byte, port int) []uint64 {
	var out []uint64
	for i, line := range bytes.Split(table, []byte("\n")) {
		f := bytes.Fields(line)
		if i == 0 || len(f) < 10 {
			continue // the header, or not a socket
		}
		_, hexPort, ok := bytes.Cut(f[1], []byte(":"))
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(string(hexPort), 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		ino, err := strconv.ParseUint(string(f[9]), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, ino)
	}
	return out
}

//go:build linux

package discovery

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux the mDNS sockets are read and written with recvmsg and sendmsg
// made as raw system calls (syscall.RawSyscall) inside the descriptor's
// RawConn, rather than through golang.org/x/net's, which go through the Go
// scheduler's system-call path. The sockets are non-blocking, so these
// calls never block; waiting for a packet, or for room to send one, is
// the runtime poller's, with its deadlines, as before. What is saved is
// the scheduler's bookkeeping for a system call, above all waking its
// monitor thread (sysmon) from its idle sleep, which a system call made
// after an idle spell costs and which then polls every 20 µs for a
// while: an agent on a busy LAN is woken by every packet, so that was a
// good part of its CPU (a fifth of 100 lab agents' at start-up).

// rawSock is one mDNS socket's descriptor, for raw reads and writes.
// Reads are made by one goroutine at a time (the family's reader).
type rawSock struct {
	rc    syscall.RawConn
	local net.Addr
	oob   []byte // control messages of the read in progress
	from  unix.RawSockaddrAny
	zones map[uint32]string // IPv6 scope ID: interface name
	since time.Time         // when zones was started
}

func newRawSock(c net.PacketConn) (*rawSock, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	// Room for the packet-info and TTL (hop limit) messages, either family.
	oob := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo)+unix.CmsgSpace(4)+unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	return &rawSock{rc: rc, local: c.LocalAddr(), oob: oob}, nil
}

// read4 and read6 block for the next datagram; they fail once closed.
func (s *sockets) read4(buf []byte) (packet, error) { return s.r4.read(buf) }
func (s *sockets) read6(buf []byte) (packet, error) { return s.r6.read(buf) }

func (r *rawSock) read(buf []byte) (packet, error) {
	var n, oobn int
	var errno syscall.Errno
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&r.from)), Iov: &iov, Iovlen: 1, Control: &r.oob[0]}
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			msg.Namelen = uint32(unsafe.Sizeof(r.from))
			msg.SetControllen(len(r.oob))
			msg.Flags = 0
			var got uintptr
			got, _, errno = syscall.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), 0)
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // the poller waits for the next packet
			case 0:
				n, oobn = int(got), int(msg.Controllen)
			}
			return true
		}
	})
	if err != nil {
		return packet{}, err
	}
	if errno != 0 {
		return packet{}, &net.OpError{Op: "read", Net: "udp", Addr: r.local, Err: os.NewSyscallError("recvmsg", errno)}
	}
	p := packet{data: append([]byte(nil), buf[:n]...), hops: -1}
	r.parseControl(&p, r.oob[:oobn])
	switch r.from.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.from))
		p.src = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), netPort(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.from))
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.Scope_id != 0 && a.Is6() {
			a = a.WithZone(r.zone(sa.Scope_id))
		}
		p.src = netip.AddrPortFrom(a, netPort(sa.Port))
	}
	return p, nil
}

// unread reports whether a datagram waits in either socket's receive
// queue (SIOCINQ gives the size of the first; an empty datagram is
// missed, which costs nothing here).
func (s *sockets) unread() bool { return s.r4.unread() || s.r6.unread() }

func (r *rawSock) unread() bool {
	if r == nil {
		return false
	}
	var n int32
	var errno syscall.Errno
	err := r.rc.Control(func(fd uintptr) {
		_, _, errno = syscall.RawSyscall(unix.SYS_IOCTL, fd, unix.SIOCINQ, uintptr(unsafe.Pointer(&n)))
	})
	return err == nil && errno == 0 && n > 0
}

// parseControl takes the receiving interface and the TTL or hop limit
// from a datagram's control messages; a zero TTL means not reported.
func (r *rawSock) parseControl(p *packet, b []byte) {
	for len(b) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil {
			return
		}
		b = rest
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			p.ifindex = int((*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0])).Ifindex)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			p.ifindex = int((*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0])).Ifindex)
		case (h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TTL || h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_HOPLIMIT) && len(data) >= 4:
			if v := int(*(*int32)(unsafe.Pointer(&data[0]))); v > 0 {
				p.hops = v
			}
		}
	}
}

// zone names the interface of an IPv6 scope ID as the net package does
// (its name, else the number). Names are looked up again after a minute,
// as interfaces come and go.
func (r *rawSock) zone(id uint32) string {
	if r.zones == nil || time.Since(r.since) > time.Minute {
		r.zones, r.since = map[uint32]string{}, time.Now()
	}
	if name, ok := r.zones[id]; ok {
		return name
	}
	name := strconv.FormatUint(uint64(id), 10)
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		name = ifi.Name
	}
	if len(r.zones) < 256 {
		r.zones[id] = name
	}
	return name
}

// netPort reads a port kept in network byte order in a host integer.
func netPort(p uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p))[:])
}

// send writes b to dst out of interface ifindex, from source address src
// when it is valid (of dst's family), else from the one the kernel picks.
// The kernel picks the source of a multicast packet from the interface
// alone, but that of a unicast one from the route to dst: on a loopback
// interface the first is 0.0.0.0 and the second 127.0.0.1, and on a host
// with several addresses they may differ too. Peers keep records per
// source address, so our unicast answers and our multicast goodbyes must
// leave from the same one (see Service.source).
func (s *sockets) send(b []byte, ifindex int, src netip.Addr, dst netip.AddrPort) error {
	var sa unix.RawSockaddrAny
	var oob [64]byte
	oobn := 0
	var r *rawSock
	var c net.PacketConn
	port := (*[2]byte)(nil)
	if a := dst.Addr().Unmap(); a.Is4() {
		if s.r4 == nil {
			return fmt.Errorf("sending to %v: no IPv4 socket", dst)
		}
		r, c = s.r4, s.c4
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family, sa4.Addr = unix.AF_INET, a.As4()
		port = (*[2]byte)(unsafe.Pointer(&sa4.Port))
		if ifindex > 0 || src.Is4() {
			oobn = putControl(oob[:], unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			pi.Ifindex = int32(ifindex)
			if src.Is4() {
				pi.Spec_dst = src.As4()
			}
		}
	} else {
		if s.r6 == nil {
			return fmt.Errorf("sending to %v: no IPv6 socket", dst)
		}
		r, c = s.r6, s.c6
		sa6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
		sa6.Family, sa6.Addr = unix.AF_INET6, a.As16()
		if z := a.Zone(); z != "" {
			// The zone of a destination we send to out of interface
			// ifindex names that interface (we answer a link-local
			// address on the interface its packet came in on), so its
			// index is the scope, without asking the kernel for the
			// name's index: that look-up (a netlink dump of every
			// interface, per unicast answer) was 6 % of the agents' CPU
			// while a hundred started together.
			switch id, err := strconv.ParseUint(z, 10, 32); {
			case ifindex > 0:
				sa6.Scope_id = uint32(ifindex)
			case err == nil:
				sa6.Scope_id = uint32(id)
			default:
				if ifi, err := net.InterfaceByName(z); err == nil {
					sa6.Scope_id = uint32(ifi.Index)
				}
			}
		}
		port = (*[2]byte)(unsafe.Pointer(&sa6.Port))
		if ifindex > 0 || src.Is6() && !src.Is4In6() {
			oobn = putControl(oob[:], unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			pi.Ifindex = uint32(ifindex)
			if src.Is6() && !src.Is4In6() {
				pi.Addr = src.As16()
			}
		}
	}
	binary.BigEndian.PutUint16(port[:], dst.Port())
	iov := unix.Iovec{}
	if len(b) > 0 {
		iov.Base = &b[0]
		iov.SetLen(len(b))
	}
	msg := unix.Msghdr{Name: (*byte)(unsafe.Pointer(&sa)), Namelen: uint32(unsafe.Sizeof(sa)), Iov: &iov, Iovlen: 1}
	if oobn > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(oobn)
	}
	var errno syscall.Errno
	_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := r.rc.Write(func(fd uintptr) bool {
		for {
			_, _, errno = syscall.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&msg)), 0)
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // the poller waits for room, until the deadline
			}
			return true
		}
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("sendmsg", errno)
	}
	if err != nil {
		return &net.OpError{Op: "write", Net: "udp", Source: r.local, Addr: net.UDPAddrFromAddrPort(dst), Err: err}
	}
	return nil
}

// putControl writes a control message header of level and type for n
// bytes of data at the start of b, and returns the space it takes.
func putControl(b []byte, level, typ int32, n int) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(n))
	return unix.CmsgSpace(n)
}

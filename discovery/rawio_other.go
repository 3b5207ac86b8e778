//go:build !linux

package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// rawSock is Linux's (see rawio_linux.go); elsewhere the sockets are
// read and written through golang.org/x/net.
type rawSock struct{}

func newRawSock(net.PacketConn) (*rawSock, error) { return &rawSock{}, nil }

// unread reports whether a datagram waits in a socket's receive queue;
// here it cannot tell, and says no.
func (s *sockets) unread() bool { return false }

// send writes b to dst out of interface ifindex, from source address src
// when it is valid (of dst's family), else from the one the kernel picks.
// The kernel picks the source of a multicast packet from the interface
// alone, but that of a unicast one from the route to dst: on a loopback
// interface the first is 0.0.0.0 and the second 127.0.0.1, and on a host
// with several addresses they may differ too. Peers keep records per
// source address, so our unicast answers and our multicast goodbyes must
// leave from the same one (see Service.source).
func (s *sockets) send(b []byte, ifindex int, src netip.Addr, dst netip.AddrPort) error {
	ua := net.UDPAddrFromAddrPort(dst)
	if dst.Addr().Is4() || dst.Addr().Is4In6() {
		if s.p4 == nil {
			return fmt.Errorf("sending to %v: no IPv4 socket", dst)
		}
		ua = net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()))
		cm := &ipv4.ControlMessage{IfIndex: ifindex}
		if src.Is4() {
			cm.Src = src.AsSlice()
		}
		_ = s.p4.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := s.p4.WriteTo(b, cm, ua)
		return err
	}
	if s.p6 == nil {
		return fmt.Errorf("sending to %v: no IPv6 socket", dst)
	}
	cm := &ipv6.ControlMessage{IfIndex: ifindex}
	if src.Is6() && !src.Is4In6() {
		cm.Src = src.WithZone("").AsSlice()
	}
	_ = s.p6.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := s.p6.WriteTo(b, cm, ua)
	return err
}

// read4 and read6 block for the next datagram; they fail once closed.
func (s *sockets) read4(buf []byte) (packet, error) {
	n, cm, src, err := s.p4.ReadFrom(buf)
	if err != nil {
		return packet{}, err
	}
	p := packet{data: append([]byte(nil), buf[:n]...), hops: -1}
	if cm != nil {
		p.ifindex = cm.IfIndex
		if cm.TTL > 0 { // zero: not reported (no packet arrives with TTL 0)
			p.hops = cm.TTL
		}
	}
	if ua, ok := src.(*net.UDPAddr); ok {
		p.src = ua.AddrPort()
		p.src = netip.AddrPortFrom(p.src.Addr().Unmap(), p.src.Port())
	}
	return p, nil
}

func (s *sockets) read6(buf []byte) (packet, error) {
	n, cm, src, err := s.p6.ReadFrom(buf)
	if err != nil {
		return packet{}, err
	}
	p := packet{data: append([]byte(nil), buf[:n]...), hops: -1}
	if cm != nil {
		p.ifindex = cm.IfIndex
		if cm.HopLimit > 0 {
			p.hops = cm.HopLimit
		}
	}
	if ua, ok := src.(*net.UDPAddr); ok {
		p.src = ua.AddrPort()
	}
	return p, nil
}

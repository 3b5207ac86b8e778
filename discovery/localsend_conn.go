package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// lsSockets are LocalSend's UDP sockets: one per family, bound to the
// wildcard address and the discovery port, shared (SO_REUSEADDR and
// SO_REUSEPORT) with LocalSend apps and other programs, as the mDNS
// sockets are (see sockets). Multicast goes out with TTL / hop limit 1, as
// the apps send it, with loopback on. Either may be nil when the family is
// unavailable.
type lsSockets struct {
	c4 net.PacketConn
	p4 *ipv4.PacketConn
	c6 net.PacketConn
	p6 *ipv6.PacketConn
}

func openLSSockets(port int) (*lsSockets, error) {
	lc := net.ListenConfig{Control: reuse}
	s := &lsSockets{}
	var err4, err6 error
	s.c4, err4 = lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err4 == nil {
		s.p4 = ipv4.NewPacketConn(s.c4)
		err4 = errors.Join(
			s.p4.SetControlMessage(ipv4.FlagInterface, true),
			s.p4.SetMulticastTTL(1),
			s.p4.SetMulticastLoopback(true),
		)
		if err4 != nil {
			s.c4.Close()
			s.c4, s.p4 = nil, nil
		}
	}
	// "udp6" sockets are IPv6-only (IPV6_V6ONLY), so they do not clash
	// with the IPv4 ones on the port.
	s.c6, err6 = lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", port))
	if err6 == nil {
		s.p6 = ipv6.NewPacketConn(s.c6)
		err6 = errors.Join(
			s.p6.SetControlMessage(ipv6.FlagInterface, true),
			s.p6.SetMulticastHopLimit(1),
			s.p6.SetMulticastLoopback(true),
		)
		if err6 != nil {
			s.c6.Close()
			s.c6, s.p6 = nil, nil
		}
	}
	if s.c4 == nil && s.c6 == nil {
		return nil, fmt.Errorf("%w: LocalSend port %d: udp4: %v; udp6: %v", ErrNoSocket, port, err4, err6)
	}
	return s, nil
}

// join joins LocalSend's groups on ifi for the requested families and
// reports which joins succeeded.
func (s *lsSockets) join(ifi *net.Interface, v4, v6 bool) (ok4, ok6 bool, err error) {
	var errs []error
	if s.p4 != nil && v4 {
		if err := s.p4.JoinGroup(ifi, &net.UDPAddr{IP: LocalSendGroup4.AsSlice()}); err != nil {
			errs = append(errs, fmt.Errorf("joining %v on %s: %w", LocalSendGroup4, ifi.Name, err))
		} else {
			ok4 = true
		}
	}
	if s.p6 != nil && v6 {
		if err := s.p6.JoinGroup(ifi, &net.UDPAddr{IP: LocalSendGroup6.AsSlice()}); err != nil {
			errs = append(errs, fmt.Errorf("joining %v on %s: %w", LocalSendGroup6, ifi.Name, err))
		} else {
			ok6 = true
		}
	}
	return ok4, ok6, errors.Join(errs...)
}

// leave leaves the groups on ifi; errors are ignored (it may be gone).
func (s *lsSockets) leave(ifi *net.Interface) {
	if s.p4 != nil {
		_ = s.p4.LeaveGroup(ifi, &net.UDPAddr{IP: LocalSendGroup4.AsSlice()})
	}
	if s.p6 != nil {
		_ = s.p6.LeaveGroup(ifi, &net.UDPAddr{IP: LocalSendGroup6.AsSlice()})
	}
}

// send writes b to dst out of interface ifindex.
func (s *lsSockets) send(b []byte, ifindex int, dst netip.AddrPort) error {
	ua := net.UDPAddrFromAddrPort(dst)
	if dst.Addr().Is4() {
		if s.p4 == nil {
			return fmt.Errorf("sending to %v: no IPv4 socket", dst)
		}
		_ = s.p4.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := s.p4.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifindex}, ua)
		return err
	}
	if s.p6 == nil {
		return fmt.Errorf("sending to %v: no IPv6 socket", dst)
	}
	_ = s.p6.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := s.p6.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifindex}, ua)
	return err
}

// read4 and read6 block for the next datagram (at most len(buf) bytes of
// it: a datagram that fills buf may have been cut); they fail once closed.
func (s *lsSockets) read4(buf []byte) (packet, error) {
	n, cm, src, err := s.p4.ReadFrom(buf)
	if err != nil {
		return packet{}, err
	}
	p := packet{data: append([]byte(nil), buf[:n]...), hops: -1}
	if cm != nil {
		p.ifindex = cm.IfIndex
	}
	if ua, ok := src.(*net.UDPAddr); ok {
		p.src = ua.AddrPort()
		p.src = netip.AddrPortFrom(p.src.Addr().Unmap(), p.src.Port())
	}
	return p, nil
}

func (s *lsSockets) read6(buf []byte) (packet, error) {
	n, cm, src, err := s.p6.ReadFrom(buf)
	if err != nil {
		return packet{}, err
	}
	p := packet{data: append([]byte(nil), buf[:n]...), hops: -1}
	if cm != nil {
		p.ifindex = cm.IfIndex
	}
	if ua, ok := src.(*net.UDPAddr); ok {
		p.src = ua.AddrPort()
	}
	return p, nil
}

func (s *lsSockets) close() {
	if s.c4 != nil {
		s.c4.Close()
	}
	if s.c6 != nil {
		s.c6.Close()
	}
}

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

var (
	group4 = netip.AddrPortFrom(netip.AddrFrom4([4]byte{224, 0, 0, 251}), mdnsPort)
	group6 = netip.AddrPortFrom(netip.MustParseAddr("ff02::fb"), mdnsPort)
)

// writeTimeout bounds a send, so a stuck interface cannot stall the loop.
const writeTimeout = time.Second

// packet is one received datagram.
type packet struct {
	data    []byte
	src     netip.AddrPort // with zone for IPv6 link-local
	ifindex int
	// hops is the IP TTL (IPv4) or hop limit (IPv6) the packet arrived
	// with, or -1 when the socket did not report it.
	hops int
}

// sockets are our mDNS sockets: one per address family, bound to the
// wildcard address so one socket serves every interface. The interface a
// packet arrived on comes from IP_PKTINFO / IPV6_PKTINFO, and every send
// names its outgoing interface the same way. Either may be nil when the
// family is unavailable.
type sockets struct {
	c4   net.PacketConn
	p4   *ipv4.PacketConn
	c6   net.PacketConn
	p6   *ipv6.PacketConn
	r4   *rawSock // c4's, or nil: see rawio_linux.go
	r6   *rawSock // c6's, or nil
	port int      // local port: 5353, or an ephemeral one for a legacy querier
}

// openSockets opens the IPv4 and IPv6 sockets on port (0 for ephemeral). It
// fails with ErrNoSocket only when neither family works.
func openSockets(port int) (*sockets, error) {
	lc := net.ListenConfig{Control: reuse}
	s := &sockets{port: port}
	var err4, err6 error
	s.c4, err4 = lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err4 == nil {
		growRecvBuffer(s.c4, recvBuffer)
		s.p4 = ipv4.NewPacketConn(s.c4)
		err4 = errors.Join(
			s.p4.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst|ipv4.FlagTTL, true),
			s.p4.SetMulticastTTL(255),
			s.p4.SetTTL(255),
			s.p4.SetMulticastLoopback(true),
		)
		if err4 == nil {
			s.r4, err4 = newRawSock(s.c4)
		}
		if err4 != nil {
			s.c4.Close()
			s.c4, s.p4 = nil, nil
		}
	}
	s.c6, err6 = lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", port))
	if err6 == nil {
		growRecvBuffer(s.c6, recvBuffer)
		s.p6 = ipv6.NewPacketConn(s.c6)
		err6 = errors.Join(
			s.p6.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst|ipv6.FlagHopLimit, true),
			s.p6.SetMulticastHopLimit(255),
			s.p6.SetHopLimit(255),
			s.p6.SetMulticastLoopback(true),
		)
		if err6 == nil {
			s.r6, err6 = newRawSock(s.c6)
		}
		if err6 != nil {
			s.c6.Close()
			s.c6, s.p6 = nil, nil
		}
	}
	if s.c4 == nil && s.c6 == nil {
		return nil, fmt.Errorf("%w: udp4: %v; udp6: %v", ErrNoSocket, err4, err6)
	}
	if s.c4 != nil {
		s.port = s.c4.LocalAddr().(*net.UDPAddr).Port
	} else {
		s.port = s.c6.LocalAddr().(*net.UDPAddr).Port
	}
	return s, nil
}

// join joins the mDNS groups on ifi for the requested families and reports
// which joins succeeded.
func (s *sockets) join(ifi *net.Interface, v4, v6 bool) (ok4, ok6 bool, err error) {
	var errs []error
	if s.p4 != nil && v4 {
		if err := s.p4.JoinGroup(ifi, &net.UDPAddr{IP: group4.Addr().AsSlice()}); err != nil {
			errs = append(errs, fmt.Errorf("joining %v on %s: %w", group4.Addr(), ifi.Name, err))
		} else {
			ok4 = true
		}
	}
	if s.p6 != nil && v6 {
		if err := s.p6.JoinGroup(ifi, &net.UDPAddr{IP: group6.Addr().AsSlice()}); err != nil {
			errs = append(errs, fmt.Errorf("joining %v on %s: %w", group6.Addr(), ifi.Name, err))
		} else {
			ok6 = true
		}
	}
	return ok4, ok6, errors.Join(errs...)
}

// leave leaves the groups on ifi; errors are ignored (the interface may be
// gone already).
func (s *sockets) leave(ifi *net.Interface) {
	if s.p4 != nil {
		_ = s.p4.LeaveGroup(ifi, &net.UDPAddr{IP: group4.Addr().AsSlice()})
	}
	if s.p6 != nil {
		_ = s.p6.LeaveGroup(ifi, &net.UDPAddr{IP: group6.Addr().AsSlice()})
	}
}

func (s *sockets) close() {
	if s.c4 != nil {
		s.c4.Close()
	}
	if s.c6 != nil {
		s.c6.Close()
	}
}

//go:build linux

package lsdouble

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix" // only for SO_REUSEPORT, which syscall lacks on Linux
)

// reuse sets SO_REUSEADDR and SO_REUSEPORT before bind, as the app does, so
// that several devices (and the app) on one host share the port.
func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); serr != nil {
			return
		}
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// control runs f on the socket's descriptor and returns its error.
func control(conn *net.UDPConn, f func(fd int) error) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// listenGroup4 binds 0.0.0.0:port, joins group on the interface with
// address ifAddr, sends there, with loopback on and TTL 1
// (bind_multicast_socket_v4 in packages/core/src/multicast/socket.rs).
func listenGroup4(port int, group, ifAddr netip.Addr) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reuse}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	conn := pc.(*net.UDPConn)
	err = control(conn, func(fd int) error {
		mreq := &syscall.IPMreq{Multiaddr: group.As4(), Interface: ifAddr.As4()}
		if err := syscall.SetsockoptIPMreq(fd, syscall.IPPROTO_IP, syscall.IP_ADD_MEMBERSHIP, mreq); err != nil {
			return fmt.Errorf("joining %v: %w", group, err)
		}
		if err := syscall.SetsockoptInet4Addr(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, ifAddr.As4()); err != nil {
			return fmt.Errorf("IP_MULTICAST_IF: %w", err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_LOOP, 1); err != nil {
			return fmt.Errorf("IP_MULTICAST_LOOP: %w", err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, 1); err != nil {
			return fmt.Errorf("IP_MULTICAST_TTL: %w", err)
		}
		return nil
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// listenGroup6 binds [::]:port (IPv6 only), joins group on interface
// index ifIndex, sends there, loopback on, hop limit 1.
func listenGroup6(port int, group netip.Addr, ifIndex int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reuse}
	pc, err := lc.ListenPacket(context.Background(), "udp6", "[::]:"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	conn := pc.(*net.UDPConn)
	err = control(conn, func(fd int) error {
		mreq := &syscall.IPv6Mreq{Multiaddr: group.As16(), Interface: uint32(ifIndex)}
		if err := syscall.SetsockoptIPv6Mreq(fd, syscall.IPPROTO_IPV6, syscall.IPV6_JOIN_GROUP, mreq); err != nil {
			return fmt.Errorf("joining %v: %w", group, err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_IF, ifIndex); err != nil {
			return fmt.Errorf("IPV6_MULTICAST_IF: %w", err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_LOOP, 1); err != nil {
			return fmt.Errorf("IPV6_MULTICAST_LOOP: %w", err)
		}
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_MULTICAST_HOPS, 1); err != nil {
			return fmt.Errorf("IPV6_MULTICAST_HOPS: %w", err)
		}
		return nil
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

//go:build !linux

package lsdouble

import (
	"errors"
	"net"
	"net/netip"
)

var errNoMulticast = errors.New("lsdouble: multicast is only implemented on Linux")

func listenGroup4(int, netip.Addr, netip.Addr) (*net.UDPConn, error) { return nil, errNoMulticast }

func listenGroup6(int, netip.Addr, int) (*net.UDPConn, error) { return nil, errNoMulticast }

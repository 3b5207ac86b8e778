//go:build !linux

package discovery

import "net"

// growRecvBuffer asks for a receive buffer of n bytes on c (the system may
// cap it). Failing is not fatal: the default then applies.
func growRecvBuffer(c net.PacketConn, n int) {
	if uc, ok := c.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(n)
	}
}

// recvBufferSize is not known here.
func recvBufferSize(net.PacketConn) int { return 0 }

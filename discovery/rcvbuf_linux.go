package discovery

import (
	"net"

	"golang.org/x/sys/unix"
)

// growRecvBuffer asks for a receive buffer of n bytes on c: beyond
// net.core.rmem_max when we may (SO_RCVBUFFORCE needs CAP_NET_ADMIN),
// else up to it. Failing is not fatal: the kernel's default then applies.
func growRecvBuffer(c net.PacketConn, n int) {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return
	}
	forced := false
	_ = raw.Control(func(fd uintptr) {
		forced = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) == nil
	})
	if !forced {
		_ = uc.SetReadBuffer(n)
	}
}

// recvBufferSize returns the receive buffer the kernel gave c (twice what
// was asked, for its bookkeeping), or 0 if unknown.
func recvBufferSize(c net.PacketConn) int {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = raw.Control(func(fd uintptr) {
		n, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return n
}

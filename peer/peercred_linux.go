package peer

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// ownerConn reports whether the process at the other end of c, a
// connection on the control socket, runs as this agent's user (or as
// root). The socket's mode already keeps other users out; this holds
// also in the moment between the socket's creation and its chmod, and
// when the socket is in a directory others may enter.
func ownerConn(c net.Conn) bool {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	uid := -1
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid == os.Getuid() || uid == 0
}

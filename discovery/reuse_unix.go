//go:build unix && !solaris

package discovery

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reuse lets us share port 5353 with other mDNS stacks (avahi, another
// lanshare): both SO_REUSEADDR and SO_REUSEPORT, since Linux requires every
// socket on the port to agree on one of them.
func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

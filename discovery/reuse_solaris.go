package discovery

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reuse is reuse_unix.go's where there is no SO_REUSEPORT (Solaris,
// illumos): SO_REUSEADDR alone shares the port.
func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

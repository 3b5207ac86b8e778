package discovery

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// reuse lets us share port 5353 with other mDNS stacks (Windows' own
// responder, Bonjour): SO_REUSEADDR is Windows' way to share a UDP port.
func reuse(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, windows.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

package peer

import (
	"errors"
	"syscall"

	"golang.org/x/sys/windows"
)

// AddrInUse reports whether err says an address (a port) is in use.
// Windows reports WSAEADDRINUSE, which errors.Is does not take for
// syscall.EADDRINUSE.
func AddrInUse(err error) bool {
	return errors.Is(err, windows.WSAEADDRINUSE) || errors.Is(err, syscall.EADDRINUSE)
}

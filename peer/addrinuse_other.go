//go:build !windows

package peer

import (
	"errors"
	"syscall"
)

// AddrInUse reports whether err says an address (a port) is in use.
func AddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

//go:build unix && !solaris

package main

import "golang.org/x/sys/unix"

// sharePort lets the socket fd share its port (mDNS's 5353) with the
// agent's own socket in the same namespace: SO_REUSEADDR and SO_REUSEPORT.
func sharePort(fd uintptr) error {
	if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
}

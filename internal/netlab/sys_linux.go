package netlab

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// platformErr is nil: Linux has network namespaces.
func platformErr() error { return nil }

// processGone reports whether no process pid runs.
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// privateRun mounts a tmpfs on /run inside our own mount namespace, so that
// "ip netns add" can create /run/netns (the real one belongs to the real
// root).
func privateRun() error {
	if err := unix.Access("/run", unix.W_OK); err == nil {
		return nil
	}
	return unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")
}

//go:build unix

package peer

import "syscall"

// openFileLimit is how many descriptors the process may open: its soft
// limit, which Go raises to the hard one at start.
func openFileLimit() int64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return int64(min(r.Cur, 1<<30)) // RLIM_INFINITY is all ones
}

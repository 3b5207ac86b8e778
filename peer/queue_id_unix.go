//go:build unix

package peer

import (
	"io/fs"
	"syscall"
)

// statID returns the device and inode of fi, a Stat of a file: what tells
// a file from another that took its name.
func statID(fi fs.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true
}

package peer

import (
	"io/fs"
	"syscall"
)

// stampOf returns what fi says of a file that changes when its bytes
// do; see partialStamp. Linux keeps a change time that no system call sets
// (since 6.13, ext4, XFS, Btrfs and tmpfs make it fine-grained once it was
// read, so that any later change shows).
func stampOf(fi fs.FileInfo) (partialStamp, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return partialStamp{}, false
	}
	return partialStamp{
		Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: fi.Size(),
		MTime: fi.ModTime().UnixNano(), CTime: st.Ctim.Nano(),
	}, true
}

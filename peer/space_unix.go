//go:build unix && !openbsd && !netbsd && !solaris

package peer

import "golang.org/x/sys/unix"

// freeSpace returns the bytes available to an unprivileged writer in the
// file system holding dir.
func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// freeFiles returns how many more files the file system holding dir can
// hold (its free inodes) and how many it can hold in all; total is 0
// where it does not count them (btrfs makes inodes as it needs them).
func freeFiles(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return uint64(st.Ffree), uint64(st.Files), nil
}

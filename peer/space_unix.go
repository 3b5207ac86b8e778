//go:build unix

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
// hold (its free inodes), and whether it counts them at all: some (btrfs)
// report no inode count, and make inodes as they need them.
func freeFiles(dir string) (uint64, bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	if st.Files == 0 {
		return 0, false, nil
	}
	return uint64(st.Ffree), true, nil
}

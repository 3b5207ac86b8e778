//go:build netbsd || solaris

package peer

import "golang.org/x/sys/unix"

// freeSpace is space_unix.go's, from statvfs: NetBSD and Solaris have no statfs.
func freeSpace(dir string) (uint64, error) {
	var st unix.Statvfs_t
	if err := unix.Statvfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * st.Frsize, nil
}

// freeFiles is space_unix.go's, from statvfs.
func freeFiles(dir string) (free, total uint64, err error) {
	var st unix.Statvfs_t
	if err := unix.Statvfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Favail, st.Files, nil
}

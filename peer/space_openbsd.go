package peer

import "golang.org/x/sys/unix"

// freeSpace is space_unix.go's, with OpenBSD's field names.
func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.F_bavail) * uint64(st.F_bsize), nil
}

// freeFiles is space_unix.go's, with OpenBSD's field names.
func freeFiles(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return uint64(max(st.F_ffree, 0)), st.F_files, nil
}

package peer

import "golang.org/x/sys/unix"

// renameNoReplace renames like renameat, but fails with EEXIST rather than
// replace an existing new name, where the file system can say so.
func renameNoReplace(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	err := unix.Renameat2(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// A file system or kernel without the flag: the caller checked
		// that the name was free.
		err = unix.Renameat(olddirfd, oldpath, newdirfd, newpath)
	}
	return err
}

// renameExcl renames like renameat, but only where it can refuse to
// replace an existing new name (EEXIST): it fails with EINVAL or ENOSYS,
// having done nothing, where the kernel or file system cannot.
func renameExcl(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.Renameat2(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_NOREPLACE)
}

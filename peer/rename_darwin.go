package peer

import "golang.org/x/sys/unix"

// renameNoReplace renames like renameat, but fails with EEXIST rather than
// replace an existing new name, where the file system can say so.
func renameNoReplace(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	err := unix.RenameatxNp(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_EXCL)
	if err == unix.EINVAL || err == unix.ENOTSUP {
		// A file system without the flag: the caller checked that the
		// name was free.
		err = unix.Renameat(olddirfd, oldpath, newdirfd, newpath)
	}
	return err
}

// renameExcl renames like renameat, but only where it can refuse to
// replace an existing new name (EEXIST): it fails with EINVAL or ENOTSUP,
// having done nothing, where the file system cannot.
func renameExcl(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.RenameatxNp(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_EXCL)
}

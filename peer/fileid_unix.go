//go:build unix

package peer

import (
	"io/fs"
	"os"
	"syscall"
)

// fileIdentity returns the identity of the file name under root, which
// a hard link keeps and another file does not have, and its Lstat.
func fileIdentity(root *os.Root, name string) (fileID, fs.FileInfo, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return fileID{}, nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, fi, nil
	}
	return fileID{}, fi, nil
}

// openIdentity is fileIdentity of the open file f: an fstat, with no
// path to walk.
func openIdentity(f *os.File) (fileID, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, fi, nil
	}
	return fileID{}, fi, nil
}

// sysNoHardLinks reports the errors of a hard link that mean none can be
// made, besides those of noHardLinks: none here.
func sysNoHardLinks(error) bool { return false }

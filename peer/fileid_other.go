//go:build !unix && !windows

package peer

import (
	"io/fs"
	"os"
)

// fileIdentity returns the file's Lstat; this platform gives no identity,
// so no file is ever taken for already there.
func fileIdentity(root *os.Root, name string) (fileID, fs.FileInfo, error) {
	fi, err := root.Lstat(name)
	return fileID{}, fi, err
}

// openIdentity is fileIdentity of the open file f.
func openIdentity(f *os.File) (fileID, fs.FileInfo, error) {
	fi, err := f.Stat()
	return fileID{}, fi, err
}

// sysNoHardLinks reports the errors of a hard link that mean none can be
// made, besides those of noHardLinks: none here.
func sysNoHardLinks(error) bool { return false }

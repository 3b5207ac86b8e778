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

//go:build windows

package peer

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// fileIdentity returns the identity of the file name under root, which
// a hard link keeps and another file does not have (its volume serial
// number and file index), and its Lstat.
func fileIdentity(root *os.Root, name string) (fileID, fs.FileInfo, error) {
	fi, err := root.Lstat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return fileID{}, fi, err
	}
	f, err := root.Open(name)
	if err != nil {
		return fileID{}, nil, err
	}
	defer f.Close()
	var d syscall.ByHandleFileInformation
	if err := syscall.GetFileInformationByHandle(syscall.Handle(f.Fd()), &d); err != nil {
		return fileID{}, fi, nil
	}
	return fileID{dev: uint64(d.VolumeSerialNumber), ino: uint64(d.FileIndexHigh)<<32 | uint64(d.FileIndexLow)}, fi, nil
}

// openIdentity is fileIdentity of the open file f.
func openIdentity(f *os.File) (fileID, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return fileID{}, fi, err
	}
	var d syscall.ByHandleFileInformation
	if err := syscall.GetFileInformationByHandle(syscall.Handle(f.Fd()), &d); err != nil {
		return fileID{}, fi, nil
	}
	return fileID{dev: uint64(d.VolumeSerialNumber), ino: uint64(d.FileIndexHigh)<<32 | uint64(d.FileIndexLow)}, fi, nil
}

// Windows errors of CreateHardLink on a volume without hard links (FAT)
// or on a file with too many.
const (
	errorInvalidFunction syscall.Errno = 1
	errorNotSupported    syscall.Errno = 50
	errorTooManyLinks    syscall.Errno = 1142
)

// sysNoHardLinks reports the errors of a hard link that mean none can be
// made, besides those of noHardLinks.
func sysNoHardLinks(err error) bool {
	return errors.Is(err, errorInvalidFunction) || errors.Is(err, errorNotSupported) || errors.Is(err, errorTooManyLinks)
}

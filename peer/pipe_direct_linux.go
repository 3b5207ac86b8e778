package peer

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setDirect turns direct I/O (O_DIRECT) on or off for f and reports
// whether it is now in the requested state. File systems without direct
// I/O refuse to turn it on.
func setDirect(f *os.File, on bool) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			return
		}
		if on {
			flags |= unix.O_DIRECT
		} else {
			flags &^= unix.O_DIRECT
		}
		_, err = unix.FcntlInt(fd, unix.F_SETFL, flags)
		ok = err == nil
	})
	return ok
}

// directRefused reports whether err means the file system would not take
// a direct write (alignment or support), so a buffered one should follow.
func directRefused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
}

// reopenCached opens f's file again, for writing through the page cache
// while f has direct I/O on.
func reopenCached(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var name string
	if err := rc.Control(func(fd uintptr) { name = "/proc/self/fd/" + strconv.Itoa(int(fd)) }); err != nil {
		return nil, err
	}
	// The link names the very file f has open, wherever it is.
	return os.OpenFile(name, os.O_WRONLY, 0)
}

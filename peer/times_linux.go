package peer

import (
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setFileTimes gives the open file f, name under root, the access and
// modification time t: futimens on f, one system call with no path to
// walk (os.Root.Chtimes resolves the name again: a readlinkat and a
// utimensat).
func setFileTimes(f *os.File, _ *os.Root, _ string, t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			// utimensat with a NULL path is futimens: it sets fd's times.
			_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
			if e != unix.EINTR {
				if e != 0 {
					serr = e
				}
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "futimens", Path: f.Name(), Err: serr}
	}
	return nil
}

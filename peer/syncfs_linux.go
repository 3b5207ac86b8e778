package peer

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// fileSystemBarrier returns syncfs where it reports write-back errors
// (Linux 5.8 and later; see syncfsReports), else nil.
func fileSystemBarrier() func(f *os.File) error {
	if !syncfsChecked() {
		return nil
	}
	return syncfs
}

var syncfsChecked = sync.OnceValue(syncfsReports)

// syncfs makes everything written to f's file system durable: syncfs(2),
// which reports a write-back error of any file of the file system since f
// was opened. It syncs other programs' writes too, so its time grows with
// what they have not yet written.
func syncfs(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Syncfs(int(fd)); serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "syncfs", Path: f.Name(), Err: serr}
	}
	return nil
}

// syncfsReports reports whether this kernel's syncfs returns the
// write-back errors of the file system's files (Linux 5.8 and later):
// before, it returned success whatever failed.
func syncfsReports() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 5 || major == 5 && minor >= 8
}

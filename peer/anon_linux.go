package peer

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// openAnon creates a file in the staging folder's file system that has no
// name yet (O_TMPFILE), with mode perm less the umask. It is given its
// final name by linkAnon, once synced; should the agent die before that,
// the file system frees it, so an unnamed file never needs a sweep. No
// name also means no entry to add to the staging folder and none to
// remove from it again: creating and naming a small file costs two
// changes of directories fewer than a named temporary file moved to its
// name. Where the file system cannot (EOPNOTSUPP, or EISDIR from a
// kernel without O_TMPFILE), the error says so and the caller uses named
// temporary files.
func (s *stagingFolder) openAnon(perm fs.FileMode) (*os.File, error) {
	var fd int
	var err error
	cerr := s.conn.Control(func(dfd uintptr) {
		for {
			fd, err = unix.Openat(int(dfd), ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm.Perm()))
			if err != unix.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path.Join(stagingDir, "(unnamed)"), Err: err}
	}
	return os.NewFile(uintptr(fd), path.Join(stagingDir, "(unnamed)")), nil
}

// emptyPathDenied: linkat refused AT_EMPTY_PATH (no capability, on a
// kernel that asks for one) where the /proc name worked.
var emptyPathDenied atomic.Bool

// linkAnon gives f, a file openAnon made, the name base in the directory
// open as d. Like a hard link, it fails with EEXIST rather than replace
// anything. linkat with AT_EMPTY_PATH links the descriptor itself, but
// takes a capability a user's agent lacks (ENOENT, or EPERM); its
// /proc/self/fd name, followed, links the same file.
func linkAnon(f, d *os.File, base string) error {
	fc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	dc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	cerr := fc.Control(func(fd uintptr) {
		dcerr := dc.Control(func(dfd uintptr) {
			for {
				lerr = unix.ENOENT
				if !emptyPathDenied.Load() {
					lerr = unix.Linkat(int(fd), "", int(dfd), base, unix.AT_EMPTY_PATH)
				}
				if lerr == unix.ENOENT || lerr == unix.EPERM {
					lerr = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(fd)), int(dfd), base, unix.AT_SYMLINK_FOLLOW)
					if lerr == nil {
						// The descriptor's own link is refused: not
						// worth a failing call for every file.
						emptyPathDenied.Store(true)
					}
				}
				if lerr != unix.EINTR {
					return
				}
			}
		})
		if lerr == nil {
			lerr = dcerr
		}
	})
	if cerr != nil {
		return cerr
	}
	if lerr != nil {
		return &os.LinkError{Op: "linkat", Old: f.Name(), New: base, Err: lerr}
	}
	return nil
}

// noAnon reports whether err, from openAnon, means that the file system
// or kernel makes no unnamed files.
func noAnon(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL)
}

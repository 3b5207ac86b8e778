package peer

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// anonFile is an unnamed file that openAnon made: a bare descriptor, not
// an *os.File. A small file lives for a few system calls, and an *os.File
// costs more than some of them: an fcntl to learn whether the descriptor
// blocks, an allocation with a finalizer, and a lock around each use.
// Nothing closes an anonFile but Close, so its owner must call it on
// every path (Close is safe twice). Its methods are not safe for
// concurrent use.
type anonFile struct {
	fd int // -1 once closed
}

// anonName is what an unnamed file is called in errors.
var anonName = path.Join(stagingDir, "(unnamed)")

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
func (s *stagingFolder) openAnon(perm fs.FileMode) (*anonFile, error) {
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
		return nil, &fs.PathError{Op: "open", Path: anonName, Err: err}
	}
	return &anonFile{fd: fd}, nil
}

// Close closes the file; unnamed, it is then gone. It is safe twice.
func (a *anonFile) Close() error {
	if a.fd < 0 {
		return fs.ErrClosed
	}
	fd := a.fd
	a.fd = -1
	// Like os.File's Close: no retry on EINTR, the descriptor is gone
	// whatever close says.
	if err := unix.Close(fd); err != nil {
		return &fs.PathError{Op: "close", Path: anonName, Err: err}
	}
	return nil
}

// Write writes all of b, as os.File's Write does.
func (a *anonFile) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Write(a.fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if m > 0 {
			n += m
		}
		if err != nil {
			return n, &fs.PathError{Op: "write", Path: anonName, Err: err}
		}
		if m == 0 {
			return n, &fs.PathError{Op: "write", Path: anonName, Err: io.ErrUnexpectedEOF}
		}
	}
	return n, nil
}

// setTimes gives the file the access and modification time t (see
// setFileTimes).
func (a *anonFile) setTimes(t time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	for {
		// utimensat with a NULL path is futimens: it sets fd's times.
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(a.fd), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case 0:
			return nil
		}
		return &fs.PathError{Op: "futimens", Path: anonName, Err: e}
	}
}

// stat describes the file as openIdentity would (its identity, size and
// modification time), and returns its permission bits.
func (a *anonFile) stat() (arrival, fs.FileMode, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstat(a.fd, &st)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return arrival{}, 0, &fs.PathError{Op: "stat", Path: anonName, Err: err}
		}
		break
	}
	return arrival{
		id:    fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)},
		size:  uint64(st.Size),
		mtime: st.Mtim.Sec*1e9 + st.Mtim.Nsec,
	}, fs.FileMode(st.Mode & 0o777), nil
}

// Chmod gives the file mode's permission bits, as os.File's Chmod does.
func (a *anonFile) Chmod(mode fs.FileMode) error {
	for {
		err := unix.Fchmod(a.fd, uint32(mode.Perm()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "chmod", Path: anonName, Err: err}
		}
		return nil
	}
}

// Sync makes the file durable (fsync).
func (a *anonFile) Sync() error {
	for {
		err := unix.Fsync(a.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "sync", Path: anonName, Err: err}
		}
		return nil
	}
}

// dup returns the file as an *os.File of its own descriptor, for a
// caller that takes one (the syncer's barrier: it shares the open file,
// and so what syncfs reports for it). The caller closes it.
func (a *anonFile) dup() (*os.File, error) {
	fd, err := unix.FcntlInt(uintptr(a.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "dup", Path: anonName, Err: err}
	}
	return os.NewFile(uintptr(fd), anonName), nil
}

// emptyPathDenied: linkat refused AT_EMPTY_PATH (no capability, on a
// kernel that asks for one) where the /proc name worked.
var emptyPathDenied atomic.Bool

// linkAnon gives a, a file openAnon made, the name base in the directory
// open as d. Like a hard link, it fails with EEXIST rather than replace
// anything. linkat with AT_EMPTY_PATH links the descriptor itself, but
// takes a capability a user's agent lacks (ENOENT, or EPERM); its
// /proc/self/fd name, followed, links the same file.
func linkAnon(a *anonFile, d *os.File, base string) error {
	dc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	fd := a.fd
	var lerr error
	cerr := dc.Control(func(dfd uintptr) {
		for {
			lerr = unix.ENOENT
			if !emptyPathDenied.Load() {
				lerr = unix.Linkat(fd, "", int(dfd), base, unix.AT_EMPTY_PATH)
			}
			if lerr == unix.ENOENT || lerr == unix.EPERM {
				lerr = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), int(dfd), base, unix.AT_SYMLINK_FOLLOW)
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
	if cerr != nil {
		return cerr
	}
	if lerr != nil {
		return &os.LinkError{Op: "linkat", Old: anonName, New: base, Err: lerr}
	}
	return nil
}

// noAnon reports whether err, from openAnon, means that the file system
// or kernel makes no unnamed files.
func noAnon(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL)
}

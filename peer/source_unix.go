//go:build unix

package peer

import (
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// openSource opens a local file to send, for reading. os.Open offers
// every file it opens to the network poller, which a regular file
// refuses: two fcntls, a failing epoll_ctl and two fcntls back, five
// system calls a file, as many as the rest of a 4 KiB file's send. A
// plain open and os.NewFile (one fcntl) give the same blocking file.
//
// It opens without blocking, and takes only a regular file: a FIFO put
// in the file's place since it was collected (or a folder swapped for a
// link to one holding a FIFO of that name) would hold a blocking open,
// and the send, until something wrote to it.
func openSource(name string) (*os.File, error) {
	fd, err := openReadFlags(name, unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return regularFile(fd, name)
}

// regularFile makes an *os.File of fd, opened without blocking, if it is
// a regular file, and clears the flag; otherwise it closes fd and fails
// (ErrNotRegular).
func regularFile(fd int, name string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrNotRegular}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// checkOpen reports whether name, a regular file, may be opened for
// reading: one faccessat with the effective ids, as open checks them. An
// open and a close cost twice as much, and were a tenth of the sender's
// time for 10,000 small files, all before the first byte. Whatever
// refuses the open later (an ACL, a security module) is still told when
// the file is sent: its entry fails as unreadable.
func checkOpen(name string) error {
	return checkOpenAt(unix.AT_FDCWD, name)
}

// euid is the process's effective user id (see ownReadable).
var euid = os.Geteuid()

// ownReadable reports whether st's mode alone says the file may be read:
// it is the process's own, with the owner's read bit, which no ACL narrows
// (an ACL's owner entry is those bits). The common case then costs no
// faccessat, which was a quarter of the walk's CPU on 10,000 small files.
func ownReadable(st *unix.Stat_t) bool {
	return int(st.Uid) == euid && st.Mode&0o400 != 0
}

// checkOpenAt is checkOpen of name in the folder open as dirfd: the
// kernel looks up one name, not a whole path again from the top.
func checkOpenAt(dirfd int, name string) error {
	for {
		err := unix.Faccessat(dirfd, name, unix.R_OK, unix.AT_EACCESS)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return nil
	}
}

func openReadFlags(name string, flags int) (int, error) {
	for {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC|flags, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return fd, nil
	}
}

// readWhole reads the file of it into b (its size), with no *os.File: an
// open, reads, an fstat and a close. It reports whether b holds the whole
// file and the file is still the one collected, with the offered size and
// mtime; otherwise the caller sends it the common way, which tells what
// changed. It opens without blocking: a FIFO put in the file's place
// since it was collected fails here at once (on a regular file the flag
// changes nothing), rather than holding the sender, or its prefetcher,
// in the open.
func readWhole(it Item, b []byte) bool {
	fd, err := openReadFlags(it.Source, unix.O_NONBLOCK)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	for n := 0; n < len(b); {
		k, err := unix.Read(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || k == 0 {
			return false
		}
		n += k
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	return it.is(&st)
}

// is reports whether st, of the file at it.Source, is of the file
// collected (when it has an identity) and has the offered size and mtime.
func (it Item) is(st *unix.Stat_t) bool {
	if it.id != (fileID{}) && (uint64(st.Dev) != it.id.dev || uint64(st.Ino) != it.id.ino) {
		return false
	}
	return uint64(st.Size) == it.Entry.Size && time.Unix(st.Mtim.Unix()).Equal(it.Entry.MTime)
}

// unchanged reports whether the file of it is still the one collected,
// with the offered size and mtime: one stat, for a file read ahead (see
// prefetcher), so that a file removed, replaced or changed since is sent,
// or reported, as it is when its turn comes.
func unchanged(it Item) bool {
	var st unix.Stat_t
	for {
		err := unix.Stat(it.Source, &st)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		return it.is(&st)
	}
}

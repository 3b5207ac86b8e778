//go:build linux || darwin

package peer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"

	"golang.org/x/sys/unix"
)

// openFile opens name, a file directly in the staging folder, relative to
// the folder's own handle. It never follows a symbolic link
// (O_NOFOLLOW), never waits on a FIFO or device (O_NONBLOCK), and returns
// only a regular file owned by this user with no other name; anything
// else is closed again and refused with ErrStagingUnsafe. O_TRUNC is
// applied after those checks, so it cannot cut someone else's file.
func (s *stagingFolder) openFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	var fd int
	var err error
	// A file that O_CREAT|O_EXCL makes is new: a regular file of this
	// user with one name, which neither follows a link nor waits on a
	// FIFO. It needs none of the checks, which cost three system calls
	// a file.
	created := flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL
	nonblock := unix.O_NONBLOCK
	if created {
		nonblock = 0
	}
	cerr := s.conn.Control(func(dfd uintptr) {
		for {
			fd, err = unix.Openat(int(dfd), name, (flag&^os.O_TRUNC)|unix.O_NOFOLLOW|nonblock|unix.O_CLOEXEC, uint32(perm.Perm()))
			if err != unix.EINTR {
				return
			}
		}
	})
	if cerr != nil {
		err = cerr
	}
	switch {
	case err == unix.ELOOP:
		return nil, &fs.PathError{Op: "open", Path: path.Join(stagingDir, name), Err: fmt.Errorf("%w: a symbolic link", ErrStagingUnsafe)}
	case err == unix.ENXIO || err == unix.EISDIR:
		// A FIFO without a reader or a device, opened for writing; a
		// directory.
		return nil, &fs.PathError{Op: "open", Path: path.Join(stagingDir, name), Err: fmt.Errorf("%w: not a regular file", ErrStagingUnsafe)}
	case err != nil:
		return nil, &fs.PathError{Op: "open", Path: path.Join(stagingDir, name), Err: err}
	}
	if created {
		return os.NewFile(uintptr(fd), path.Join(stagingDir, name)), nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path.Join(stagingDir, name), Err: err}
	}
	if err := checkStaged(st.Mode&unix.S_IFMT == unix.S_IFREG, int(st.Uid), uint64(st.Nlink)); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path.Join(stagingDir, name), Err: err}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path.Join(stagingDir, name), Err: err}
	}
	f := os.NewFile(uintptr(fd), path.Join(stagingDir, name))
	if flag&os.O_TRUNC != 0 {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// checkStaged refuses what a staging file must not be: anything but a
// regular file, a file of another user, or one with another name (a hard
// link to a file elsewhere).
func checkStaged(regular bool, uid int, nlink uint64) error {
	switch {
	case !regular:
		return fmt.Errorf("%w: not a regular file", ErrStagingUnsafe)
	case uid != os.Geteuid():
		return fmt.Errorf("%w: owned by uid %d, not by this user", ErrStagingUnsafe, uid)
	case nlink != 1:
		return fmt.Errorf("%w: a file with %d names", ErrStagingUnsafe, nlink)
	}
	return nil
}

// link gives name, a file of the staging folder, the new name final in
// dst, with linkat from the staging folder's handle: renaming or replacing
// .lanshare in the meantime cannot make it link another file.
func (s *stagingFolder) link(name string, dst *os.Root, final string) error {
	err := s.at(dst, final, func(sfd, dfd int, base string) error {
		return unix.Linkat(sfd, name, dfd, base, 0)
	})
	if err != nil {
		return &os.LinkError{Op: "linkat", Old: path.Join(stagingDir, name), New: final, Err: err}
	}
	return nil
}

// rename moves name, a file of the staging folder, to final in dst, as
// link does. Where the file system can tell, it does not replace an
// existing final (EEXIST).
func (s *stagingFolder) rename(name string, dst *os.Root, final string) error {
	err := s.at(dst, final, func(sfd, dfd int, base string) error {
		return renameNoReplace(sfd, name, dfd, base)
	})
	if err != nil {
		return &os.LinkError{Op: "renameat", Old: path.Join(stagingDir, name), New: final, Err: err}
	}
	return nil
}

// linkIn is link with final's directory open as d, and base its last
// component.
func (s *stagingFolder) linkIn(name string, d *os.File, _ *os.Root, final string) error {
	err := s.atDir(d, path.Base(final), func(sfd, dfd int, base string) error {
		return unix.Linkat(sfd, name, dfd, base, 0)
	})
	if err != nil {
		return &os.LinkError{Op: "linkat", Old: path.Join(stagingDir, name), New: final, Err: err}
	}
	return nil
}

// moveIn moves name, a file of the staging folder, to final (base its
// last component, in the directory open as d) where it can do so without
// replacing anything: one rename that fails with EEXIST when final
// exists. Any other failure (a file system or kernel that cannot refuse
// to replace, a name it will not hold) leaves name where it was, and the
// caller links it instead.
func (s *stagingFolder) moveIn(name string, d *os.File, final string) error {
	err := s.atDir(d, path.Base(final), func(sfd, dfd int, base string) error {
		return renameExcl(sfd, name, dfd, base)
	})
	if err != nil {
		return &os.LinkError{Op: "renameat", Old: path.Join(stagingDir, name), New: final, Err: err}
	}
	return nil
}

// at runs op with the staging folder's descriptor and that of final's
// directory under dst, and final's last component.
func (s *stagingFolder) at(dst *os.Root, final string, op func(sfd, dfd int, base string) error) error {
	d, err := dst.Open(path.Dir(final))
	if err != nil {
		return err
	}
	defer d.Close()
	return s.atDir(d, path.Base(final), op)
}

// atDir runs op with the staging folder's descriptor, that of d, and base.
func (s *stagingFolder) atDir(d *os.File, base string, op func(sfd, dfd int, base string) error) error {
	dc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var operr error
	cerr := s.conn.Control(func(sfd uintptr) {
		dcerr := dc.Control(func(dfd uintptr) {
			for {
				if operr = op(int(sfd), int(dfd), base); operr != unix.EINTR {
					return
				}
			}
		})
		if operr == nil {
			operr = dcerr
		}
	})
	return errors.Join(cerr, operr)
}

// live reports whether the staging folder still has a name: it is gone
// once someone removed it (the user, to clean up), and is made again.
func (s *stagingFolder) live() bool {
	var st unix.Stat_t
	var err error
	cerr := s.conn.Control(func(fd uintptr) { err = unix.Fstat(int(fd), &st) })
	return cerr == nil && err == nil && st.Nlink > 0
}

// owner returns the uid that owns fi.
func owner(fi fs.FileInfo) (uid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// links returns fi's number of names.
func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

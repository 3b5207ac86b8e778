//go:build unix

package peer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// openNoFollow opens path for reading with flags added to
// O_RDONLY|O_CLOEXEC, refusing a symbolic link as its last component.
func openNoFollow(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|flags, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// sharedErr is the error of opening a shared path: ELOOP (EMLINK on
// FreeBSD, for O_NOFOLLOW) says a link was met where there was none; EAGAIN, from an open without blocking, that another program
// holds a lease on the file (Samba, an NFS server), which a blocking open
// would wait for, up to the kernel's lease-break time.
func sharedErr(path string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EMLINK):
		err = errLinkedSinceShared
	case errors.Is(err, unix.EAGAIN):
		err = errShareBusy
	}
	return &fs.PathError{Op: "open", Path: path, Err: err}
}

// openSharedFile opens a shared file, path as Share resolved it, for a
// download: through no symbolic link (see openNoLinks), and only a
// regular file. It opens without blocking, so that a FIFO put in the
// file's place fails at once instead of holding the download.
func openSharedFile(path string) (*os.File, error) {
	fd, err := openNoLinks(path, unix.O_NONBLOCK)
	if err != nil {
		return nil, sharedErr(path, err)
	}
	return regularFile(fd, path)
}

// openSharedRoot opens a shared folder, path as Share resolved it, for a
// zip: through no symbolic link, and the os.Root made of it must be the
// folder so opened (os.OpenRoot takes a path, and follows links).
func openSharedRoot(path string) (*os.Root, error) {
	fd, err := openNoLinks(path, unix.O_DIRECTORY)
	if err != nil {
		return nil, sharedErr(path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	info, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, err
	}
	if rs, ok := info.Sys().(*syscall.Stat_t); !ok || uint64(rs.Dev) != uint64(st.Dev) || uint64(rs.Ino) != uint64(st.Ino) {
		root.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: errLinkedSinceShared}
	}
	return root, nil
}

// resolveShared is the path a share serves: abs with its links resolved.
func resolveShared(abs string) (string, error) { return filepath.EvalSymlinks(abs) }

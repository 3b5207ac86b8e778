package peer

import (
	"errors"

	"golang.org/x/sys/unix"
)

// openNoLinks opens path (absolute, with no symbolic link in it when it
// was shared) for reading, refusing any symbolic link met on the way
// (openat2 with RESOLVE_NO_SYMLINKS): one swapped in since, by whoever
// may write a folder on the path, would lead the download to another
// file. flags are added to O_RDONLY|O_CLOEXEC. Where the kernel has no
// openat2 (before 5.6, or a sandbox that forbids it), only the last
// component is checked (O_NOFOLLOW).
func openNoLinks(path string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(unix.O_RDONLY | unix.O_CLOEXEC | flags), Resolve: unix.RESOLVE_NO_SYMLINKS}
	for {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &how)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
			return openNoFollow(path, flags)
		case err != nil:
			return -1, err
		}
		return fd, nil
	}
}

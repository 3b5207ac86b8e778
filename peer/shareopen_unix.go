//go:build unix && !linux

package peer

// openNoLinks opens path for reading, refusing a symbolic link as its
// last component (O_NOFOLLOW); these systems have no way to refuse one
// in the folders above (see shareopen_linux.go). flags are added to
// O_RDONLY|O_CLOEXEC.
func openNoLinks(path string, flags int) (int, error) {
	return openNoFollow(path, flags)
}

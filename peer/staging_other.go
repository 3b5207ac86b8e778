//go:build !(linux || darwin)

package peer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// openFile opens name, a file directly in the staging folder, through the
// folder's own handle, and returns it only if it is a regular file. (On
// these systems the staging folder's protection is its owner's
// permissions; Windows creates no FIFOs, and symbolic links need a
// privilege.)
func (s *stagingFolder) openFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	fi, err := s.root.Lstat(name)
	if err == nil && !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: path.Join(stagingDir, name), Err: fmt.Errorf("%w: not a regular file", ErrStagingUnsafe)}
	}
	f, err := s.root.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: path.Join(stagingDir, name), Err: fmt.Errorf("%w: not a regular file", ErrStagingUnsafe)}
	}
	return f, nil
}

// checkStaged refuses anything but a regular file.
func checkStaged(regular bool, uid int, nlink uint64) error {
	if !regular {
		return fmt.Errorf("%w: not a regular file", ErrStagingUnsafe)
	}
	return nil
}

// link gives name, a file of the staging folder, the new name final in
// dst. These systems have no linkat on descriptors in Go: it goes by name.
func (s *stagingFolder) link(name string, dst *os.Root, final string) error {
	return dst.Link(path.Join(stagingDir, name), final)
}

// linkIn is link: d, final's directory, is not used here.
func (s *stagingFolder) linkIn(name string, _ *os.File, dst *os.Root, final string) error {
	return s.link(name, dst, final)
}

// moveIn would move name to final without replacing anything: these
// systems cannot refuse to replace in a rename, so the caller links.
func (s *stagingFolder) moveIn(string, *os.File, string) error { return errNoMoveIn }

// errNoMoveIn is moveIn's answer here. A variable, not a value made in
// moveIn: the caller's test for success is then not one that static
// analysis calls never true on these systems.
var errNoMoveIn error = &os.LinkError{Op: "rename", Err: errors.ErrUnsupported}

// rename moves name, a file of the staging folder, to final in dst.
func (s *stagingFolder) rename(name string, dst *os.Root, final string) error {
	return dst.Rename(path.Join(stagingDir, name), final)
}

// live reports whether the staging folder still has a name. An open
// directory cannot be removed on Windows.
func (s *stagingFolder) live() bool {
	_, err := s.dir.Stat()
	return err == nil
}

// owner is unknown here: Windows has no uid.
func owner(fs.FileInfo) (uid int, ok bool) { return 0, false }

// links returns 1: hard links are not checked here.
func links(fs.FileInfo) uint64 { return 1 }

//go:build !linux

package peer

import (
	"errors"
	"io/fs"
	"os"
)

// openAnon is Linux's alone: elsewhere a received file is written under
// a temporary name.
func (s *stagingFolder) openAnon(fs.FileMode) (*os.File, error) {
	return nil, errors.ErrUnsupported
}

func linkAnon(f, d *os.File, base string) error { return errors.ErrUnsupported }

func noAnon(error) bool { return true }

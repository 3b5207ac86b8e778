//go:build !linux

package peer

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// anonFile is Linux's alone (see anon_linux.go): openAnon never makes one
// elsewhere.
type anonFile struct{}

// openAnon is Linux's alone: elsewhere a received file is written under
// a temporary name.
func (s *stagingFolder) openAnon(fs.FileMode) (*anonFile, error) {
	return nil, errors.ErrUnsupported
}

func (a *anonFile) Close() error                        { return errors.ErrUnsupported }
func (a *anonFile) Write([]byte) (int, error)           { return 0, errors.ErrUnsupported }
func (a *anonFile) setTimes(time.Time) error            { return errors.ErrUnsupported }
func (a *anonFile) stat() (arrival, fs.FileMode, error) { return arrival{}, 0, errors.ErrUnsupported }
func (a *anonFile) Chmod(fs.FileMode) error             { return errors.ErrUnsupported }
func (a *anonFile) Sync() error                         { return errors.ErrUnsupported }
func (a *anonFile) dup() (*os.File, error)              { return nil, errors.ErrUnsupported }

func linkAnon(a *anonFile, d *os.File, base string) error { return errors.ErrUnsupported }

func noAnon(error) bool { return true }

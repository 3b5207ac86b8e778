//go:build !linux

package peer

import (
	"errors"
	"os"
)

// setDirect reports that direct I/O is not used on this platform.
func setDirect(f *os.File, on bool) bool { return !on }

func directRefused(error) bool { return false }

func reopenCached(*os.File) (*os.File, error) {
	return nil, errors.New("no direct I/O on this platform")
}

//go:build !linux

package peer

import "os"

// setDirect reports that direct I/O is not used on this platform.
func setDirect(f *os.File, on bool) bool { return !on }

func directRefused(error) bool { return false }

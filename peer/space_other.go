//go:build !unix && !windows

package peer

import "math"

// freeSpace is unknown on this platform; the check passes and a full disk
// is caught when a write fails.
func freeSpace(string) (uint64, error) { return math.MaxUint64, nil }

// freeFiles: no inode count here.
func freeFiles(string) (free, total uint64, err error) { return 0, 0, nil }

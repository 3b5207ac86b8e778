//go:build !unix

package peer

import "io/fs"

// statID reports no identity here: a queued file is checked by its size
// and mtime alone.
func statID(fs.FileInfo) (dev, ino uint64, ok bool) { return 0, 0, false }

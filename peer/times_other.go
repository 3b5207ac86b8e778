//go:build !linux

package peer

import (
	"os"
	"time"
)

// setFileTimes gives the file name under root, open as f, the access and
// modification time t.
func setFileTimes(_ *os.File, root *os.Root, name string, t time.Time) error {
	return root.Chtimes(name, t, t)
}

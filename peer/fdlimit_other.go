//go:build !unix

package peer

// openFileLimit is how many files the process may open: Windows sets no
// such limit on handles; a budget of 16,384.
func openFileLimit() int64 { return 16384 }

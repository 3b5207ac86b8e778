//go:build !linux

package peer

// bootID is bootid_linux.go's: elsewhere it cannot tell a boot, and a
// resume after a death trusts only what was recorded.
func bootID() string { return "" }

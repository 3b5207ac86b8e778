//go:build !linux

package peer

import "net"

// ownerConn reports true: on this platform the control socket's mode
// (0600, in the 0700 config directory) alone keeps other users out.
func ownerConn(net.Conn) bool { return true }

//go:build !linux

package discovery

// shared reports whether a socket other than ours is bound to our UDP
// port (see portshare_linux.go). Here we cannot tell, and report false:
// our first queries ask for unicast answers, as when we are alone, and
// the next, multicast one brings what they missed.
func (*sockets) shared() bool { return false }

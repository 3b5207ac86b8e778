//go:build !unix || solaris

package main

import "errors"

// sharePort fails: sharing a port takes SO_REUSEPORT, which Windows and
// Solaris lack. The tests that need it run in network namespaces, which
// only Linux has.
func sharePort(uintptr) error {
	return errors.New("sharing a UDP port needs SO_REUSEPORT (Unix)")
}

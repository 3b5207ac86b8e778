//go:build !unix

package main

import "errors"

// sharePort fails: sharing a port with SO_REUSEPORT is Unix's. The tests
// that need it run in network namespaces, which only Linux has.
func sharePort(uintptr) error {
	return errors.New("sharing a UDP port needs SO_REUSEPORT (Unix)")
}

//go:build !linux

package netlab

import "fmt"

// platformErr says why there are no labs here: network namespaces are
// Linux's.
func platformErr() error {
	return fmt.Errorf("%w: network namespaces need Linux", ErrUnavailable)
}

// processGone reports false: without labs there is nothing to sweep.
func processGone(int) bool { return false }

// privateRun fails: there are no mount namespaces here.
func privateRun() error { return platformErr() }

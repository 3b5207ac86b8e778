//go:build linux

package lsdouble

import (
	"os"
	"testing"

	"github.com/lanshare/lanshare/internal/netlab"
)

// TestMain runs the tests in a private network namespace with only a
// loopback interface that carries multicast: the discovery tests announce on
// LocalSend's group, which must never reach the machine's own network.
func TestMain(m *testing.M) { os.Exit(netlab.MainIsolated(m.Run)) }

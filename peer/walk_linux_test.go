//go:build linux

package peer

import (
	"os"
	"testing"
)

// TestWalkSameAsSerialAsOtherUser is TestWalkSameAsSerial as a user the
// permission bits apply to, when the tests run as root: a child process
// with another uid walks the tree (see newOtherUser).
func TestWalkSameAsSerialAsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestWalkSameAsSerial runs as a user the permission bits apply to")
	}
	testAsOtherUser(t, "TestWalkHelperProcess", "LANSHARE_WALK="+walkTree(t))
}

// TestWalkHelperProcess is the child of TestWalkSameAsSerialAsOtherUser,
// not a test.
func TestWalkHelperProcess(t *testing.T) {
	root := os.Getenv("LANSHARE_WALK")
	if root == "" {
		t.Skip("the child process of TestWalkSameAsSerialAsOtherUser")
	}
	compareWalks(t, root)
}

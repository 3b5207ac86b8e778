package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// envInUserNS marks the copy of a test binary that Main re-executed inside a
// user namespace.
const envInUserNS = "NETLAB_IN_USERNS"

// Main runs the tests of m and returns the exit code, for TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(netlab.Main(m)) }
//
// As root it just runs m. Otherwise, when the kernel lets unprivileged users
// create user namespaces, it re-executes the test binary (same arguments,
// stdio and environment) under "unshare --user --map-root-user --net
// --mount", where the tests are root in a private network namespace with a
// private /run, so labs can be built without privileges and still never
// touch the machine's own network. If that is impossible it runs m, and
// tests that need a lab skip with the reason.
func Main(m *testing.M) int {
	if os.Geteuid() == 0 && os.Getenv(envInUserNS) != "" {
		if err := privateRun(); err != nil {
			fmt.Fprintf(os.Stderr, "netlab: preparing the user namespace: %v\n", err)
			return 1
		}
	}
	if os.Geteuid() == 0 || os.Getenv(envInUserNS) != "" || userNSUsable() != nil {
		return m.Run()
	}
	args := append([]string{"--user", "--map-root-user", "--net", "--mount", "--propagation", "private", os.Args[0]}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInUserNS+"=1")
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "netlab: re-running in a user namespace: %v\n", err)
		return 1
	}
	return 0
}

// privateRun mounts a tmpfs on /run inside our own mount namespace, so that
// "ip netns add" can create /run/netns (the real one belongs to the real
// root).
func privateRun() error {
	if err := unix.Access("/run", unix.W_OK); err == nil {
		return nil
	}
	return unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755")
}

var (
	userNSOnce sync.Once
	userNSErr  error
)

// userNSUsable reports whether "unshare --user --map-root-user --net
// --mount" works for this process. The result is cached.
func userNSUsable() error {
	userNSOnce.Do(func() { userNSErr = probeUserNS() })
	return userNSErr
}

func probeUserNS() error {
	if _, err := exec.LookPath("unshare"); err != nil {
		return fmt.Errorf("unshare(1) not found: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("ip(8) not found: %v", err)
	}
	out, err := exec.Command("unshare", "--user", "--map-root-user", "--net", "--mount", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("unshare --user --net: %v: %s", err, out)
	}
	return nil
}

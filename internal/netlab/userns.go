package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
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
	if err := platformErr(); err != nil {
		return err
	}
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

// envIsolated marks a test binary that MainIsolated re-executed inside its
// own network namespace.
const envIsolated = "NETLAB_ISOLATED"

// MainIsolated is Main for packages whose tests start processes that may
// send multicast on whatever network they find (an agent that announces
// itself): it re-executes the test binary inside a new network namespace
// with only the loopback interface, up and carrying multicast, so nothing
// a test starts can reach the machine's own network. Labs still work inside
// it. When no namespace can be made, the tests run where they are and
// Isolated reports false (IsolationError says why); such tests must call
// SkipUnlessIsolated. run runs the tests (usually m.Run, perhaps after some
// set-up) and is called in the namespace:
//
//	func TestMain(m *testing.M) { os.Exit(netlab.MainIsolated(m.Run)) }
//
// A program that is not a test can use it the same way, from main. The
// outer process passes interrupt, terminate and hang-up signals on to the
// copy in the namespace and waits for it, so that copy can clean up.
func MainIsolated(run func() int) int {
	if os.Getenv(envIsolated) != "" {
		if err := privateRun(); err != nil {
			fmt.Fprintf(os.Stderr, "netlab: preparing the namespace: %v\n", err)
			return 1
		}
		if err := loopbackMulticast(); err != nil {
			fmt.Fprintf(os.Stderr, "netlab: preparing loopback: %v\n", err)
			return 1
		}
		return run()
	}
	var args []string
	switch {
	case os.Geteuid() == 0:
		if _, err := exec.LookPath("unshare"); err != nil {
			isolatedWhy = "unshare(1) not found"
			return run()
		}
		args = []string{"--net"}
	case userNSUsable() == nil:
		args = []string{"--user", "--map-root-user", "--net", "--mount", "--propagation", "private"}
	default:
		isolatedWhy = "not root and no user namespaces: " + userNSUsable().Error()
		return run()
	}
	cmd := exec.Command("unshare", append(append(args, os.Args[0]), os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envIsolated+"=1")
	if os.Geteuid() != 0 {
		cmd.Env = append(cmd.Env, envInUserNS+"=1")
	}
	err := runForwardingSignals(cmd)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "netlab: re-running in a network namespace: %v\n", err)
		return 1
	}
	return 0
}

// runForwardingSignals runs cmd, passing on the signals that ask a program
// to stop (interrupt, terminate, hang-up) until it has exited, so that the
// copy in the namespace decides how to stop (and can clean up) while this
// one waits for it, whoever the signal was sent to.
func runForwardingSignals(cmd *exec.Cmd) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var forwarder sync.WaitGroup
	forwarder.Add(1)
	go func() {
		defer forwarder.Done()
		for {
			select {
			case sig := <-sigs:
				_ = cmd.Process.Signal(sig)
			case <-exited:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(exited)
	forwarder.Wait()
	return err
}

// isolatedWhy says why MainIsolated could not isolate the tests.
var isolatedWhy = "the test binary was not started through netlab.MainIsolated"

// Isolated reports whether this process runs in the private namespace
// MainIsolated made.
func Isolated() bool { return os.Getenv(envIsolated) != "" }

// IsolationError returns nil in the private namespace MainIsolated made,
// and otherwise an error saying why the process runs without one.
func IsolationError() error {
	if Isolated() {
		return nil
	}
	return fmt.Errorf("netlab: no private network namespace: %s", isolatedWhy)
}

// SkipUnlessIsolated skips t, with the reason, unless the tests run in the
// private namespace MainIsolated made.
func SkipUnlessIsolated(t testing.TB) {
	t.Helper()
	if !Isolated() {
		t.Skipf("needs a private network namespace: %s", isolatedWhy)
	}
}

// loopbackMulticast brings up lo in the current (fresh) namespace and
// routes multicast over it.
func loopbackMulticast() error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up", "multicast", "on"},
		{"route", "add", "224.0.0.0/4", "dev", "lo", "src", "127.0.0.1"},
		{"-6", "route", "add", "ff00::/8", "dev", "lo", "table", "local"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

//go:build unix

package main

// What only Unix has: process groups (a shell's job), signals to them.

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

// TestSendPipeCtrlCStopsPipeline: Ctrl-C on `cat /dev/zero | lanshare
// send … -` stops both; the pipe's early end, which the signal caused,
// is not taken for the data's end: nothing is saved.
func TestSendPipeCtrlCStopsPipeline(t *testing.T) {
	t.Parallel()
	netlab.SkipUnlessIsolated(t)
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	cmd := exec.Command("sh", "-c", `cat /dev/zero | "$0" send --config "$1" "$2" --as zero.bin -`, lanshareBin, filepath.Join(tmp, "scfg"), srv.addr)
	cmd.Env = baseEnv(tmp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a job of its own, as a shell makes it
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	waitFor(t, "8 MiB of the pipe on the receiver", func() bool { return stagedBytes(share) >= 8<<20 })
	// Ctrl-C: the terminal signals the whole job.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(failAfter):
		t.Fatalf("the pipeline still runs %v after Ctrl-C", failAfter)
	}
	if !strings.Contains(stderr.String(), "interrupted: after") || !strings.Contains(stderr.String(), "saved nothing as zero.bin") {
		t.Errorf("stderr %q, want the interruption and that nothing was saved", stderr)
	}
	srv.out.waitFor(t, "the receiver's word on the cut", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "transfer from") && strings.Contains(l, "failed") })
	})
	if tree := readTree(t, share); len(tree) != 0 {
		t.Errorf("the shared folder holds %v after Ctrl-C", tree)
	}
	checkNoTemps(t, share)
}

//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tmpfsSize is the size of the small file system the disk-full test gives
// the receiver: with the agent's 64 MiB margin, about 36 MiB fit.
const tmpfsSize = 100 << 20

// onTmpfs returns a commandFunc that runs its command in a private mount
// namespace where dir is a new tmpfs of tmpfsSize bytes: the test's
// machine never sees the mount, and it goes away with the process. The
// test reaches the file system through /proc/PID/root.
func onTmpfs(dir string) commandFunc {
	return func(ctx context.Context, name string, args ...string) *exec.Cmd {
		script := fmt.Sprintf(`mount -t tmpfs -o size=%d tmpfs "$0" || exit 97; exec "$@"`, tmpfsSize)
		return exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "--",
			"sh", "-c", script, dir, name}, args...)...)
	}
}

// TestDiskFull runs the receiver on a small real file system: an offer
// that cannot fit is refused before any byte is sent; a disk that another
// writer fills in the middle of a transfer fails that file and stops the
// transfer (the files after it do not cross), the sender exits with a
// refusal for the space, the partial file is kept, and once there is space
// again the agent takes the send, skipping what arrived and resuming.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) for a private mount namespace")
	}
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := startLanshare(t, onTmpfs(share), tmp, nil, "serve", "--dir", share, "--config", filepath.Join(tmp, "rcfg"),
		"--listen", "127.0.0.1:0", "--name", "rx", "--stranger-budget", "off") // the disk fills, not the budget
	select {
	case line, ok := <-srv.first:
		if !ok {
			<-srv.done
			if srv.state.ExitCode() == 97 {
				t.Skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN in a mount namespace)")
			}
			t.Fatalf("serve on a tmpfs exited (%v); stderr:\n%s", srv.state, srv.stderr)
		}
		srv.addr = strings.TrimPrefix(line, "listening on ")
	case <-time.After(failAfter):
		t.Fatalf("serve on a tmpfs printed no address within %v", failAfter)
	}
	// The receiver's view of its shared folder.
	fs := filepath.Join("/proc", fmt.Sprint(srv.cmd.Process.Pid), "root", share)
	scfg := filepath.Join(tmp, "scfg")

	// 1. Too large for the free space: refused before "ok".
	big := filepath.Join(tmp, "src", "big.bin")
	writeFile(t, big, make([]byte, 50<<20), 0o644, time.Now())
	r := runLanshare(t, tmp, nil, "send", "--config", scfg, srv.addr, big)
	if r.code != exitRefused {
		t.Fatalf("50 MiB into about 36 MiB: exit %d, want %d (refused)\n%s", r.code, exitRefused, r.stderr)
	}
	checkErrorLine(t, r.stderr, "rx refused", "not enough space (need 52.4 MB", "free beyond the 64 MiB kept free)")
	if got := readTree(t, fs); len(got) != 0 {
		t.Fatalf("a refused offer left %v", got)
	}

	// 2. Another writer fills the disk while a file streams in.
	tree := filepath.Join(tmp, "src", "tree")
	writeFile(t, filepath.Join(tree, "a-first.txt"), []byte("first"), 0o644, time.Now())
	writeFile(t, filepath.Join(tree, "b-large.bin"), make([]byte, 20<<20), 0o644, time.Now())
	writeFile(t, filepath.Join(tree, "c-last.txt"), []byte("last"), 0o644, time.Now())
	release := make(chan struct{})
	proxy := pauseProxy(t, srv.addr, 8<<20, release)
	sent := make(chan runResult, 1)
	go func() { sent <- runLanshare(t, tmp, nil, "send", "--config", scfg, proxy, tree) }()
	// The receiver has accepted the batch and is writing b-large.bin.
	waitFor(t, "the large file to start arriving", func() bool { return dirBytes(fs) >= 4<<20 })
	filler := filepath.Join(fs, "filler")
	fillDisk(t, filler)
	close(release)
	r = result(t, sent)
	// The sender learns it from the receipt (naming the file), or, cut
	// off while it streams, from the refusal of its retry.
	if r.code != exitRefused || !(strings.Contains(r.stderr, "receiver out of space") || strings.Contains(r.stderr, "not enough space")) {
		t.Fatalf("send into a full disk: exit %d, want %d saying the receiver is out of space:\n%s", r.code, exitRefused, r.stderr)
	}
	// a-first.txt may be saved or not: its arrival is recorded when it
	// is named, which may come after the disk filled. When it is not, the
	// receiver removes the folder it created for it, which can be after
	// the sender had its receipt: a walk may find it gone half-way.
	var got map[string]entry
	waitFor(t, "a walk of the shared folder the receiver is done tidying", func() bool {
		var err error
		got, err = walkTree(fs)
		if err != nil && !errors.Is(err, iofs.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	})
	if a, ok := got["tree/a-first.txt"]; ok && a.data != "first" {
		t.Errorf("a-first.txt is not its source")
	}
	if _, ok := got["tree/b-large.bin"]; ok {
		t.Errorf("the file that failed appeared under its final name")
	}
	if _, ok := got["tree/c-last.txt"]; ok {
		t.Errorf("a file after the one that failed arrived: the transfer did not stop")
	}
	if n, _ := partialFiles(t, fs); n != 1 {
		t.Errorf("%d partial files kept, want b-large.bin's", n)
	}

	// 3. The agent goes on serving once there is space again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r = runLanshare(t, tmp, nil, "send", "--config", scfg, srv.addr, tree)
	if r.code != 0 {
		t.Fatalf("send after space was freed: exit %d\n%s", r.code, r.stderr)
	}
	got = readTree(t, fs)
	if len(got["tree/b-large.bin"].data) != 20<<20 || got["tree/c-last.txt"].data != "last" {
		t.Fatalf("b-large.bin and c-last.txt did not arrive after space was freed")
	}
	checkNoTemps(t, fs)
	// Everything is indexed: sent again, nothing crosses, nothing doubles.
	r = runLanshare(t, tmp, nil, "send", "--json", "--config", scfg, srv.addr, tree)
	if r.code != 0 {
		t.Fatalf("send of the arrived tree: exit %d\n%s", r.code, r.stderr)
	}
	if sent := transferDoneSent(t, r.stdout); sent != 0 {
		t.Fatalf("the arrived tree sent again moved %d bytes, want 0", sent)
	}
	if got := readTree(t, fs); len(got) != 4 { // tree and its three files
		t.Fatalf("after sending the tree again the shared folder holds %v", keys(got))
	}
	srv.stopClean(t)
}

// fillDisk writes a file at path until the file system is full, as
// another program filling the disk would.
func fillDisk(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("filling the disk: %v", err)
		}
	}
}

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
// namespace where dir is a new tmpfs mounted with opts: the test's
// machine never sees the mount, and it goes away with the process. The
// test reaches the file system through /proc/PID/root.
func onTmpfs(dir, opts string) commandFunc {
	return func(ctx context.Context, name string, args ...string) *exec.Cmd {
		script := fmt.Sprintf(`mount -t tmpfs -o %s tmpfs "$0" || exit 97; exec "$@"`, opts)
		return exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "--",
			"sh", "-c", script, dir, name}, args...)...)
	}
}

// serveOnTmpfs starts "lanshare serve" named rx, its configuration in
// tmp/rcfg, sharing tmp/share, which it sees as a new tmpfs mounted with
// opts (see onTmpfs), with no strangers' budget (the disk fills, not the
// budget). It returns the agent, its address set, and the receiver's view
// of its shared folder. It skips where no tmpfs can be mounted.
func serveOnTmpfs(t *testing.T, tmp, opts string) (*server, string) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) for a private mount namespace")
	}
	share := filepath.Join(tmp, "share")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := startLanshare(t, onTmpfs(share, opts), tmp, nil, "serve", "--dir", share, "--config", filepath.Join(tmp, "rcfg"),
		"--listen", "127.0.0.1:0", "--name", "rx", "--stranger-budget", "off")
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
	return srv, filepath.Join("/proc", fmt.Sprint(srv.cmd.Process.Pid), "root", share)
}

// TestDiskFull runs the receiver on a small real file system: an offer
// that cannot fit is refused before any byte is sent; a disk that another
// writer fills in the middle of a transfer fails that file and stops the
// transfer (the files after it do not cross), the sender exits with a
// refusal for the space, the partial file is kept, and once there is space
// again the agent takes the send, skipping what arrived and resuming.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv, fs := serveOnTmpfs(t, tmp, fmt.Sprintf("size=%d", tmpfsSize))
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

// TestOutOfInodes runs the receiver on a tmpfs of few inodes and much
// space, as a disk full of small files is: an offer of more new files
// than there are inodes (beyond the 25 kept free, a 64th) is refused at once,
// saying so; when another program takes the last inodes in the middle of
// a transfer, the transfer stops and the send ends, refused for space
// (it used to retry twice a second for good: the bytes it sent counted as
// progress); once inodes are free again, the send completes.
func TestOutOfInodes(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv, fs := serveOnTmpfs(t, tmp, fmt.Sprintf("size=%d,nr_inodes=1600", tmpfsSize))
	scfg := filepath.Join(tmp, "scfg")
	makeTree := func(dir string, n int) {
		for i := range n {
			writeFile(t, filepath.Join(dir, fmt.Sprintf("f%03d.txt", i)), []byte(fmt.Sprintf("file %d\n", i)), 0o644, time.Now())
		}
	}

	// 1. More files than inodes: refused before any byte.
	many := filepath.Join(tmp, "src", "many")
	makeTree(many, 1700)
	r := runLanshare(t, tmp, nil, "send", "--config", scfg, srv.addr, many)
	if r.code != exitRefused {
		t.Fatalf("1700 files into about 1570 inodes: exit %d, want %d (refused)\n%s", r.code, exitRefused, r.stderr)
	}
	checkErrorLine(t, r.stderr, "rx refused", "not enough inodes (need 1701 for new files and folders", "beyond the 25 kept free)")
	if got := readTree(t, fs); len(got) != 0 {
		t.Fatalf("a refused offer left %v", got)
	}

	// 2. Another program takes the last inodes while the files arrive.
	few := filepath.Join(tmp, "src", "few")
	makeTree(few, 400)
	writeFile(t, filepath.Join(few, "zz-large.bin"), make([]byte, 8<<20), 0o644, time.Now())
	release := make(chan struct{})
	proxy := pauseProxy(t, srv.addr, 6<<20, release)
	sent := make(chan runResult, 1)
	go func() { sent <- runLanshare(t, tmp, nil, "send", "--config", scfg, proxy, few) }()
	waitFor(t, "the large file to start arriving", func() bool { return dirBytes(fs) >= 2<<20 })
	filler := filepath.Join(fs, "filler")
	if err := os.Mkdir(filler, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		f, err := os.Create(filepath.Join(filler, fmt.Sprint(i)))
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	close(release)
	r = result(t, sent)
	if r.code != exitRefused || !(strings.Contains(r.stderr, "receiver out of space") || strings.Contains(r.stderr, "not enough inodes")) {
		t.Fatalf("send into a file system out of inodes: exit %d, want %d saying so:\n%s", r.code, exitRefused, r.stderr)
	}
	if strings.Count(r.stdout+r.stderr, "retrying") > 1 {
		t.Errorf("the send retried more than once:\n%s%s", r.stdout, r.stderr)
	}
	// Up to 144 files failed: a line for the first ten, one more for the
	// rest, and the error.
	if n := strings.Count(r.stderr, "\n"); n > notSavedLines+2 {
		t.Errorf("send printed %d lines for the files not saved, want at most %d:\n%s", n, notSavedLines+2, r.stderr)
	}

	// 3. Inodes free again: the send completes.
	if err := os.RemoveAll(filler); err != nil {
		t.Fatal(err)
	}
	r = runLanshare(t, tmp, nil, "send", "--config", scfg, srv.addr, few)
	if r.code != 0 {
		t.Fatalf("send after inodes were freed: exit %d\n%s", r.code, r.stderr)
	}
	if got := readTree(t, fs); len(got) != 402 || len(got["few/zz-large.bin"].data) != 8<<20 {
		t.Fatalf("after the send the shared folder holds %d entries, want the folder and its 401 files", len(got))
	}
	checkNoTemps(t, fs)
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

package main

// Sending standard input ("-") through the binary: a pipe of unknown
// size arrives verified; one cut half-way leaves nothing under its name.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/lsdouble"
	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

// noise is n bytes of seeded noise, made as they are read, hashed.
type noise struct {
	rng  *rand.ChaCha8
	left int64
	h    io.Writer
	sum  func() []byte
}

func newNoise(seed byte, n int64) *noise {
	var s [32]byte
	s[0] = seed
	h := proto.NewDigest()
	return &noise{rng: rand.NewChaCha8(s), left: n, h: h, sum: func() []byte { return h.Sum(nil) }}
}

func (n *noise) Read(p []byte) (int, error) {
	if n.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), n.left)]
	_, _ = n.rng.Read(p)
	n.h.Write(p)
	n.left -= int64(len(p))
	return len(p), nil
}

func fileBLAKE3(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := proto.NewDigest()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

// runWithStdin runs lanshare, made by run, with stdin and env added to
// baseEnv(tmp), to completion within limit.
func runWithStdin(t testing.TB, run commandFunc, tmp string, stdin io.Reader, limit time.Duration, args ...string) runResult {
	t.Helper()
	netlab.SkipUnlessIsolated(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := run(ctx, lanshareBin, args...)
	cmd.Env = baseEnv(tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running lanshare %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("lanshare %q did not finish within %v; stderr:\n%s", args, limit, stderr.String())
	}
	return runResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// pipeThrough sends size bytes of noise through `lanshare send --as
// data.bin -` to a running serve, and checks that they arrive whole.
func pipeThrough(t *testing.T, size int64, limit time.Duration) {
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	data := newNoise(1, size)
	start := time.Now()
	r := runWithStdin(t, local, tmp, data, limit, "send", "--config", filepath.Join(tmp, "scfg"), srv.addr, "--as", "data.bin", "-")
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("send: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if want := "\nsent 1 file (" + peer.FormatBytes(uint64(size)) + ") to bob"; !strings.Contains(r.stdout, want) {
		t.Errorf("summary %q, want a line that starts %q", r.stdout, want[1:])
	}
	got := filepath.Join(share, "data.bin")
	fi, err := os.Stat(got)
	if err != nil || fi.Size() != size {
		t.Fatalf("data.bin: %v, %v; want %d bytes", fi, err, size)
	}
	if !bytes.Equal(fileBLAKE3(t, got), data.sum()) {
		t.Fatal("data.bin arrived with another digest than the pipe's")
	}
	checkNoTemps(t, share)
	srv.out.waitFor(t, "the transfer's log line", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "received 1 file") })
	})
	t.Logf("%d MiB through a pipe in %v (%.0f MB/s)", size>>20, took.Round(time.Millisecond), float64(size)/took.Seconds()/1e6)
}

// TestSendPipeEndToEnd: 32 MiB of unknown size through "-" arrive
// verified under the --as name.
func TestSendPipeEndToEnd(t *testing.T) {
	t.Parallel()
	pipeThrough(t, 32<<20+12345, 2*time.Minute)
}

// TestSendPipeGiB: 1 GiB through "-". It moves and hashes a GiB on each
// side and syncs it to disk: too slow for -short (about 30 s under the
// race detector, which instruments only the test's noise generator: the
// agents are built without it).
func TestSendPipeGiB(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 1 GiB through the binaries (not with -short)")
	}
	pipeThrough(t, 1<<30, 5*time.Minute)
}

// startSendPipe starts `lanshare send ADDR --as NAME -` reading stdin.
func startSendPipe(t testing.TB, tmp, addr, name string, stdin *os.File) *exec.Cmd {
	t.Helper()
	netlab.SkipUnlessIsolated(t)
	cmd := exec.Command(lanshareBin, "send", "--config", filepath.Join(tmp, "scfg"), addr, "--as", name, "-")
	cmd.Env = baseEnv(tmp)
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = &lockedBuffer{}, &lockedBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// stagedBytes is the size of the largest temporary file in share's
// staging folder.
func stagedBytes(share string) int64 {
	des, _ := os.ReadDir(filepath.Join(share, stagingDir))
	var most int64
	for _, de := range des {
		if fi, err := de.Info(); err == nil && de.Name() != "arrived" {
			most = max(most, fi.Size())
		}
	}
	return most
}

// feed writes noise into w until a write fails.
func feed(w io.WriteCloser) {
	src := newNoise(2, 1<<40)
	buf := make([]byte, 256<<10)
	for {
		_, _ = src.Read(buf)
		if _, err := w.Write(buf); err != nil {
			w.Close()
			return
		}
	}
}

// TestSendPipeKilledLeavesNothing: the sending process killed in the
// middle of a pipe leaves nothing on the receiver, under the --as name or
// in its staging folder.
func TestSendPipeKilledLeavesNothing(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := startSendPipe(t, tmp, srv.addr, "cut.tar", pr)
	pr.Close()
	go feed(pw)
	waitFor(t, "8 MiB of the pipe on the receiver", func() bool { return stagedBytes(share) >= 8<<20 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	srv.out.waitFor(t, "the receiver's word on the cut", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "transfer from") && strings.Contains(l, "failed") })
	})
	if tree := readTree(t, share); len(tree) != 0 {
		t.Errorf("the shared folder holds %v after a cut pipe", tree)
	}
	checkNoTemps(t, share)
}

// TestCutTransfersAreEachLogged: two sends of a large file cut one after
// the other, within the 10 s that failed connections from one address
// share a log line, are each logged, with what is kept for a resume:
// the sender moved file bytes, and the second resumes the first.
func TestCutTransfersAreEachLogged(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	big := filepath.Join(tmp, "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, newNoise(7, 1<<30)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	failed := func(lines []string) int {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, "transfer from") && strings.Contains(l, "failed") && strings.Contains(l, "kept for a resume") {
				n++
			}
		}
		return n
	}
	start := time.Now()
	var had int64
	for k := 1; k <= 2; k++ {
		cmd := exec.Command(lanshareBin, "send", "--quiet", "--config", filepath.Join(tmp, "scfg"), srv.addr, big)
		cmd.Env = baseEnv(tmp)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "8 MiB more of the file on the receiver", func() bool { return stagedBytes(share) >= had+8<<20 })
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		srv.out.waitFor(t, fmt.Sprintf("the receiver's line on cut %d", k), func(lines []string) bool { return failed(lines) >= k })
		had = stagedBytes(share)
	}
	if took := time.Since(start); took >= 10*time.Second {
		t.Skipf("the two cuts took %v, beyond the log limit's 10 s", took)
	}
	if lines := srv.out.Lines(); slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "not logged") }) {
		t.Errorf("serve left a cut transfer out of its log:\n%s", srv.out)
	}
}

// TestSendPipeSourceFailsLeavesNothing: standard input that fails
// half-way (here a socket the other end resets) is not taken for its
// end: the send says it could not read it, exits 7, and the receiver
// keeps nothing of it.
func TestSendPipeSourceFailsLeavesNothing(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	producer := <-accepted
	if producer == nil {
		t.Fatal("accept failed")
	}
	stdin, err := client.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	client.Close()
	cmd := startSendPipe(t, tmp, srv.addr, "half.tar", stdin)
	stdin.Close()
	go func() { _, _ = io.Copy(producer, newNoise(3, 1<<40)) }()
	waitFor(t, "4 MiB of the pipe on the receiver", func() bool { return stagedBytes(share) >= 4<<20 })
	// The producer fails: its connection is reset, not closed.
	_ = producer.(*net.TCPConn).SetLinger(0)
	producer.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUnreadable {
		t.Fatalf("send: %v, want exit %d\n%s", err, exitUnreadable, cmd.Stderr)
	}
	out := cmd.Stderr.(*lockedBuffer).String()
	checkErrorLine(t, out, "cannot read standard input", "connection reset by peer")
	srv.out.waitFor(t, "the receiver's log line", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "half.tar") })
	})
	if tree := readTree(t, share); len(tree) != 0 {
		t.Errorf("the shared folder holds %v after a failed pipe", tree)
	}
	checkNoTemps(t, share)
}

// TestSendPipeInterrupted: Ctrl-C while the pipe is idle ends the send at
// once (the read of standard input is cut short), says that nothing was
// saved, and the receiver keeps nothing.
func TestSendPipeInterrupted(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	cmd := startSendPipe(t, tmp, srv.addr, "idle.bin", pr)
	pr.Close()
	if _, err := io.CopyN(pw, newNoise(4, 3<<20), 3<<20); err != nil {
		t.Fatal(err)
	}
	// The pipe now idles, held open.
	waitFor(t, "the pipe's bytes on the receiver", func() bool { return stagedBytes(share) >= 3<<20 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err = <-exited:
	case <-time.After(failAfter):
		t.Fatalf("send still runs %v after Ctrl-C on an idle pipe", failAfter)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("send: %v, want exit 130", err)
	}
	checkErrorLine(t, cmd.Stderr.(*lockedBuffer).String(), "interrupted: after 3.1 MB of standard input", "saved nothing as idle.bin")
	srv.out.waitFor(t, "the receiver's word on the cut", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "transfer from") && strings.Contains(l, "failed") })
	})
	if tree := readTree(t, share); len(tree) != 0 {
		t.Errorf("the shared folder holds %v after an interrupted pipe", tree)
	}
	checkNoTemps(t, share)
}

// TestSendPipeUsageErrors: "-" needs --as, comes once and alone; --as
// needs "-"; an unsafe name is refused; each a one-line usage error
// before anything is sent.
func TestSendPipeUsageErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "f.txt")
	writeFile(t, file, []byte("x"), 0o644, time.Now())
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"127.0.0.1:1", "-"}, "--as NAME"},
		{[]string{"127.0.0.1:1", "--as", "x", file}, "--as names what is sent from standard input"},
		{[]string{"127.0.0.1:1", "--as", "x", "-", "-"}, "can be given once"},
		{[]string{"127.0.0.1:1", "--as", "x", "-", file}, "is sent alone"},
		{[]string{"127.0.0.1:1", "--as", "../x", "-"}, "unsafe name"},
	} {
		r := runWithStdin(t, local, tmp, strings.NewReader("data"), failAfter, append([]string{"send"}, tt.args...)...)
		if r.code != exitUsage {
			t.Errorf("send %q: exit %d, want %d\n%s", tt.args, r.code, exitUsage, r.stderr)
		}
		checkErrorLine(t, r.stderr, tt.want)
	}
}

// TestSendPipeToLocalSendRefused: a LocalSend device needs a file's size
// before it takes it: "-" to one is refused in one line, and the device
// sees no session.
func TestSendPipeToLocalSendRefused(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	phone := lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile", Addr: ":53317", Dir: t.TempDir(), Multicast: true})
	tmp := t.TempDir()
	r := runWithStdin(t, lab.Host(0).CommandContext, tmp, strings.NewReader("data"), failAfter,
		"send", "--config", filepath.Join(tmp, "config"), "--wait", "3s", "Pixel 9", "--as", "x.txt", "-")
	if r.code != exitUsage {
		t.Fatalf("send - to a LocalSend device: exit %d, want %d\n%s%s", r.code, exitUsage, r.stdout, r.stderr)
	}
	checkErrorLine(t, r.stderr, "Pixel 9 is a LocalSend device", "cannot take standard input")
	if n := len(phone.Snapshot().Sessions); n != 0 {
		t.Errorf("the device saw %d sessions", n)
	}
}

package main

// End-to-end tests: they build the lanshare binary once and run `serve` and
// `send` as separate processes talking plain TCP over 127.0.0.1.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// failAfter bounds every wait in these tests. It is a failure bound, never
// a way to order events.
const failAfter = 10 * time.Second

// lanshareBin is the binary built by TestMain.
var lanshareBin string

// TestMain runs the tests in a private network namespace: serve announces
// itself by multicast, which must never reach the machine's own network.
func TestMain(m *testing.M) {
	os.Exit(netlab.MainIsolated(func() int { return runTests(m) }))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lanshare-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	lanshareBin = filepath.Join(dir, "lanshare")
	build := exec.Command(goTool(), "build", "-o", lanshareBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building lanshare:", err)
		return 1
	}
	return m.Run()
}

// goTool finds the go command: on PATH, else in the usual install place.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// baseEnv is the test process's environment without LANSHARE_ variables
// and JOURNAL_STREAM (which switches serve to journal lines),
// with HOME and the config home moved into dir, so that no default can
// reach the user's real folders. LocalSend is off (LANSHARE_LOCALSEND=
// false): the tests' agents share one namespace, where only one could
// have LocalSend's fixed port 53317; the LocalSend tests turn it on, each
// in a lab host of its own or on a free port.
func baseEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LANSHARE_") || strings.HasPrefix(kv, "JOURNAL_STREAM=") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+filepath.Join(dir, "home"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg"), "LANSHARE_LOCALSEND=false")
}

// lineLog collects a process's output lines and lets a test wait for one.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every new line
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	close(l.changed)
	l.changed = make(chan struct{})
}

// Lines returns a copy of the lines so far.
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *lineLog) String() string { return strings.Join(l.Lines(), "\n") }

// waitFor blocks until ok holds for the lines so far, or fails the test
// after failAfter.
func (l *lineLog) waitFor(t testing.TB, what string, ok func(lines []string) bool) {
	t.Helper()
	deadline := time.NewTimer(failAfter)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		lines, changed := slices.Clone(l.lines), l.changed
		l.mu.Unlock()
		if ok(lines) {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v; output so far:\n%s", what, failAfter, strings.Join(lines, "\n"))
		}
	}
}

// server is a running `lanshare serve` (or another long-running lanshare
// command, such as `peers --watch`).
type server struct {
	cmd    *exec.Cmd
	addr   string   // from its "listening on" line
	out    *lineLog // stdout, line by line
	stderr *lockedBuffer
	first  chan string   // stdout's first line; closed without one if there is none
	done   chan struct{} // closed once the process has exited and its output is read
	state  *os.ProcessState
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// commandFunc makes the command that runs name with args, as
// exec.CommandContext does: in the tests' own namespace (local) or inside a
// lab host (netlab.Host.CommandContext).
type commandFunc func(ctx context.Context, name string, args ...string) *exec.Cmd

// local runs commands in the tests' own private network namespace.
func local(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// startServe runs `lanshare serve args...` with env added to baseEnv(tmp),
// and returns once it has printed its address. The process is stopped
// when the test ends.
func startServe(t testing.TB, tmp string, env []string, args ...string) *server {
	t.Helper()
	return startServeOn(t, local, tmp, env, args...)
}

// startServeOn is startServe with the process made by run.
func startServeOn(t testing.TB, run commandFunc, tmp string, env []string, args ...string) *server {
	t.Helper()
	s := startLanshare(t, run, tmp, env, append([]string{"serve"}, args...)...)
	s.waitListening(t)
	return s
}

// startLanshare starts `lanshare args...`, made by run, with env added to
// baseEnv(tmp), and returns at once; its stdout is collected line by line.
// The process is killed when the test ends, if it still runs.
func startLanshare(t testing.TB, run commandFunc, tmp string, env []string, args ...string) *server {
	t.Helper()
	netlab.SkipUnlessIsolated(t)
	s := &server{out: newLineLog(), stderr: &lockedBuffer{}, first: make(chan string, 1), done: make(chan struct{})}
	s.cmd = run(context.Background(), lanshareBin, args...)
	s.cmd.Env = append(baseEnv(tmp), env...)
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		for n := 0; sc.Scan(); n++ {
			if n == 0 {
				s.first <- sc.Text()
			}
			s.out.add(sc.Text())
		}
		close(s.first) // tells the waiter there was no first line, if there was none
		_ = s.cmd.Wait()
		s.state = s.cmd.ProcessState
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
			return
		default:
		}
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// waitListening waits for serve's first line, "listening on ADDR", and
// sets s.addr.
func (s *server) waitListening(t testing.TB) {
	t.Helper()
	select {
	case line, ok := <-s.first:
		if !ok {
			<-s.done
			t.Fatalf("serve exited (%v) before printing its address; stderr:\n%s", s.state, s.stderr)
		}
		addr, found := strings.CutPrefix(line, "listening on ")
		if !found {
			t.Fatalf("serve's first line = %q, want \"listening on HOST:PORT\"", line)
		}
		s.addr = addr
	case <-time.After(failAfter):
		t.Fatalf("serve printed no address within %v; stderr:\n%s", failAfter, s.stderr)
	}
}

// stop sends sig and waits for the process to exit, failing the test if it
// does not within failAfter. It returns the exit state.
func (s *server) stop(t testing.TB, sig os.Signal) *os.ProcessState {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling serve: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(failAfter):
		t.Fatalf("serve still running %v after %v; output:\n%s", failAfter, sig, s.out)
	}
	return s.state
}

// stopClean stops the server with SIGTERM and fails the test unless it
// exits 0.
func (s *server) stopClean(t testing.TB) {
	t.Helper()
	if st := s.stop(t, syscall.SIGTERM); !st.Exited() || st.ExitCode() != 0 {
		t.Fatalf("serve ended with %v after SIGTERM, want exit status 0; stderr:\n%s", st, s.stderr)
	}
}

// received returns the paths of serve's "received" log lines, as logged.
func received(lines []string) []string {
	var paths []string
	for _, l := range lines {
		_, rest, ok := strings.Cut(l, " received ")
		if !ok {
			continue
		}
		p, _, ok := strings.Cut(rest, " from ")
		if ok {
			paths = append(paths, p)
		}
	}
	return paths
}

type runResult struct {
	code           int
	stdout, stderr string
}

// runLanshare runs the binary with args to completion, with env added to
// baseEnv(tmp).
func runLanshare(t testing.TB, tmp string, env []string, args ...string) runResult {
	t.Helper()
	return runLanshareOn(t, local, tmp, env, args...)
}

// runLanshareOn is runLanshare with the process made by run.
func runLanshareOn(t testing.TB, run commandFunc, tmp string, env []string, args ...string) runResult {
	t.Helper()
	netlab.SkipUnlessIsolated(t)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	var cmd *exec.Cmd
	var stdout, stderr bytes.Buffer
	var err error
	for try := 0; ; try++ {
		cmd = run(ctx, lanshareBin, args...)
		cmd.Env = append(baseEnv(tmp), env...)
		stdout.Reset()
		stderr.Reset()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		// A binary just written (a copy for another user) can be busy
		// for an instant: a process another test forked holds its write
		// descriptor until it execs (golang.org/issue/22315).
		if !errors.Is(err, syscall.ETXTBSY) || try == 50 {
			break
		}
		time.Sleep(time.Millisecond) // a back-off for the kernel's state, not an ordering of events
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running lanshare %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("lanshare %q did not finish within %v; stderr:\n%s", args, failAfter, stderr.String())
	}
	return runResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// sendOK runs `lanshare send args...` and fails the test unless it exits 0.
func sendOK(t testing.TB, tmp string, args ...string) runResult {
	t.Helper()
	r := runLanshare(t, tmp, nil, append([]string{"send"}, args...)...)
	if r.code != 0 {
		t.Fatalf("lanshare send %q: exit %d, want 0; stderr:\n%s", args, r.code, r.stderr)
	}
	return r
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimRight(l, "\n"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// checkErrorLine fails the test unless stderr is exactly one line that
// starts "lanshare: " and contains each of want.
func checkErrorLine(t testing.TB, stderr string, want ...string) {
	t.Helper()
	ls := lines(stderr)
	if len(ls) != 1 {
		t.Errorf("stderr has %d lines, want 1:\n%s", len(ls), stderr)
		return
	}
	if !strings.HasPrefix(ls[0], "lanshare: ") {
		t.Errorf("stderr %q does not start with \"lanshare: \"", ls[0])
	}
	for _, w := range want {
		if !strings.Contains(ls[0], w) {
			t.Errorf("stderr %q does not mention %q", ls[0], w)
		}
	}
}

func writeFile(t testing.TB, path string, data []byte, mode fs.FileMode, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// entry is what the tests compare in a tree: the kind, and a file's bytes.
type entry struct {
	dir  bool
	data string
}

// keys are the paths of a tree, in no order.
func keys(m map[string]entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// stagingDir is the receiver's own folder at the top of a shared folder:
// temporary and partial files, and the index of what arrived.
const stagingDir = ".lanshare"

// readTree maps every path under root, relative and slash-separated, to
// its entry, leaving out the staging folder (see checkNoTemps). Symlinks
// are recorded as such so that a test sees them.
func readTree(t testing.TB, root string) map[string]entry {
	t.Helper()
	tree, err := walkTree(root)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// walkTree is readTree's walk.
func walkTree(root string) (map[string]entry, error) {
	tree := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if rel == stagingDir {
			return fs.SkipDir
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			tree[rel] = entry{dir: true}
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tree[rel] = entry{data: string(b)}
		default:
			tree[rel] = entry{data: "<" + d.Type().String() + ">"}
		}
		return nil
	})
	return tree, err
}

// checkNoTemps fails the test if any temporary or partial file is left
// under root.
func checkNoTemps(t testing.TB, root string) {
	t.Helper()
	for _, n := range staged(t, root) {
		t.Errorf("temporary file left behind: %s", filepath.Join(root, stagingDir, n))
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".lanshare-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// staged lists the temporary and partial files in root's staging folder.
func staged(t testing.TB, root string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(root, stagingDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if de.Name() != "arrived" {
			out = append(out, de.Name())
		}
	}
	return out
}

func TestSendTreeEndToEnd(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")

	src := filepath.Join(tmp, "src")
	tree := filepath.Join(src, "tree")
	big := make([]byte, 5<<20+123)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	// Distinct mtimes, with nanoseconds, and modes the receiver must not copy.
	mtime := func(i int) time.Time { return time.Date(2021, 3, 4, 5, 6, i, 123456789+i, time.UTC) }
	files := []struct {
		rel  string
		data []byte
		mode fs.FileMode
	}{
		{"tree/a.txt", []byte("alpha\n"), 0o644},
		{"tree/big.bin", big, 0o600},
		{"tree/empty.txt", nil, 0o644},
		{"tree/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"tree/sub/b.txt", []byte("bravo\n"), 0o640},
		{"tree/sub/deeper/c.txt", []byte("charlie\n"), 0o644},
		{"loose.txt", []byte("loose\n"), 0o644},
	}
	for i, f := range files {
		writeFile(t, filepath.Join(src, filepath.FromSlash(f.rel)), f.data, f.mode, mtime(i))
	}
	for _, d := range []string{"tree/empty-dir", "tree/sub/empty-too"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.FromSlash(d)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(tree, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	fileLink := filepath.Join(tree, "link-to-a")
	dirLink := filepath.Join(tree, "sub", "link-to-deeper")
	if err := os.Symlink("a.txt", fileLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("deeper", dirLink); err != nil {
		t.Fatal(err)
	}

	r := sendOK(t, tmp, "--name", "alice", srv.addr, tree, filepath.Join(src, "loose.txt"))

	// The symlinks are skipped with a warning each, and nothing else is said.
	for _, link := range []string{fileLink, dirLink} {
		found := false
		for _, l := range lines(r.stderr) {
			found = found || strings.HasPrefix(l, "lanshare: warning: ") && strings.Contains(l, link) && strings.Contains(l, "symbolic link")
		}
		if !found {
			t.Errorf("no warning about skipping %s; stderr:\n%s", link, r.stderr)
		}
	}
	if n := len(lines(r.stderr)); n != 2 {
		t.Errorf("stderr has %d lines, want the 2 symlink warnings:\n%s", n, r.stderr)
	}
	if out := lines(r.stdout); len(out) == 0 || !strings.HasPrefix(out[len(out)-1], fmt.Sprintf("sent %d files (", len(files))) ||
		!strings.Contains(out[len(out)-1], " to bob in ") {
		t.Errorf("send's last line of output is not \"sent %d files (...) to bob in ...\"; stdout:\n%s", len(files), r.stdout)
	}

	// The shared folder holds exactly the tree and the loose file.
	want := map[string]entry{
		"tree": {dir: true}, "tree/sub": {dir: true}, "tree/sub/deeper": {dir: true},
		"tree/empty-dir": {dir: true}, "tree/sub/empty-too": {dir: true},
	}
	for _, f := range files {
		want[f.rel] = entry{data: string(f.data)}
	}
	got := readTree(t, share)
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s missing from the shared folder", p)
		case g.dir != w.dir:
			t.Errorf("%s: directory = %v, want %v", p, g.dir, w.dir)
		case g.data != w.data:
			t.Errorf("%s: content differs from the source (%d bytes, want %d)", p, len(g.data), len(w.data))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s in the shared folder (directory: %v)", p, g.dir)
		}
	}
	checkNoTemps(t, share)

	// Files are 0644 with the sender's mtime; directories 0755.
	for i, f := range files {
		fi, err := os.Lstat(filepath.Join(share, filepath.FromSlash(f.rel)))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != 0o644 {
			t.Errorf("%s: mode %v, want -rw-r--r--", f.rel, fi.Mode())
		}
		srcFI, err := os.Stat(filepath.Join(src, filepath.FromSlash(f.rel)))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(srcFI.ModTime()) {
			t.Errorf("%s: mtime %v, want the sender's %v (set to %v)", f.rel, fi.ModTime(), srcFI.ModTime(), mtime(i))
		}
	}
	for p, w := range want {
		if !w.dir {
			continue
		}
		fi, err := os.Lstat(filepath.Join(share, filepath.FromSlash(p)))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != fs.ModeDir|0o755 {
			t.Errorf("%s: mode %v, want drwxr-xr-x", p, fi.Mode())
		}
	}

	// One "received" line per file. Stopping serve first makes its log
	// complete: the line is written after the receipt the sender waits for.
	srv.stopClean(t)
	var wantLogged []string
	for _, f := range files {
		wantLogged = append(wantLogged, f.rel)
	}
	if got := received(srv.out.Lines()); !sameSet(got, wantLogged) {
		t.Errorf("serve logged received %q, want each of %q once; log:\n%s", got, wantLogged, srv.out)
	}
	for _, l := range srv.out.Lines() {
		if strings.Contains(l, " received ") && !strings.Contains(l, " from alice (127.0.0.1:") {
			t.Errorf("received line does not name the sender alice and its address: %q", l)
		}
	}
}

// sameSet reports whether a and b hold the same strings, counting repeats.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestSendCollision(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")
	src := filepath.Join(tmp, "x.txt")

	writeFile(t, src, []byte("first\n"), 0o644, time.Now())
	sendOK(t, tmp, srv.addr, src)
	// Same name, new content: the second copy must not replace the first.
	writeFile(t, src, []byte("second\n"), 0o644, time.Now())
	r := sendOK(t, tmp, "--quiet", srv.addr, src)
	if r.stdout != "" {
		t.Errorf("send --quiet printed %q", r.stdout)
	}

	want := map[string]entry{"x.txt": {data: "first\n"}, "x (1).txt": {data: "second\n"}}
	got := readTree(t, share)
	for p, w := range want {
		if g, ok := got[p]; !ok || g != w {
			t.Errorf("%s = %+v (present %v), want %+v", p, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("shared folder holds %d entries, want %d: %v", len(got), len(want), got)
	}
	srv.out.waitFor(t, `"saved as x (1).txt" log line`, func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(l, "saved as x (1).txt,") })
	})
}

// closedPort returns a 127.0.0.1 address on which nothing listens: a port
// just used and released.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestSendExitCodes(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "src", "ok.txt")
	writeFile(t, file, []byte("ok\n"), 0o644, time.Now())

	t.Run("unreachable", func(t *testing.T) {
		addr := closedPort(t)
		r := runLanshare(t, tmp, nil, "send", addr, file)
		if r.code != 4 {
			t.Errorf("exit %d, want 4 (unreachable); stderr:\n%s", r.code, r.stderr)
		}
		checkErrorLine(t, r.stderr, addr)
	})

	t.Run("unknown peer", func(t *testing.T) {
		r := runLanshare(t, tmp, nil, "send", "--wait", "300ms", "nobody-by-this-name", file)
		if r.code != 4 {
			t.Errorf("exit %d, want 4 (unreachable); stderr:\n%s", r.code, r.stderr)
		}
		checkErrorLine(t, r.stderr, "no peer named nobody-by-this-name within 300ms")
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"send"},
			{"send", closedPort(t)},
			{"send", "", file},
			{"send", "--no-such-flag", closedPort(t), file},
		} {
			r := runLanshare(t, tmp, nil, args...)
			if r.code != 2 {
				t.Errorf("lanshare %q: exit %d, want 2 (usage); stderr:\n%s", args, r.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "lanshare: ") {
				t.Errorf("lanshare %q: stderr does not start with \"lanshare: \":\n%s", args, r.stderr)
			}
		}
	})

	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")

	t.Run("missing source", func(t *testing.T) {
		missing := filepath.Join(tmp, "src", "no-such-file.txt")
		r := runLanshare(t, tmp, nil, "send", srv.addr, missing)
		if r.code == 0 {
			t.Errorf("exit 0 for a missing source, want non-zero")
		}
		checkErrorLine(t, r.stderr, missing)
		if got := readTree(t, share); len(got) != 0 {
			t.Errorf("shared folder not empty: %v", got)
		}
	})

	// Names that are legal here but that the receiver refuses as unsafe:
	// they deceive whoever reads them. (Names that only some systems
	// cannot hold are saved, mapped if need be: names_e2e_test.go.)
	for _, name := range []string{"esc\x1b[31m.txt", "\u202etxt.exe", "zero\u200bwidth.txt", "invoice.pdf\u2003\u2003.exe", "a\u2028b.txt"} {
		t.Run("refused "+name, func(t *testing.T) {
			bad := filepath.Join(tmp, "refuse", name)
			writeFile(t, bad, []byte("bad\n"), 0o644, time.Now())
			r := runLanshare(t, tmp, nil, "send", srv.addr, bad)
			if r.code != 3 {
				t.Errorf("exit %d, want 3 (refused); stderr:\n%s", r.code, r.stderr)
			}
			ls := lines(r.stderr)
			if len(ls) == 0 {
				t.Fatal("no error on stderr")
			}
			last := ls[len(ls)-1]
			if !strings.HasPrefix(last, "lanshare: bob refused "+peer.Escape(name)+": ") {
				t.Errorf("last stderr line %q, want \"lanshare: bob refused %s: REASON\"", last, peer.Escape(name))
			}
			if got := readTree(t, share); len(got) != 0 {
				t.Errorf("shared folder not empty after a refusal: %v", got)
			}
		})
	}

	t.Run("refused with others saved", func(t *testing.T) {
		bad := filepath.Join(tmp, "mixed", "\u202ex.txt")
		good := filepath.Join(tmp, "mixed", "good.txt")
		writeFile(t, bad, []byte("bad\n"), 0o644, time.Now())
		writeFile(t, good, []byte("good\n"), 0o644, time.Now())
		r := runLanshare(t, tmp, nil, "send", srv.addr, good, bad)
		if r.code != 3 {
			t.Errorf("exit %d, want 3 (refused); stderr:\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, peer.Escape("\u202ex.txt")) {
			t.Errorf("stderr does not name the refused file %s:\n%s", peer.Escape("\u202ex.txt"), r.stderr)
		}
		got := readTree(t, share)
		want := map[string]entry{"good.txt": {data: "good\n"}}
		if len(got) != len(want) || got["good.txt"] != want["good.txt"] {
			t.Errorf("shared folder = %v, want only good.txt", got)
		}
		checkNoTemps(t, share)
	})
}

func TestServeSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			share := filepath.Join(tmp, "share")
			srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"),
				"--name", "bob", "--listen", "127.0.0.1:0")
			src := filepath.Join(tmp, "f.txt")
			writeFile(t, src, []byte("f\n"), 0o644, time.Now())
			// A completed send proves serve is past its start-up.
			sendOK(t, tmp, "--quiet", srv.addr, src)

			st := srv.stop(t, sig)
			if !st.Exited() || st.ExitCode() != 0 {
				t.Fatalf("serve ended with %v after %v, want exit status 0; stderr:\n%s", st, sig, srv.stderr)
			}
			if ls := srv.out.Lines(); len(ls) == 0 || !strings.HasSuffix(ls[len(ls)-1], " stopped") {
				t.Errorf("serve's log does not end with \"... stopped\":\n%s", srv.out)
			}
		})
	}
}

// TestServeSignalRightAfterListening pins a start-up race that once
// existed: serve printed "listening on" before it installed its
// SIGINT/SIGTERM handler, so a supervisor that stopped the agent as soon as
// it reported its address killed it instead of getting a clean exit 0.
func TestServeSignalRightAfterListening(t *testing.T) {
	t.Parallel()
	for range 20 {
		tmp := t.TempDir()
		srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "config"),
			"--name", "bob", "--listen", "127.0.0.1:0")
		if st := srv.stop(t, syscall.SIGTERM); !st.Exited() || st.ExitCode() != 0 {
			t.Fatalf("serve ended with %v on SIGTERM right after \"listening on\", want exit status 0", st)
		}
	}
}

func TestServeDefaultsFromEnv(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "not", "yet", "share")
	config := filepath.Join(tmp, "cfg")
	srv := startServe(t, tmp, []string{
		"LANSHARE_DIR=" + share,
		"LANSHARE_NAME=envbob",
		"LANSHARE_LISTEN=127.0.0.1:0",
		"LANSHARE_CONFIG=" + config,
	})
	if host, _, err := net.SplitHostPort(srv.addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("serve listens on %q, want 127.0.0.1:PORT from LANSHARE_LISTEN", srv.addr)
	}
	for _, d := range []string{share, config} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("%s not created: %v", d, err)
		}
	}

	src := filepath.Join(tmp, "hello.txt")
	writeFile(t, src, []byte("hello\n"), 0o644, time.Now())
	r := runLanshare(t, tmp, []string{"LANSHARE_NAME=envalice"}, "send", srv.addr, src)
	if r.code != 0 {
		t.Fatalf("send: exit %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	out := lines(r.stdout)
	if len(out) == 0 || !strings.HasPrefix(out[len(out)-1], "sent 1 file (") || !strings.Contains(out[len(out)-1], " to envbob in ") {
		t.Errorf("send's output does not end with \"sent 1 file (...) to envbob in ...\":\n%s", r.stdout)
	}
	if b, err := os.ReadFile(filepath.Join(share, "hello.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("hello.txt in LANSHARE_DIR = %q, %v; want \"hello\\n\"", b, err)
	}
	srv.out.waitFor(t, "received line from envalice", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(l, " received hello.txt from envalice (") })
	})
	if ls := srv.out.Lines(); len(ls) < 2 || !strings.Contains(ls[1], " sharing "+share+" as envbob (") {
		t.Errorf("serve's second line is not \"... sharing %s as envbob (ID), id ...\"; log:\n%s", share, srv.out)
	}
	srv.stopClean(t)
}

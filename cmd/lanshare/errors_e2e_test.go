package main

// Errors that say what happened and what to do: each test runs the real
// binary and checks the exit status and the one line on stderr.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// TestSendInterruptedSaysWhatArrived: a signal during send (Ctrl-C)
// ends it with 128 plus the signal's number and one line that says how
// much reached the receiver and that the same command resumes; it does.
func TestSendInterruptedSaysWhatArrived(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sig  syscall.Signal
		exit int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			src := filepath.Join(tmp, "src")
			writeFile(t, filepath.Join(src, "a-first.txt"), []byte("first\n"), 0o644, time.Now())
			randomFile(t, filepath.Join(src, "b-big.bin"), 48<<20)
			share, scfg := filepath.Join(tmp, "share"), filepath.Join(tmp, "scfg")
			srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
			release := make(chan struct{})
			defer close(release)
			proxy := pauseProxy(t, srv.addr, 8<<20, release)
			snd := startLanshare(t, local, tmp, nil, "send", "--config", scfg, proxy, src)
			// The first file is through, the big one half way: the proxy
			// holds the rest.
			snd.out.waitFor(t, "the first file's progress line", func(ls []string) bool {
				return len(ls) > 0 && strings.HasPrefix(ls[0], "sent 1/2 files")
			})
			waitFor(t, "the big file to start arriving", func() bool { return dirBytes(share) >= 4<<20 })
			st := snd.stop(t, c.sig)
			if st.ExitCode() != c.exit {
				t.Errorf("send after %v: exit %d, want %d; stderr:\n%s", c.sig, st.ExitCode(), c.exit, snd.stderr)
			}
			// The sender cannot know what crossed the network but not the
			// proxy; it says what it sent.
			checkErrorLine(t, snd.stderr.String(), "lanshare: interrupted: 1 of 2 files (",
				" of 50.3 MB) were sent to bob; run the same command again to resume: what arrived is not sent again")

			r := sendOK(t, tmp, "--json", "--config", scfg, srv.addr, src)
			if sent := transferDoneSent(t, r.stdout); sent > 44<<20 {
				t.Errorf("the same command again sent %d bytes, want only what was missing (the big file resumed)", sent)
			}
			if got := readTree(t, share); len(got["src/b-big.bin"].data) != 48<<20 {
				t.Errorf("b-big.bin did not arrive whole: %v", keys(got))
			}
		})
	}
}

// TestSendUnreadableFileIsSendersError: a file that cannot be read when
// its turn comes (removed while an earlier one streams) ends send with
// exit 7 and one line naming it as ours to fix, not as bob's refusal;
// the progress never says it was sent, and bob saves nothing for it.
func TestSendUnreadableFileIsSendersError(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	randomFile(t, filepath.Join(src, "a-big.bin"), 32<<20)
	small := filepath.Join(src, "b-small.txt")
	writeFile(t, small, []byte("small\n"), 0o644, time.Now())
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	release := make(chan struct{})
	proxy := pauseProxy(t, srv.addr, 4<<20, release)
	snd := startLanshare(t, local, tmp, nil, "send", "--config", filepath.Join(tmp, "scfg"), proxy, src)
	waitFor(t, "the big file to start arriving", func() bool { return dirBytes(share) >= 2<<20 })
	if err := os.Remove(small); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-snd.done
	if snd.state.ExitCode() != exitUnreadable {
		t.Errorf("exit %d, want %d (a file could not be read); stderr:\n%s", snd.state.ExitCode(), exitUnreadable, snd.stderr)
	}
	checkErrorLine(t, snd.stderr.String(), "lanshare: cannot read "+small+": no such file or directory; not sent")
	for _, l := range snd.out.Lines() {
		if strings.HasPrefix(l, "sent 2/2") || strings.Contains(l, "b-small.txt") {
			t.Errorf("progress claims the unreadable file: %q", l)
		}
	}
	if got := readTree(t, share); len(got) != 2 || len(got["src/a-big.bin"].data) != 32<<20 {
		t.Errorf("shared folder holds %q, want src/ and src/a-big.bin only", keys(got))
	}
}

// onReadOnly returns a commandFunc that runs its command in a private
// mount namespace where dir is bound read-only: the machine never sees
// the mount, and it goes away with the process.
func onReadOnly(dir string) commandFunc {
	return func(ctx context.Context, name string, args ...string) *exec.Cmd {
		script := `mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" || exit 97; exec "$@"`
		return exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "--",
			"sh", "-c", script, dir, name}, args...)...)
	}
}

// TestServeUnwritableFolderRefused: serve on a shared folder that cannot
// be written (a read-only file system, with its staging folder there from
// an earlier run or without one yet) stops at start with one line saying
// so and what to do, before it listens or announces, instead of failing
// every send after its bytes crossed.
func TestServeUnwritableFolderRefused(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) for a private mount namespace")
	}
	for _, staging := range []bool{true, false} {
		t.Run(fmt.Sprintf("staging folder there %v", staging), func(t *testing.T) {
			t.Parallel()
			serveUnwritable(t, staging)
		})
	}
}

func serveUnwritable(t *testing.T, staging bool) {
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	if err := os.MkdirAll(share, 0o755); err != nil {
		t.Fatal(err)
	}
	if staging {
		if err := os.MkdirAll(filepath.Join(share, ".lanshare"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r := runLanshareOn(t, onReadOnly(share), tmp, nil, "serve", "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--listen", "127.0.0.1:0")
	if r.code == 97 {
		t.Skip("cannot bind-mount read-only here (needs CAP_SYS_ADMIN in a mount namespace)")
	}
	if r.code != exitFailure {
		t.Errorf("exit %d, want %d", r.code, exitFailure)
	}
	if r.stdout != "" {
		t.Errorf("serve printed %q before refusing, want nothing (it must not listen)", r.stdout)
	}
	checkErrorLine(t, r.stderr, "lanshare: the shared folder cannot be written: "+share+": read-only file system; make it writable, or share another folder with --dir")
}

// TestServePortTaken: a serve whose port is taken says by whom: this
// config directory's own agent (its pid, and how to see it), or another
// program (and how to choose another port, also for the drop page's
// plain-HTTP port); exit 8 either way.
func TestServePortTaken(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "cfg")
	addr := freeAddr(t)
	first := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", cfg, "--listen", addr)
	_, port, _ := net.SplitHostPort(addr)

	t.Run("same config, same port", func(t *testing.T) {
		r := runLanshare(t, tmp, nil, "serve", "--dir", filepath.Join(tmp, "share2"), "--config", cfg, "--listen", addr)
		if r.code != exitInUse {
			t.Errorf("exit %d, want %d", r.code, exitInUse)
		}
		checkErrorLine(t, r.stderr, fmt.Sprintf("lanshare: an agent already runs here (pid %d, listening on %s, config %s); lanshare status shows it",
			first.cmd.Process.Pid, addr, cfg))
	})
	t.Run("same config, another port", func(t *testing.T) {
		r := runLanshare(t, tmp, nil, "serve", "--dir", filepath.Join(tmp, "share2"), "--config", cfg, "--listen", "127.0.0.1:0")
		if r.code != exitInUse {
			t.Errorf("exit %d, want %d", r.code, exitInUse)
		}
		checkErrorLine(t, r.stderr, fmt.Sprintf("lanshare: an agent already runs here (pid %d,", first.cmd.Process.Pid))
	})
	t.Run("another program", func(t *testing.T) {
		r := runLanshare(t, tmp, nil, "serve", "--dir", filepath.Join(tmp, "share3"), "--config", filepath.Join(tmp, "cfg3"), "--listen", addr)
		if r.code != exitInUse {
			t.Errorf("exit %d, want %d", r.code, exitInUse)
		}
		checkErrorLine(t, r.stderr, "lanshare: port "+port+" is in use by another program; choose another with --listen (e.g. --listen :0 for any free port)")
	})
	t.Run("the drop page's plain-HTTP port", func(t *testing.T) {
		r := runLanshare(t, tmp, nil, "serve", "--dir", filepath.Join(tmp, "share4"), "--config", filepath.Join(tmp, "cfg4"),
			"--listen", "127.0.0.1:0", "--localsend", "--localsend-port", "0", "--web-insecure-http", port)
		if r.code != exitInUse {
			t.Errorf("exit %d, want %d", r.code, exitInUse)
		}
		checkErrorLine(t, r.stderr, "lanshare: port "+port+" is in use by another program; choose another with --web-insecure-http")
	})
}

// TestServeDefaultPortTaken: a second user of one machine runs `lanshare
// serve` with no flags while the first's agent holds the default port:
// it listens on a free port instead, says so after its address line, and
// the two find each other by name. A port the user chose (here through
// the environment) does not give way, and the same config directory is
// still "an agent already runs here".
func TestServeDefaultPortTaken(t *testing.T) {
	t.Parallel()
	run := netlab.New(t, 1).Host(0).CommandContext
	tmp := t.TempDir()
	alice := filepath.Join(tmp, "alice")
	first := startServeOn(t, run, alice, nil, "--name", "alice")
	if _, port, _ := net.SplitHostPort(first.addr); port != strconv.Itoa(peer.DefaultPort) {
		t.Fatalf("the first agent listens on %s, want the default port %d", first.addr, peer.DefaultPort)
	}
	second := startServeOn(t, run, filepath.Join(tmp, "bob"), nil, "--name", "bob")
	_, port, _ := net.SplitHostPort(second.addr)
	if port == strconv.Itoa(peer.DefaultPort) || port == "0" {
		t.Fatalf("the second agent listens on %s, want another port", second.addr)
	}
	want := fmt.Sprintf("warning: port %d is in use by another program (another agent on this machine?); listening on port %s instead", peer.DefaultPort, port)
	second.out.waitFor(t, "the warning", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) })
	})
	second.out.waitFor(t, "alice", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "peer up: alice (") })
	})
	first.out.waitFor(t, "bob at the new port", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, "peer up: bob (") && strings.Contains(l, ":"+port)
		})
	})

	r := runLanshareOn(t, run, filepath.Join(tmp, "carol"), []string{"LANSHARE_LISTEN=:" + strconv.Itoa(peer.DefaultPort)}, "serve", "--name", "carol")
	if r.code != exitInUse {
		t.Errorf("a chosen port taken: exit %d, want %d", r.code, exitInUse)
	}
	checkErrorLine(t, r.stderr, fmt.Sprintf("lanshare: port %d is in use by another program; choose another with --listen", peer.DefaultPort))
	r = runLanshareOn(t, run, alice, nil, "serve", "--name", "alice")
	if r.code != exitInUse {
		t.Errorf("the same config again: exit %d, want %d", r.code, exitInUse)
	}
	checkErrorLine(t, r.stderr, fmt.Sprintf("lanshare: an agent already runs here (pid %d,", first.cmd.Process.Pid))
}

// TestPeersNobodyHint: peers that finds no other agent says on stderr,
// in one line, what commonly blocks discovery; --json output stays only
// the (empty) list.
func TestPeersNobodyHint(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	// A host of its own: the package's shared namespace has other
	// tests' agents in it, which would answer.
	run := netlab.New(t, 1).Host(0).CommandContext
	r := runLanshareOn(t, run, tmp, nil, "peers", "--wait", "300ms", "--config", filepath.Join(tmp, "cfg"))
	if r.code != 0 || r.stdout != "no peers found within 300ms\n" {
		t.Errorf("peers with nobody around: exit %d, stdout %q; want 0 and \"no peers found within 300ms\"", r.code, r.stdout)
	}
	checkErrorLine(t, r.stderr, "lanshare: no other agent answered.", "firewall", "5353/udp", "52741/tcp", "isolates its clients", "--iface", "another subnet")
	r = runLanshareOn(t, run, tmp, nil, "peers", "--json", "--wait", "300ms", "--config", filepath.Join(tmp, "cfg"))
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" || r.stderr != "" {
		t.Errorf("peers --json with nobody around: exit %d, stdout %q, stderr %q; want 0, [] and nothing on stderr", r.code, r.stdout, r.stderr)
	}
}

// portProxy relays one connection to target, holding what the client
// sends after `after` bytes; when target closes the connection, it closes
// the client's and stops listening, as the receiver's own port would: the
// sender's next connection is refused.
func portProxy(t testing.TB, target string, after int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer s.Close()
		go func() { _, _ = io.CopyN(s, c, after) }()
		_, _ = io.Copy(c, s)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestSendReceiverStoppedSaysSo: a receiver that stops during a send
// (SIGTERM: it closes its port and says goodbye) ends the send at once,
// without retries, with exit 5 and one line that says it stopped, how
// much was sent, that it keeps what arrived, and that the same command
// resumes; it does, once the receiver runs again.
func TestSendReceiverStoppedSaysSo(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	writeFile(t, filepath.Join(src, "a-first.txt"), []byte("first\n"), 0o644, time.Now())
	randomFile(t, filepath.Join(src, "b-big.bin"), 48<<20)
	share, scfg := filepath.Join(tmp, "share"), filepath.Join(tmp, "scfg")
	serveArgs := []string{"--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0"}
	srv := startServe(t, tmp, nil, serveArgs...)
	proxy := portProxy(t, srv.addr, 8<<20)
	snd := startLanshare(t, local, tmp, nil, "send", "--config", scfg, proxy, src)
	snd.out.waitFor(t, "the first file's progress line", func(ls []string) bool {
		return len(ls) > 0 && strings.HasPrefix(ls[0], "sent 1/2 files")
	})
	waitFor(t, "the big file to start arriving", func() bool { return dirBytes(share) >= 4<<20 })
	srv.stopClean(t)
	stopped := time.Now()
	select {
	case <-snd.done:
	case <-time.After(failAfter):
		t.Fatalf("send still runs %v after its receiver stopped; output:\n%s\n%s", failAfter, snd.out, snd.stderr)
	}
	if took := time.Since(stopped); took > 3*time.Second {
		t.Errorf("send took %v to end after its receiver stopped, want at most 3 s (no retries)", took)
	}
	if code := snd.state.ExitCode(); code != exitIncomplete {
		t.Errorf("exit %d, want %d (incomplete)", code, exitIncomplete)
	}
	checkErrorLine(t, snd.stderr.String(), "lanshare: bob stopped (nothing listens at "+proxy+" any more) after 1 of 2 files (",
		" of 50.3 MB) were sent; it keeps what arrived: run the same command again once it runs to resume")
	// One reconnection, refused, is how the sender learns that nothing
	// listens any more; it does not try again.
	retries := 0
	for _, l := range snd.out.Lines() {
		if strings.Contains(l, "retry") {
			retries++
		}
	}
	if retries > 1 {
		t.Errorf("send retried a receiver that stopped %d times:\n%s", retries, snd.out)
	}

	srv = startServe(t, tmp, nil, serveArgs...)
	r := sendOK(t, tmp, "--json", "--config", scfg, srv.addr, src)
	if sent := transferDoneSent(t, r.stdout); sent > 44<<20 {
		t.Errorf("the same command again sent %d bytes, want only what was missing (the big file resumed)", sent)
	}
}

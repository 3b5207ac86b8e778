package main

// Errors that say what happened and what to do: each test runs the real
// binary and checks the exit status and the one line on stderr.

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

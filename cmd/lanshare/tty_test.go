package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestSendProgressBarOnTerminal runs `send` under a pseudo-terminal: the
// pb/v3 bar renders and ends full; without a terminal the output holds no
// escape codes.
func TestSendProgressBarOnTerminal(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")
	src := filepath.Join(tmp, "src", "big.bin")
	writeFile(t, src, bytes.Repeat([]byte("lanshare"), 4<<20), 0o644, time.Now()) // 32 MiB

	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	cmd := exec.CommandContext(ctx, lanshareBin, "send", srv.addr, src)
	cmd.Env = baseEnv(tmp)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 120})
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer tty.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, tty) // ends with EIO when the process exits
	if err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading the terminal: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("send under a terminal: %v; output:\n%q", err, out.String())
	}
	screen := out.String()
	if !strings.Contains(screen, "\r") {
		t.Errorf("no bar redraws (carriage returns) on the terminal: %q", screen)
	}
	// The last frame of the bar: all files, all bytes, a full bar.
	frames := strings.Split(screen, "\r")
	var last string
	for _, f := range frames {
		if strings.Contains(f, "[") {
			last = f
		}
	}
	full := regexp.MustCompile(`1/1 33\.55 MB / 33\.55 MB \[=+\]`)
	if !full.MatchString(last) {
		t.Errorf("last bar frame %q, want 1/1 and 33.55 MB / 33.55 MB with a full bar", last)
	}

	r := runLanshare(t, tmp, nil, "send", srv.addr, src)
	if r.code != 0 {
		t.Fatalf("send without a terminal: exit %d: %s", r.code, r.stderr)
	}
	if strings.ContainsAny(r.stdout+r.stderr, "\x1b\r") {
		t.Errorf("output without a terminal holds escape codes or carriage returns: %q", r.stdout)
	}
}

// TestServeBarsOnTerminal runs `serve` under a pseudo-terminal: while a
// transfer streams in (held half-way by a proxy), a bar shows the sender,
// files and bytes under the log; when it ends, the bar is erased and the
// log line of the received file takes its place.
func TestServeBarsOnTerminal(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	_, screen, addr := serveOnTerminal(t, tmp, 120, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "rcfg"),
		"--name", "bob", "--listen", "127.0.0.1:0")

	src := filepath.Join(tmp, "src", "big.bin")
	writeFile(t, src, bytes.Repeat([]byte("lanshare"), 4<<20), 0o644, time.Now()) // 32 MiB
	release := make(chan struct{})
	proxy := pauseProxy(t, addr, 8<<20, release)
	sent := make(chan runResult, 1)
	go func() { sent <- runLanshare(t, tmp, nil, "send", "--quiet", "--name", "tx", proxy, src) }()
	bar := regexp.MustCompile(`from tx 0/1 +\d+(\.\d+)? MB / 33\.55 MB \[=*>? *\]`)
	waitFor(t, "a bar for the transfer", func() bool { return bar.MatchString(screen.String()) })
	close(release)
	if r := result(t, sent); r.code != 0 {
		t.Fatalf("send: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, "the received line", func() bool { return strings.Contains(screen.String(), "received big.bin from tx") })
	out := screen.String()
	at := strings.Index(out, "received big.bin from tx")
	before, after := out[:at], out[at:]
	if !strings.Contains(before[strings.LastIndex(before, "from tx 0/1"):], "\x1b[J") {
		t.Errorf("the bar was not erased before the log line: %q", before[max(0, len(before)-300):])
	}
	if regexp.MustCompile(`from tx \d+/\d+`).MatchString(after) {
		t.Errorf("the bar is drawn again after its transfer ended: %q", after)
	}
}

// serveOnTerminal starts lanshare serve with args under a pseudo-terminal
// of cols columns and waits for its address. It returns the terminal (to
// type into), what the terminal shows, and the address; serve is stopped
// with SIGTERM when the test ends. It skips where there is no terminal.
func serveOnTerminal(t *testing.T, tmp string, cols uint16, args ...string) (*os.File, *lockedBuffer, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, lanshareBin, append([]string{"serve"}, args...)...)
	cmd.Env = baseEnv(tmp)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: cols})
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	screen := new(lockedBuffer)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(screen, tty) // ends with EIO when the process exits
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		<-copied
		tty.Close()
	})
	var addr string
	waitFor(t, "serve's address", func() bool {
		m := regexp.MustCompile(`listening on (\S+)\r?\n`).FindStringSubmatch(screen.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return tty, screen, addr
}

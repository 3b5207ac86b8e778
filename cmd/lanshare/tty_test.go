package main

import (
	"bytes"
	"context"
	"errors"
	"io"
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

package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFlagsAfterArguments: flags may follow a command's arguments, with
// their values; "--" and "-" keep their meaning; anything that is not a
// command's line is left as it is.
func TestFlagsAfterArguments(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	for _, c := range []struct{ in, want string }{
		{"send bob report.pdf --quiet", "send --quiet -- bob report.pdf"},
		{"send bob report.pdf -q", "send -q -- bob report.pdf"},
		{"send bob a --wait 2s b", "send --wait 2s -- bob a b"},
		{"send bob a --wait=2s b", "send --wait=2s -- bob a b"},
		{"send bob --retries -1 a", "send --retries -1 -- bob a"},
		{"send bob - --json", "send --json -- bob -"},
		{"send bob a -- --quiet", "send -- bob a --quiet"},
		{"send --quiet bob a", "send --quiet bob a"},
		{"send bob a", "send bob a"},
		{"send bob a --no-such-flag", "send --no-such-flag -- bob a"},
		{"send bob a --wait", "send --wait"}, // its value missing: the flag alone, for cli to say so
		{"send bob a --help", "send --help -- bob a"},
		{"trust bob --wait 1s --iface eth0", "trust --wait 1s --iface eth0 -- bob"},
		{"serve --dir x", "serve --dir x"},
		{"peers --json", "peers --json"},
		{"--help", "--help"},
		{"nosuchcommand a --quiet", "nosuchcommand a --quiet"},
		{"send bob -- --generate-bash-completion", "send bob -- --generate-bash-completion"},
	} {
		in := append([]string{"lanshare"}, strings.Fields(c.in)...)
		want := append([]string{"lanshare"}, strings.Fields(c.want)...)
		if got := flagsFirst(app, in); !slices.Equal(got, want) {
			t.Errorf("flagsFirst(%q) = %q\nwant %q", c.in, got[1:], want[1:])
		}
	}
}

// TestSendFlagAfterPaths: "lanshare send ADDR FILE --quiet" sends quietly
// (it once failed with "--quiet: no such file or directory").
func TestSendFlagAfterPaths(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	file := filepath.Join(tmp, "src", "report.pdf")
	writeFile(t, file, []byte("report\n"), 0o644, time.Now())
	r := runLanshare(t, tmp, nil, "send", srv.addr, file, "--quiet", "--config", filepath.Join(tmp, "scfg"))
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("send ADDR FILE --quiet --config DIR: exit %d, stdout %q, stderr %q; want exit 0 and no output", r.code, r.stdout, r.stderr)
	}
	if got := readTree(t, share); got["report.pdf"].data != "report\n" {
		t.Fatalf("report.pdf did not arrive: %v", got)
	}
	if _, err := os.Stat(filepath.Join(tmp, "scfg")); err != nil {
		t.Errorf("--config after the paths was not used: %v", err)
	}
}

// TestSendSwappedArgumentsHint: "lanshare send report.pdf bob", where
// report.pdf exists and bob is no file, is a usage error that shows the
// command meant.
func TestSendSwappedArgumentsHint(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	writeFile(t, filepath.Join(src, "report.pdf"), []byte("report\n"), 0o644, time.Now())
	writeFile(t, filepath.Join(src, "my notes.txt"), []byte("notes\n"), 0o644, time.Now())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report.pdf", "bob"}, "lanshare: bob is not a file here and report.pdf is: did you mean: lanshare send bob report.pdf?"},
		{[]string{"report.pdf", "my notes.txt", "bob"}, "lanshare: bob is not a file here and report.pdf is: did you mean: lanshare send bob report.pdf 'my notes.txt'?"},
	} {
		cmd := []string{"send", "--config", filepath.Join(tmp, "cfg")}
		r := runLanshareOn(t, inDir(src), tmp, nil, append(cmd, c.args...)...)
		if r.code != exitUsage {
			t.Errorf("send %q: exit %d, want %d (usage); stderr:\n%s", c.args, r.code, exitUsage, r.stderr)
		}
		if ls := lines(r.stderr); len(ls) != 1 || ls[0] != c.want {
			t.Errorf("send %q: stderr %q\nwant %q", c.args, r.stderr, c.want)
		}
	}
}

// inDir runs commands in dir.
func inDir(dir string) commandFunc {
	return func(ctx context.Context, name string, args ...string) *exec.Cmd {
		c := local(ctx, name, args...)
		c.Dir = dir
		return c
	}
}

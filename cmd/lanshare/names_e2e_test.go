package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vacances is issue 14's folder: eleven files, four of which a Linux
// receiver refused and dropped ("4 of 11 not saved", exit 3).
var vacances = map[string]string{
	"a:b.txt": "a：b.txt", "what?.txt": "what？.txt", "CON.txt": "CON_.txt", "trailing.dot.": "trailing.dot．",
	"plage.jpg": "plage.jpg", "mer.jpg": "mer.jpg", "été.txt": "été.txt", "notes (1).md": "notes (1).md",
	"sub/x.txt": "sub/x.txt", "sub/y.txt": "sub/y.txt", "sub/z.txt": "sub/z.txt",
}

// writeVacances writes vacances under dir/Vacances été 2026 and returns
// the folder.
func writeVacances(t testing.TB, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "Vacances été 2026")
	for name := range vacances {
		writeFile(t, filepath.Join(root, filepath.FromSlash(name)), []byte(name), 0o644, time.Unix(1700000000, 0))
	}
	return root
}

// TestSendOrdinaryNamesLinuxToLinux pins issue 14: `lanshare send bob
// "Vacances été 2026"` between two Linux hosts saves all eleven files
// under their own names and says nothing was renamed.
func TestSendOrdinaryNamesLinuxToLinux(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"), "--name", "bob", "--listen", "127.0.0.1:0")
	root := writeVacances(t, filepath.Join(tmp, "src"))
	r := sendOK(t, tmp, "--name", "alice", srv.addr, root)
	for name := range vacances {
		b, err := os.ReadFile(filepath.Join(share, "Vacances été 2026", filepath.FromSlash(name)))
		if err != nil || string(b) != name {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	if last := lastLine(r.stdout); !strings.HasPrefix(last, "sent 11 files (") || strings.Contains(last, "saved as") {
		t.Errorf("summary %q, want 11 files sent and none renamed", last)
	}
}

// TestSendToWindowsRulesSaysSavedAs: a receiver whose folder follows the
// Windows rules (serve --names windows) saves the four files under
// look-alike names, and the sender's summary says so, naming three and
// counting the rest.
func TestSendToWindowsRulesSaysSavedAs(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"), "--name", "bob", "--listen", "127.0.0.1:0",
		"--names", "windows")
	root := writeVacances(t, filepath.Join(tmp, "src"))
	r := sendOK(t, tmp, "--name", "alice", srv.addr, root)
	for name, saved := range vacances {
		b, err := os.ReadFile(filepath.Join(share, "Vacances été 2026", filepath.FromSlash(saved)))
		if err != nil || string(b) != name {
			t.Errorf("%s: saved as %s: %q, %v", name, saved, b, err)
		}
	}
	last := lastLine(r.stdout)
	if !strings.HasPrefix(last, "sent 11 files (") || strings.Count(last, " saved as ") != 3 || !strings.HasSuffix(last, ", 1 more renamed)") ||
		!strings.Contains(last, "Vacances été 2026/CON.txt saved as CON_.txt") {
		t.Errorf("summary %q, want 11 files sent, 3 named as saved as, 1 more renamed", last)
	}
}

// TestServeNamesFlagRefusesUnknownRules: a typo in --names is a usage
// error at start, not a folder that follows unknown rules.
func TestServeNamesFlagRefusesUnknownRules(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	r := runLanshare(t, tmp, nil, "serve", "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "config"), "--listen", "127.0.0.1:0", "--names", "dos")
	if r.code != 2 || !strings.Contains(r.stderr, "--names") || !strings.Contains(r.stderr, `"dos"`) {
		t.Errorf("serve --names dos: exit %d, stderr %q; want exit 2 naming --names", r.code, r.stderr)
	}
}

// TestSendSkipsNonUTF8NameAndSendsTheRest pins issue 14's "one bad name
// never blocks the batch": a file whose name is not UTF-8 is named in a
// warning, escaped, and the rest of its folder arrives. Before, the whole
// offer failed with "path is not valid UTF-8" and no file named.
func TestSendSkipsNonUTF8NameAndSendsTheRest(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"), "--name", "bob", "--listen", "127.0.0.1:0")
	root := writeVacances(t, filepath.Join(tmp, "src"))
	bad := filepath.Join(root, "caf\xe9.txt") // Latin-1, from an old archive
	writeFile(t, bad, []byte("latin-1"), 0o644, time.Unix(1700000000, 0))
	r := runLanshare(t, tmp, nil, "send", "--name", "alice", srv.addr, root)
	want := "lanshare: warning: \"" + filepath.Join(root, "caf") + "\\xe9.txt\": skipped: name cannot be sent: not valid UTF-8"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q, want the warning %q", r.stderr, want)
	}
	for name := range vacances {
		b, err := os.ReadFile(filepath.Join(share, "Vacances été 2026", filepath.FromSlash(name)))
		if err != nil || string(b) != name {
			t.Errorf("%s: %q, %v (exit %d, stderr %q)", name, b, err, r.code, r.stderr)
		}
	}
	if !strings.HasPrefix(lastLine(r.stdout), "sent 11 files (") {
		t.Errorf("stdout %q, want \"sent 11 files\"", r.stdout)
	}
	// The rest went, and the exit code and last line say one was left.
	if r.code != exitUnreadable || lastLine(r.stderr) != "lanshare: 1 path could not be sent (see the warnings above); everything else was" {
		t.Errorf("exit %d, last line %q: want %d and the one-line count of what was left", r.code, lastLine(r.stderr), exitUnreadable)
	}
}

func lastLine(s string) string {
	l := lines(s)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

package main

// A send to several peers at once (--to, repeated) and --exclude, through
// the binary on lab hosts.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/lsdouble"
	"github.com/lanshare/lanshare/internal/netlab"
)

// TestSendToSeveralPeers: one `send` with three --to, two lanshare agents
// (one named with a comma and a space) and a strict LocalSend double,
// delivers the same folder and file to each, byte-identical; its lines
// into a pipe each start with the target's name, and each target has a
// summary line. A target that is offline (an agent that was stopped) gets
// its own line on stderr and exit 4, while the others get everything. The
// exit code is the first failure's, in the order the targets were given:
// an offline agent before a declining device exits 4, after it 3; --json
// tags every event with its target.
func TestSendToSeveralPeers(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 5)
	bob := launchAgent(t, lab.Host(1), "bob")
	anna := launchAgent(t, lab.Host(2), "Smith, Anna")
	dave := launchAgent(t, lab.Host(4), "dave")
	for _, a := range []*labAgent{bob, anna, dave} {
		a.ready(t)
	}
	// dave was there, and is no more.
	dave.stopClean(t)
	got := t.TempDir()
	phone := lsdouble.StartIn(t, lab.Host(3), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile", Addr: ":53317", Dir: got, Multicast: true})

	tmp := t.TempDir()
	config := filepath.Join(tmp, "config")
	send := func(args ...string) runResult {
		args = append([]string{"send", "--config", config, "--name", "alice", "--wait", "1500ms"}, args...)
		return runLanshareOn(t, lab.Host(0).CommandContext, tmp, nil, args...)
	}
	paths, want := lsTree(t, tmp, "src")
	r := send(append([]string{"--to", "bob", "--to", "Smith, Anna", "--to", "Pixel 9"}, paths...)...)
	if r.code != 0 {
		t.Fatalf("send to three: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	waitTree(t, bob.dir, want)
	waitTree(t, anna.dir, want)
	waitTree(t, got, want)
	if r.stderr != "" {
		t.Errorf("send to three: stderr:\n%s", r.stderr)
	}
	labels := []string{"bob", "Smith, Anna", "Pixel 9"}
	for _, l := range lines(r.stdout) {
		if !slices.ContainsFunc(labels, func(p string) bool { return strings.HasPrefix(l, p+": ") }) {
			t.Errorf("a line without its target's name in front: %q", l)
		}
	}
	for _, p := range labels {
		if !slices.ContainsFunc(lines(r.stdout), func(l string) bool { return strings.HasPrefix(l, p+": sent 3 files (") }) {
			t.Errorf("no summary line for %s:\n%s", p, r.stdout)
		}
	}

	// dave is offline: his own line and exit 4; the others get it all.
	second := filepath.Join(tmp, "second.bin")
	data := randomFile(t, second, 300<<10)
	r = send("--to", "bob", "--to", "dave", "--to", "Pixel 9", second)
	if r.code != exitUnreachable {
		t.Errorf("one of three offline: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, exitUnreachable, r.stdout, r.stderr)
	}
	for _, dir := range []string{bob.dir, got} {
		if b, err := os.ReadFile(filepath.Join(dir, "second.bin")); err != nil || string(b) != string(data) {
			t.Errorf("%s: second.bin is %d bytes (%v), want the %d sent", dir, len(b), err, len(data))
		}
	}
	if _, err := os.Stat(filepath.Join(dave.dir, "second.bin")); err == nil {
		t.Errorf("second.bin reached the stopped dave's folder")
	}
	errs := lines(r.stderr)
	if len(errs) != 2 || !strings.HasPrefix(errs[0], "lanshare: dave: ") || !strings.Contains(errs[0], "dave") ||
		errs[1] != "lanshare: 2 of 3 peers got every file; not dave (exit 4)" {
		t.Errorf("stderr, want a line for dave and one that counts:\n%s", r.stderr)
	}
	for _, p := range []string{"bob", "Pixel 9"} {
		if !slices.ContainsFunc(lines(r.stdout), func(l string) bool { return strings.HasPrefix(l, p+": sent 1 file (") }) {
			t.Errorf("no summary line for %s:\n%s", p, r.stdout)
		}
	}

	// The first failure in the order given decides the exit code.
	phone.SetBehaviour(lsdouble.Behaviour{Decline: true})
	r = send("--json", "--to", "dave", "--to", "Pixel 9", second)
	if r.code != exitUnreachable {
		t.Errorf("dave (offline), then Pixel 9 (declines): exit %d, want %d\nstderr:\n%s", r.code, exitUnreachable, r.stderr)
	}
	exits := map[string]int{}
	for _, l := range lines(r.stdout) {
		var ev struct {
			To    string `json:"to"`
			Event string `json:"event"`
			Exit  int    `json:"exit"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || (ev.To != "dave" && ev.To != "Pixel 9") {
			t.Errorf("--json line %q: %v, want an event with \"to\": its target", l, err)
			continue
		}
		if ev.Event == "error" && ev.Exit != 0 {
			exits[ev.To] = ev.Exit
		}
	}
	if exits["dave"] != exitUnreachable || exits["Pixel 9"] != exitRefused {
		t.Errorf("--json final errors by target: %v, want dave %d, Pixel 9 %d\n%s", exits, exitUnreachable, exitRefused, r.stdout)
	}
	r = send("--to", "Pixel 9", "--to", "dave", second)
	if r.code != exitRefused {
		t.Errorf("Pixel 9 (declines), then dave (offline): exit %d, want %d\nstderr:\n%s", r.code, exitRefused, r.stderr)
	}
	if !strings.Contains(r.stderr, "lanshare: Pixel 9: ") || !strings.Contains(r.stderr, "lanshare: dave: ") ||
		!strings.Contains(r.stderr, "0 of 2 peers got every file; not Pixel 9 (exit 3), dave (exit 4)") {
		t.Errorf("stderr, want a line for each and one that counts:\n%s", r.stderr)
	}
}

// TestSendCommandLineWithTo: --to takes names whole (commas too); with
// it every argument is a path; a name given twice, a --to without paths,
// and a bad --exclude pattern are usage errors (exit 2) on one line,
// before anything is sent.
func TestSendCommandLineWithTo(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a.txt")
	writeFile(t, file, []byte("a\n"), 0o644, time.Now())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "bob", "--to", "BOB", file}, "--to BOB given twice"},
		{[]string{"--to", "bob"}, "needs at least one path"},
		{[]string{"--to", "bob", "carol", file}, "with --to, every argument is a path"},
		{[]string{"--to", "", file}, "empty target"},
		{[]string{"--exclude", "[a-", "bob", file}, "--exclude: bad exclude pattern"},
		{[]string{"bob"}, "send needs a target and at least one path"},
		{[]string{"bob", "--as", "x.tar"}, "--as names standard input, given as the path -: lanshare send TARGET --as NAME -"},
	} {
		r := runLanshare(t, tmp, nil, append([]string{"send", "--config", filepath.Join(tmp, "config"), "--wait", "100ms"}, tc.args...)...)
		if r.code != exitUsage {
			t.Errorf("send %q: exit %d, want %d\nstderr:\n%s", tc.args, r.code, exitUsage, r.stderr)
		}
		checkErrorLine(t, r.stderr, tc.want)
	}
}

// TestSendExclude: a folder sent with --exclude arrives without what the
// patterns match (files at any depth, a folder by name, an anchored
// folder, "**/", a file brought back with "!"), an excluded folder with a
// name that cannot be sent inside gives no warning (it is not read), and
// the summary counts what was left out.
func TestSendExclude(t *testing.T) {
	t.Parallel()
	netlab.SkipUnlessIsolated(t)
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--name", "bob", "--listen", "127.0.0.1:0")
	src := filepath.Join(tmp, "src")
	want := map[string]entry{"proj": {dir: true}, "proj/src": {dir: true}, "proj/src/build": {dir: true}, "proj/a": {dir: true}, "proj/a/b": {dir: true}}
	for p, keep := range map[string]bool{
		"proj/src/main.go":             true,
		"proj/src/build/gen.go":        true, // build/ is excluded only at the top of proj
		"proj/keep.tmp":                true,
		"proj/cache.txt":               true,
		"proj/src/main.tmp":            false,
		"proj/node_modules/x/index.js": false,
		"proj/build/out.o":             false,
		"proj/a/b/cache/c.bin":         false,
	} {
		data := randomFile(t, filepath.Join(src, p), 100+len(p))
		if keep {
			want[p] = entry{data: string(data)}
		}
	}
	writeFile(t, filepath.Join(src, "proj", "node_modules", "bad\xff.js"), []byte("x"), 0o644, time.Now())
	r := runLanshare(t, tmp, nil, "send", "--config", filepath.Join(tmp, "scfg"), srv.addr, filepath.Join(src, "proj"),
		"--exclude", "*.tmp", "--exclude", "!keep.tmp", "--exclude", "node_modules/", "--exclude", "/proj/build", "--exclude", "**/cache")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("send --exclude: exit %d, want 0 and nothing on stderr\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	waitTree(t, share, want)
	if !strings.Contains(r.stdout, "sent 4 files (") || !strings.Contains(r.stdout, "4 paths excluded)") {
		t.Errorf("summary does not count the 4 files sent and the 4 paths excluded:\n%s", r.stdout)
	}
}

package main

import (
	"bufio"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readUnit parses a systemd unit file into "Section.Key" -> value.
func readUnit(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("line %q is not KEY=VALUE", line)
			}
			keys[section+"."+k] = v
		}
	}
	return keys
}

// TestSystemdUnit checks the shipped user unit: it runs `lanshare serve`
// with flags the command accepts, stops it with SIGTERM, and is enabled
// for the user's session; systemd-analyze, where there is one, finds
// nothing wrong with it.
func TestSystemdUnit(t *testing.T) {
	keys := readUnit(t, "lanshare.service")
	exec := keys["Service.ExecStart"]
	if !regexp.MustCompile(`^/usr/bin/env lanshare serve( |$)`).MatchString(exec) {
		t.Errorf("ExecStart = %q, want /usr/bin/env lanshare serve ...", exec)
	}
	if keys["Service.KillSignal"] != "SIGTERM" || keys["Install.WantedBy"] != "default.target" {
		t.Errorf("KillSignal %q, WantedBy %q; want SIGTERM, default.target", keys["Service.KillSignal"], keys["Install.WantedBy"])
	}
	// The flags in ExecStart, if any, must be ones serve accepts.
	args := strings.Fields(exec)[2:]
	r := runLanshare(t, t.TempDir(), nil, append(args, "--help")...)
	if r.code != 0 {
		t.Errorf("%q --help: exit %d: %s", args, r.code, r.stderr)
	}
	if sa, err := osexec.LookPath("systemd-analyze"); err == nil {
		out, err := osexec.Command(sa, "verify", "--man=no", "lanshare.service").CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
}

// TestSystemdUnitFindsGoInstall: the unit's ExecStart, with the PATH the
// unit sets and %h the user's home, runs the lanshare that `go install`
// put in ~/go/bin (or ~/.local/bin) on a machine without the package, and
// the package's /usr/bin/lanshare before either (.ci/package-test runs the
// installed package's unit).
func TestSystemdUnitFindsGoInstall(t *testing.T) {
	t.Parallel()
	keys := readUnit(t, "lanshare.service")
	path, ok := strings.CutPrefix(keys["Service.Environment"], "PATH=")
	if !ok {
		t.Fatalf("the unit sets no PATH (Environment=%q)", keys["Service.Environment"])
	}
	dirs := strings.Split(path, ":")
	if i, j := slices.Index(dirs, "/usr/bin"), slices.Index(dirs, "%h/go/bin"); i < 0 || j < i || !slices.Contains(dirs, "%h/.local/bin") {
		t.Errorf("the unit's PATH %q: want /usr/bin before %%h/go/bin, and %%h/.local/bin", path)
	}
	if _, err := os.Stat("/usr/bin/lanshare"); err == nil {
		t.Skip("/usr/bin/lanshare exists here: the package's binary would be run")
	}
	for _, bin := range []string{"go/bin", ".local/bin"} {
		home := t.TempDir()
		if err := os.MkdirAll(filepath.Join(home, bin), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(lanshareBin, filepath.Join(home, bin, "lanshare")); err != nil {
			t.Fatal(err)
		}
		argv := strings.Fields(keys["Service.ExecStart"])
		cmd := osexec.Command(argv[0], append(argv[1:], "--print-config", "--config", filepath.Join(home, "config"))...)
		cmd.Env = append(baseEnv(home), "PATH="+strings.ReplaceAll(path, "%h", home))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "listen") {
			t.Errorf("ExecStart with lanshare in ~/%s: %v\n%s", bin, err, out)
		}
	}
}

// TestServeJournalFormat: under systemd (JOURNAL_STREAM set) serve's lines
// carry a syslog priority instead of a time stamp.
func TestServeJournalFormat(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv := startServe(t, tmp, []string{"JOURNAL_STREAM=8:1234"}, "--dir", filepath.Join(tmp, "share"),
		"--config", filepath.Join(tmp, "config"), "--name", "bob", "--listen", "127.0.0.1:0", "--iface", "nosuch9")
	srv.out.waitFor(t, "the accept policy line", func(ls []string) bool {
		return len(ls) >= 4
	})
	srv.stopClean(t)
	ls := srv.out.Lines()
	for _, l := range ls[1:] {
		if !regexp.MustCompile(`^<[46]>[^<0-9]`).MatchString(l) {
			t.Errorf("journal line %q does not start with <4> or <6> and its text", l)
		}
	}
	if !strings.HasPrefix(ls[1], "<4>warning: no network interface named nosuch9") {
		t.Errorf("second line %q, want the interface warning at priority 4", ls[1])
	}
}

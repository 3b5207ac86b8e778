package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// manSection returns the text of section name (".SH name") of a roff
// page, up to the next .SH; ok is false when the page has no such section.
func manSection(page, name string) (text string, ok bool) {
	_, rest, ok := strings.Cut(page, "\n.SH "+name+"\n")
	if !ok {
		return "", false
	}
	text, _, _ = strings.Cut(rest, "\n.SH ")
	return text, true
}

// readmeExitCodes returns the codes of the README's exit status table
// (the rows "| N | meaning |" after "| exit | meaning |").
func readmeExitCodes(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var codes []string
	in := false
	row := regexp.MustCompile(`^\| (\d+) \|`)
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "| exit | meaning |"):
			in = true
		case in && row.MatchString(line):
			codes = append(codes, row.FindStringSubmatch(line)[1])
		case in && !strings.HasPrefix(line, "|"):
			in = false
		}
	}
	if len(codes) == 0 {
		t.Fatal("README.md has no exit status table (| exit | meaning |)")
	}
	return codes
}

// exitConstants returns the values of the exit code constants in app.go
// (exitOK = 0, ...).
func exitConstants(t testing.TB) []string {
	t.Helper()
	src, err := os.ReadFile("app.go")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, m := range regexp.MustCompile(`(?m)^\s+exit[A-Z]\w*\s*= (\d+)`).FindAllStringSubmatch(string(src), -1) {
		codes = append(codes, m[1])
	}
	if len(codes) < 7 {
		t.Fatalf("found exit codes %q in app.go, want exitOK = 0 and the others", codes)
	}
	return codes
}

// TestManPageSections: lanshare(1) has EXIT STATUS with every code the
// README's table lists and app.go defines, plus 130 and 143, ENVIRONMENT with every
// LANSHARE_ variable a flag reads, and FILES with the config directory's
// files and the systemd unit.
func TestManPageSections(t *testing.T) {
	t.Parallel()
	r := runLanshare(t, t.TempDir(), nil, "man")
	if r.code != 0 {
		t.Fatalf("man: exit %d: %s", r.code, r.stderr)
	}
	exit, ok := manSection(r.stdout, "EXIT STATUS")
	if !ok {
		t.Fatalf("man page has no EXIT STATUS section:\n%s", r.stdout)
	}
	for _, code := range append(append(readmeExitCodes(t), exitConstants(t)...), "130", "143") {
		if !strings.Contains(exit, "\n.B "+code+"\n") {
			t.Errorf("EXIT STATUS lacks code %s:\n%s", code, exit)
		}
	}
	env, ok := manSection(r.stdout, "ENVIRONMENT")
	if !ok {
		t.Fatalf("man page has no ENVIRONMENT section")
	}
	for _, v := range []string{"LANSHARE_DIR", "LANSHARE_NAME", "LANSHARE_LISTEN", "LANSHARE_CONFIG", "LANSHARE_IFACE", "LANSHARE_ACCEPT", "LANSHARE_MAX_SIZE", "LANSHARE_KEEP_PARTIALS", "XDG_CONFIG_HOME", "JOURNAL_STREAM"} {
		if !strings.Contains(env, "\n.B "+v+"\n") {
			t.Errorf("ENVIRONMENT lacks %s", v)
		}
	}
	files, ok := manSection(r.stdout, "FILES")
	if !ok {
		t.Fatalf("man page has no FILES section")
	}
	for _, f := range []string{"~/LANShare", "$XDG_CONFIG_HOME/lanshare/known_peers", "key.pem", "history.jsonl", "agent.sock", "/usr/lib/systemd/user/lanshare.service"} {
		if !strings.Contains(files, f) {
			t.Errorf("FILES lacks %s", f)
		}
	}
	if man, err := exec.LookPath("man"); err == nil {
		// The page renders without roff warnings.
		cmd := exec.Command(man, "--warnings", "-l", "-")
		cmd.Stdin = strings.NewReader(r.stdout)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_STDERR=1")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Contains(string(out), "warning") {
			t.Errorf("man -l: %v\n%s", err, out)
		}
	}
}

// TestManPageNamesNoMachine: a page built by a user with another home
// directory on a host with another name is the same page, and shows
// the rules that make the defaults instead of the builder's values.
func TestManPageNamesNoMachine(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("hostname"); err != nil {
		t.Skip("hostname(1) not found: it names the builder's host in a UTS namespace")
	}
	const home, host = "/home/builder-xyz", "builder-host-xyz"
	// The build runs in its own UTS namespace, with its own host name.
	inUTS := func(ctx context.Context, name string, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, "unshare", append([]string{"--uts", "sh", "-c", `hostname "$0" && exec "$@"`, host, name}, args...)...)
	}
	if out, err := exec.Command("unshare", "--uts", "hostname", host).CombinedOutput(); err != nil {
		t.Skipf("cannot set a host name in a UTS namespace: %v: %s", err, out)
	}
	tmp := t.TempDir()
	r := runLanshareOn(t, inUTS, tmp, []string{"HOME=" + home, "XDG_CONFIG_HOME="}, "man")
	if r.code != 0 {
		t.Fatalf("man: exit %d: %s", r.code, r.stderr)
	}
	for _, s := range []string{home, "builder-xyz", host, tmp} {
		if strings.Contains(r.stdout, s) {
			t.Errorf("man page contains the builder's %q", s)
		}
	}
	for _, want := range []string{`(default: ~/LANShare)`, `(default: the host name)`, `(default: $XDG_CONFIG_HOME/lanshare, else ~/.config/lanshare`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	// Another builder gets the same page.
	other := runLanshare(t, tmp, nil, "man")
	if other.stdout != r.stdout {
		t.Errorf("the man page differs between builders")
	}
}

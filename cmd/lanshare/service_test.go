package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnit checks the shipped user unit: it runs `lanshare serve`
// with flags the command accepts, stops it with SIGTERM, and is enabled
// for the user's session.
func TestSystemdUnit(t *testing.T) {
	f, err := os.Open("lanshare.service")
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
	exec := keys["Service.ExecStart"]
	if !regexp.MustCompile(`^%h/go/bin/lanshare serve( |$)`).MatchString(exec) {
		t.Errorf("ExecStart = %q, want %%h/go/bin/lanshare serve ...", exec)
	}
	if keys["Service.KillSignal"] != "SIGTERM" || keys["Install.WantedBy"] != "default.target" {
		t.Errorf("KillSignal %q, WantedBy %q; want SIGTERM, default.target", keys["Service.KillSignal"], keys["Install.WantedBy"])
	}
	// The flags in ExecStart, if any, must be ones serve accepts.
	args := strings.Fields(exec)[1:]
	r := runLanshare(t, t.TempDir(), nil, append(args, "--help")...)
	if r.code != 0 {
		t.Errorf("%q --help: exit %d: %s", args, r.code, r.stderr)
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

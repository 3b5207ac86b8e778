package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigPrecedence: flags beat the environment, which beats the config
// file, which beats the defaults; --print-config shows each value and its
// source.
func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfgDir := filepath.Join(tmp, "cfg")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(cfgDir, "config")
	conf := "# settings\ndir = /srv/share\nname = filebob\naccept = trusted\niface = eth0, wlan0\nmax-size = 1G\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runLanshare(t, tmp, []string{"LANSHARE_NAME=envbob", "LANSHARE_ACCEPT=trusted"},
		"serve", "--config", cfgDir, "--accept", "everyone", "--print-config")
	if r.code != 0 {
		t.Fatalf("--print-config: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	got := map[string]string{}
	for _, l := range lines(r.stdout) {
		k, rest, _ := strings.Cut(l, " = ")
		got[k] = rest
	}
	for k, want := range map[string]string{
		"dir":          "/srv/share  # " + file,
		"name":         "envbob  # environment LANSHARE_NAME",
		"accept":       "everyone  # command line",
		"iface":        "eth0, wlan0  # " + file,
		"max-size":     "1G  # " + file,
		"listen":       ":52741  # default",
		"config":       cfgDir + "  # command line",
		"trusted-exec": "false  # default",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}

	if err := os.WriteFile(file, []byte("dir = /x\nlisten\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runLanshare(t, tmp, nil, "serve", "--config", cfgDir, "--print-config")
	if r.code != 2 {
		t.Errorf("bad config line: exit %d, want 2", r.code)
	}
	checkErrorLine(t, r.stderr, file+" line 2")
	if err := os.WriteFile(file, []byte("config = /elsewhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runLanshare(t, tmp, nil, "serve", "--config", cfgDir, "--print-config")
	if r.code != 2 {
		t.Errorf("config dir set in the config file: exit %d, want 2", r.code)
	}
}

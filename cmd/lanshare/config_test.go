package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
	// Settings whose zero value, given, means something else than unset
	// are shown as comments.
	for _, want := range []string{"# web-insecure-http is not set: no plain-HTTP port (0 would pick a free one)  # default",
		`# web-pin is not set: 6 random digits at each start ("" would be no PIN)  # default`} {
		if !slices.Contains(lines(r.stdout), want) {
			t.Errorf("--print-config lacks %q:\n%s", want, r.stdout)
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

// idName runs `lanshare id` with args and env and returns the name it
// prints.
func idName(t testing.TB, tmp string, env []string, args ...string) string {
	t.Helper()
	r := runLanshare(t, tmp, env, append([]string{"id"}, args...)...)
	if r.code != 0 {
		t.Fatalf("lanshare id %q: exit %d; stderr:\n%s", args, r.code, r.stderr)
	}
	name, ok := strings.CutPrefix(lines(r.stdout)[0], "name: ")
	if !ok {
		t.Fatalf("lanshare id printed:\n%s", r.stdout)
	}
	return name
}

// TestNameFromOneChainForEveryCommand: id, send and serve take the name
// from the same chain (flag, environment, config file, default), and a
// command beside a running agent uses the agent's name: the receiver logs
// the sender, and its history records it, under the name id shows.
func TestNameFromOneChainForEveryCommand(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	alice := filepath.Join(tmp, "alice")
	if err := os.MkdirAll(alice, 0o700); err != nil {
		t.Fatal(err)
	}
	// listen is serve's alone: other commands leave it to serve.
	if err := os.WriteFile(filepath.Join(alice, "config"), []byte("name = alice\nlisten = :0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := idName(t, tmp, nil, "--config", alice); got != "alice" {
		t.Errorf("id with name = alice in the config file says %q", got)
	}
	if got := idName(t, tmp, []string{"LANSHARE_NAME=envalice"}, "--config", alice); got != "envalice" {
		t.Errorf("id with LANSHARE_NAME over the config file says %q", got)
	}
	if got := idName(t, tmp, []string{"LANSHARE_NAME=envalice"}, "--config", alice, "--name", "flagalice"); got != "flagalice" {
		t.Errorf("id with --name over the environment says %q", got)
	}

	cfg := filepath.Join(tmp, "bob")
	srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", cfg,
		"--name", "bob", "--listen", "127.0.0.1:0")
	src := filepath.Join(tmp, "src", "a.txt")
	writeFile(t, src, []byte("a\n"), 0o644, time.Now())
	sendOK(t, tmp, "--config", alice, srv.addr, src)
	srv.out.waitFor(t, "a.txt received from alice", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(l, " a.txt from alice (") })
	})

	// carol's agent runs with --name carol and no config file: id and
	// send in its config directory go by the agent's name.
	carol := filepath.Join(tmp, "carol")
	startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "carol-share"), "--config", carol,
		"--name", "carol", "--listen", "127.0.0.1:0")
	if got := idName(t, tmp, nil, "--config", carol); got != "carol" {
		t.Errorf("id beside an agent run with --name carol says %q", got)
	}
	src = filepath.Join(tmp, "src", "c.txt")
	writeFile(t, src, []byte("c\n"), 0o644, time.Now())
	sendOK(t, tmp, "--config", carol, srv.addr, src)
	srv.out.waitFor(t, "c.txt received from carol", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(l, " c.txt from carol (") })
	})
	r := runLanshare(t, tmp, nil, "history", "--json", "--config", cfg)
	var from []string
	for _, l := range lines(r.stdout) {
		var a struct{ From string }
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("history --json: %q: %v", l, err)
		}
		from = append(from, a.From)
	}
	if !slices.Equal(from, []string{"alice", "carol"}) {
		t.Errorf("bob's history names the senders %q, want [alice carol]", from)
	}

	// A line that is no setting at all fails every command, as it fails serve.
	if err := os.WriteFile(filepath.Join(alice, "config"), []byte("nmae = alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runLanshare(t, tmp, nil, "id", "--config", alice)
	if r.code != 2 {
		t.Errorf("id with a misspelt setting: exit %d, want 2", r.code)
	}
	checkErrorLine(t, r.stderr, `"nmae" is not a setting of serve`)
}

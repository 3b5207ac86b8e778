package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/peer"
)

// TestFlagsAfterSubcommandArguments: a subcommand's flags may follow its
// arguments ("peers add HOST --unverified"); the command's own flags,
// before the subcommand's name, stay where they are.
func TestFlagsAfterSubcommandArguments(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	for _, c := range []struct{ in, want string }{
		{"peers add 10.0.5.7 --unverified", "peers add --unverified -- 10.0.5.7"},
		{"peers add 10.0.5.7 --config x --name a", "peers add --config x --name a -- 10.0.5.7"},
		{"peers --config x add 10.0.5.7 --replace", "peers --config x add --replace -- 10.0.5.7"},
		{"peers --wait 2s add h", "peers --wait 2s add h"},
		{"peers add --name a 10.0.5.7", "peers add --name a 10.0.5.7"},
		{"peers remove bob --config x", "peers remove --config x -- bob"},
		{"peers static --json", "peers static --json"},
		{"peers --json", "peers --json"},
	} {
		in := append([]string{"lanshare"}, strings.Fields(c.in)...)
		want := append([]string{"lanshare"}, strings.Fields(c.want)...)
		if got := flagsFirst(app, in); !slices.Equal(got, want) {
			t.Errorf("flagsFirst(%q) = %q\nwant %q", c.in, got[1:], want[1:])
		}
	}
}

// TestPeersListingWithStatic pins how `peers` shows static peers: one
// that a record carries too is that record, marked static, with both
// addresses; the others follow with their state; a changed key is never
// sendable.
func TestPeersListingWithStatic(t *testing.T) {
	found, self := goldenPeers()
	found = found[:2] // alice (this device), bob
	bob := found[1]
	statics := []peer.StaticStatus{
		{Addr: "10.8.0.20:52741", ID: bob.ID, Name: "bob", State: peer.StaticUp},
		{Addr: "10.0.5.7:52741", ID: strings.Repeat("d", peer.IDLen), Name: "dave", State: peer.StaticUp},
		{Addr: "nas.lan:52741", ID: strings.Repeat("e", peer.IDLen), Name: "nas", State: peer.StaticDown, Error: "dial tcp: i/o timeout"},
		{Addr: "10.0.5.9:52741", ID: strings.Repeat("f", peer.IDLen), Name: "fay", State: peer.StaticKeyChanged, SeenID: strings.Repeat("g", peer.IDLen)},
		{Addr: "10.0.5.10:52741", State: peer.StaticUp, SeenID: strings.Repeat("h", peer.IDLen)},
		{Addr: "10.0.5.11:52741", ID: strings.Repeat("i", peer.IDLen), Name: "ivy", State: peer.StaticUnknown},
	}
	var b bytes.Buffer
	if err := renderListing(&b, found, statics, nil, self, false, time.Second); err != nil {
		t.Fatal(err)
	}
	want := `NAME             ID         ADDRESSES                                                VERSION
alice (aaaa)     aaaa-aaaa  192.168.1.12:52741                                       1.2  (this device)
bob (3fa2)       3fa2-bbbb  192.168.1.20:52741 [fe80::1%eth0]:52741 10.8.0.20:52741  1.2  (static, up)
dave (dddd)      dddd-dddd  10.0.5.7:52741                                           -    (static, up)
nas (eeee)       eeee-eeee  nas.lan:52741                                            -    (static, down: dial tcp: i/o timeout)
fay (ffff)       ffff-ffff  10.0.5.9:52741                                           -    (static, KEY CHANGED: now id gggg-gggg, not sent to (lanshare peers add --replace 10.0.5.9:52741 accepts it))
10.0.5.10:52741  -          10.0.5.10:52741                                          -    (static, up, unverified: answers with id hhhh-hhhh (lanshare peers add 10.0.5.10:52741 pins it))
ivy (iiii)       iiii-iiii  10.0.5.11:52741                                          -    (static, not checked yet)
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	if err := renderListing(&b, found, statics, nil, self, true, time.Second); err != nil {
		t.Fatal(err)
	}
	var list []staticListed
	if err := json.Unmarshal(b.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	type row struct {
		static   bool
		state    string
		sendable bool
	}
	wantRows := []row{{false, "", true}, {true, "up", true}, {true, "up", true}, {true, "down", false}, {true, "key-changed", false}, {true, "up", true}, {true, "unknown", false}}
	if len(list) != len(wantRows) {
		t.Fatalf("JSON lists %d, want %d: %+v", len(list), len(wantRows), list)
	}
	for i, w := range wantRows {
		if got := (row{list[i].Static, list[i].State, list[i].Sendable}); got != w {
			t.Errorf("JSON entry %d (%s) = %+v, want %+v", i, list[i].Instance, got, w)
		}
	}
	if list[4].SeenID != strings.Repeat("g", peer.IDLen) {
		t.Errorf("key-changed entry's seen_id = %q", list[4].SeenID)
	}
}

// TestPeersAddRefusals: add needs one good address; an unreachable peer
// is not added (exit 4, one line that says how to keep it unverified),
// and --unverified keeps it; a bad static_peers file is an error naming
// its line for add and send alike; remove of nothing is an error.
func TestPeersAddRefusals(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "cfg")
	file := filepath.Join(cfg, "static_peers")
	for _, args := range [][]string{{}, {"a", "b"}, {"10.0.0.1:99999"}, {"host:"}, {"224.0.0.251"}, {"--unverified", "--replace", "10.0.0.1"}} {
		r := runLanshare(t, tmp, nil, append([]string{"peers", "add", "--config", cfg}, args...)...)
		if r.code != exitUsage {
			t.Errorf("peers add %q: exit %d, want %d; stderr:\n%s", args, r.code, exitUsage, r.stderr)
		}
	}
	closed := closedPort(t)
	r := runLanshare(t, tmp, nil, "peers", "add", closed, "--config", cfg)
	if r.code != exitUnreachable {
		t.Errorf("peers add %s (nothing listens): exit %d, want %d", closed, r.code, exitUnreachable)
	}
	checkErrorLine(t, r.stderr, "cannot reach "+closed, "nothing was added", "lanshare peers add --unverified "+closed)
	if _, err := os.Stat(file); err == nil {
		t.Errorf("a failed add wrote %s", file)
	}
	r = runLanshare(t, tmp, nil, "peers", "add", closed, "--unverified", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "kept "+closed+" unverified") {
		t.Errorf("peers add --unverified: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	list, err := peer.LoadStatic(cfg)
	if err != nil || !slices.Equal(list.List(), []peer.StaticPeer{{Addr: closed}}) {
		t.Errorf("static peers after --unverified: %+v, %v", list.List(), err)
	}
	r = runLanshare(t, tmp, nil, "peers", "static", "--json", "--config", cfg)
	var statics []peer.StaticStatus
	if err := json.Unmarshal([]byte(r.stdout), &statics); err != nil || len(statics) != 1 || statics[0].State != peer.StaticDown {
		t.Errorf("peers static --json: %v, %+v; want the unverified peer down", err, statics)
	}
	r = runLanshare(t, tmp, nil, "peers", "remove", "nobody", "--config", cfg)
	if r.code != exitFailure {
		t.Errorf("peers remove nobody: exit %d, want %d", r.code, exitFailure)
	}
	checkErrorLine(t, r.stderr, "no static peer matches nobody", "lanshare peers static")
	// A peer known by its address alone is named once.
	r = runLanshare(t, tmp, nil, "peers", "remove", closed, "--config", cfg)
	if r.code != 0 || r.stdout != "removed "+closed+"\n" {
		t.Errorf("peers remove %s: exit %d, stdout %q", closed, r.code, r.stdout)
	}
	if err := os.WriteFile(file, []byte("# ok\n10.0.0.1 - \n10.0.0.2 not-an-id x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(tmp, "f.txt")
	writeFile(t, src, []byte("x"), 0o644, time.Now())
	for _, args := range [][]string{{"peers", "add", "--unverified", "10.0.0.3"}, {"send", "bob", src}} {
		r := runLanshare(t, tmp, nil, append(args, "--config", cfg)...)
		if r.code == 0 {
			t.Errorf("%q with a bad static_peers file: exit 0", args)
		}
		checkErrorLine(t, r.stderr, "bad static_peers file", file+" line 3")
	}
	r = runLanshare(t, tmp, nil, "peers", "remove", closed, "--config", cfg)
	if r.code == 0 {
		t.Errorf("peers remove with a bad static_peers file: exit 0")
	}
}

// TestPeersSubcommandsInHelp: completion offers peers' subcommands, and
// the manual page documents them and the static_peers file.
func TestPeersSubcommandsInHelp(t *testing.T) {
	t.Parallel()
	if got := complete(t, "peers"); !slices.Equal(got, []string{"add", "remove", "static"}) {
		t.Errorf("peers completes to %q, want add, remove, static", got)
	}
	r := runLanshare(t, t.TempDir(), nil, "man")
	for _, want := range []string{".SS add", ".SS remove", ".SS static", "--unverified", "--replace", "static_peers"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("man: exit %d, page lacks %q", r.code, want)
		}
	}
}

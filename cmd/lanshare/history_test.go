package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/peer"
)

// TestHistoryAfterTransfers: after several transfers from two senders,
// `history` lists every file in order, with each sender's name and id.
func TestHistoryAfterTransfers(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "config")
	srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", cfg,
		"--name", "bob", "--listen", "127.0.0.1:0")
	r := runLanshare(t, tmp, nil, "history", "--config", cfg)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "nothing received yet" {
		t.Fatalf("history before any transfer: exit %d, %q", r.code, r.stdout)
	}
	type sender struct{ name, config, id string }
	senders := []sender{{name: "alice", config: filepath.Join(tmp, "alice")}, {name: "carol", config: filepath.Join(tmp, "carol")}}
	for i := range senders {
		senders[i].id = strings.ReplaceAll(idOf(t, tmp, senders[i].config), "-", "")
	}
	var want []string
	for i := range 4 {
		s := senders[i%2]
		name := fmt.Sprintf("file%d.txt", i)
		src := filepath.Join(tmp, "src", name)
		writeFile(t, src, []byte(strings.Repeat("x", i+1)), 0o644, time.Now())
		sendOK(t, tmp, "--name", s.name, "--config", s.config, srv.addr, src)
		want = append(want, s.name+" "+s.id+" "+name)
	}
	r = runLanshare(t, tmp, nil, "history", "--json", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("history --json: exit %d: %s", r.code, r.stderr)
	}
	var got []string
	for _, l := range lines(r.stdout) {
		var a map[string]any
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		got = append(got, fmt.Sprint(a["from"], " ", a["id"], " ", a["saved_as"]))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r = runLanshare(t, tmp, nil, "history", "--config", cfg)
	ls := lines(r.stdout)
	if r.code != 0 || len(ls) != 5 || !strings.HasPrefix(ls[0], "TIME") || !strings.Contains(ls[4], "carol") ||
		!strings.Contains(ls[4], peer.ShortID(senders[1].id)) || !strings.HasSuffix(ls[4], "file3.txt") {
		t.Errorf("history table:\n%s", r.stdout)
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatus: `status` without an agent says so (exit 1); with one it
// shows the agent's name, id, address, folder and policy, and --json the
// same as an object.
func TestStatus(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "config")
	r := runLanshare(t, tmp, nil, "status", "--config", cfg)
	if r.code != 1 {
		t.Errorf("status without an agent: exit %d, want 1", r.code)
	}
	checkErrorLine(t, r.stderr, "no agent running", cfg)

	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", cfg, "--name", "bob", "--listen", "127.0.0.1:0", "--accept", "trusted")
	id := strings.ReplaceAll(idOf(t, tmp, cfg), "-", "")
	r = runLanshare(t, tmp, nil, "status", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("status: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"name:      bob", fmt.Sprintf("pid:       %d\n", srv.cmd.Process.Pid), "listening: " + srv.addr, "folder:    " + share, "accepting: trusted", "peers:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runLanshare(t, tmp, nil, "status", "--json", "--config", cfg)
	var st struct {
		Name, ID, Listen, Dir, Accept string
		Peers                         []any
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v: %q", err, r.stdout)
	}
	if st.Name != "bob" || st.ID != id || st.Listen != srv.addr || st.Dir != share || st.Accept != "trusted" || st.Peers == nil {
		t.Errorf("status --json = %+v", st)
	}
	// The queue's counts are there even when zero.
	if !strings.Contains(r.stdout, `"queue_held":0`) || !strings.Contains(r.stdout, `"pid":`) {
		t.Errorf("status --json lacks queue_held or pid: %s", r.stdout)
	}

	// A second agent on the same config directory is refused.
	r = runLanshare(t, tmp, nil, "serve", "--dir", share, "--config", cfg, "--listen", "127.0.0.1:0")
	if r.code == 0 {
		t.Error("a second agent on one config directory started")
	}
	checkErrorLine(t, r.stderr, "already runs")
	srv.stopClean(t)
	if r := runLanshare(t, tmp, nil, "status", "--config", cfg); r.code != 1 {
		t.Errorf("status after stop: exit %d, want 1", r.code)
	}
}

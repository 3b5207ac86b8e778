package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServeJSONEvents: `serve --json` logs only JSON lines: listening (the
// address first), sharing, then file-saved and transfer-done for a
// received file, error for a refused one, and stopped.
func TestServeJSONEvents(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startLanshare(t, local, tmp, nil, "serve", "--json", "--dir", share, "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")
	type event struct {
		Event, Time, Addr, Path, ID, Name, Reason string
		SavedAs                                   string `json:"saved_as"`
		Size                                      *uint64
		Files                                     int
	}
	parse := func(ls []string) []event {
		var evs []event
		for _, l := range ls {
			var ev event
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("serve --json printed a line that is not JSON: %q", l)
			}
			evs = append(evs, ev)
		}
		return evs
	}
	srv.out.waitFor(t, "sharing event", func(ls []string) bool { return len(ls) >= 2 })
	first := parse(srv.out.Lines())[0]
	if first.Event != "listening" || !strings.HasPrefix(first.Addr, "127.0.0.1:") {
		t.Fatalf("first event %+v, want listening with the address", first)
	}
	if _, err := time.Parse(time.RFC3339, first.Time); err != nil {
		t.Errorf("time %q: %v", first.Time, err)
	}
	src := filepath.Join(tmp, "src", "hello.txt")
	writeFile(t, src, []byte("hello\n"), 0o644, time.Now())
	bad := filepath.Join(tmp, "src", "\u202ex")
	writeFile(t, bad, []byte("x"), 0o644, time.Now())
	sendOK(t, tmp, "--name", "alice", first.Addr, src)
	if r := runLanshare(t, tmp, nil, "send", "--name", "alice", first.Addr, bad); r.code != 3 {
		t.Errorf("refused send: exit %d, want 3", r.code)
	}
	srv.out.waitFor(t, "two transfers", func(ls []string) bool {
		return len(slices.DeleteFunc(parse(ls), func(e event) bool { return e.Event != "transfer-done" })) == 2
	})
	srv.stopClean(t)
	var kinds []string
	var saved, refused event
	for _, ev := range parse(srv.out.Lines()) {
		if ev.Event == "peer-up" || ev.Event == "peer-down" {
			continue // agents of tests running alongside
		}
		kinds = append(kinds, ev.Event)
		switch {
		case ev.Event == "file-saved":
			saved = ev
		case ev.Event == "error":
			refused = ev
		}
	}
	if got := strings.Join(kinds, " "); got != "listening sharing file-saved transfer-done error transfer-done stopped" {
		t.Errorf("events %q", got)
	}
	if saved.Path != "hello.txt" || saved.SavedAs != "hello.txt" || saved.Size == nil || *saved.Size != 6 || saved.Name != "alice" || len(saved.ID) != 52 {
		t.Errorf("file-saved %+v", saved)
	}
	if refused.Path != "\u202ex" || refused.Reason == "" {
		t.Errorf("error event %+v, want the refused path and a reason", refused)
	}
}

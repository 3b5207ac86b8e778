package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

// TestSendJSONGolden pins the events `send --json` prints after a receipt.
func TestSendJSONGolden(t *testing.T) {
	item := func(p string, kind proto.Kind, size uint64) peer.Item {
		return peer.Item{Entry: proto.Entry{Path: p, Kind: kind, Size: size}}
	}
	rep := &peer.Report{
		Peer:  "bob",
		Items: []peer.Item{item("dir", proto.KindDir, 0), item("dir/a.txt", proto.KindFile, 5), item("b.txt", proto.KindFile, 7), item("x.", proto.KindFile, 1)},
		Results: []proto.Result{
			{Status: proto.Saved, SavedAs: "dir"},
			{Status: proto.Saved, SavedAs: "dir/a (1).txt"},
			{Status: proto.Skipped, SavedAs: "b.txt", Code: proto.CodeExists, Reason: "already there"},
			{Status: proto.Refused, Code: proto.CodeBadName, Reason: "trailing dot"},
		},
		Sent: 3, Resumed: 2, Retries: 1,
	}
	var b bytes.Buffer
	jsonResults(json.NewEncoder(&b), rep, nil, 1500*time.Millisecond)
	want := `{"event":"file-saved","path":"dir","saved_as":"dir"}
{"event":"file-saved","path":"dir/a.txt","saved_as":"dir/a (1).txt","size":5}
{"event":"file-skipped","path":"b.txt","saved_as":"b.txt","reason":"already there"}
{"event":"error","path":"x.","code":"unsafe name","reason":"trailing dot"}
{"event":"transfer-done","peer":"bob","files":1,"bytes":5,"seconds":1.5,"sent":3,"resumed":2,"retries":1}
`
	if got := b.String(); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	_ = json.NewEncoder(&b).Encode(sendEvent{Event: "retry", Attempt: 2, Wait: 0.25, Reason: "connection reset"})
	if got := b.String(); got != `{"event":"retry","attempt":2,"wait":0.25,"reason":"connection reset"}`+"\n" {
		t.Errorf("retry event: %s", got)
	}
	b.Reset()
	jsonResults(json.NewEncoder(&b), nil, fmt.Errorf("connecting: %w", peer.ErrUnknownPeer), 0)
	if got := b.String(); got != `{"event":"error","reason":"connecting: no peer named","exit":4}`+"\n" {
		t.Errorf("error event: %s", got)
	}
}

// TestSendJSONEndToEnd: `send --json` to a running agent prints only JSON
// lines, ending in transfer-done.
func TestSendJSONEndToEnd(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")
	src := filepath.Join(tmp, "src", "hello.txt")
	writeFile(t, src, []byte("hello\n"), 0o644, time.Now())
	r := runLanshare(t, tmp, nil, "send", "--json", srv.addr, src)
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	var events []string
	for _, l := range lines(r.stdout) {
		var ev struct{ Event string }
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		events = append(events, ev.Event)
	}
	if got := strings.Join(events, " "); got != "offer file-saved transfer-done" {
		t.Errorf("events %q, want offer file-saved transfer-done", got)
	}
}

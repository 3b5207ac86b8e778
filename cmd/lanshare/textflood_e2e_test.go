package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanshare/lanshare/peer"
)

// TestTextFloodEndToEnd: a sender's 11th message in a minute is refused
// in one line, exit 3; serve logs the 10 messages and one line for the
// refusals, not one per message.
func TestTextFloodEndToEnd(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "bob"), "--name", "bob", "--listen", "127.0.0.1:0")
	alice := filepath.Join(tmp, "alice")
	for i := range peer.TextsPerMinute {
		sendOK(t, tmp, "--config", alice, "--name", "alice", srv.addr, "--text", fmt.Sprintf("message %d", i))
	}
	for range 3 {
		r := runLanshare(t, tmp, nil, "send", "--config", alice, "--name", "alice", srv.addr, "--text", "one more")
		if r.code != exitRefused {
			t.Errorf("a message over the limit: exit %d, want %d", r.code, exitRefused)
		}
		checkErrorLine(t, r.stderr, "bob refused the message: too many messages; try again in a minute")
	}
	srv.out.waitFor(t, "bob's lines of the messages and of the refusals", func(ls []string) bool {
		n, refused := 0, false
		for _, l := range ls {
			n += strings.Count(l, " message from alice (")
			refused = refused || strings.Contains(l, "refused 1 text message from 127.0.0.1: over the limit of 10 a minute")
		}
		return n == peer.TextsPerMinute && refused
	})
	var messages, others []string
	for _, l := range lines(srv.out.String()) {
		switch {
		case strings.Contains(l, " message from alice ("):
			messages = append(messages, l)
		case strings.Contains(l, "refused") || strings.Contains(l, "one more"):
			others = append(others, l)
		}
	}
	if len(messages) != peer.TextsPerMinute || len(others) != 1 {
		t.Errorf("serve logged %d messages and %d lines about refusals, want %d and 1:\n%s", len(messages), len(others), peer.TextsPerMinute, srv.out.String())
	}
}

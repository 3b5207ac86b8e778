package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSendSamePathTwice (issue 13, finding 4): `lanshare send bob big.iso
// big.iso` saves big.iso once and exits 0; two different files that
// would arrive under one name are refused as a usage error before
// anything is sent.
func TestSendSamePathTwice(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")
	src := t.TempDir()
	big := filepath.Join(src, "big.iso")
	data := randomFile(t, big, 8<<20)
	sendOK(t, tmp, "--name", "alice", srv.addr, big, big)
	want := map[string]entry{"big.iso": {data: string(data)}}
	if got := readTree(t, share); len(got) != 1 || got["big.iso"] != want["big.iso"] {
		names := make([]string, 0, len(got))
		for p := range got {
			names = append(names, p)
		}
		t.Errorf("shared folder holds %q, want big.iso once, whole", names)
	}

	other := filepath.Join(src, "other", "big.iso")
	writeFile(t, other, []byte("another file\n"), 0o644, time.Now())
	r := runLanshare(t, tmp, nil, "send", "--name", "alice", srv.addr, big, other)
	if r.code != exitUsage {
		t.Errorf("send of two files named big.iso: exit %d, want %d; stderr:\n%s", r.code, exitUsage, r.stderr)
	}
	checkErrorLine(t, r.stderr, big, other, "big.iso")
	if _, err := os.Stat(filepath.Join(share, "big (1).iso")); err == nil {
		t.Error("the second big.iso arrived renamed")
	}
	srv.stopClean(t)
	if got := received(srv.out.Lines()); len(got) != 1 {
		t.Errorf("serve logged received %q, want big.iso once", got)
	}
}

// TestSendIntoAPipeIsBounded: send into a pipe (not a terminal) lists the
// first 10 files, says the rest are not listed, and sums up in one line
// (--verbose lists every file); serve's log likewise; a resend that moves
// nothing says so rather than give a rate of 0 B/s.
func TestSendIntoAPipeIsBounded(t *testing.T) {
	t.Parallel()
	const n = 300
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src", "many")
	for i := range n {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%03d.txt", i)), []byte("x\n"), 0o644, time.Now())
	}
	srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "rcfg"),
		"--name", "bob", "--listen", "127.0.0.1:0")
	scfg := filepath.Join(tmp, "scfg")
	r := sendOK(t, tmp, "--config", scfg, "--name", "alice", srv.addr, src)
	ls := lines(r.stdout)
	if len(ls) > 12 || !strings.HasPrefix(ls[len(ls)-1], fmt.Sprintf("sent %d files", n)) {
		t.Errorf("send of %d files into a pipe printed %d lines, want at most 12 ending with the summary:\n%s", n, len(ls), r.stdout)
	}
	srv.out.waitFor(t, "serve's line for the transfer", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool {
			return strings.Contains(l, " transfer from alice (") && strings.Contains(l, fmt.Sprintf("done: received %d files", n))
		})
	})
	// Only the transfer's lines count: other tests' agents in this
	// namespace come and go as peer lines.
	transfer := slices.DeleteFunc(srv.out.Lines(), func(l string) bool {
		return strings.Contains(l, " peer up: ") || strings.Contains(l, " peer down: ")
	})
	if got := len(transfer); got > 3+12 { // listening, sharing, accepting
		t.Errorf("serve logged %d lines for one transfer of %d files:\n%s", got, n, srv.out)
	}
	r = sendOK(t, tmp, "--config", scfg, "--name", "alice", srv.addr, src)
	if ls := lines(r.stdout); len(ls) > 12 || ls[len(ls)-1] != fmt.Sprintf("nothing to send: %d files already there on bob (600 B)", n) {
		t.Errorf("resend into a pipe printed:\n%s\nwant at most 12 lines, the last: nothing to send", r.stdout)
	}
	if err := os.RemoveAll(filepath.Join(tmp, "share", "many")); err != nil {
		t.Fatal(err)
	}
	r = sendOK(t, tmp, "--config", scfg, "--name", "alice", "--verbose", srv.addr, src)
	if got := len(lines(r.stdout)); got != n+1 {
		t.Errorf("send --verbose into a pipe printed %d lines, want one per file and the summary (%d)", got, n+1)
	}
}

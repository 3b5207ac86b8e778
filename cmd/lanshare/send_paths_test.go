package main

import (
	"os"
	"path/filepath"
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

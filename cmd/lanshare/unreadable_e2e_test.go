//go:build linux

package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSendSkipsUnreadableBeforeOffer pins issue 14's "a read error on the
// sender": a file and a folder the sending user may not read are named in
// a warning and left out of the offer, so that the receiver creates
// nothing for them, not even an empty folder; the rest arrives. Before,
// both were offered, the folder was created on the receiver and the file
// failed as "bob refused ...: sender: permission denied". The send exits
// with the sender's own code, exitUnreadable.
func TestSendSkipsUnreadableBeforeOffer(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"), "--name", "bob", "--listen", "127.0.0.1:0")
	src := filepath.Join(tmp, "src", "album")
	for _, f := range []string{"ok.txt", "secret.txt", "locked/in.txt", "open/in.txt"} {
		writeFile(t, filepath.Join(src, f), []byte(f), 0o644, time.Unix(1700000000, 0))
	}
	mustDo(t, os.Chmod(filepath.Join(src, "secret.txt"), 0o000))
	mustDo(t, os.Chmod(filepath.Join(src, "locked"), 0o000))

	run, senderTmp := local, t.TempDir()
	if os.Geteuid() == 0 {
		// Root reads everything: send as a user the bits apply to.
		run = asOtherUser(t, tmp, senderTmp)
	}
	r := runLanshareOn(t, run, senderTmp, nil, "send", "--name", "alice", srv.addr, src)
	for _, p := range []string{"secret.txt", "locked"} {
		want := "lanshare: warning: " + filepath.Join(src, p) + ": skipped: cannot be read: permission denied"
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q, want the warning %q", r.stderr, want)
		}
	}
	if r.code != exitUnreadable || !strings.HasSuffix(strings.TrimSpace(r.stderr), "lanshare: 2 paths could not be sent (see the warnings above); everything else was") {
		t.Errorf("exit %d, stderr %q: want %d and the count of what was left", r.code, r.stderr, exitUnreadable)
	}
	if strings.Contains(r.stderr, "refused") {
		t.Errorf("stderr %q: a skipped file was offered", r.stderr)
	}
	got := map[string]bool{}
	_ = filepath.Walk(share, func(p string, _ os.FileInfo, err error) error {
		if rel, _ := filepath.Rel(share, p); err == nil && rel != "." && !strings.HasPrefix(rel, stagingDir) {
			got[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	for _, p := range []string{"album", "album/ok.txt", "album/open", "album/open/in.txt"} {
		if !got[p] {
			t.Errorf("%s did not arrive (exit %d, stderr %q)", p, r.code, r.stderr)
		}
		delete(got, p)
	}
	if len(got) != 0 {
		t.Errorf("arrived for what was skipped: %v", got)
	}
}

// asOtherUser returns a commandFunc that runs lanshare as a uid and gid
// no account has, with a copy of the binary under dir that it may run, and
// gives it home, the directory whose home and config it uses.
func asOtherUser(t *testing.T, dir, home string) commandFunc {
	t.Helper()
	id := 0
	for n := 54421; n < 54521 && id == 0; n++ {
		_, uerr := user.LookupId(strconv.Itoa(n))
		_, gerr := user.LookupGroupId(strconv.Itoa(n))
		if uerr != nil && gerr != nil {
			id = n
		}
	}
	if id == 0 {
		t.Skip("no free uid in 54421..54520 for a second local user")
	}
	bin := filepath.Join(dir, "bin", "lanshare")
	mustDo(t, os.MkdirAll(filepath.Dir(bin), 0o755))
	mustDo(t, os.Chmod(dir, 0o755))
	mustDo(t, os.Chmod(filepath.Dir(dir), 0o711))
	mustDo(t, os.Chmod(filepath.Dir(home), 0o711))
	// A hard link, not a copy: a copy's write descriptor, inherited by a
	// process another test forks meanwhile, makes exec fail with "text
	// file busy" (ETXTBSY) until that process execs.
	if err := os.Link(lanshareBin, bin); err != nil {
		in, err := os.Open(lanshareBin)
		mustDo(t, err)
		defer in.Close()
		out, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
		mustDo(t, err)
		_, err = io.Copy(out, in)
		mustDo(t, err)
		mustDo(t, out.Close())
	}
	mustDo(t, os.Chown(home, id, id))
	return func(ctx context.Context, _ string, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = home
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id), Gid: uint32(id), NoSetGroups: true}}
		return cmd
	}
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

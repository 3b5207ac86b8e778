//go:build linux

package peer

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// Issue 13, finding 7: a second local user who can write the shared
// folder's top must not be able to hang the agent, make it write the
// owner's files, or get bytes reported saved that the agent did not
// verify.

// otherUser is a second local user: a uid and gid that no account has,
// as whom the tests run shell commands in child processes. Switching to
// it needs root; no account is created, so none is left behind.
type otherUser struct{ uid, gid uint32 }

func newOtherUser(t testing.TB) otherUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("acting as a second local user needs root (a child process with another uid)")
	}
	for id := 54321; id < 54421; id++ {
		_, uerr := user.LookupId(strconv.Itoa(id))
		_, gerr := user.LookupGroupId(strconv.Itoa(id))
		if uerr != nil && gerr != nil {
			return otherUser{uint32(id), uint32(id)}
		}
	}
	t.Skip("no free uid in 54321..54420 for a second local user")
	return otherUser{}
}

// run runs script with sh in dir as u, failing the test if it fails.
func (u otherUser) run(t testing.TB, dir, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-ec", script)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, NoSetGroups: true}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as uid %d in %s: %s: %v\n%s", u.uid, dir, script, err, out)
	}
}

// sharedFolder returns a new shared folder with mode, which the other
// user can reach, and in it the owner's diary.txt (0600).
func sharedFolder(t testing.TB, mode fs.FileMode) (dir, diary string) {
	t.Helper()
	dir = t.TempDir()
	// t.TempDir's parent is private; the other user must reach dir.
	must(t, os.Chmod(filepath.Dir(dir), 0o711))
	must(t, os.Chmod(dir, mode))
	diary = filepath.Join(dir, "diary.txt")
	must(t, os.WriteFile(diary, []byte(diaryText), 0o600))
	return dir, diary
}

// TestStagingReplacedByAnotherUserIsNotUsed: another user who can write
// the shared folder moves the agent's .lanshare away once it runs and
// puts their own in its place, holding a FIFO, symbolic links to the
// owner's files, or a forged copy of a file being received. The agent
// keeps using its own staging folder: it does not hang, writes nothing of
// the owner's, and saves only the bytes it verified.
func TestStagingReplacedByAnotherUserIsNotUsed(t *testing.T) {
	u := newOtherUser(t)
	small := rawFile{"a.txt", "the real a\n"}
	other := rawFile{"b.txt", "the real b\n"}
	big := rawFile{"big.bin", randomBytes(t, resumeMin)}
	bigKey := fileKey(senderPolicy.SenderID, "", big.entry())
	for _, c := range []struct {
		name  string
		files []rawFile
		plant string // run in the attacker's .lanshare before the transfer
		// attack, if set, runs as the sender is about to end file i.
		attack func(t *testing.T, u otherUser, staging string, progress func() InProgress, i int)
	}{
		// The old agent blocked for ever opening the index.
		{name: "fifo arrived", files: []rawFile{small}, plant: "mkfifo arrived"},
		// The old agent appended the index record to diary.txt.
		{name: "symlinked arrived", files: []rawFile{small}, plant: "ln -s ../diary.txt arrived"},
		// An index over arrivedMax is cut into arrived.new: the old
		// agent wrote it through the link, over diary.txt.
		{name: "symlinked arrived.new", files: []rawFile{small},
			plant: "head -c 9000000 /dev/zero > arrived; chmod 666 arrived; ln -s ../diary.txt arrived.new"},
		// A resumable file is written to <key>.part: the old agent
		// truncated diary.txt and wrote the file into it.
		{name: "symlinked part", files: []rawFile{small, big},
			attack: func(t *testing.T, u otherUser, staging string, _ func() InProgress, i int) {
				if i == 0 {
					u.run(t, staging, "ln -s ../diary.txt "+bigKey+".part")
				}
			}},
		// Once a.txt is verified, and before it is linked to its name
		// (which waits for the next file), its temporary file is
		// replaced: the old agent linked the forged one and reported it
		// saved.
		{name: "swapped verified file", files: []rawFile{small, other},
			attack: func(t *testing.T, u otherUser, staging string, progress func() InProgress, i int) {
				if i != 1 {
					return
				}
				waitFor(t, func() bool { return progress().Files >= 1 })
				u.run(t, staging, `for f in tmp-*; do [ -f "$f" ] || continue; printf forged > x; mv -f x "$f"; done`)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, diary := sharedFolder(t, 0o777)
			in := newInbox(t, InboxConfig{Dir: dir})
			staging := filepath.Join(dir, stagingDir)
			u.run(t, dir, "mv .lanshare .lanshare-moved 2>/dev/null || true; mkdir -m 777 .lanshare; cd .lanshare; "+c.plant)
			t.Cleanup(func() { unblockFIFO(filepath.Join(staging, "arrived")) })
			progress := make(chan func() InProgress, 1)
			pol := senderPolicy
			pol.Watch = func(p func() InProgress) { progress <- p }
			var beforeEnd func(int)
			if c.attack != nil {
				beforeEnd = func(i int) {
					p := <-progress
					progress <- p
					c.attack(t, u, staging, p, i)
				}
			}
			rc := sendRaw(t, in, pol, c.files, beforeEnd)
			assertDiary(t, diary)
			assertSaved(t, dir, rc, c.files)
		})
	}
}

// TestStagingOwnedByAnotherUserRefused: a .lanshare that another user
// made before the agent first ran (they can write the shared folder) is
// refused at start, with one line that says what to do.
func TestStagingOwnedByAnotherUserRefused(t *testing.T) {
	u := newOtherUser(t)
	dir, diary := sharedFolder(t, 0o777)
	u.run(t, dir, "mkdir -m 777 .lanshare; ln -s ../diary.txt .lanshare/arrived")
	in, err := OpenInbox(InboxConfig{Dir: dir})
	if err == nil {
		in.Close()
		t.Fatal("the inbox opened on a staging folder of another user")
	}
	if !errors.Is(err, ErrStagingUnsafe) {
		t.Fatalf("error %v, want ErrStagingUnsafe", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, filepath.Join(dir, stagingDir)) || !strings.Contains(msg, strconv.Itoa(int(u.uid))) {
		t.Fatalf("message %q: want one line naming the folder and its owner", msg)
	}
	assertDiary(t, diary)
}

// TestStagingOpenToOthersMadePrivate: the agent's own .lanshare that
// other users could write (made so by hand, or unpacked from an archive)
// is made 0700 at start, and what another user planted in it is removed;
// the agent's own partial files stay.
func TestStagingOpenToOthersMadePrivate(t *testing.T) {
	u := newOtherUser(t)
	dir, diary := sharedFolder(t, 0o755)
	staging := filepath.Join(dir, stagingDir)
	must(t, os.Mkdir(staging, 0o700))
	must(t, os.Chmod(staging, 0o777))
	rec := partialRecord{Sender: senderPolicy.SenderID, Path: "big.bin", Size: 8 << 20, MTime: 1}
	key := fileKey(senderPolicy.SenderID, "", proto.Entry{Path: rec.Path, Kind: proto.KindFile, Size: rec.Size, MTime: time.Unix(0, 1)})
	must(t, os.WriteFile(filepath.Join(staging, key+".part"), []byte("ours"), 0o600))
	u.run(t, staging, "mkfifo arrived; ln -s ../diary.txt arrived.new; echo theirs > theirs.part; mkdir sub")
	t.Cleanup(func() { unblockFIFO(filepath.Join(staging, "arrived")) })
	in := newInbox(t, InboxConfig{Dir: dir})
	fi, err := os.Stat(staging)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("staging folder is %v, want 0700", fi.Mode().Perm())
	}
	names := staged(t, dir)
	if len(names) != 1 || names[0] != key+".part" {
		t.Fatalf("staging folder holds %q, want only the agent's own %s.part", names, key)
	}
	if _, err := os.Lstat(filepath.Join(staging, "arrived")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the planted FIFO arrived is still there: %v", err)
	}
	files := []rawFile{{"a.txt", "the real a\n"}}
	assertSaved(t, dir, sendRaw(t, in, senderPolicy, files, nil), files)
	assertDiary(t, diary)
}

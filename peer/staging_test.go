//go:build linux || darwin

package peer

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lanshare/lanshare/proto"
)

// TestOpenStagingRefusesWhatTheAgentDidNotMake: whatever sits in the
// staging folder under a name the agent uses, openStaging opens only a
// regular file of this user with a single name: never through a
// symbolic link, never waiting on a FIFO, never a file that has a name
// outside (a hard link), never a name outside the folder. O_TRUNC does
// not cut what it refuses.
func TestOpenStagingRefusesWhatTheAgentDidNotMake(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	dir := in.Dir()
	staging := filepath.Join(dir, stagingDir)
	diary := filepath.Join(dir, "diary.txt")
	must(t, os.WriteFile(diary, []byte(diaryText), 0o600))
	must(t, os.Symlink("../diary.txt", filepath.Join(staging, "link")))
	must(t, unix.Mkfifo(filepath.Join(staging, "fifo"), 0o600))
	t.Cleanup(func() { unblockFIFO(filepath.Join(staging, "fifo")) })
	must(t, os.Link(diary, filepath.Join(staging, "hard")))
	must(t, os.Mkdir(filepath.Join(staging, "dir"), 0o700))
	if os.Geteuid() == 0 {
		must(t, os.WriteFile(filepath.Join(staging, "foreign"), nil, 0o666))
		must(t, os.Chown(filepath.Join(staging, "foreign"), 54321, 54321))
	}
	flags := map[string]int{
		"read":     os.O_RDONLY,
		"append":   os.O_WRONLY | os.O_CREATE | os.O_APPEND,
		"truncate": os.O_RDWR | os.O_CREATE | os.O_TRUNC,
	}
	for _, name := range []string{"link", "fifo", "hard", "dir", "foreign", "../diary.txt", "x/../../diary.txt"} {
		if name == "foreign" && os.Geteuid() != 0 {
			continue // only root can give a file away
		}
		for fname, flag := range flags {
			done := make(chan error, 1)
			go func() {
				f, err := in.openStaging(stagingDir+"/"+name, flag, 0o600)
				if err == nil {
					f.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrStagingUnsafe) {
					t.Errorf("%s, %s: openStaging error %v, want ErrStagingUnsafe", name, fname, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s, %s: openStaging blocks", name, fname)
			}
		}
	}
	assertDiary(t, diary)
	// What the agent makes itself it opens.
	f, err := in.openStaging(stagingDir+"/ok", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatalf("a new file of the staging folder: %v", err)
	}
	f.Close()
}

// TestStagingRemovedWhileRunningIsMadeAgain: a user who removes
// .lanshare while the agent runs (to clean up) does not break the next
// transfer; the folder is made again, private.
func TestStagingRemovedWhileRunningIsMadeAgain(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	staging := filepath.Join(in.Dir(), stagingDir)
	must(t, os.RemoveAll(staging))
	files := []rawFile{{"a.txt", "the real a\n"}}
	assertSaved(t, in.Dir(), sendRaw(t, in, senderPolicy, files, nil), files)
	fi, err := os.Lstat(staging)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("staging folder made again as %v, want a 0700 directory", fi.Mode())
	}
}

// TestSharedFolderCreatedPrivate: a shared folder the agent creates is
// 0700, so what arrives in it is not readable by other local users; an
// existing folder keeps its mode, which its owner chose.
func TestSharedFolderCreatedPrivate(t *testing.T) {
	created := filepath.Join(t.TempDir(), "Lanshare")
	newInbox(t, InboxConfig{Dir: created})
	fi, err := os.Stat(created)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("created shared folder is %v, want 0700", fi.Mode().Perm())
	}
	existing := t.TempDir()
	must(t, os.Chmod(existing, 0o755))
	newInbox(t, InboxConfig{Dir: existing})
	if fi, err := os.Stat(existing); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("existing shared folder: %v, %v; want its mode 0755 kept", fi.Mode().Perm(), err)
	}
	if fi, err := os.Stat(filepath.Join(existing, stagingDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("staging folder: %v, %v; want 0700", fi.Mode(), err)
	}
}

const diaryText = "dear diary: only mine\n"

func assertDiary(t testing.TB, diary string) {
	t.Helper()
	b, err := os.ReadFile(diary)
	if err != nil {
		t.Fatalf("the owner's diary: %v", err)
	}
	if string(b) != diaryText {
		t.Fatalf("the agent wrote the owner's diary.txt: it holds %d bytes %.40q", len(b), b)
	}
}

// rawFile is a file a raw sender offers.
type rawFile struct {
	path, content string
}

var rawMTime = time.Unix(1_700_000_000, 0)

func (f rawFile) entry() proto.Entry {
	return proto.Entry{Path: f.path, Kind: proto.KindFile, Size: uint64(len(f.content)), Mode: 0o644, MTime: rawMTime}
}

// sendRaw offers files to in, received under pol, on loopback TCP,
// speaking the sender's side by hand, and returns the receipt. Before it
// sends file i's file-end it calls beforeEnd(i), if set: the receiver
// cannot be past file i then. The transfer must end within 20 s: a
// receiver that blocks fails the test.
func sendRaw(t *testing.T, in *Inbox, pol Policy, files []rawFile, beforeEnd func(i int)) proto.Receipt {
	t.Helper()
	s, r := tcpPair(t)
	recvDone := make(chan error, 1)
	go func() {
		_, err := in.ReceiveWith(r, pol)
		r.Close()
		recvDone <- err
	}()
	type result struct {
		rc  proto.Receipt
		err error
	}
	sent := make(chan result, 1)
	go func() {
		rc, err := func() (proto.Receipt, error) {
			var offer proto.Offer
			for _, f := range files {
				offer.Entries = append(offer.Entries, f.entry())
			}
			if err := proto.WriteHello(s, proto.NewHello("sender")); err != nil {
				return proto.Receipt{}, err
			}
			if err := proto.WriteOffer(s, offer); err != nil {
				return proto.Receipt{}, err
			}
			br := bufio.NewReader(s)
			if _, err := proto.ReadHello(br); err != nil {
				return proto.Receipt{}, err
			}
			a, err := proto.ReadAnswer(br)
			if err != nil {
				return proto.Receipt{}, err
			}
			for i, f := range files {
				if a.Code != proto.CodeOK || a.Replies[i].Status != proto.Accept || a.Replies[i].Offset != 0 {
					return proto.Receipt{}, errors.New("offer not accepted whole: " + a.Reason)
				}
				if _, err := s.Write([]byte(f.content)); err != nil {
					return proto.Receipt{}, err
				}
				if beforeEnd != nil {
					beforeEnd(i)
				}
				h := proto.NewDigest()
				h.Write([]byte(f.content))
				fe := proto.FileEnd{Index: uint32(i), Status: proto.Sent}
				copy(fe.Digest[:], h.Sum(nil))
				if err := proto.WriteFileEnd(s, fe); err != nil {
					return proto.Receipt{}, err
				}
			}
			if err := proto.WriteDone(s); err != nil {
				return proto.Receipt{}, err
			}
			return proto.ReadReceipt(br)
		}()
		sent <- result{rc, err}
	}()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	var res result
	select {
	case res = <-sent:
	case <-timer.C:
		t.Fatal("the transfer did not end within 20 s: the agent hangs")
	}
	if res.err != nil {
		t.Fatalf("sender: %v", res.err)
	}
	select {
	case err := <-recvDone:
		if err != nil {
			t.Fatalf("receiver: %v", err)
		}
	case <-timer.C:
		t.Fatal("the receiver did not end within 20 s")
	}
	return res.rc
}

// assertSaved checks that the receipt says every file was saved under its
// own name, and that each holds what was sent.
func assertSaved(t testing.TB, dir string, rc proto.Receipt, files []rawFile) {
	t.Helper()
	for i, f := range files {
		if r := rc.Results[i]; r.Status != proto.Saved || r.SavedAs != f.path {
			t.Fatalf("%s: %+v, want saved under its name", f.path, r)
		}
		b, err := os.ReadFile(filepath.Join(dir, f.path))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != f.content {
			t.Fatalf("%s was reported saved but holds %d other bytes %.40q, not what was sent", f.path, len(b), b)
		}
	}
}

// unblockFIFO opens the FIFO p, if it is one, for reading and writing and
// closes it again, which ends an open of it that blocks (the old agent's).
func unblockFIFO(p string) {
	if f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

// TestStagingRenameNeverReplaces: the fallback for file systems without
// hard links moves a staged file to its final name, and, like the link,
// never replaces a file already there.
func TestStagingRenameNeverReplaces(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	f, name, err := in.createStagingTemp()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("staged")
	f.Close()
	theirs := filepath.Join(in.Dir(), "taken.txt")
	must(t, os.WriteFile(theirs, []byte(diaryText), 0o600))
	if err := in.rename(name, "taken.txt"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("rename over an existing file: %v, want ErrExist", err)
	}
	assertDiary(t, theirs)
	if err := in.rename(name, "free.txt"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(in.Dir(), "free.txt")); err != nil || string(b) != "staged" {
		t.Fatalf("free.txt: %q, %v", b, err)
	}
}

package peer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// sendFiles sends paths to addr and fails the test on error.
func sendFiles(t testing.TB, addr string, paths ...string) *Report {
	t.Helper()
	rep, err := SendTo(context.Background(), addr, collect(t, paths...), SendOptions{Name: "s", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestAlreadyThereOnlyForTheSameFile: a sender's file that was moved away
// and replaced by another sender's file of the same name, size and mtime
// is not "already there" for the first sender: its resend is saved.
func TestAlreadyThereOnlyForTheSameFile(t *testing.T) {
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	victim := writeTree(t, map[string]string{"report.txt": "the victim's own report"})
	forged := writeTree(t, map[string]string{"report.txt": "an attacker's fake report"[:23]})
	for _, d := range []string{victim, forged} {
		if err := os.Chtimes(filepath.Join(d, "report.txt"), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, Policy{SenderID: "victim"})
	other, _ := serveInbox(t, in, Policy{SenderID: "attacker"})

	sendFiles(t, addr, filepath.Join(victim, "report.txt"))
	if err := os.Rename(filepath.Join(in.Dir(), "report.txt"), filepath.Join(in.Dir(), "moved.txt")); err != nil {
		t.Fatal(err)
	}
	sendFiles(t, other, filepath.Join(forged, "report.txt"))

	rep := sendFiles(t, addr, filepath.Join(victim, "report.txt"))
	if r := rep.Results[0]; r.Status != proto.Saved || r.SavedAs != "report (1).txt" {
		t.Fatalf("the victim's resend: %+v, want saved as report (1).txt (report.txt is another sender's)", r)
	}
	assertTree(t, in.Dir(), map[string]string{
		"moved.txt": "the victim's own report", "report.txt": "an attacker's fake repo", "report (1).txt": "the victim's own report",
	})
}

// TestArrivalOnReusedFileNotOurs: a record of the arrived index is not
// taken for there once a later record names the same file identity: the
// file was replaced by another arrival that got the same inode.
func TestArrivalOnReusedFileNotOurs(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	if err := in.ensureStaging(); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1700000000, 0)
	p := filepath.Join(in.Dir(), "f.bin")
	if err := os.WriteFile(p, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	e := proto.Entry{Path: "f.bin", Kind: proto.KindFile, Size: 5, MTime: mtime}
	mine, theirs := fileKey("me", "", e), fileKey("them", "", e)
	a, err := in.statArrival(mine, "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	a.saved = "f.bin"
	in.mu.Lock()
	err = in.recordArrival(a)
	in.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := in.arrived(map[string]bool{mine: true}); !in.alreadyThere(got[mine], e) {
		t.Fatalf("the recorded file is not found: %+v", got)
	}
	a.key = theirs
	in.mu.Lock()
	err = in.recordArrival(a)
	in.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := in.arrived(map[string]bool{mine: true}); len(got) != 0 {
		t.Fatalf("a file that a later arrival owns is found as ours: %+v", got)
	}
}

// TestArrivedIndexSurvivesFullDisk: an append to the arrived index that
// the disk cuts short fails the file (it is not reported saved), leaves
// the records before and after it readable, and after a restart every
// file that was reported saved is found already there; the failed one is
// saved once when sent again.
func TestArrivedIndexSurvivesFullDisk(t *testing.T) {
	src := writeTree(t, map[string]string{"a.txt": "aaa", "b.txt": "bbb", "c.txt": "ccc"})
	dir := t.TempDir()
	in := newInbox(t, InboxConfig{Dir: dir})
	addr, _ := serveInbox(t, in, senderPolicy)
	sendFiles(t, addr, filepath.Join(src, "a.txt"))

	// The disk fills in the middle of b.txt's record.
	indexWriteHook = func(f *os.File, b []byte) (int, error) {
		n, _ := f.Write(b[:len(b)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	_, err := SendTo(context.Background(), addr, collect(t, filepath.Join(src, "b.txt")), SendOptions{Name: "s", Retries: -1})
	indexWriteHook = nil
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeNoSpace || !strings.Contains(re.Reason, "out of space") {
		t.Fatalf("b.txt with a full disk: %v, want refused: receiver out of space", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "b.txt")); err == nil {
		t.Fatal("b.txt got its name though its arrival was not recorded")
	}
	sendFiles(t, addr, filepath.Join(src, "c.txt"))

	// A restart: a new inbox on the same folder.
	in2 := newInbox(t, InboxConfig{Dir: dir})
	addr2, _ := serveInbox(t, in2, senderPolicy)
	rep := sendFiles(t, addr2, filepath.Join(src, "a.txt"), filepath.Join(src, "b.txt"), filepath.Join(src, "c.txt"))
	for i, want := range []proto.Status{proto.Skipped, proto.Saved, proto.Skipped} {
		if r := rep.Results[i]; r.Status != want || r.SavedAs != rep.Items[i].Entry.Path {
			t.Errorf("%s after the restart: %+v, want status %d as itself", rep.Items[i].Entry.Path, r, want)
		}
	}
	assertTree(t, dir, map[string]string{"a.txt": "aaa", "b.txt": "bbb", "c.txt": "ccc"})
}

// TestArrivedRecordAfterTornLineFound: a record appended right after a
// torn one, on the same line (an agent died in the middle of an append,
// and the next one did not start a new line), is still found.
func TestArrivedRecordAfterTornLineFound(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	if err := in.ensureStaging(); err != nil {
		t.Fatal(err)
	}
	rec := func(key, saved string) arrival {
		return arrival{key: key, saved: saved, id: fileID{1, uint64(len(saved))}, size: 3, mtime: 4}
	}
	k1, k2, k3 := strings.Repeat("1", 32), strings.Repeat("2", 32), strings.Repeat("3", 32)
	torn := rec(k3, "333").line()
	content := string(rec(k1, "1").line()) + "\n" + string(torn[:len(torn)/2]) + string(rec(k2, "22").line()) + "\n"
	if err := os.WriteFile(filepath.Join(in.Dir(), stagingDir, arrivedName), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got := in.arrived(map[string]bool{k1: true, k2: true, k3: true})
	if got[k1].saved != "1" || got[k2].saved != "22" || len(got) != 2 {
		t.Fatalf("found %+v, want the records one and two and not the torn one", got)
	}
	// A record whose bytes changed fails its check.
	bad := strings.Replace(string(rec(k1, "1").line()), `"1"`, `"7"`, 1)
	if _, ok := parseArrived([]byte(bad)); ok {
		t.Fatal("a damaged record passed its check")
	}
}

// TestArrivalLineFormat pins the index line's encoding to its format:
// an agent reads the lines earlier versions wrote.
func TestArrivalLineFormat(t *testing.T) {
	for _, a := range []arrival{
		{key: "-", saved: "a.txt"},
		{key: "k1", saved: "dir/naïve \"q\"\n.bin", id: fileID{dev: 2049, ino: 1 << 40}, size: 4096, mtime: -1},
		{key: strings.Repeat("f", 64), saved: "x", id: fileID{dev: ^uint64(0), ino: 7}, size: ^uint64(0), mtime: 1 << 62},
	} {
		b := fmt.Appendf(nil, "%s%s %d %d %d %d %s", arrivedMagic, a.key, a.id.dev, a.id.ino, a.size, a.mtime, strconv.Quote(a.saved))
		want := string(fmt.Appendf(b, " %08x", crc32.Checksum(b, crcTable)))
		if got := string(a.appendLine([]byte("prefix"))); got != "prefix"+want {
			t.Errorf("appendLine(%+v) = %q, want %q", a, got, "prefix"+want)
		}
	}
}

// TestFileKeyFormat pins the file key to its format: keys in the arrived
// index and in partial files' records were made by earlier versions.
func TestFileKeyFormat(t *testing.T) {
	for _, e := range []proto.Entry{
		{Path: "a.txt", Kind: proto.KindFile, Size: 4096, MTime: time.Unix(1700000000, 123456789)},
		{Path: "dir/naïve.bin", Kind: proto.KindFile, Size: ^uint64(0), MTime: time.Unix(-5, 0)},
		// Longer than fileKey's buffer on the stack.
		{Path: strings.Repeat("folder/", 60) + "f", Kind: proto.KindFile, Size: 1, MTime: time.Unix(1, 1)},
	} {
		for _, folder := range []string{"", "Alice"} {
			h := sha256.New()
			fmt.Fprintf(h, "lanshare file key 1\x00%s\x00%s\x00%s\x00%d\x00%d", "sender-id", folder, e.Path, e.Size, e.MTime.UnixNano())
			want := hex.EncodeToString(h.Sum(nil)[:16])
			if got := fileKey("sender-id", folder, e); got != want {
				t.Errorf("fileKey(%q, %q) = %s, want %s", folder, e.Path, got, want)
			}
		}
	}
}

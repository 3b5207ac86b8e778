package peer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestDeathBeforeFinalNameResumes: an agent that dies after a resumable
// file arrived whole and its arrival was recorded, but before the file
// got its final name, leaves the partial file with its record, and the
// next send resumes it (a window below its end) rather than sending it
// whole. The staging folder is copied as it is at the instant before the
// link, which is what a SIGKILL there leaves on disk.
func TestDeathBeforeFinalNameResumes(t *testing.T) {
	const size = 12<<20 + 777
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, senderPolicy)

	// At the instant before the link, the staging folder's files get
	// a second folder: its files are the same files (hard links, the
	// same identities the arrived index records), as a SIGKILL there
	// would leave them; the index is copied, since it grows later.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, stagingDir), 0o700); err != nil {
		t.Fatal(err)
	}
	var snap []string
	placeHook = func(string) {
		if snap != nil {
			return
		}
		ents, err := os.ReadDir(filepath.Join(in.Dir(), stagingDir))
		if err != nil {
			t.Error(err)
			return
		}
		for _, e := range ents {
			from, to := filepath.Join(in.Dir(), stagingDir, e.Name()), filepath.Join(dir, stagingDir, e.Name())
			if e.Name() == arrivedName {
				b, err := os.ReadFile(from)
				if err == nil {
					err = os.WriteFile(to, b, 0o600)
				}
				if err != nil {
					t.Error(err)
				}
			} else if err := os.Link(from, to); err != nil {
				t.Error(err)
			}
			snap = append(snap, e.Name())
		}
	}
	t.Cleanup(func() { placeHook = nil })
	if _, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"}); err != nil {
		t.Fatal(err)
	}
	placeHook = nil
	// The first folder's copy goes, so that the snapshot's files have
	// one name each, as after the death.
	if err := os.Remove(filepath.Join(in.Dir(), "big.bin")); err != nil {
		t.Fatal(err)
	}
	key := fileKey(senderPolicy.SenderID, "", items[0].Entry)
	if fi, err := os.Stat(filepath.Join(dir, partPath(key))); err != nil || fi.Size() != size {
		t.Fatalf("before the link the partial file was not whole: %v", err)
	}

	// The agent restarts on what it left.
	in2 := newInbox(t, InboxConfig{Dir: dir})
	addr2, _ := serveInbox(t, in2, senderPolicy)
	rep, err := SendTo(context.Background(), addr2, items, SendOptions{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, dir, map[string]string{"big.bin": content})
	assertNoTemps(t, dir)
	want := uint64(size-resumeWindow) &^ (directAlign - 1)
	if rep.Resumed != want || rep.Sent != size-want {
		t.Fatalf("resumed at %d and sent %d; want a resume at %d (the staging folder held %q)", rep.Resumed, rep.Sent, want, snap)
	}
}

// TestArrivedPartialNotWrittenInto: an agent that dies after a resumable
// file got its final name, before its partial file's name and record
// went, leaves the partial as a second name of the saved file. When the
// owner then changes that file and the sender sends it again, the send
// does not resume into the partial (it would write into the owner's
// file): the file crosses whole under a new name, and the owner's file
// keeps its bytes.
func TestArrivedPartialNotWrittenInto(t *testing.T) {
	const size = 6 << 20
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	key := fileKey(senderPolicy.SenderID, "", items[0].Entry)
	plantPartial(t, in, key, newRecord(senderPolicy.SenderID, "", items[0].Entry), content)
	final := filepath.Join(in.Dir(), "big.bin")
	if err := os.Link(filepath.Join(in.Dir(), partPath(key)), final); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	a, err := in.statArrival(key, "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	a.saved = "big.bin"
	in.mu.Lock()
	err = in.recordArrival(a)
	in.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// The owner edits the file in place.
	owners := "the owner's edit"
	f, err := os.OpenFile(final, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(owners), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	edited := owners + content[len(owners):]

	addr, _ := serveInbox(t, in, senderPolicy)
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": edited, "big (1).bin": content})
	assertNoTemps(t, in.Dir())
	if rep.Resumed != 0 {
		t.Fatalf("resumed at %d, want the file sent whole", rep.Resumed)
	}
}

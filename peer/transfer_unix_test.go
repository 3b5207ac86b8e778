//go:build unix

package peer

// Transfer tests that need what only Unix has: the umask, FIFOs.

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

func TestReceivedFilesKeepMTimeAndSafeModes(t *testing.T) {
	src := writeTree(t, map[string]string{"x.sh": "#!/bin/sh\n", "d/": ""})
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := os.Chmod(filepath.Join(src, "x.sh"), 0o4777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(src, "x.sh"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "d"), 0o1777); err != nil {
		t.Fatal(err)
	}
	must(t, os.Chtimes(filepath.Join(src, "d"), mtime, mtime))
	old := syscall.Umask(0o077) // the inbox's modes must not depend on the umask
	defer syscall.Umask(old)
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, tcpPair, in, collect(t, filepath.Join(src, "x.sh"), filepath.Join(src, "d")), nil)
	if o.sendErr != nil {
		t.Fatal(o.sendErr)
	}
	fi, err := os.Stat(filepath.Join(in.Dir(), "x.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o644 {
		t.Errorf("file mode %v, want 0644", fi.Mode())
	}
	if !fi.ModTime().Equal(mtime) {
		t.Errorf("mtime %v, want %v", fi.ModTime(), mtime)
	}
	di, err := os.Stat(filepath.Join(in.Dir(), "d"))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode() != os.ModeDir|0o755 {
		t.Errorf("dir mode %v, want drwxr-xr-x", di.Mode())
	}
	if !di.ModTime().Equal(mtime) {
		t.Errorf("dir mtime %v, want %v", di.ModTime(), mtime)
	}
}

func TestNameCollisionsGetNewNames(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	dir := in.Dir()
	outside := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "report.pdf"), []byte("old"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "Case.txt"), []byte("old"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "caf\u00e9.txt"), []byte("old"), 0o644)) // NFC
	must(t, os.Symlink(outside, filepath.Join(dir, "link")))
	must(t, os.Symlink(filepath.Join(outside, "target"), filepath.Join(dir, "dangling")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "photos"), []byte("a file where a dir is offered"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "merge"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "merge", "keep.txt"), []byte("keep"), 0o644))

	src := writeTree(t, map[string]string{
		"report.pdf": "new", "case.TXT": "new", "cafe\u0301.txt": "new", // NFD
		"link": "new", "dangling": "new", "fifo": "new",
		"photos/a.jpg": "jpg", "merge/new.txt": "n",
	})
	var paths []string
	for _, n := range []string{"report.pdf", "case.TXT", "cafe\u0301.txt", "link", "dangling", "fifo", "photos", "merge"} {
		paths = append(paths, filepath.Join(src, n))
	}
	items := collect(t, paths...)
	items = append(items, collect(t, filepath.Join(src, "report.pdf"))...) // the same file twice in one batch
	o := transferOver(t, tcpPair, in, items, nil)
	if o.sendErr != nil {
		t.Fatal(o.sendErr)
	}
	if r := o.rep.Results[len(items)-1]; r.Status != proto.Skipped || r.SavedAs != "report (1).pdf" {
		t.Fatalf("the same file offered twice: %+v, want received once, as report (1).pdf", r)
	}
	assertTree(t, dir, map[string]string{
		"report.pdf": "old", "report (1).pdf": "new",
		"Case.txt": "old", "case (1).TXT": "new",
		"caf\u00e9.txt": "old", "cafe\u0301 (1).txt": "new",
		"link": "->" + outside, "link (1)": "new",
		"dangling": "->" + filepath.Join(outside, "target"), "dangling (1)": "new",
		"fifo": "special", "fifo (1)": "new",
		"photos": "a file where a dir is offered", "photos (1)/": "", "photos (1)/a.jpg": "jpg",
		"merge/": "", "merge/keep.txt": "keep", "merge/new.txt": "n",
	})
	assertEmpty(t, outside)
}

// TestSendSendsOnlyTheFilesCollected: another user who can write in a
// folder being sent swaps one of its subfolders, after the walk, for a
// symbolic link to a folder of the sender's own, holding files of the
// same names, sizes and mtimes. The sender must not send them: each file
// sent is the very file collected (the same inode), small (read whole,
// read ahead) or large (streamed); these two are reported unreadable, the
// rest arrives.
func TestSendSendsOnlyTheFilesCollected(t *testing.T) {
	bob := startAgent(t, nil)
	items, swap := swappableTree(t)
	swap()

	rep, err := testSender(t).Send(t.Context(), bob.target(), items, SendOptions{Name: "alice"})
	var se *SourceError
	if !errors.As(err, &se) || se.Count != 2 || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("send: %v, want a SourceError for the 2 replaced files", err)
	}
	if rep.Saved() != 3 {
		t.Errorf("%d entries saved, want project/ok.txt and the 2 folders", rep.Saved())
	}
	// Nothing of the private files arrived: the receiver has what it
	// would have for two files that could not be read.
	assertTree(t, bob.dir, map[string]string{"project/": "", "project/sub/": "", "project/ok.txt": "fine"})
}

// TestSendLocalSendSendsOnlyTheFilesCollected is the same to a LocalSend
// device: a subfolder swapped before the send fails its files when they
// are hashed for the offer (not even their sha256 goes out); one swapped
// once the device has the offer fails them at their upload.
func TestSendLocalSendSendsOnlyTheFilesCollected(t *testing.T) {
	for _, afterOffer := range []bool{false, true} {
		items, swap := swappableTree(t)
		d := newLSDevice(t, true, func(d *lsDevice) {
			d.decide = func(_ int, pu localsend.PrepareUpload) (int, []string) {
				if afterOffer {
					swap()
				}
				var ids []string
				for id := range pu.Files {
					ids = append(ids, id)
				}
				return http.StatusOK, ids
			}
		})
		if !afterOffer {
			swap()
		}
		rep, err := SendLocalSend(t.Context(), d.target(), items, lsOptions(t))
		d.mu.Lock()
		var changed int
		for _, r := range rep.Results {
			if r.Code == proto.CodeSourceChanged {
				changed++
			}
		}
		if err == nil || changed != 2 {
			t.Errorf("after the offer %v: %v, %d files failed as changed, want 2", afterOffer, err, changed)
		}
		if len(d.received) != 1 || d.received["project/ok.txt"] != "fine" {
			t.Errorf("after the offer %v: the device received %d files", afterOffer, len(d.received))
		}
		// Not a byte of them was posted (the device would refuse them by
		// their sha256, but would have had them).
		for _, name := range []string{"project/sub/small.txt", "project/sub/big.bin"} {
			if n := d.uploads[name]; n != 0 {
				t.Errorf("after the offer %v: %s uploaded %d times", afterOffer, name, n)
			}
		}
		for _, o := range d.offers {
			for _, f := range o.Files {
				if strings.HasPrefix(f.FileName, "project/sub/") && !afterOffer {
					t.Errorf("%s offered, with sha256 %s", f.FileName, f.SHA256)
				}
			}
		}
		d.mu.Unlock()
	}
}

// swappableTree writes a folder to send, project, and a folder of the
// sender's own, and collects project. swap then puts in the place of
// project/sub a symbolic link to the private folder, which holds files
// of the same names, sizes and mtimes as project/sub, with other bytes
// ("S" where project's hold "a").
func swappableTree(t *testing.T) (items []Item, swap func()) {
	t.Helper()
	src := writeTree(t, map[string]string{
		"project/ok.txt":        "fine",
		"project/sub/small.txt": strings.Repeat("a", 4096),
		"project/sub/big.bin":   strings.Repeat("a", 3<<20),
	})
	private := writeTree(t, map[string]string{
		"small.txt": strings.Repeat("S", 4096),
		"big.bin":   strings.Repeat("S", 3<<20),
	})
	sub := filepath.Join(src, "project", "sub")
	for _, name := range []string{"small.txt", "big.bin"} {
		fi, err := os.Stat(filepath.Join(sub, name))
		must(t, err)
		must(t, os.Chtimes(filepath.Join(private, name), fi.ModTime(), fi.ModTime()))
	}
	items, err := Collect([]string{filepath.Join(src, "project")}, nil)
	must(t, err)
	return items, func() {
		must(t, os.Rename(sub, sub+".old"))
		must(t, os.Symlink(private, sub))
	}
}

// TestSendFIFOInPlaceOfALargeFile: a large file replaced by a FIFO after
// it was collected fails as not sent, at once; the open of the common way
// blocked until something wrote to the FIFO, holding the send.
func TestSendFIFOInPlaceOfALargeFile(t *testing.T) {
	bob := startAgent(t, nil)
	src := writeTree(t, map[string]string{"d/big.bin": strings.Repeat("a", 3<<20), "d/ok.txt": "fine"})
	items, err := Collect([]string{filepath.Join(src, "d")}, nil)
	must(t, err)
	big := filepath.Join(src, "d", "big.bin")
	must(t, os.Remove(big))
	must(t, unix.Mkfifo(big, 0o644))
	done := make(chan error, 1)
	go func() {
		_, err := testSender(t).Send(t.Context(), bob.target(), items, SendOptions{Name: "alice"})
		done <- err
	}()
	select {
	case err := <-done:
		var se *SourceError
		if !errors.As(err, &se) || se.Count != 1 {
			t.Errorf("send: %v, want a SourceError for big.bin", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the send is held by the FIFO")
	}
	assertTree(t, bob.dir, map[string]string{"d/": "", "d/ok.txt": "fine"})
}

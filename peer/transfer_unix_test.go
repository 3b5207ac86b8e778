//go:build unix

package peer

// Transfer tests that need what only Unix has: the umask, FIFOs.

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
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
	must(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
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

package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/lanshare/lanshare/proto"
)

// TestGroupRecordedInOneWrite: the small files of a group enter the
// arrived index with one write, not one a file, and the records are
// right: under each one's own name, and under the name a collision gave,
// every file is found already there when sent again.
func TestGroupRecordedInOneWrite(t *testing.T) {
	if fileSystemBarrier() == nil {
		t.Skip("small files are synced in groups only where there is syncfs (Linux 5.8 and later)")
	}
	const n = 3 * groupFiles
	files := map[string]string{}
	for i := range n {
		files[fmt.Sprintf("t/f%03d.txt", i)] = fmt.Sprintf("file %d", i)
	}
	src := writeTree(t, files)
	dir := t.TempDir()
	// A file already there: f005.txt arrives as "f005 (1).txt".
	if err := os.MkdirAll(filepath.Join(dir, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t", "f005.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := newInbox(t, InboxConfig{Dir: dir})
	addr, _ := serveInbox(t, in, senderPolicy)
	var writes atomic.Int32
	indexWriteHook = func(f *os.File, b []byte) (int, error) {
		writes.Add(1)
		return f.Write(b)
	}
	t.Cleanup(func() { indexWriteHook = nil })
	rep := sendFiles(t, addr, filepath.Join(src, "t"))
	if w := writes.Load(); w > n/16 {
		t.Errorf("%d files took %d writes of the arrived index, want at most %d", n, w, n/16)
	}
	for i, r := range rep.Results {
		want := rep.Items[i].Entry.Path
		if want == "t/f005.txt" {
			want = "t/f005 (1).txt"
		}
		if rep.Items[i].Entry.Kind == proto.KindFile && (r.Status != proto.Saved || r.SavedAs != want) {
			t.Fatalf("%s: %+v, want saved as %s", rep.Items[i].Entry.Path, r, want)
		}
	}
	rep = sendFiles(t, addr, filepath.Join(src, "t"))
	for i, r := range rep.Results {
		if rep.Items[i].Entry.Kind == proto.KindFile && r.Status != proto.Skipped {
			t.Fatalf("%s sent again: %+v, want already there", rep.Items[i].Entry.Path, r)
		}
	}
	want := map[string]string{"t/": "", "t/f005.txt": "mine"}
	for p, c := range files {
		if p == "t/f005.txt" {
			p = "t/f005 (1).txt"
		}
		want[p] = c
	}
	assertTree(t, dir, want)
}

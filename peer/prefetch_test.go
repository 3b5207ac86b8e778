//go:build unix

package peer

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lanshare/lanshare/proto"
)

// TestPrefetchReadsSmallFilesAsOffered: the prefetcher reads ahead, with
// their digests, the small files that still are as offered, and leaves
// to the common way a file changed since it was collected, a large file,
// and a FIFO put in a file's place (without waiting on it).
func TestPrefetchReadsSmallFilesAsOffered(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small := bytes.Repeat([]byte("s"), 4096)
	write("a", small)
	write("b", nil)
	write("changed", small)
	write("large", make([]byte, prefetchMax+1))
	write("fifo", small)
	items := collect(t, dir)
	byName := map[string]int{}
	for i, it := range items {
		byName[filepath.Base(it.Source)] = i
	}
	// Changed after it was collected: another mtime.
	if err := os.Chtimes(filepath.Join(dir, "changed"), time.Now(), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	// Replaced by a FIFO nobody writes to: a blocking open would wait.
	fifo := filepath.Join(dir, "fifo")
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}

	pf := startPrefetch(items)
	select {
	case <-pf.done: // it read all it would
	case <-time.After(10 * time.Second):
		t.Fatal("the prefetcher did not finish: held by the FIFO?")
	}
	got := pf.wait()
	if len(got) != len(items) {
		t.Fatalf("%d prefetched for %d items", len(got), len(items))
	}
	for name, want := range map[string]bool{"a": true, "b": true, "changed": false, "large": false, "fifo": false} {
		p := got[byName[name]]
		if p.ok != want {
			t.Errorf("%s: read ahead %v, want %v", name, p.ok, want)
		}
	}
	for _, name := range []string{"a", "b"} {
		p := got[byName[name]]
		b, _ := os.ReadFile(filepath.Join(dir, name))
		h := proto.NewDigest()
		h.Write(b)
		if !bytes.Equal(p.data, b) || !bytes.Equal(p.digest[:], h.Sum(nil)) {
			t.Errorf("%s: read ahead %d bytes with digest %x, want %d bytes and %x", name, len(p.data), p.digest, len(b), h.Sum(nil))
		}
	}
	if dirItem := got[byName[filepath.Base(dir)]]; dirItem.ok {
		t.Errorf("the folder itself was read ahead")
	}
	// Safe twice, and on nil.
	pf.wait()
	(*prefetcher)(nil).wait()
}

// TestPrefetchBounded: no more than prefetchBytes are read ahead, and a
// send of nothing small starts no prefetcher.
func TestPrefetchBounded(t *testing.T) {
	dir := t.TempDir()
	const size = 64 << 10
	n := prefetchBytes/size + 8
	b := bytes.Repeat([]byte("x"), size)
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i/26))+string(rune('a'+i%26))), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pf := startPrefetch(collect(t, dir))
	<-pf.done // it read all it would
	got := pf.wait()
	total := 0
	for _, p := range got {
		if p.ok {
			total += len(p.data)
		}
	}
	if total == 0 || total > prefetchBytes {
		t.Errorf("read ahead %d bytes, want some and at most %d", total, prefetchBytes)
	}
	large := filepath.Join(t.TempDir(), "large")
	if err := os.WriteFile(large, make([]byte, prefetchMax+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if pf := startPrefetch(collect(t, large)); pf != nil {
		pf.wait()
		t.Errorf("a prefetcher started for a send with no small file")
	}
}

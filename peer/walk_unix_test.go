//go:build unix

package peer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lanshare/lanshare/proto"
)

// TestWalkSameAsSerial: the walk that lists folders on several goroutines
// gives what filepath.WalkDir's serial walk gives, in its order: the same
// items (offered paths, sources, sizes, modes, times), the same skipped
// paths for the same reasons, the same excluded paths; with one worker,
// two, and more than there are folders waiting. The tree has nested
// folders, an empty one, excluded files and folders, symbolic links, a
// named pipe, names the protocol cannot carry, and files and folders the
// walking user may not read (which root reads: see
// TestWalkSameAsSerialAsOtherUser). Folders are listed the last found
// first, so that a merge in the order they were listed, or of a folder's
// contents before the folder, fails even with one worker.
func TestWalkSameAsSerial(t *testing.T) {
	compareWalks(t, walkTree(t))
}

// walkTree writes TestWalkSameAsSerial's tree and returns the folder to
// walk, which another user may reach.
func walkTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	must(t, os.Chmod(src, 0o755))
	must(t, os.Chmod(filepath.Dir(src), 0o711))
	root := filepath.Join(src, "share")
	files := []string{
		"top.txt", "a/1.txt", "a/2.txt", "a/deep/er/x.txt", "a/deep/y.txt",
		"node_modules/m/index.js", "c/keep.txt", "c/drop.tmp",
		"secret.txt", "locked/in.txt", "blind/in.txt", "unlisted/in.txt",
		// Deeper than proto.MaxDepth from its 128th folder down.
		strings.Repeat("z/", proto.MaxDepth) + "deep.txt",
	}
	for i := range 12 {
		files = append(files, fmt.Sprintf("d%02d/f.txt", i), fmt.Sprintf("d%02d/g.txt", i), fmt.Sprintf("d%02d/sub/h.txt", i))
	}
	for _, p := range files {
		writeTestFile(t, filepath.Join(root, p), p)
	}
	in := func(p string) string { return filepath.Join(root, p) }
	// Not valid UTF-8, where the file system takes such a name.
	if os.Mkdir(in("bad\xfe"), 0o755) == nil {
		writeTestFile(t, in("bad\xfe/inside.txt"), "x")
	}
	must(t, os.Mkdir(in("empty"), 0o755))
	must(t, os.Symlink(in("a/1.txt"), in("a/link.txt")))
	must(t, os.Symlink(in("a"), in("dirlink")))
	must(t, unix.Mkfifo(in("c/pipe"), 0o644))
	must(t, os.Chmod(in("secret.txt"), 0o000))
	must(t, os.Chmod(in("locked"), 0o000))
	must(t, os.Chmod(in("blind"), 0o644))    // listed, not searched
	must(t, os.Chmod(in("unlisted"), 0o311)) // searched, not listed
	t.Cleanup(func() {
		for _, p := range []string{"locked", "blind", "unlisted"} {
			os.Chmod(in(p), 0o755)
		}
	})
	return root
}

// compareWalks walks root, and then the symbolic link to a folder in it as
// a folder named to send, with walkSerial and with walkFolders, and fails
// t where they differ.
func compareWalks(t *testing.T, root string) {
	t.Helper()
	ex, err := NewExclude([]string{"node_modules/", "*.tmp"})
	must(t, err)
	// A folder named through a symbolic link is followed, by both walks
	// the same way, its files found through the link.
	serial := walksAgree(t, ex, root, filepath.Join(root, "dirlink"))
	var viaLink []string
	for _, it := range serial.items {
		if strings.HasPrefix(it.Entry.Path, "dirlink") {
			viaLink = append(viaLink, it.Entry.Path+" "+strings.TrimPrefix(it.Source, root))
		}
	}
	wantLink := []string{"dirlink /dirlink", "dirlink/1.txt /dirlink/1.txt", "dirlink/2.txt /dirlink/2.txt",
		"dirlink/deep /dirlink/deep", "dirlink/deep/er /dirlink/deep/er", "dirlink/deep/er/x.txt /dirlink/deep/er/x.txt",
		"dirlink/deep/y.txt /dirlink/deep/y.txt"}
	if !slices.Equal(viaLink, wantLink) {
		t.Errorf("the folder named through a link offered\n%q\nwant\n%q", viaLink, wantLink)
	}
	// The tree is what the test means it to be.
	if len(serial.items) < 40 {
		t.Errorf("the serial walk offered %d items", len(serial.items))
	}
	if len(serial.excluded) != 2 {
		t.Errorf("the serial walk excluded %q, want node_modules and c/drop.tmp", serial.excluded)
	}
	reasons := map[error]int{}
	for _, s := range serial.skipped {
		for _, e := range []error{ErrNotRegular, ErrNameNotCarried, ErrUnreadable} {
			if errors.Is(s.Err, e) {
				reasons[e]++
			}
		}
	}
	want := map[error]int{ErrNotRegular: 4, ErrNameNotCarried: 1}
	if _, err := os.Lstat(filepath.Join(root, "bad\xfe")); err == nil {
		want[ErrNameNotCarried]++
	}
	if os.Geteuid() != 0 {
		want[ErrUnreadable] = 4 // secret.txt, locked, blind, unlisted
	}
	if !reflect.DeepEqual(reasons, want) {
		t.Errorf("the serial walk skipped %+v", serial.skipped)
	}
}

// walksAgree walks roots in turn, each into the lists of the ones before,
// with walkSerial and with walkFolders of 1, 2 and 8 workers, fails t
// where they differ, and returns the serial walk's lists.
func walksAgree(t *testing.T, ex *Exclude, roots ...string) collector {
	t.Helper()
	serial := collector{exclude: ex}
	for _, root := range roots {
		must(t, serial.walkSerial(root, filepath.Base(root)))
	}
	for _, workers := range []int{1, 2, 8} {
		c := collector{exclude: ex}
		for _, root := range roots {
			must(t, c.walkFolders(root, filepath.Base(root), workers))
		}
		if !reflect.DeepEqual(c.items, serial.items) {
			t.Errorf("%d workers offered\n%s\nthe serial walk\n%s", workers, itemList(c.items), itemList(serial.items))
		}
		if got, want := skippedList(c.skipped), skippedList(serial.skipped); got != want {
			t.Errorf("%d workers skipped\n%s\nthe serial walk\n%s", workers, got, want)
		}
		if !reflect.DeepEqual(c.excluded, serial.excluded) {
			t.Errorf("%d workers excluded %q, the serial walk %q", workers, c.excluded, serial.excluded)
		}
	}
	return serial
}

func itemList(items []Item) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "\t%q from %q: kind %d, %d bytes, mode %o, %v\n",
			it.Entry.Path, it.Source, it.Entry.Kind, it.Entry.Size, it.Entry.Mode, it.Entry.MTime)
	}
	return b.String()
}

func skippedList(skipped []Skipped) string {
	var b strings.Builder
	for _, s := range skipped {
		fmt.Fprintf(&b, "\t%q: %s (not regular %t, not carried %t, unreadable %t)\n", s.Path, s.Reason(),
			errors.Is(s.Err, ErrNotRegular), errors.Is(s.Err, ErrNameNotCarried), errors.Is(s.Err, ErrUnreadable))
	}
	return b.String()
}

// TestWalkDoesNotListASwappedFolder: a folder swapped for a link
// elsewhere between its parent's listing and its own is skipped as a
// link, not listed: the walk would offer what the link leads to.
func TestWalkDoesNotListASwappedFolder(t *testing.T) {
	root := filepath.Join(t.TempDir(), "share")
	writeTestFile(t, filepath.Join(root, "sub", "mine.txt"), "mine")
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	writeTestFile(t, filepath.Join(elsewhere, "theirs.txt"), "theirs")
	sub := filepath.Join(root, "sub")
	var st syscall.Stat_t
	must(t, syscall.Lstat(sub, &st))
	d := &folder{path: sub, id: fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}}
	must(t, os.Rename(sub, sub+".old"))
	must(t, os.Symlink(elsewhere, sub))
	w := &walker{cut: len(root) - len("share")}
	w.wake.L = &w.mu
	w.list(d)
	if d.offered || len(d.out.items) != 0 || len(d.out.skipped) != 1 || !errors.Is(d.out.skipped[0].Err, ErrNotRegular) {
		t.Errorf("the swapped folder was listed: offered %v, items %v, skipped %+v", d.offered, itemList(d.out.items), d.out.skipped)
	}
}

package peer

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanshare/lanshare/proto"
)

// setEmptyPathDenied makes linkAnon name files by their /proc link until
// the test ends.
func setEmptyPathDenied(t *testing.T) {
	was := emptyPathDenied.Load()
	emptyPathDenied.Store(true)
	t.Cleanup(func() { emptyPathDenied.Store(was) })
}

// TestSmallFilesLeaveNoDescriptor: an unnamed small file is a bare
// descriptor, which only its owner closes (no finalizer does): after a
// transfer in which most are named and some fail at their naming, no
// descriptor of the process is left on a file of the inbox, named or
// not.
func TestSmallFilesLeaveNoDescriptor(t *testing.T) {
	badName = func(name string) bool { return strings.HasPrefix(name, "bad") }
	t.Cleanup(func() { badName = nil })
	files := map[string]string{}
	bad := 0
	for i := range groupFiles + 20 {
		name := fmt.Sprintf("d/f%03d", i)
		if i%7 == 0 {
			name = fmt.Sprintf("d/bad%03d", i)
			bad++
		}
		files[name] = randomBytes(t, 100+i*53%5000)
	}
	src := writeTree(t, files)
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, tcpPair, in, collect(t, filepath.Join(src, "d")), nil)
	if o.recvErr != nil {
		t.Fatalf("receive: %v", o.recvErr)
	}
	if in.anon.Load() != anonYes {
		t.Skipf("no unnamed files in %s", in.Dir())
	}
	saved, failed := 0, 0
	for _, r := range o.rep.Results {
		switch r.Status {
		case proto.Saved:
			saved++
		case proto.Failed:
			failed++
		}
	}
	// The folder d is saved too.
	if failed != bad || saved != len(files)-bad+1 {
		t.Fatalf("%d saved, %d failed, want %d and %d", saved, failed, len(files)-bad+1, bad)
	}
	if left := descriptorsOn(t, in.Dir()); len(left) > 0 {
		t.Fatalf("%d descriptors left on the inbox's files: %q", len(left), left)
	}
	assertNoTemps(t, in.Dir())
}

// descriptorsOn returns the targets of this process's descriptors on
// files under dir that have no name (unnamed, or removed) or a temporary
// one (tmp-...).
func descriptorsOn(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var on []string
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(target, dir+"/") {
			continue // closed since, as ReadDir's own
		}
		if strings.HasSuffix(target, " (deleted)") || strings.HasPrefix(filepath.Base(target), tempPrefixStaging) {
			on = append(on, target)
		}
	}
	return on
}

// TestSmallFileIsMadeBeforeALargeOneArrives: a small file verified before
// a large one is made and synced while the large one arrives, not held in
// memory until the large one ends: a disk that fills during the large
// file then fails that file only (it had failed the small one too, whose
// bytes had arrived seconds before).
func TestSmallFileIsMadeBeforeALargeOneArrives(t *testing.T) {
	src := writeTree(t, map[string]string{"d/a.txt": "first", "d/b.bin": randomBytes(t, 4<<20)})
	in := newInbox(t, InboxConfig{})
	release := make(chan struct{})
	o := make(chan outcome, 1)
	go func() {
		o <- transferOver(t, tcpPair, in, collect(t, filepath.Join(src, "d")), func(c net.Conn) net.Conn {
			return &pauseConn{Conn: c, left: 2 << 20, release: release}
		})
	}()
	unnamed := func() bool {
		for _, d := range descriptorsOn(t, in.Dir()) {
			if strings.HasSuffix(d, " (deleted)") {
				return true
			}
		}
		return false
	}
	waitFor(t, func() bool { return unnamed() || in.anon.Load() == anonNo })
	close(release)
	got := <-o
	if got.sendErr != nil || got.recvErr != nil {
		t.Fatalf("send: %v; receive: %v", got.sendErr, got.recvErr)
	}
	if in.anon.Load() != anonYes {
		t.Skipf("no unnamed files in %s", in.Dir())
	}
	assertTree(t, in.Dir(), map[string]string{"d/": "", "d/a.txt": "first", "d/b.bin": tree(t, src)["d/b.bin"]})
}

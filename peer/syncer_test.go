package peer

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestSyncerCommitsInOrder: outcomes arrive in any order, entries are
// committed in the order they were handed over.
func TestSyncerCommitsInOrder(t *testing.T) {
	var got []int
	s := newSyncer(func(d syncDone) { got = append(got, d.i) })
	s.queue = []int{4, 7, 9, 12}
	for _, tc := range []struct {
		done int
		want []int
	}{
		{9, nil},
		{12, nil},
		{4, []int{4}},
		{7, []int{4, 7, 9, 12}},
	} {
		s.take(syncDone{i: tc.done})
		if !slices.Equal(got, tc.want) {
			t.Fatalf("after %d is done: committed %v, want %v", tc.done, got, tc.want)
		}
	}
	if len(s.queue) != 0 || len(s.out) != 0 {
		t.Fatalf("left queued %v, outcomes %v", s.queue, s.out)
	}
}

// TestSyncerSyncsAndReports hands over more files than may wait at once,
// one of them broken, and checks that drain commits each of them once, in
// order, with its mode and time set and the broken one's error.
func TestSyncerSyncsAndReports(t *testing.T) {
	root, err := os.OpenRoot(t.TempDir())
	must(t, err)
	defer root.Close()
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 8, time.UTC)
	const n, broken = 3*groupFiles + 5, groupFiles + 1
	var got []syncDone
	s := newSyncer(func(d syncDone) { got = append(got, d) })
	for i := range n {
		name := fmt.Sprintf("f%03d", i)
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		must(t, err)
		_, err = f.WriteString(name)
		must(t, err)
		if i == broken {
			f.Close()
		}
		s.put(syncJob{i: i, f: f, root: root, name: name, mode: 0o644, mtime: mtime})
		if len(s.queue) > syncOpen+groupFiles {
			t.Fatalf("%d entries wait, at most %d may", len(s.queue), syncOpen+groupFiles)
		}
	}
	s.drain()
	s.drain()
	if len(got) != n {
		t.Fatalf("committed %d entries, want %d", len(got), n)
	}
	for i, o := range got {
		if o.i != i {
			t.Fatalf("commit %d was entry %d", i, o.i)
		}
		if (o.err != nil) != (i == broken) {
			t.Fatalf("entry %d: error %v", i, o.err)
		}
		if i == broken {
			continue
		}
		id, fi, err := fileIdentity(root, fmt.Sprintf("f%03d", i))
		must(t, err)
		if fi.Mode().Perm() != 0o644 || !fi.ModTime().Equal(mtime) {
			t.Fatalf("entry %d: mode %v, mtime %v", i, fi.Mode(), fi.ModTime())
		}
		// What the syncer stated is what the arrived index would record.
		want := arrival{id: id, size: uint64(fi.Size()), mtime: mtime.UnixNano()}
		if !o.stated || o.st != want {
			t.Fatalf("entry %d: stated %v %+v, want %+v", i, o.stated, o.st, want)
		}
	}
}

// TestSyncerGroupsSmallFiles: small files are made durable by one barrier
// per group, set up and not committed when it runs,
// a group holds at most groupFiles files, and a file too large for a
// group is synced on its own. When a barrier fails, each file of its
// group is fsynced instead, and committed as that says.
func TestSyncerGroupsSmallFiles(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("barrier fails %v", failing), func(t *testing.T) {
			root, err := os.OpenRoot(t.TempDir())
			must(t, err)
			defer root.Close()
			const n, large = groupFiles + 10, 3
			var (
				mu        sync.Mutex
				committed = map[int]bool{}
				barriers  int
				got       []int
			)
			s := newSyncer(func(d syncDone) {
				i, err := d.i, d.err
				if err != nil {
					t.Errorf("entry %d: %v", i, err)
				}
				mu.Lock()
				committed[i] = true
				mu.Unlock()
				got = append(got, i)
			})
			s.barrier = func(f *os.File) error {
				mu.Lock()
				defer mu.Unlock()
				barriers++
				// Its group is set up, and not one file of it named.
				fi, err := f.Stat()
				must(t, err)
				var i int
				_, err = fmt.Sscanf(fi.Name(), "f%03d", &i)
				must(t, err)
				if fi.Mode().Perm() != 0o644 || committed[i] {
					t.Errorf("barrier for entry %d: mode %v, committed %v", i, fi.Mode(), committed[i])
				}
				if failing {
					return errors.New("a write-back error somewhere")
				}
				return nil
			}
			for i := range n {
				name := fmt.Sprintf("f%03d", i)
				f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				must(t, err)
				_, err = f.WriteString(name)
				must(t, err)
				size := uint64(len(name))
				if i == large {
					size = groupMax
				}
				s.put(syncJob{i: i, f: f, root: root, name: name, mode: 0o644, size: size})
				if len(s.group) > groupFiles {
					t.Fatalf("a group of %d files, at most %d", len(s.group), groupFiles)
				}
			}
			s.drain()
			if !slices.Equal(got, slices.Collect(func(yield func(int) bool) {
				for i := range n {
					if !yield(i) {
						return
					}
				}
			})) {
				t.Fatalf("committed %v", got)
			}
			// The large file split the first group; the groupFiles
			// bound and the end split the rest: at least 3 groups, and
			// far fewer barriers than files.
			if barriers < 3 || barriers > 3+n/50 {
				t.Fatalf("%d barriers for %d files", barriers, n)
			}
			for i := range n {
				fi, err := root.Stat(fmt.Sprintf("f%03d", i))
				must(t, err)
				if fi.Mode().Perm() != 0o644 {
					t.Fatalf("entry %d: mode %v", i, fi.Mode())
				}
			}
		})
	}
}

//go:build unix

package peer

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lanshare/lanshare/proto"
)

// walk adds the directory root, offered as base, and everything in it
// that can be sent: what walkSerial adds, in the same order, with the same
// skipped and excluded paths, in less time. It is the sender's whole work
// before the first byte goes out, and its cost is per file.
//
// Each folder is opened once, and its entries are looked at relative to it
// (fstatat and faccessat on the open folder) rather than by their full
// paths, which the kernel would resolve again from the top for every file.
// And folders are listed by up to GOMAXPROCS goroutines at once, each folder
// into lists of its own, merged in walk order once all are listed; a tree
// that never has two folders waiting starts no goroutine.
func (c *collector) walk(root, base string) error {
	return c.walkFolders(root, base, runtime.GOMAXPROCS(0))
}

// walkFolders is walk listing at most workers folders at once, the
// caller's goroutine one of them.
func (c *collector) walkFolders(root, base string, workers int) error {
	w := &walker{exclude: c.exclude, cut: len(root) - len(base), spare: workers - 1}
	w.wake.L = &w.mu
	// The root was named: a symbolic link to a folder is followed, as
	// Collect says, where one met inside is skipped.
	var st unix.Stat_t
	if err := statAt(unix.AT_FDCWD, root, &st, 0); err != nil {
		return &fs.PathError{Op: "stat", Path: root, Err: err}
	}
	top := &folder{}
	w.entry(top, unix.AT_FDCWD, root, root, statType(st.Mode), 0)
	w.run()
	c.items = slices.Grow(c.items, len(top.out.items)+w.items)
	c.merge(top)
	return nil
}

// walker lists the folders of a walk.
type walker struct {
	exclude *Exclude
	// cut is where a local path's offered path starts: root is a clean
	// absolute path ending with base, so p[cut:] is base/...
	cut int

	mu      sync.Mutex
	wake    sync.Cond // the walk's own goroutine: a folder queued, or none left being listed
	queue   []*folder // found, to list, the last found first
	busy    int       // folders being listed
	spare   int       // helper goroutines that may still start
	items   int       // items found, for merge
	helpers sync.WaitGroup
}

// folder is a folder found in a walk, and then what its listing gave.
type folder struct {
	path    string
	id      fileID // what lstat found there, which list must open
	item    Item   // its own
	offered bool   // listed: item goes first, then what out holds
	out     collector
	subs    []subfolder
}

// subfolder is a folder in a folder, and where in its parent's lists it
// comes: its own lists go between out.items[:items] and the rest, and so on.
type subfolder struct {
	dir                      *folder
	items, skipped, excluded int
}

// run lists the queued folders, and those they hold, until none is left,
// and returns when every helper goroutine has ended.
func (w *walker) run() {
	w.mu.Lock()
	for {
		if w.listNext() {
			continue
		}
		if w.busy == 0 {
			break
		}
		w.wake.Wait()
	}
	w.mu.Unlock()
	w.helpers.Wait()
}

// help lists queued folders until none is waiting: the work of a helper
// goroutine, which push starts when two folders wait.
func (w *walker) help() {
	defer w.helpers.Done()
	w.mu.Lock()
	for w.listNext() {
	}
	w.spare++
	if w.busy == 0 {
		w.wake.Signal()
	}
	w.mu.Unlock()
}

// listNext lists the last folder queued, with w.mu held but for the
// listing itself. It reports false if none was queued.
func (w *walker) listNext() bool {
	n := len(w.queue)
	if n == 0 {
		return false
	}
	d := w.queue[n-1]
	w.queue = w.queue[:n-1]
	w.busy++
	w.mu.Unlock()
	w.list(d)
	w.mu.Lock()
	w.busy--
	w.items += len(d.out.items)
	if d.offered {
		w.items++
	}
	return true
}

// push queues d to be listed, starting a helper goroutine if it is not
// the only one waiting and the walk may have one more.
func (w *walker) push(d *folder) {
	w.mu.Lock()
	w.queue = append(w.queue, d)
	if len(w.queue) > 1 && w.spare > 0 {
		w.spare--
		w.helpers.Add(1)
		go w.help()
	}
	w.mu.Unlock()
	w.wake.Signal()
}

// list lists the folder d and looks at each of its entries. A folder that
// cannot be opened, listed or searched is skipped as unreadable, with all
// it holds.
func (w *walker) list(d *folder) {
	fd, err := openDir(d.path)
	if err != nil {
		d.out.skip(d.path, unreadable(err))
		return
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	// The folder opened must be the one found: one swapped since for a
	// link elsewhere (by another user who can write its parent) is not
	// listed, or the walk would offer what the link leads to.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		d.out.skip(d.path, unreadable(err))
		return
	}
	if (fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}) != d.id {
		d.out.skip(d.path, fmt.Errorf("%w: symbolic link", ErrNotRegular))
		return
	}
	entries, err := f.ReadDir(-1)
	if len(entries) > 0 {
		// A folder we may list but not search (r without x) shows its
		// names and hides its files: readable's test, on the first name
		// listed, before any failure further in the listing.
		var st unix.Stat_t
		if serr := lstatAt(fd, entries[0].Name(), &st); serr != nil {
			err = serr
		}
	}
	if err != nil {
		d.out.skip(d.path, unreadable(err))
		return
	}
	d.offered = true
	d.out.items = make([]Item, 0, len(entries))
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range entries {
		name := e.Name()
		p := d.path + "/" + name
		if w.exclude != nil && d.out.excludes(p, p[w.cut:], e.IsDir()) {
			continue
		}
		w.entry(d, fd, name, p, e.Type(), unix.AT_SYMLINK_NOFOLLOW)
	}
}

// entry looks at the local path p, name in the folder open as dirfd, of
// type typ as that folder lists it, and adds what it gives to d's lists: a
// file's item, a folder to list, or why p is skipped. flags is
// AT_SYMLINK_NOFOLLOW but for the walk's root.
func (w *walker) entry(d *folder, dirfd int, name, p string, typ fs.FileMode, flags int) {
	rel := p[w.cut:]
	if err := carried(rel); err != nil {
		d.out.skip(p, err)
		return
	}
	var st unix.Stat_t
	switch {
	case typ.IsDir():
		if err := statAt(dirfd, name, &st, flags); err != nil {
			d.out.skip(p, unreadable(err))
			return
		}
		if !statType(st.Mode).IsDir() {
			// Swapped for a link (or a file) since the folder was listed.
			d.out.skip(p, fmt.Errorf("%w: symbolic link", ErrNotRegular))
			return
		}
		sub := &folder{path: p, id: fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, item: statItem(rel, p, proto.KindDir, &st)}
		sub.out.exclude = w.exclude
		d.subs = append(d.subs, subfolder{sub, len(d.out.items), len(d.out.skipped), len(d.out.excluded)})
		w.push(sub)
	case typ.IsRegular():
		err := lstatAt(dirfd, name, &st)
		if err == nil && !ownReadable(&st) {
			err = checkOpenAt(dirfd, name)
		}
		if err != nil {
			d.out.skip(p, unreadable(err))
			return
		}
		d.out.items = append(d.out.items, statItem(rel, p, proto.KindFile, &st))
	case typ&fs.ModeSymlink != 0:
		d.out.skip(p, fmt.Errorf("%w: symbolic link", ErrNotRegular))
	default:
		d.out.skip(p, ErrNotRegular)
	}
}

// merge appends to c's lists what the walk found in d and the folders in
// it, in walk order: d's own item, then its entries by name, each folder's
// contents right after it.
func (c *collector) merge(d *folder) {
	if d.offered {
		c.items = append(c.items, d.item)
	}
	var items, skipped, excluded int
	for _, s := range d.subs {
		c.items = append(c.items, d.out.items[items:s.items]...)
		c.skipped = append(c.skipped, d.out.skipped[skipped:s.skipped]...)
		c.excluded = append(c.excluded, d.out.excluded[excluded:s.excluded]...)
		c.merge(s.dir)
		items, skipped, excluded = s.items, s.skipped, s.excluded
	}
	c.items = append(c.items, d.out.items[items:]...)
	c.skipped = append(c.skipped, d.out.skipped[skipped:]...)
	c.excluded = append(c.excluded, d.out.excluded[excluded:]...)
}

// statItem is the item of the file or folder p, offered as rel, of which
// lstat gave st: what fileItem and walkSerial make of os.Lstat's FileInfo.
func statItem(rel, p string, kind proto.Kind, st *unix.Stat_t) Item {
	e := proto.Entry{Path: rel, Kind: kind, Mode: uint32(st.Mode) & uint32(fs.ModePerm), MTime: time.Unix(st.Mtim.Unix())}
	if kind == proto.KindFile {
		e.Size = uint64(st.Size)
	}
	it := Item{Source: p, Entry: e}
	if kind == proto.KindFile {
		it.id = fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
	}
	return it
}

// statType is the type bits of os.FileMode for the mode lstat gives.
func statType[M uint16 | uint32](mode M) fs.FileMode {
	switch uint32(mode) & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFREG:
		return 0
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}

// openDir opens the folder name to list it: a plain open, which os.Open
// would follow with the network poller's five system calls.
func openDir(name string) (int, error) {
	for {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return fd, nil
	}
}

// lstatAt is lstat of name in the folder open as dirfd (AT_FDCWD: name
// alone).
func lstatAt(dirfd int, name string, st *unix.Stat_t) error {
	return statAt(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// statAt is fstatat with flags (0: a symbolic link is followed).
func statAt(dirfd int, name string, st *unix.Stat_t, flags int) error {
	for {
		err := unix.Fstatat(dirfd, name, st, flags)
		if err != unix.EINTR {
			return err
		}
	}
}

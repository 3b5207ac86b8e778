package peer

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// The staging folder. Every file the inbox receives is written into
// .lanshare/ at the top of the shared folder, and linked to its final name
// only once its size and digest are verified and it is synced, so a final
// name never shows an incomplete file, whatever dies when.
//
// A file of at least resumeMin bytes from an authenticated sender is
// resumable: its temporary file is named after its key (see fileKey), and
// a small record beside it says what it belongs to:
//
//	.lanshare/<key>.part   the bytes received so far
//	.lanshare/<key>.rec    JSON: sender id, folder, path, size, mtime, and,
//	                       when the transfer stopped cleanly, the bytes
//	                       known to be written
//
// When the same sender offers the same file again (same path, size and
// mtime), the answer carries the offset to continue from. Other temporary
// files are named tmp-<random> and removed when their transfer ends, or by
// the sweep when their agent died.
//
// The staging folder also holds "arrived", an index of the files received
// from authenticated senders (key, then saved-as path, one per line), from
// which a re-sent file is recognised as already there.
const stagingDir = ".lanshare"

const (
	// resumeMin is the size from which a file is resumable: below it,
	// sending a file again costs less than keeping track of it.
	resumeMin = 4 << 20
	// resumeWindow is how far below a dead agent's partial file's end the
	// bytes may not all have been written: a sink has at most this many
	// bytes in writes that may finish out of order.
	resumeWindow = sinkBuffers * sinkChunk
	// arrivedMax is the size of the arrived index from which it is cut to
	// its newer half.
	arrivedMax = 8 << 20
	// maxRecord bounds a partial file's record: its paths and numbers.
	maxRecord = 64 << 10
	// orphanAge is how long a tmp- file may go unwritten before the sweep
	// takes it for an orphan: a live transfer writes more often than this,
	// or its connection is dropped as idle.
	orphanAge = 10 * time.Minute
	// DefaultPartialMaxAge is how long the sweep keeps an untouched
	// resumable partial file.
	DefaultPartialMaxAge = 7 * 24 * time.Hour
)

// fileKey names one offered file from one sender: it is equal only for the
// same sender, per-peer folder, path, size and mtime. It is "" when the
// file cannot be recognised again: an unauthenticated sender, or no mtime.
func fileKey(sender, folder string, e proto.Entry) string {
	if sender == "" || e.MTime.IsZero() || e.Kind != proto.KindFile {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "lanshare file key 1\x00%s\x00%s\x00%s\x00%d\x00%d", sender, folder, e.Path, e.Size, e.MTime.UnixNano())
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// partialRecord is what a resumable partial file belongs to.
type partialRecord struct {
	Sender  string `json:"sender"`
	Folder  string `json:"folder,omitempty"`
	Path    string `json:"path"`
	Size    uint64 `json:"size"`
	MTime   int64  `json:"mtime"`
	Written uint64 `json:"written,omitempty"`
}

func newRecord(sender, folder string, e proto.Entry) partialRecord {
	return partialRecord{Sender: sender, Folder: folder, Path: e.Path, Size: e.Size, MTime: e.MTime.UnixNano()}
}

func partPath(key string) string { return path.Join(stagingDir, key+".part") }
func recPath(key string) string  { return path.Join(stagingDir, key+".rec") }

// The staging folder belongs to the agent's user alone. Its files decide
// what gets a final name, so another local user who could write the
// shared folder's top must not be able to plant, replace or redirect
// them: the folder is held open as a handle once its owner and mode are
// checked, so that renaming or replacing .lanshare afterwards does not
// redirect the agent; every file in it is opened relative to that handle,
// without following a symbolic link or waiting on a FIFO, and must be a
// regular file of this user; and a verified file is linked to its final
// name from the handle (linkat), so it cannot be swapped for another
// before it gets that name. A .lanshare owned by another user is refused
// at start (ErrStagingUnsafe); one of ours that others may enter is made
// 0700, and at start whatever in it is not a regular file of ours with a
// single name is removed. (That is on Linux and macOS. Elsewhere the
// folder's permissions are the protection, files must be regular, and a
// file is linked to its final name by its path.)

// stagingFolder is the staging folder, open.
type stagingFolder struct {
	root *os.Root        // the folder itself, not its name
	dir  *os.File        // the same directory, for the *at system calls
	conn syscall.RawConn // dir's descriptor, held while in use
}

func (s *stagingFolder) close() {
	s.dir.Close()
	s.root.Close()
}

// openStagingFolder creates the staging folder under root if it is
// missing, checks it and opens it. dir is the shared folder's path, for
// messages.
func openStagingFolder(root *os.Root, dir string) (*stagingFolder, error) {
	where := filepath.Join(dir, stagingDir)
	if err := root.Mkdir(stagingDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("creating %s: %w", where, err)
	}
	lfi, err := root.Lstat(stagingDir)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", where, err)
	}
	if !lfi.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory; remove it", ErrStagingUnsafe, where)
	}
	sr, err := root.OpenRoot(stagingDir)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", where, err)
	}
	s := &stagingFolder{root: sr}
	if s.dir, err = sr.Open("."); err == nil {
		s.conn, err = s.dir.SyscallConn()
	}
	if err != nil {
		if s.dir != nil {
			s.dir.Close()
		}
		sr.Close()
		return nil, fmt.Errorf("opening %s: %w", where, err)
	}
	if err := s.check(lfi, where); err != nil {
		s.close()
		return nil, err
	}
	s.clean()
	return s, nil
}

// check verifies that the open folder is the one lfi describes (the name
// was not swapped while it was opened), that it is ours, and makes it
// private.
func (s *stagingFolder) check(lfi fs.FileInfo, where string) error {
	fi, err := s.dir.Stat()
	if err != nil {
		return fmt.Errorf("opening %s: %w", where, err)
	}
	if !os.SameFile(fi, lfi) {
		return fmt.Errorf("%w: %s was replaced while it was opened", ErrStagingUnsafe, where)
	}
	if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not by this user (uid %d); remove it, or share another folder",
			ErrStagingUnsafe, where, uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := s.dir.Chmod(0o700); err != nil {
			return fmt.Errorf("%w: %s is open to other users and cannot be made private: %w", ErrStagingUnsafe, where, err)
		}
	}
	return nil
}

// clean removes from the staging folder what the agent did not make: all
// but regular files of this user with a single name. Such things are
// there only if the folder was once open to others.
func (s *stagingFolder) clean() {
	for _, name := range s.names() {
		fi, err := s.root.Lstat(name)
		if err != nil {
			continue
		}
		uid, _ := owner(fi)
		if checkStaged(fi.Mode().IsRegular(), uid, links(fi)) != nil {
			_ = s.root.RemoveAll(name)
		}
	}
}

// names lists the staging folder.
func (s *stagingFolder) names() []string {
	d, err := s.root.Open(".")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	return names
}

// staging returns the staging folder, open, making it again if someone
// removed it.
func (in *Inbox) staging() (*stagingFolder, error) {
	in.gmu.Lock()
	defer in.gmu.Unlock()
	if in.stg != nil && in.stg.live() {
		return in.stg, nil
	}
	if in.closed {
		return nil, fmt.Errorf("staging folder: %w", os.ErrClosed)
	}
	s, err := openStagingFolder(in.root, in.cfg.Dir)
	if err != nil {
		return nil, err
	}
	if in.stg != nil {
		// Whoever still uses it is holding its descriptors: they are
		// closed when the last use ends.
		in.stg.close()
	}
	in.stg = s
	return s, nil
}

// ensureStaging opens the staging folder, creating it if it is missing; see
// staging.
func (in *Inbox) ensureStaging() error {
	_, err := in.staging()
	return err
}

// closeStaging closes the staging folder's handles; later uses fail.
func (in *Inbox) closeStaging() {
	in.gmu.Lock()
	defer in.gmu.Unlock()
	in.closed = true
	if in.stg != nil {
		in.stg.close()
		in.stg = nil
	}
}

// inStaging returns name's last component if name, a path under the
// shared folder, is a file directly in the staging folder.
func inStaging(name string) (string, bool) {
	base, ok := strings.CutPrefix(name, stagingDir+"/")
	return base, ok && base != "" && !strings.Contains(base, "/")
}

// openStaging opens name, a path under the shared folder such as
// .lanshare/arrived, which must be a file directly in the staging folder,
// through the staging folder's handle: never following a symbolic link,
// never blocking on a FIFO, and only if it is a regular file of this user
// with no other name (else an error wrapping ErrStagingUnsafe). flag and
// perm are as for os.OpenFile; O_TRUNC cuts the file only after the checks.
func (in *Inbox) openStaging(name string, flag int, perm fs.FileMode) (*os.File, error) {
	base, ok := inStaging(name)
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: not in the staging folder", ErrStagingUnsafe)}
	}
	s, err := in.staging()
	if err != nil {
		return nil, err
	}
	return s.openFile(base, flag, perm)
}

// readStaging returns the contents of name, a file of the staging folder
// (see openStaging), refusing one of more than max bytes.
func (in *Inbox) readStaging(name string, max int64) ([]byte, error) {
	f, err := in.openStaging(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("%s: over %d bytes", name, max)
	}
	return b, err
}

// writeStaging replaces the contents of name, a file of the staging
// folder (see openStaging), with b.
func (in *Inbox) writeStaging(name string, b []byte, perm fs.FileMode) error {
	f, err := in.openStaging(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// lstatStaging describes name, a file of the staging folder, without
// following a link.
func (in *Inbox) lstatStaging(name string) (fs.FileInfo, error) {
	base, ok := inStaging(name)
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: fmt.Errorf("%w: not in the staging folder", ErrStagingUnsafe)}
	}
	s, err := in.staging()
	if err != nil {
		return nil, err
	}
	return s.root.Lstat(base)
}

// renameStaging renames the staging folder's file from to to, both paths
// under the shared folder directly in the staging folder (as for an
// index's new version).
func (in *Inbox) renameStaging(from, to string) error {
	fb, ok1 := inStaging(from)
	tb, ok2 := inStaging(to)
	if !ok1 || !ok2 {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fmt.Errorf("%w: not in the staging folder", ErrStagingUnsafe)}
	}
	s, err := in.staging()
	if err != nil {
		return err
	}
	return s.root.Rename(fb, tb)
}

// remove removes name, a path under the shared folder: through the
// staging folder's handle when it is a file of the staging folder.
func (in *Inbox) remove(name string) error {
	base, ok := inStaging(name)
	if !ok {
		return in.root.Remove(name)
	}
	s, err := in.staging()
	if err != nil {
		return err
	}
	return s.root.Remove(base)
}

// link gives tmp, a verified file, the new name final (a path under the
// shared folder). A tmp in the staging folder is linked from the staging
// folder's handle, so that it is the file the transfer wrote and
// verified, whatever happened to the name .lanshare; see stagingFolder.
func (in *Inbox) link(tmp, final string) error {
	base, ok := inStaging(tmp)
	if !ok {
		return in.root.Link(tmp, final)
	}
	s, err := in.staging()
	if err != nil {
		return err
	}
	return s.link(base, in.root, final)
}

// rename is link for file systems without hard links: it moves tmp to
// final, replacing whatever is there.
func (in *Inbox) rename(tmp, final string) error {
	base, ok := inStaging(tmp)
	if !ok {
		return in.root.Rename(tmp, final)
	}
	s, err := in.staging()
	if err != nil {
		return err
	}
	return s.rename(base, in.root, final)
}

// stagingRef returns the root and name under it by which name, a path
// under the shared folder, is reached without going through the name
// .lanshare: for a file of the staging folder, the staging folder's
// handle and the file's name in it.
func (in *Inbox) stagingRef(name string) (*os.Root, string) {
	if base, ok := inStaging(name); ok {
		if s, err := in.staging(); err == nil {
			return s.root, base
		}
	}
	return in.root, name
}

// How a transfer takes over a resumable file from an earlier connection
// of the same sender that the receiver still holds: such a connection is
// given up on once nothing arrived on it for claimIdle (its sender
// reconnected after a drop that did not reach us, as when a laptop sleeps),
// and a new transfer waits for that at most claimWait.
const (
	claimIdle = 2 * time.Second
	claimWait = 3 * time.Second
)

// claim marks key as being received by t, so that two transfers never
// write one partial file. When another transfer holds the key (keys are
// per sender, so it is the same sender's), claim takes it over if that
// transfer has been idle for claimIdle, closing its connection and waiting
// for it to let go. It reports false if the key stays taken: the holder
// keeps receiving (the same file sent twice at once).
func (in *Inbox) claim(key string, t *transfer) bool {
	deadline := time.Now().Add(claimWait)
	for {
		in.smu.Lock()
		h := in.busy[key]
		if h == nil {
			in.busy[key] = t
			in.smu.Unlock()
			return true
		}
		in.smu.Unlock()
		wait := claimIdle - time.Since(time.Unix(0, h.active.Load()))
		if wait <= 0 {
			h.conn.Close() // its receive fails, keeping what arrived
			wait = claimWait
		}
		wait = min(wait, time.Until(deadline))
		if wait <= 0 {
			return false
		}
		timer := time.NewTimer(wait)
		select {
		case <-h.released:
		case <-timer.C:
		case <-t.policy.Done: // the handshake deadline, or a stop
			timer.Stop()
			return false
		}
		timer.Stop()
	}
}

func (in *Inbox) unclaim(key string) {
	in.smu.Lock()
	delete(in.busy, key)
	in.smu.Unlock()
}

// resumeOffset is where a claimed resumable file continues from: the bytes
// of its partial file that are surely written, if the partial belongs to
// rec, else 0 (and a partial that does not match is removed).
func (in *Inbox) resumeOffset(key string, rec partialRecord) uint64 {
	b, err := in.readStaging(recPath(key), maxRecord)
	if err != nil {
		in.dropPartial(key)
		return 0
	}
	var old partialRecord
	if json.Unmarshal(b, &old) != nil {
		in.dropPartial(key)
		return 0
	}
	written := old.Written
	old.Written = 0
	fi, err := in.lstatStaging(partPath(key))
	if err != nil || !fi.Mode().IsRegular() || old != rec || uint64(fi.Size()) > rec.Size {
		in.dropPartial(key)
		return 0
	}
	have := uint64(fi.Size())
	off := written
	if off == 0 || off > have {
		// The agent died: its last writes may have landed out of order.
		off = 0
		if have > resumeWindow {
			off = have - resumeWindow
		}
	}
	return off &^ (directAlign - 1)
}

// writeRecord writes key's record.
func (in *Inbox) writeRecord(key string, rec partialRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return in.writeStaging(recPath(key), append(b, '\n'), 0o600)
}

// dropPartial removes key's partial file and record.
func (in *Inbox) dropPartial(key string) {
	_ = in.remove(partPath(key))
	_ = in.remove(recPath(key))
}

// createStagingTemp creates a new temporary file in the staging folder for
// a file that is not resumed.
func (in *Inbox) createStagingTemp() (*os.File, string, error) {
	for range 10 {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		name := path.Join(stagingDir, "tmp-"+hex.EncodeToString(rnd[:]))
		f, err := in.openStaging(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("creating a temporary file: %w", fs.ErrExist)
}

// Sweep removes from the staging folder what no transfer will use: partial
// files and records untouched for maxAge, records without a partial, and
// temporary files of transfers that died. Files in use are left alone.
// It returns how many files it removed.
func (in *Inbox) Sweep(maxAge time.Duration) int { return in.sweep(maxAge, orphanAge) }

// sweep is Sweep taking temporary files untouched for orphaned as dead:
// all of them (0) when no transfer has run yet.
func (in *Inbox) sweep(maxAge, orphaned time.Duration) int {
	s, err := in.staging()
	if err != nil {
		return 0
	}
	now := time.Now()
	removed := 0
	remove := func(name string) {
		if s.root.Remove(name) == nil {
			removed++
		}
	}
	for _, name := range s.names() {
		fi, err := s.root.Lstat(name)
		if err != nil {
			continue
		}
		age := now.Sub(fi.ModTime())
		switch {
		case strings.HasPrefix(name, "tmp-"):
			if age >= orphaned {
				remove(name)
			}
		case strings.HasSuffix(name, ".part"), strings.HasSuffix(name, ".rec"):
			key := name[:strings.LastIndexByte(name, '.')]
			in.smu.Lock()
			busy := in.busy[key] != nil
			in.smu.Unlock()
			if busy {
				continue
			}
			if strings.HasSuffix(name, ".rec") {
				if _, err := s.root.Lstat(key + ".part"); errors.Is(err, fs.ErrNotExist) {
					remove(name)
				}
				continue
			}
			if _, err := s.root.Lstat(key + ".rec"); errors.Is(err, fs.ErrNotExist) {
				remove(name) // committed, or not resumable: a leftover
			} else if age > maxAge {
				remove(name)
				remove(key + ".rec")
			}
		}
	}
	return removed
}

// Partials lists the resumable partial files kept in the staging folder:
// what they belong to, with Written set to the bytes they hold.
func (in *Inbox) Partials() []partialRecord {
	s, err := in.staging()
	if err != nil {
		return nil
	}
	var out []partialRecord
	for _, name := range s.names() {
		key, ok := strings.CutSuffix(name, ".part")
		if !ok {
			continue
		}
		b, err := in.readStaging(recPath(key), maxRecord)
		fi, serr := s.root.Lstat(name)
		var rec partialRecord
		if err != nil || serr != nil || json.Unmarshal(b, &rec) != nil {
			continue
		}
		rec.Written = uint64(fi.Size())
		out = append(out, rec)
	}
	return out
}

// arrived returns, for the keys asked, the saved-as paths the index
// records (the newest, if a key appears more than once).
func (in *Inbox) arrived(keys map[string]bool) map[string]string {
	found := map[string]string{}
	if len(keys) == 0 {
		return found
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	f, err := in.openStaging(path.Join(stagingDir, "arrived"), os.O_RDONLY, 0)
	if err != nil {
		return found
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), proto.MaxPathLen+256)
	for sc.Scan() {
		key, saved, ok := parseArrived(sc.Bytes())
		if ok && keys[key] {
			found[key] = saved
		}
	}
	return found
}

func parseArrived(line []byte) (key, saved string, ok bool) {
	k, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(k) != 32 {
		return "", "", false
	}
	s, err := strconv.Unquote(string(rest))
	if err != nil || s == "" {
		return "", "", false
	}
	return string(k), s, true
}

// recordArrival appends key → savedAs to the arrived index. The caller
// holds in.mu. The index is cut to its newer half when it grows past
// arrivedMax.
func (in *Inbox) recordArrival(key, savedAs string) error {
	name := path.Join(stagingDir, "arrived")
	if in.index == nil {
		f, err := in.openStaging(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		in.index = f
	}
	if _, err := fmt.Fprintf(in.index, "%s %s\n", key, strconv.Quote(savedAs)); err != nil {
		return err
	}
	fi, err := in.index.Stat()
	if err != nil || fi.Size() <= arrivedMax {
		return err
	}
	return in.compactArrived(name)
}

// compactArrived rewrites the arrived index with its newer half.
func (in *Inbox) compactArrived(name string) error {
	b, err := in.readStaging(name, 2*arrivedMax)
	if err != nil {
		return err
	}
	cut := bytes.IndexByte(b[len(b)/2:], '\n')
	if cut < 0 {
		return nil
	}
	tmp := name + ".new"
	if err := in.writeStaging(tmp, b[len(b)/2+cut+1:], 0o600); err != nil {
		return err
	}
	if err := in.renameStaging(tmp, name); err != nil {
		return err
	}
	in.index.Close()
	in.index = nil
	return nil
}

// alreadyThere reports whether the file the index names is still the
// one that arrived: a regular file of the offered size and mtime.
func (in *Inbox) alreadyThere(saved string, e proto.Entry) bool {
	fi, err := in.root.Lstat(saved)
	return err == nil && fi.Mode().IsRegular() && uint64(fi.Size()) == e.Size && fi.ModTime().Equal(e.MTime)
}

// hashPrefix feeds the first n bytes of f into h, reading with buf.
func hashPrefix(f *os.File, h io.Writer, n uint64, buf []byte) error {
	var off int64
	for n > 0 {
		b := buf[:min(uint64(len(buf)), n)]
		if _, err := f.ReadAt(b, off); err != nil {
			return fmt.Errorf("reading the partial file: %w", unexpected(err))
		}
		h.Write(b)
		off += int64(len(b))
		n -= uint64(len(b))
	}
	return nil
}

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
	"hash"
	"hash/crc32"
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
// .lanshare/ at the top of the shared folder, and given its final name
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
//	                       known to be written and the digest state of
//	                       the first of them (see digestCheckpoint)
//
// When the same sender offers the same file again (same path, size and
// mtime), the answer carries the offset to continue from. Other temporary
// files are named tmp-<random> and removed when their transfer ends, or by
// the sweep when their agent died.
//
// The staging folder also holds "arrived", an index of the files received
// (key, identity and saved-as path, one checked record per line; see
// arrival), from which a re-sent file is recognised as already there.
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
	// "lanshare file key 1\x00SENDER\x00FOLDER\x00PATH\x00SIZE\x00MTIME",
	// numbers in decimal; appended, not printed: once per offered file,
	// on the stack unless the path is long.
	var buf [320]byte
	b := buf[:0]
	b = append(b, "lanshare file key 1\x00"...)
	b = append(append(b, sender...), 0)
	b = append(append(b, folder...), 0)
	b = append(append(b, e.Path...), 0)
	b = append(strconv.AppendUint(b, e.Size, 10), 0)
	b = strconv.AppendInt(b, e.MTime.UnixNano(), 10)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// partialRecord is what a resumable partial file belongs to.
type partialRecord struct {
	Sender  string            `json:"sender"`
	Folder  string            `json:"folder,omitempty"`
	Path    string            `json:"path"`
	Size    uint64            `json:"size"`
	MTime   int64             `json:"mtime"`
	Written uint64            `json:"written,omitempty"`
	Digest  *digestCheckpoint `json:"digest,omitempty"`
	// Boot, set while a resumed transfer writes past Written, is the
	// system's boot then (bootID): should the agent die, its writes are
	// in the page cache as long as the system did not stop, and the
	// resume goes on from near the partial's end, else from Written.
	Boot string `json:"boot,omitempty"`
}

// digestCheckpoint is the digest state of a partial file's first At
// bytes (proto.AppendDigestState), kept in its record so that a resume
// goes on from it instead of reading and hashing those bytes again,
// which for a large file kept the stream waiting for seconds.
//
// The digest of a resumed file then covers its first At bytes as they
// arrived rather than as they are on disk, so the state is used only
// while nothing can have changed them since:
//   - It is saved only when the transfer stopped cleanly (the sink's
//     writes all done without error), after the partial file is synced,
//     so that a crash cannot leave a state for bytes that did not reach
//     the disk; and the record is replaced whole (written aside, synced,
//     renamed), so a crash leaves the old record or the new one.
//   - It carries File, the partial file's stamp when it was saved: its
//     identity, size, mtime and change time. Any write to the file after
//     that (a crash in the middle of a resumed transfer, another program)
//     changes the stamp, and the state is not used: the partial file is
//     hashed again from disk as before, which catches a damaged one.
//   - A resume that does not use the state (it goes on from another
//     offset) removes it before writing, since it may write again bytes
//     that the state covers.
//
// Who could forge a state could as well write the file it covers: the
// staging folder is this user's alone (see stagingFolder).
type digestCheckpoint struct {
	At    uint64       `json:"at"`
	State []byte       `json:"state"`
	File  partialStamp `json:"file"`
}

// partialStamp is what changes when a file's bytes change: its identity,
// size, mtime and change time (which, unlike mtime, no program sets).
type partialStamp struct {
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
	CTime int64  `json:"ctime"`
}

// matches reports whether ck can be used for a partial file described by
// fi, with the resume going on from its end.
func (ck *digestCheckpoint) matches(fi fs.FileInfo) bool {
	if ck == nil || ck.At == 0 || ck.At > uint64(fi.Size()) {
		return false
	}
	st, ok := stampOf(fi)
	return ok && st == ck.File
}

// checkpoint returns the digest state h, which covers the first at bytes
// of the partial file f, ready to be kept in f's record: it syncs f,
// so that those bytes are on disk before a record says so, and stamps
// it. It returns nil when it cannot (the sync fails, the platform gives no
// stamp, the state cannot be saved): a resume then hashes the partial
// file again.
func checkpoint(f *os.File, h hash.Hash, at uint64) *digestCheckpoint {
	if at == 0 || f.Sync() != nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	st, ok := stampOf(fi)
	if !ok || at > uint64(st.Size) {
		return nil
	}
	state, err := proto.AppendDigestState(nil, h)
	if err != nil {
		return nil
	}
	return &digestCheckpoint{At: at, State: state, File: st}
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
	// seen is when the folder was last seen to have its name (see
	// staging); guarded by Inbox.gmu.
	seen time.Time
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
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			// Nothing can be received here: say so as New's check would.
			return nil, fmt.Errorf("%w: %s: %w", ErrNotWritable, dir, errReasonNoPath(err))
		}
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
	if in.stg != nil && time.Since(in.stg.seen) < stagingLook {
		return in.stg, nil
	}
	if in.stg != nil && in.stg.live() {
		in.stg.seen = time.Now()
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
	s.seen = time.Now()
	in.stg = s
	return s, nil
}

// stagingLook is how often staging looks whether the staging folder was
// removed: it is used several times for each file received, and a look
// is a system call. A file created meanwhile in a removed folder makes
// it look at once (see openStaging).
const stagingLook = 100 * time.Millisecond

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
	f, err := s.openFile(base, flag, perm)
	if flag&os.O_CREATE != 0 && errors.Is(err, fs.ErrNotExist) {
		// The folder was removed since staging last looked: look now,
		// and make it again.
		in.gmu.Lock()
		s.seen = time.Time{}
		in.gmu.Unlock()
		if s, err = in.staging(); err != nil {
			return nil, err
		}
		f, err = s.openFile(base, flag, perm)
	}
	return f, err
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

// linkIn is link with final's directory open as d (see
// transfer.linkFinal).
func (in *Inbox) linkIn(tmp string, d *os.File, final string) error {
	base, ok := inStaging(tmp)
	if !ok {
		return in.root.Link(tmp, final)
	}
	s, err := in.staging()
	if err != nil {
		return err
	}
	return s.linkIn(base, d, in.root, final)
}

// moveIn gives tmp, a verified file of the staging folder, the new name
// final in the directory open as d by moving it there, failing with
// EEXIST rather than replace a file; see stagingFolder.moveIn. Any other
// error means that tmp is where it was.
func (in *Inbox) moveIn(tmp string, d *os.File, final string) error {
	base, ok := inStaging(tmp)
	if !ok {
		return &os.LinkError{Op: "rename", Old: tmp, New: final, Err: errors.ErrUnsupported}
	}
	s, err := in.staging()
	if err != nil {
		return err
	}
	return s.moveIn(base, d, final)
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
// reconnected after a drop that did not reach us, as when a laptop sleeps).
// A new transfer waits for that at most claimWait in all, whatever its
// offer holds, and looks every claimPoll whether its own connection was
// closed meanwhile.
const (
	claimIdle = 2 * time.Second
	claimWait = 3 * time.Second
	claimPoll = 100 * time.Millisecond
)

// claim marks key as being received by t, so that two transfers never
// write one partial file. When another transfer holds the key (keys are
// per sender, so it is the same sender's), claim takes it over if that
// transfer has been idle for claimIdle, closing its connection and waiting
// for it to let go. It reports false, at once, if t itself holds the key
// (the offer names the file twice), and otherwise if the key is still
// taken at deadline (the holder keeps receiving: the same file sent twice
// at once) or t's connection is closed first.
func (in *Inbox) claim(key string, t *transfer, deadline time.Time) bool {
	for {
		in.smu.Lock()
		h := in.busy[key]
		if h == nil {
			in.busy[key] = t
			in.smu.Unlock()
			return true
		}
		in.smu.Unlock()
		if h == t {
			return false
		}
		wait := claimIdle - time.Since(time.Unix(0, h.active.Load()))
		if wait <= 0 {
			h.abort() // its receive fails, keeping what arrived
			wait = claimWait
		}
		wait = min(wait, time.Until(deadline), claimPoll)
		if wait <= 0 || t.closed() {
			return false
		}
		timer := time.NewTimer(wait)
		select {
		case <-h.released:
		case <-t.quit:
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
// rec, else 0 (and a partial that does not match is removed). done is the
// key's record in the arrived index, if any: a partial file that is the
// very file it names (the agent died after giving it its final name,
// before removing its staging name) is another name of that file, never
// written into, and only that name is removed.
func (in *Inbox) resumeOffset(key string, rec partialRecord, done arrival) uint64 {
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
	written, ck, boot := old.Written, old.Digest, old.Boot
	old.Written, old.Digest, old.Boot = 0, nil, ""
	fi, err := in.lstatStaging(partPath(key))
	if err != nil || !fi.Mode().IsRegular() || old != rec || uint64(fi.Size()) > rec.Size || in.isArrival(key, done) {
		in.dropPartial(key)
		return 0
	}
	if ck.matches(fi) {
		// Where its digest state is: at a directAlign boundary, or at
		// the end of a file whose bytes all arrived. (openTemp checks
		// the stamp again on the file it opens.)
		return ck.At
	}
	have := uint64(fi.Size())
	off := written
	switch {
	case off == 0 || off > have:
		// The agent died: its last writes may have landed out of order.
		off = 0
		if have > resumeWindow {
			off = have - resumeWindow
		}
	case boot != "" && boot == bootID() && have > off+resumeWindow:
		// The agent died in a resumed transfer, and the system did
		// not stop since: what it wrote past the record is there, but
		// its last writes.
		off = have - resumeWindow
	}
	return off &^ (directAlign - 1)
}

// isArrival reports whether key's partial file is the file that the
// arrival done recorded, under its final name. (An arrival recorded for
// a name that was not made, as when the agent died before the link,
// leaves the partial file resumable.)
func (in *Inbox) isArrival(key string, done arrival) bool {
	if done.id == (fileID{}) {
		return false
	}
	id, _, err := fileIdentity(in.stagingRef(partPath(key)))
	if err != nil || id != done.id {
		return false
	}
	id, _, err = fileIdentity(in.root, done.saved)
	return err == nil && id == done.id
}

// writeRecord writes key's record. A record with a digest state or a
// boot replaces the old one whole, durably: see digestCheckpoint, and a
// resume's record (openTemp), which keeps its written count as the
// floor a crash of the system goes back to.
func (in *Inbox) writeRecord(key string, rec partialRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if rec.Digest == nil && rec.Boot == "" {
		return in.writeStaging(recPath(key), b, 0o600)
	}
	f, tmp, err := in.createStagingTemp()
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = in.renameStaging(tmp, recPath(key))
	}
	if err != nil {
		_ = in.remove(tmp)
	}
	return err
}

// resumeDigest returns the digest state kept in key's record if it is
// for exactly off bytes of f, key's partial file, open, as f is now;
// else nil, and the record no longer holds a state (the bytes it covers
// may be written again). Call it before writing to f.
func (in *Inbox) resumeDigest(key string, f *os.File, off uint64) hash.Hash {
	b, err := in.readStaging(recPath(key), maxRecord)
	var rec partialRecord
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Digest == nil {
		return nil
	}
	fi, err := f.Stat()
	if err == nil && rec.Digest.At == off && rec.Digest.matches(fi) {
		if h, _, err := proto.ResumeDigest(rec.Digest.State); err == nil {
			return h
		}
	}
	rec.Digest = nil
	_ = in.writeRecord(key, rec)
	return nil
}

// dropPartial removes key's partial file and record.
func (in *Inbox) dropPartial(key string) {
	_ = in.remove(partPath(key))
	_ = in.remove(recPath(key))
}

// createStagingTemp creates a new temporary file in the staging folder for
// a file that is not resumed.
func (in *Inbox) createStagingTemp() (*os.File, string, error) {
	return in.createStagingFile(0o600)
}

// createStagingFile is createStagingTemp with the mode perm (less the
// umask): a received file's final mode, which spares a chmod when the
// umask leaves it whole. The staging folder is private (0700), so no one
// else reaches the file before it has its final name.
func (in *Inbox) createStagingFile(perm fs.FileMode) (*os.File, string, error) {
	for range 10 {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		name := path.Join(stagingDir, tempPrefixStaging+hex.EncodeToString(rnd[:]))
		f, err := in.openStaging(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
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
		rec.Written, rec.Digest = uint64(fi.Size()), nil
		out = append(out, rec)
	}
	return out
}

// The arrived index holds one record per line:
//
//	L2 <key> <dev> <ino> <size> <mtime> <saved-as, Go-quoted> <crc>
//
// key is the file's key, or "-" for a file without one; dev and ino are
// the file's identity (see fileIdentity; 0 0 when the platform has none),
// size and mtime (Unix nanoseconds) what it was saved with, and crc the
// CRC-32C, in 8 hex digits, of the line before its last space. A line that
// fails its check is skipped, but a record that follows a torn one on the
// same line (an append cut by a full disk or a crash) is still found.
const (
	arrivedName  = "arrived"
	arrivedMagic = "L2 "
	// arrivedLineMax bounds a line of the index: two records of the
	// longest path, quoted.
	arrivedLineMax = 64 << 10
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// fileID identifies a file on its file system: device and inode number,
// or their equivalents. The zero fileID is unknown.
type fileID struct{ dev, ino uint64 }

// arrival is one record of the arrived index.
type arrival struct {
	key   string // "-" for a file without a key
	saved string // the path it was saved as, under the root
	id    fileID // zero when unknown
	size  uint64
	mtime int64
}

// line encodes a as an index line, without the newline.
func (a arrival) line() []byte { return a.appendLine(nil) }

// appendLine appends a's index line, without the newline, to b: the
// magic, the key, dev, ino, size and mtime in decimal, the saved path
// quoted, and the CRC-32C of all that in eight hex digits.
func (a arrival) appendLine(b []byte) []byte {
	start := len(b)
	b = append(b, arrivedMagic...)
	b = append(b, a.key...)
	for _, n := range [...]uint64{a.id.dev, a.id.ino, a.size} {
		b = strconv.AppendUint(append(b, ' '), n, 10)
	}
	b = strconv.AppendInt(append(b, ' '), a.mtime, 10)
	b = strconv.AppendQuote(append(b, ' '), a.saved)
	sum := crc32.Checksum(b[start:], crcTable)
	b = append(b, ' ')
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, "0123456789abcdef"[sum>>shift&0xf])
	}
	return b
}

// arrived returns, for the keys asked, the newest record of each in the
// index, unless a later record (of any key) names the same file identity:
// then the file there is another arrival's, on a reused inode.
func (in *Inbox) arrived(keys map[string]bool) map[string]arrival {
	found := map[string]arrival{}
	if len(keys) == 0 {
		return found
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	f, err := in.openStaging(path.Join(stagingDir, arrivedName), os.O_RDONLY, 0)
	if err != nil {
		return found
	}
	defer f.Close()
	watch := map[fileID]string{} // identities of the records found, to their keys
	br := bufio.NewReaderSize(f, arrivedLineMax)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Not a line this index writes: skip to its end.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if a, ok := parseArrived(bytes.TrimSuffix(line, []byte{'\n'})); ok {
			if k, ok := watch[a.id]; ok && k != a.key {
				delete(found, k)
				delete(watch, a.id)
			}
			if keys[a.key] {
				if old, ok := found[a.key]; ok {
					delete(watch, old.id)
				}
				found[a.key] = a
				if a.id != (fileID{}) {
					watch[a.id] = a.key
				}
			}
		}
		if err != nil {
			return found
		}
	}
}

// parseArrived decodes a line of the index: the first record in it that
// runs to its end and passes its check.
func parseArrived(line []byte) (arrival, bool) {
	for off := 0; ; off++ {
		k := bytes.Index(line[off:], []byte(arrivedMagic))
		if k < 0 {
			return arrival{}, false
		}
		off += k
		if a, ok := parseRecord(line[off:]); ok {
			return a, true
		}
	}
}

func parseRecord(b []byte) (arrival, bool) {
	sp := bytes.LastIndexByte(b, ' ')
	if sp < 0 || len(b)-sp-1 != 8 {
		return arrival{}, false
	}
	sum, err := strconv.ParseUint(string(b[sp+1:]), 16, 32)
	if err != nil || uint32(sum) != crc32.Checksum(b[:sp], crcTable) {
		return arrival{}, false
	}
	f := strings.SplitN(string(b[len(arrivedMagic):sp]), " ", 6)
	if len(f) != 6 || (f[0] != "-" && len(f[0]) != 32) {
		return arrival{}, false
	}
	a := arrival{key: f[0]}
	var e1, e2, e3, e4 error
	a.id.dev, e1 = strconv.ParseUint(f[1], 10, 64)
	a.id.ino, e2 = strconv.ParseUint(f[2], 10, 64)
	a.size, e3 = strconv.ParseUint(f[3], 10, 64)
	a.mtime, e4 = strconv.ParseInt(f[4], 10, 64)
	if a.saved, err = strconv.Unquote(f[5]); err != nil || a.saved == "" || errors.Join(e1, e2, e3, e4) != nil {
		return arrival{}, false
	}
	return a, true
}

// statArrival describes the file name under the root as it would be
// recorded for key.
func (in *Inbox) statArrival(key, name string) (arrival, error) {
	id, fi, err := fileIdentity(in.stagingRef(name))
	if err != nil {
		return arrival{}, err
	}
	return newArrival(key, id, fi), nil
}

// anonArrival describes the unnamed file a as it would be recorded for
// key (see statArrival).
func anonArrival(key string, a *anonFile) (arrival, error) {
	st, _, err := a.stat()
	if err != nil {
		return arrival{}, err
	}
	if key == "" {
		key = "-"
	}
	st.key = key
	return st, nil
}

// newArrival is the record for key of the file id, described by fi.
func newArrival(key string, id fileID, fi fs.FileInfo) arrival {
	if key == "" {
		key = "-"
	}
	return arrival{key: key, id: id, size: uint64(fi.Size()), mtime: fi.ModTime().UnixNano()}
}

// recordArrival appends a to the arrived index. The caller holds in.mu.
// An append that fails is undone as far as it can be, and the next one
// starts on a new line whatever the last one left. The index is cut to
// its newer half when it grows past arrivedMax.
func (in *Inbox) recordArrival(a arrival) error {
	return in.recordArrivals([]arrival{a})
}

// recordArrivals is recordArrival for several records, appended with one
// write: all of them or, should it fail, none.
func (in *Inbox) recordArrivals(as []arrival) error {
	name := path.Join(stagingDir, arrivedName)
	if in.index == nil {
		f, err := in.openStaging(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		in.index = f
		in.indexTorn = !endsLine(f)
		in.indexSize = -1
	}
	if in.indexSize < 0 {
		fi, err := in.index.Stat()
		if err != nil {
			return err
		}
		in.indexSize = fi.Size()
	}
	size := in.indexSize
	b := in.indexBuf[:0]
	if in.indexTorn {
		b = append(b, '\n')
	}
	for _, a := range as {
		b = a.appendLine(b)
		b = append(b, '\n')
	}
	write := in.index.Write
	if indexWriteHook != nil {
		write = func(b []byte) (int, error) { return indexWriteHook(in.index, b) }
	}
	if cap(b) <= indexBufMax {
		in.indexBuf = b
	}
	if _, err := write(b); err != nil {
		in.indexTorn = in.index.Truncate(size) != nil
		in.indexSize = -1
		return fmt.Errorf("recording the arrival: %w", err)
	}
	in.indexTorn = false
	in.indexDirty = true
	in.indexAppends++
	in.indexSize = size + int64(len(b))
	if in.indexSize <= arrivedMax {
		return nil
	}
	// The record is in: a failed cut only leaves the index long.
	_ = in.compactArrived(name)
	return nil
}

// indexBufMax bounds the buffer an inbox keeps for the index's appends:
// a group's lines (see groupFiles) fit.
const indexBufMax = 256 << 10

// indexWriteHook, when set (by tests), makes the index's appends in place
// of f.Write.
var indexWriteHook func(f *os.File, b []byte) (int, error)

// endsLine reports whether f is empty or ends in a newline.
func endsLine(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	if fi.Size() == 0 {
		return true
	}
	var last [1]byte
	_, err = f.ReadAt(last[:], fi.Size()-1)
	return err == nil && last[0] == '\n'
}

// indexOn reports whether the arrived index is open and on one of the
// devices. The caller holds in.mu.
func (in *Inbox) indexOn(devices map[uint64]bool) bool {
	if in.index == nil || len(devices) == 0 {
		return false
	}
	id, _, err := openIdentity(in.index)
	return err == nil && id != (fileID{}) && devices[id.dev]
}

// syncArrived makes the records appended so far durable. The caller holds
// in.mu.
func (in *Inbox) syncArrived() {
	if in.index != nil && in.indexDirty {
		_ = in.index.Sync()
		in.indexDirty = false
	}
}

// compactArrived rewrites the arrived index with its newer half. The
// caller holds in.mu.
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
		_ = in.remove(tmp)
		return err
	}
	if err := in.renameStaging(tmp, name); err != nil {
		return err
	}
	in.index.Close()
	in.index = nil
	return nil
}

// alreadyThere reports whether the file a records is still the one that
// arrived, for entry e: the same file (by identity, which another file
// of the same name, size and mtime does not have), of the offered size
// and mtime. Without an identity it is never taken for there.
func (in *Inbox) alreadyThere(a arrival, e proto.Entry) bool {
	if a.id == (fileID{}) || a.size != e.Size || a.mtime != e.MTime.UnixNano() {
		return false
	}
	id, fi, err := fileIdentity(in.root, a.saved)
	if err != nil {
		return false
	}
	if uid, ok := owner(fi); ok && uid != os.Getuid() {
		// Another local user's file on a reused inode, made to look
		// like ours: never ours.
		return false
	}
	return id == a.id && fi.Mode().IsRegular() && uint64(fi.Size()) == e.Size && fi.ModTime().Equal(e.MTime)
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

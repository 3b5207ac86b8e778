package peer

// The queue of `lanshare send --later`: jobs that the running agent
// delivers when their peer comes online, kept in queue.json in the config
// directory so that they outlive restarts. This file is the queue's
// storage and the check of its sources; queue_agent.go runs it.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto"
)

// queueFileName holds the queue in the config directory.
const queueFileName = "queue.json"

// Caps on the queue. Every change rewrites the file whole, and the agent
// reads it whole when it starts.
const (
	// MaxQueueJobs is how many jobs the queue holds at most.
	MaxQueueJobs = 1000
	// MaxQueueEntries is how many files and folders all the jobs of the
	// queue hold together at most.
	MaxQueueEntries = 100_000
	// maxQueueFileSize bounds the file: MaxQueueEntries entries of long
	// paths fit.
	maxQueueFileSize = 64 << 20
	// queueVersion is the version of the file's format.
	queueVersion = 1
)

// queueCaps are the caps a jobQueue holds to: MaxQueueJobs and
// MaxQueueEntries, smaller in tests.
type queueCaps struct{ jobs, entries int }

var defaultQueueCaps = queueCaps{jobs: MaxQueueJobs, entries: MaxQueueEntries}

// States of a queued job.
const (
	// JobWaiting: it waits for its peer to be seen, or for its next try.
	JobWaiting = "waiting"
	// JobDelivering: it is being sent now (never so in the file).
	JobDelivering = "delivering"
	// JobFailed: the peer refused it, or the name it was queued by is now
	// pinned to another key. It is kept, with the reason, and not tried
	// again: cancel it, and queue it again once that is sorted out.
	JobFailed = "failed"
	// JobSourceChanged: a file or folder of it changed or vanished since
	// it was queued. It is kept, with the reason, and not sent.
	JobSourceChanged = "source-changed"
)

// QueueJob describes a job of the queue. Field names are stable
// (`lanshare queue --json`, the control socket).
type QueueJob struct {
	ID string `json:"id"`
	// Target is what the user typed to name the peer.
	Target string `json:"target"`
	// Peer is the peer's display name as known when it was queued ("" if
	// none was), PeerID the id of the only key it is delivered to.
	Peer   string `json:"peer,omitempty"`
	PeerID string `json:"peer_id"`
	// ByName is set when Target is not the whole id: then, as for send,
	// the delivery stops when Target is pinned to another key by then.
	ByName bool      `json:"by_name,omitempty"`
	Queued time.Time `json:"queued"`
	Files  int       `json:"files"`
	Dirs   int       `json:"dirs,omitempty"`
	Bytes  uint64    `json:"bytes"`
	// First are the first paths of it, as offered (at most 3).
	First []string `json:"first,omitempty"`
	// State is JobWaiting, JobDelivering, JobFailed or JobSourceChanged.
	State       string    `json:"state"`
	Attempts    int       `json:"attempts,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// LastError says why the last try failed, or why the job is held.
	LastError string `json:"last_error,omitempty"`
}

// Instance is how to call the job's peer: its instance name when its
// display name is known, else its short id.
func (j QueueJob) Instance() string {
	if j.Peer == "" {
		return ShortID(j.PeerID)
	}
	return discovery.InstanceName(j.Peer, j.PeerID)
}

// queueRecord is a job as the file keeps it. Records are not changed once
// in a jobQueue: a change replaces the record.
type queueRecord struct {
	ID          string       `json:"id"`
	Target      string       `json:"target"`
	Peer        string       `json:"peer,omitempty"`
	PeerID      string       `json:"peer_id"`
	ByName      bool         `json:"by_name,omitempty"`
	Queued      time.Time    `json:"queued"`
	State       string       `json:"state"`
	Attempts    int          `json:"attempts,omitempty"`
	LastAttempt time.Time    `json:"last_attempt,omitzero"`
	LastError   string       `json:"last_error,omitempty"`
	Entries     []queueEntry `json:"entries"`
}

// queueEntry is a file or folder of a job, as offered, with what
// identifies its source at the time it was queued.
type queueEntry struct {
	Path  string `json:"path"`
	Dir   bool   `json:"dir,omitempty"`
	Size  uint64 `json:"size,omitempty"`
	Mode  uint32 `json:"mode"`
	MTime int64  `json:"mtime"` // Unix nanoseconds
	// Source is the local path it is read from; a path that is not
	// valid UTF-8 (which a JSON string cannot hold) is in SourceRaw
	// instead.
	Source    string `json:"source,omitempty"`
	SourceRaw []byte `json:"source_raw,omitempty"`
	// Dev and Ino are the file's identity (Unix; zero elsewhere): a file
	// replaced by another of the same size and mtime is caught too.
	Dev uint64 `json:"dev,omitempty"`
	Ino uint64 `json:"ino,omitempty"`
}

// queueFile is the file's whole content.
type queueFile struct {
	Version int            `json:"version"`
	Jobs    []*queueRecord `json:"jobs"`
}

// job is r as QueueJob describes it.
func (r *queueRecord) job() QueueJob {
	j := QueueJob{ID: r.ID, Target: r.Target, Peer: r.Peer, PeerID: r.PeerID, ByName: r.ByName, Queued: r.Queued,
		State: r.State, Attempts: r.Attempts, LastAttempt: r.LastAttempt, LastError: r.LastError}
	for _, e := range r.Entries {
		if e.Dir {
			j.Dirs++
		} else {
			j.Files++
			j.Bytes += e.Size
		}
		if len(j.First) < 3 {
			j.First = append(j.First, e.Path)
		}
	}
	return j
}

// items are r's entries as a send takes them.
func (r *queueRecord) items() []Item {
	out := make([]Item, len(r.Entries))
	for i, e := range r.Entries {
		kind := proto.KindFile
		if e.Dir {
			kind = proto.KindDir
		}
		out[i] = Item{Source: e.source(), Entry: proto.Entry{Path: e.Path, Kind: kind, Size: e.Size, Mode: e.Mode, MTime: time.Unix(0, e.MTime)}}
		if e.Ino != 0 {
			out[i].id = fileID{dev: e.Dev, ino: e.Ino} // sent only if still that file
		}
	}
	return out
}

// queueEntries records items, as Collect made them, with the identity of
// each file's source now.
func queueEntries(items []Item) []queueEntry {
	out := make([]queueEntry, len(items))
	for i, it := range items {
		e := queueEntry{Path: it.Entry.Path, Dir: it.Entry.Kind == proto.KindDir, Size: it.Entry.Size, Mode: it.Entry.Mode,
			MTime: it.Entry.MTime.UnixNano(), Source: it.Source}
		if !utf8.ValidString(it.Source) {
			e.Source, e.SourceRaw = "", []byte(it.Source)
		}
		if !e.Dir {
			if fi, err := os.Stat(it.Source); err == nil {
				e.Dev, e.Ino, _ = statID(fi)
			}
		}
		out[i] = e
	}
	return out
}

// source is the local path e is read from.
func (e queueEntry) source() string {
	if e.SourceRaw != nil {
		return string(e.SourceRaw)
	}
	return e.Source
}

// checkSources reports the first entry whose source changed or vanished
// since it was queued, with how many did; nil when none did.
func checkSources(entries []queueEntry) error {
	var first error
	n := 0
	for _, e := range entries {
		if err := e.check(); err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%d files or folders changed or vanished since they were queued, first %w", n, first)
	}
	return first
}

// check reports how e's source differs from what was queued: gone, no
// longer a file (or folder), another size, mtime or identity.
func (e queueEntry) check() error {
	src := e.source()
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("%s: %w", Escape(src), errReasonNoPath(err))
	}
	if e.Dir {
		if !fi.IsDir() {
			return fmt.Errorf("%s is no longer a folder", Escape(src))
		}
		return nil
	}
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is no longer a regular file", Escape(src))
	case uint64(fi.Size()) != e.Size:
		return fmt.Errorf("%s changed since it was queued (%s, was %s)", Escape(src), FormatBytes(uint64(fi.Size())), FormatBytes(e.Size))
	case fi.ModTime().UnixNano() != e.MTime:
		return fmt.Errorf("%s changed since it was queued (modified %s)", Escape(src), fi.ModTime().Format(time.RFC3339))
	}
	if dev, ino, ok := statID(fi); ok && e.Ino != 0 && (dev != e.Dev || ino != e.Ino) {
		return fmt.Errorf("%s was replaced by another file since it was queued", Escape(src))
	}
	return nil
}

// readQueue reads the queue file at path; a missing file is an empty
// queue. Any other failure wraps ErrQueueFile and names the file.
func readQueue(path string, caps queueCaps) ([]*queueRecord, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrQueueFile, path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxQueueFileSize {
		return nil, fmt.Errorf("%w %s: larger than %d MiB", ErrQueueFile, path, maxQueueFileSize>>20)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxQueueFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrQueueFile, path, err)
	}
	if len(data) > maxQueueFileSize {
		return nil, fmt.Errorf("%w %s: larger than %d MiB", ErrQueueFile, path, maxQueueFileSize>>20)
	}
	jobs, err := parseQueue(data, caps)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %s", ErrQueueFile, path, err)
	}
	return jobs, nil
}

// parseQueue decodes and checks a queue file's content.
func parseQueue(data []byte, caps queueCaps) ([]*queueRecord, error) {
	var qf queueFile
	if err := json.Unmarshal(data, &qf); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not JSON at byte %d: %v", se.Offset, err)
		}
		return nil, fmt.Errorf("not a queue: %v", err)
	}
	if qf.Version != queueVersion {
		return nil, fmt.Errorf("version %d, this lanshare reads version %d", qf.Version, queueVersion)
	}
	if len(qf.Jobs) > caps.jobs {
		return nil, fmt.Errorf("%d jobs, over the limit of %d", len(qf.Jobs), caps.jobs)
	}
	entries := 0
	for i, r := range qf.Jobs {
		if r == nil {
			return nil, fmt.Errorf("job %d is null", i+1)
		}
		if entries += len(r.Entries); entries > caps.entries {
			return nil, fmt.Errorf("more than %d files and folders", caps.entries)
		}
	}
	ids := map[string]bool{}
	for i, r := range qf.Jobs {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("job %d: %w", i+1, err)
		}
		if ids[r.ID] {
			return nil, fmt.Errorf("job %d: id %s twice", i+1, r.ID)
		}
		ids[r.ID] = true
	}
	return qf.Jobs, nil
}

// validate checks what a delivery relies on: an id, a peer id, a known
// state, and entries that a send can offer.
func (r *queueRecord) validate() error {
	switch {
	case !validJobID(r.ID):
		return fmt.Errorf("id %q is not a job id", Escape(r.ID))
	case !validAgentID(r.PeerID):
		return fmt.Errorf("%s: peer id %q is not a lanshare id", r.ID, Escape(r.PeerID))
	case r.State != JobWaiting && r.State != JobFailed && r.State != JobSourceChanged:
		return fmt.Errorf("%s: state %q", r.ID, Escape(r.State))
	case len(r.Entries) == 0:
		return fmt.Errorf("%s: no files", r.ID)
	}
	for i, e := range r.Entries {
		if err := carried(e.Path); err != nil {
			return fmt.Errorf("%s: entry %d: %w", r.ID, i+1, err)
		}
		if slices.ContainsFunc(strings.Split(e.Path, "/"), func(c string) bool { return c == "" || c == "." || c == ".." }) {
			return fmt.Errorf("%s: entry %d: path %q is not one that send offers", r.ID, i+1, Escape(e.Path))
		}
		if (e.Source == "") == (e.SourceRaw == nil) {
			return fmt.Errorf("%s: entry %d: want one of source and source_raw", r.ID, i+1)
		}
		if !filepath.IsAbs(e.source()) {
			return fmt.Errorf("%s: entry %d: source %s is not an absolute path", r.ID, i+1, Escape(e.source()))
		}
		if e.Dir && e.Size != 0 {
			return fmt.Errorf("%s: entry %d: a folder with a size", r.ID, i+1)
		}
	}
	return nil
}

// jobIDLen is the length of a job id: hex digits, short to type.
const jobIDLen = 6

func validJobID(id string) bool {
	return len(id) == jobIDLen && isLowerHex(id)
}

// jobQueue is the queue file and the jobs it holds. What it holds in
// memory is what the file holds: a change that cannot be saved is not
// made.
type jobQueue struct {
	path string
	caps queueCaps

	mu   sync.Mutex
	jobs []*queueRecord // in queue order
	// err is why the file could not be read (wraps ErrQueueFile). While
	// it is set the queue holds nothing and writes nothing: every use
	// tries to read the file again.
	err error
}

// openQueue reads the queue in dir. A file that cannot be read leaves the
// queue unusable (see jobQueue.err), not the agent.
func openQueue(dir string) *jobQueue {
	return openQueueCaps(dir, defaultQueueCaps)
}

func openQueueCaps(dir string, caps queueCaps) *jobQueue {
	q := &jobQueue{path: filepath.Join(dir, queueFileName), caps: caps}
	q.jobs, q.err = readQueue(q.path, caps)
	return q
}

// usableLocked returns nil when the queue can be used: read before, or
// readable now.
func (q *jobQueue) usableLocked() error {
	if q.err == nil {
		return nil
	}
	jobs, err := readQueue(q.path, q.caps)
	if err != nil {
		q.err = err
		return err
	}
	q.jobs, q.err = jobs, nil
	return nil
}

// loadErr is why the queue file cannot be read, or nil.
func (q *jobQueue) loadErr() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.usableLocked()
}

// snapshot returns the jobs, in queue order. The records must not be
// changed.
func (q *jobQueue) snapshot() ([]*queueRecord, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.usableLocked(); err != nil {
		return nil, err
	}
	return append([]*queueRecord(nil), q.jobs...), nil
}

// add gives r a new id and adds it to the queue, within the caps; the
// error wraps ErrQueueFull when it does not fit.
func (q *jobQueue) add(r *queueRecord) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.usableLocked(); err != nil {
		return err
	}
	if len(q.jobs) >= q.caps.jobs {
		return fmt.Errorf("%w: it holds %d jobs, its limit; cancel some (lanshare queue cancel ID)", ErrQueueFull, len(q.jobs))
	}
	entries := len(r.Entries)
	for _, j := range q.jobs {
		entries += len(j.Entries)
	}
	if entries > q.caps.entries {
		return fmt.Errorf("%w: with these %d files and folders it would hold %d, over its limit of %d", ErrQueueFull, len(r.Entries), entries, q.caps.entries)
	}
	for {
		var b [jobIDLen / 2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		r.ID = hex.EncodeToString(b[:])
		if q.indexLocked(r.ID) < 0 {
			break
		}
	}
	return q.saveLocked(append(append([]*queueRecord(nil), q.jobs...), r))
}

// findLocked returns the index of the job id in a usable queue; the
// error wraps ErrNoJob when there is none.
func (q *jobQueue) findLocked(id string) (int, error) {
	if err := q.usableLocked(); err != nil {
		return -1, err
	}
	i := q.indexLocked(id)
	if i < 0 {
		return -1, fmt.Errorf("%w %s (lanshare queue lists them)", ErrNoJob, Escape(id))
	}
	return i, nil
}

// remove takes the job id out of the queue and returns it; the error
// wraps ErrNoJob when there is none.
func (q *jobQueue) remove(id string) (*queueRecord, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, err := q.findLocked(id)
	if err != nil {
		return nil, err
	}
	r := q.jobs[i]
	jobs := append(append([]*queueRecord(nil), q.jobs[:i]...), q.jobs[i+1:]...)
	return r, q.saveLocked(jobs)
}

// update replaces the job id by a copy that change made; the error wraps
// ErrNoJob when there is none.
func (q *jobQueue) update(id string, change func(*queueRecord)) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.usableLocked(); err != nil {
		return err
	}
	i := q.indexLocked(id)
	if i < 0 {
		return fmt.Errorf("%w %s", ErrNoJob, Escape(id))
	}
	r := *q.jobs[i]
	change(&r)
	jobs := append([]*queueRecord(nil), q.jobs...)
	jobs[i] = &r
	return q.saveLocked(jobs)
}

func (q *jobQueue) indexLocked(id string) int {
	for i, j := range q.jobs {
		if j.ID == id {
			return i
		}
	}
	return -1
}

// saveLocked writes jobs to the file and, once they are durable there,
// makes them the queue's: a temporary file, synced, renamed over the
// file, and the directory synced, so that a crash leaves the old queue
// or the new one, never a part.
func (q *jobQueue) saveLocked(jobs []*queueRecord) error {
	if jobs == nil {
		jobs = []*queueRecord{}
	}
	data, err := json.Marshal(queueFile{Version: queueVersion, Jobs: jobs})
	if err != nil {
		return err
	}
	if err := writeAtomic(q.path, data); err != nil {
		return fmt.Errorf("saving the queue: %w", err)
	}
	syncDirPath(filepath.Dir(q.path))
	q.jobs = jobs
	return nil
}

// syncDirPath makes the entries of the directory dir durable. Errors are
// ignored: not every platform can sync a directory.
func syncDirPath(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = f.Sync()
	f.Close()
}

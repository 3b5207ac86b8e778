package peer

import (
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A received file is durable before it gets its final name: its mode and
// times are set and it is synced, then named (see place). The sync waits
// for the disk, which for a small file costs more than receiving it, so it does
// not run on the transfer's goroutine: a verified file is handed to a
// syncer, whose goroutines set it up and sync it while the next files
// arrive, and the transfer's goroutine names the synced files, in offer
// order, between files and at the end. All names are still made by that
// one goroutine, so naming stays as if nothing ran alongside it.
//
// Small files are synced in groups: a fsync costs a disk flush (and, on
// ext4 without a journal, a write of the staging folder's blocks) however
// little it syncs, which made per-file fsyncs a quarter of the receiver's
// time on 4 KiB files. Where the system can (Linux: syncfs), one barrier
// makes every file of a group durable at once; should it report an
// error, each file of the group is fsynced, which tells whose it was. No
// file of a group is named before the group's barrier returned.

const (
	// syncWorkers is how many syncs may be in flight at once: the disk
	// takes several together about as fast as one.
	syncWorkers = 4
	// syncPending bounds the files handed over one by one and not yet
	// named, and so the open files they hold.
	syncPending = 32
	// syncOpen bounds the entries handed to the workers whose outcomes
	// have not arrived, grouped or not: each holds an open file, and so
	// does each file of the group being gathered. A transfer holds at
	// most 4 × groupFiles open files: three groups sync while the next
	// gathers, so that a barrier slowed by other writers of the file
	// system does not stop the stream at once. All transfers together
	// hold about stagedBudget at most (see stagedOpen).
	syncOpen = 3 * groupFiles
	// groupMax is the largest file synced in a group: larger ones are
	// written through a pipeline or directly (see sink), and a fsync of
	// their own costs little next to their bytes.
	groupMax = pipelineMin
	// A group is handed over once it holds groupFiles files or groupBytes
	// bytes, or when a file arrives groupAge after its first: a slow
	// trickle of files still gets its names promptly.
	groupFiles = 256
	groupBytes = 8 << 20
	groupAge   = 50 * time.Millisecond
)

// stagedOpen counts the files that all transfers' syncers hold, from
// put until committed: each may hold a descriptor. Beyond stagedBudget,
// a syncer hands its files over one at a time and waits for its own to
// be done before the next, so that transfers together stay about within
// the budget (each may still have one file out, and so always goes on).
var stagedOpen atomic.Int64

// stagedBudget is a quarter of the descriptors the process may open,
// between 256 and 65,536.
var stagedBudget = min(max(openFileLimit()/4, 256), 65536)

// syncJob is a verified file to make durable.
type syncJob struct {
	i int      // the entry
	f *os.File // open; the job closes it
	// anon, instead of f, is the unnamed file made for a buffered job:
	// the job closes it, or hands it over open (syncDone.anon).
	anon *anonFile
	root *os.Root
	name string // f's name under root
	mode os.FileMode
	// mtime is the time it takes, unless zero.
	mtime time.Time
	// size is the file's size: a small one is synced in a group.
	size uint64
	// buffered: the file is not made yet; its bytes are data, and maker
	// makes it (see receiveSmall). anon, or f, root and name, are then
	// set when it is made.
	buffered bool
	data     []byte
	maker    smallMaker
}

// smallMaker makes the files of buffered jobs: the Inbox.
type smallMaker interface {
	createSmall(perm os.FileMode) (*anonFile, *os.File, string, error)
	stagingRef(name string) (*os.Root, string)
}

// syncDone is the outcome of a syncJob.
type syncDone struct {
	i   int
	err error
	// st is the file as set up (see statArrival), when stated: learnt
	// on the worker, so that naming it needs no stat of its own.
	st     arrival
	stated bool
	// created: the job was buffered, and the worker made its file: an
	// unnamed one, anon, left open for its naming (only when err is
	// nil: else it is closed, and so gone), or the temporary file name
	// (path under the shared folder), closed, set even when err says
	// the file was not made whole, so that it is removed.
	created bool
	anon    *anonFile
	name    string
}

// syncUnit is what a worker takes at once: a group, or one file.
type syncUnit struct {
	jobs  []syncJob
	group bool
}

// syncUnitDone is the outcome of a syncUnit.
type syncUnitDone struct {
	done  []syncDone
	group bool
	// jobs is the group's slice, which the worker is done with: a later
	// group is gathered in it (see syncer.spares).
	jobs []syncJob
}

// syncer runs syncJobs on goroutines it starts with the first job. Its
// owner, one goroutine, calls put and then drain, which waits for them.
type syncer struct {
	jobs  chan syncUnit
	done  chan syncUnitDone
	wg    sync.WaitGroup
	queue []int            // entries put, in order, not yet committed
	out   map[int]syncDone // outcomes that arrived for entries in queue
	// open counts the entries handed to the workers whose outcomes have
	// not arrived; single, the files handed over one by one among them;
	// held, the entries whose outcomes arrived holding an unnamed file
	// open (see syncDone.anon) and wait for an earlier entry to be
	// committed.
	open, single, held int
	// group gathers small files until it is handed over (see groupFiles).
	// spares are groups' slices that came back from the workers,
	// cleared: the next groups are gathered in them, not in slices grown
	// anew. There are at most as many as groups may be out at once.
	group      []syncJob
	spares     [][]syncJob
	groupSize  uint64
	groupBuf   int // bytes of the group's buffered jobs
	groupStart time.Time
	// commit gets each entry's outcome, in the order the entries were
	// put.
	commit func(d syncDone)
	// prepare, if not nil, gets the outcomes about to be committed
	// together (more than one), before commit gets them one by one: a
	// group's files are committed in a row.
	prepare func(ds []syncDone)
	ready   []syncDone // prepare's slice, reused
	// barrier, if not nil, makes every file of f's file system durable
	// (syncfs); without it, nothing is grouped.
	barrier func(f *os.File) error
}

func newSyncer(commit func(d syncDone)) *syncer {
	return &syncer{commit: commit, out: map[int]syncDone{}, barrier: fileSystemBarrier()}
}

// put hands job over. Before it returns, it commits the entries synced so
// far; when too many entries wait, it first waits for the oldest.
func (s *syncer) put(job syncJob) {
	if s.jobs == nil {
		// Both channels hold every unit that may be pending: a worker
		// never waits to report, and a hand-over never waits for room.
		s.jobs = make(chan syncUnit, syncOpen)
		s.done = make(chan syncUnitDone, syncOpen)
		for range syncWorkers {
			s.wg.Add(1)
			go s.work() // owned by s: drain waits for it
		}
	}
	s.queue = append(s.queue, job.i)
	stagedOpen.Add(1)
	if s.barrier != nil && job.size < groupMax {
		if len(s.group) > 0 && job.root != s.group[0].root {
			s.flush() // the staging folder was made again: a group is one folder's
		}
		if len(s.group) == 0 {
			s.groupStart = time.Now()
			if n := len(s.spares); s.group == nil && n > 0 {
				s.group, s.spares = s.spares[n-1], s.spares[:n-1]
			}
		}
		s.group = append(s.group, job)
		s.groupSize += job.size
		s.groupBuf += len(job.data)
		if len(s.group) >= groupFiles || s.groupSize >= groupBytes || s.groupBuf >= groupBuffered || time.Since(s.groupStart) >= groupAge ||
			stagedOpen.Load() > stagedBudget {
			s.flush()
		}
	} else {
		s.flush()
		for s.single >= syncPending {
			s.takeUnit(<-s.done)
		}
		s.hand(syncUnit{jobs: []syncJob{job}})
	}
	for {
		select {
		case d := <-s.done:
			s.takeUnit(d)
		default:
			return
		}
	}
}

// flush hands the group over.
func (s *syncer) flush() {
	if len(s.group) == 0 {
		return
	}
	g := s.group
	s.group, s.groupSize, s.groupBuf = nil, 0, 0
	s.hand(syncUnit{jobs: g, group: true})
}

// hand gives u to the workers, first waiting for outcomes while more than
// syncOpen entries would be out.
func (s *syncer) hand(u syncUnit) {
	// Held files count too: behind a large file's long fsync, the small
	// files after it would otherwise keep a descriptor each until it is
	// done. Whenever some are held, an entry before them is out.
	for s.open > 0 && (s.open+s.held+len(u.jobs) > syncOpen || stagedOpen.Load() > stagedBudget) {
		s.takeUnit(<-s.done)
	}
	s.open += len(u.jobs)
	if !u.group {
		s.single++
	}
	s.jobs <- u
}

// takeUnit records the outcomes of a unit, and commits the entries at
// the head of the queue whose outcomes are in.
func (s *syncer) takeUnit(d syncUnitDone) {
	s.open -= len(d.done)
	if !d.group {
		s.single--
	}
	if d.jobs != nil && len(s.spares) < syncOpen/groupFiles+1 {
		clear(d.jobs) // drops what the jobs held: files, buffers, the Inbox
		s.spares = append(s.spares, d.jobs[:0])
	}
	for _, o := range d.done {
		s.out[o.i] = o
		if o.anon != nil {
			s.held++
		}
	}
	s.commitReady()
}

// take records an outcome and commits the entries at the head of the
// queue whose outcomes are in.
func (s *syncer) take(d syncDone) {
	s.out[d.i] = d
	s.commitReady()
}

// commitReady commits the entries at the head of the queue whose
// outcomes are in, in order, after handing them to prepare together.
func (s *syncer) commitReady() {
	run := s.ready[:0]
	for len(s.queue) > 0 {
		o, ok := s.out[s.queue[0]]
		if !ok {
			break
		}
		delete(s.out, s.queue[0])
		s.queue = s.queue[1:]
		stagedOpen.Add(-1)
		if o.anon != nil {
			s.held--
		}
		run = append(run, o)
	}
	if s.prepare != nil && len(run) > 1 {
		s.prepare(run)
	}
	for _, o := range run {
		s.commit(o)
	}
	s.ready = run[:0]
}

// drain hands over the group, waits for every entry handed over, commits
// it, and stops the workers. It is safe to call more than once.
func (s *syncer) drain() {
	if s.jobs == nil {
		return
	}
	s.flush()
	for len(s.queue) > 0 {
		s.takeUnit(<-s.done)
	}
	close(s.jobs)
	s.wg.Wait()
	s.jobs = nil
}

func (s *syncer) work() {
	defer s.wg.Done()
	for u := range s.jobs {
		if !u.group {
			s.done <- syncUnitDone{done: []syncDone{u.jobs[0].sync()}}
			continue
		}
		s.done <- syncUnitDone{done: syncGroup(u.jobs, s.barrier), group: true, jobs: u.jobs}
	}
}

// syncGroup gives each file of g its mode and times, makes them all
// durable with one barrier, and closes them. Should the barrier fail,
// each file is fsynced: the error is then the file's own, if any.
func syncGroup(g []syncJob, barrier func(*os.File) error) []syncDone {
	out := make([]syncDone, len(g))
	first := -1
	for k := range g {
		out[k] = g[k].make()
		if out[k].err == nil {
			out[k] = g[k].setUp(out[k])
		}
		if out[k].err == nil && first < 0 {
			first = k
		}
	}
	berr := error(nil)
	if first >= 0 {
		berr = g[first].barrier(barrier)
	}
	for k, job := range g {
		if out[k].err == nil && berr != nil {
			out[k].err = job.fsync()
		}
		out[k] = job.release(out[k])
	}
	return out
}

// barrier runs barrier on the job's file: an unnamed one's descriptor is
// duplicated for it, which shares what syncfs reports for the file.
func (job *syncJob) barrier(barrier func(*os.File) error) error {
	if job.anon == nil {
		return barrier(job.f)
	}
	f, err := job.anon.dup()
	if err != nil {
		return err
	}
	defer f.Close()
	return barrier(f)
}

// fsync makes the job's file durable on its own.
func (job *syncJob) fsync() error {
	if job.anon != nil {
		return job.anon.Sync()
	}
	return job.f.Sync()
}

// make makes a buffered job's file and writes its bytes (see
// syncJob.buffered); other jobs' files are made already. The outcome is
// the job's so far.
func (job *syncJob) make() syncDone {
	d := syncDone{i: job.i}
	if !job.buffered {
		return d
	}
	data := job.data
	job.data = nil
	defer putSmall(data)
	d.created = true
	a, f, name, err := job.maker.createSmall(job.mode)
	if err != nil {
		d.err = err
		return d
	}
	if a != nil {
		job.anon = a
		_, d.err = a.Write(data)
		return d
	}
	job.f, d.name = f, name
	if name != "" {
		job.root, job.name = job.maker.stagingRef(name)
	}
	_, d.err = f.Write(data)
	return d
}

// release closes the job's file, unless it is an unnamed file made
// whole, which its naming needs open (d.anon).
func (job syncJob) release(d syncDone) syncDone {
	if job.anon != nil {
		if d.err == nil {
			d.anon = job.anon
			return d
		}
		job.anon.Close()
		return d
	}
	if job.f == nil {
		return d
	}
	if cerr := job.f.Close(); d.err == nil {
		d.err = cerr
	}
	return d
}

// setUp gives the file its times and mode (before the sync, so that they
// are durable with the rest), and states it: one fstat tells its
// identity for the arrived index and whether its mode is already right
// (a temporary file is made with its final mode), which spares a chmod.
func (job syncJob) setUp(d syncDone) syncDone {
	if job.anon != nil {
		return job.setUpAnon(d)
	}
	if !job.mtime.IsZero() {
		if d.err = setFileTimes(job.f, job.root, job.name, job.mtime); d.err != nil {
			return d
		}
	}
	id, fi, err := openIdentity(job.f)
	if err != nil || fi.Mode().Perm() != job.mode.Perm() {
		if d.err = job.f.Chmod(job.mode); d.err != nil {
			return d
		}
	}
	if err == nil {
		d.st = arrival{id: id, size: uint64(fi.Size()), mtime: fi.ModTime().UnixNano()}
		d.stated = true
	}
	return d
}

// setUpAnon is setUp for an unnamed file: the same system calls, on
// its bare descriptor.
func (job syncJob) setUpAnon(d syncDone) syncDone {
	if !job.mtime.IsZero() {
		if d.err = job.anon.setTimes(job.mtime); d.err != nil {
			return d
		}
	}
	st, perm, err := job.anon.stat()
	if err != nil || perm != job.mode.Perm() {
		if d.err = job.anon.Chmod(job.mode); d.err != nil {
			return d
		}
	}
	if err == nil {
		d.st, d.stated = st, true
	}
	return d
}

// sync gives the file its mode and times, makes it durable, and closes
// it.
func (job syncJob) sync() syncDone {
	d := job.make()
	if d.err == nil {
		d = job.setUp(d)
	}
	if d.err == nil {
		d.err = job.fsync()
	}
	return job.release(d)
}

// run is sync's error alone.
func (job syncJob) run() error { return job.sync().err }

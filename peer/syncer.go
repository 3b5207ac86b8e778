package peer

import (
	"os"
	"sync"
	"time"
)

// A received file is durable before it gets its final name: its mode and
// times are set and it is fsynced, then linked. The fsync waits for the
// disk, which for a small file costs more than receiving it, so it does
// not run on the transfer's goroutine: a verified file is handed to a
// syncer, whose goroutines set it up and sync it while the next files
// arrive, and the transfer's goroutine links the synced files, in offer
// order, between files and at the end. All names are still made by that
// one goroutine, so naming stays as if nothing ran alongside it.

const (
	// syncWorkers is how many fsyncs may be in flight at once: the disk
	// takes several together about as fast as one.
	syncWorkers = 4
	// syncPending bounds the files handed over and not yet linked, and so
	// the open files a transfer holds.
	syncPending = 32
)

// syncJob is a verified file to make durable.
type syncJob struct {
	i    int      // the entry
	f    *os.File // open; the job closes it
	root *os.Root
	name string // f's name under root
	mode os.FileMode
	// mtime is the time it takes, unless zero.
	mtime time.Time
}

// syncDone is the outcome of a syncJob.
type syncDone struct {
	i   int
	err error
}

// syncer runs syncJobs on goroutines it starts with the first job. Its
// owner, one goroutine, calls put and then drain, which waits for them.
type syncer struct {
	jobs  chan syncJob
	done  chan syncDone
	wg    sync.WaitGroup
	queue []int         // entries handed over, in order, not yet committed
	out   map[int]error // outcomes that arrived for entries in queue
	// commit gets each entry's outcome, in the order the entries were
	// put.
	commit func(i int, err error)
}

func newSyncer(commit func(i int, err error)) *syncer {
	return &syncer{commit: commit, out: map[int]error{}}
}

// put hands job over. Before it returns, it commits the entries synced so
// far; when syncPending entries wait, it first waits for the oldest.
func (s *syncer) put(job syncJob) {
	if s.jobs == nil {
		// Both channels hold every pending entry: a worker never waits
		// to report, and put never waits to hand over.
		s.jobs = make(chan syncJob, syncPending)
		s.done = make(chan syncDone, syncPending)
		for range syncWorkers {
			s.wg.Add(1)
			go s.work() // owned by s: drain waits for it
		}
	}
	for len(s.queue) >= syncPending {
		s.take(<-s.done)
	}
	s.queue = append(s.queue, job.i)
	s.jobs <- job
	for {
		select {
		case d := <-s.done:
			s.take(d)
		default:
			return
		}
	}
}

// take records an outcome and commits the entries at the head of the
// queue whose outcomes are in.
func (s *syncer) take(d syncDone) {
	s.out[d.i] = d.err
	for len(s.queue) > 0 {
		err, ok := s.out[s.queue[0]]
		if !ok {
			return
		}
		delete(s.out, s.queue[0])
		i := s.queue[0]
		s.queue = s.queue[1:]
		s.commit(i, err)
	}
}

// drain waits for every entry handed over, commits it, and stops the
// workers. It is safe to call more than once.
func (s *syncer) drain() {
	if s.jobs == nil {
		return
	}
	for len(s.queue) > 0 {
		s.take(<-s.done)
	}
	close(s.jobs)
	s.wg.Wait()
	s.jobs = nil
}

func (s *syncer) work() {
	defer s.wg.Done()
	for job := range s.jobs {
		s.done <- syncDone{i: job.i, err: job.run()}
	}
}

// run gives the file its mode and times and makes it durable.
func (job syncJob) run() error {
	err := job.f.Chmod(job.mode)
	if err == nil && !job.mtime.IsZero() {
		// Before the sync, so that the times are durable with the rest.
		err = job.root.Chtimes(job.name, job.mtime, job.mtime)
	}
	if err == nil {
		err = job.f.Sync()
	}
	if cerr := job.f.Close(); err == nil {
		err = cerr
	}
	return err
}

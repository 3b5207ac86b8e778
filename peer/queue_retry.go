package peer

// `lanshare queue retry ID`: a job held as failed or source-changed goes
// back to waiting, on its owner's word. For a source-changed job the word
// is consent to the files as they are now: their size, mtime and identity
// are recorded afresh, so that the next try sends them (and checks them
// against that record as before). A file that is gone, or is no longer a
// file (or folder), cannot be consented to: the job stays held.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// QueueRetried is the QueueEvent of a held job that its owner sent back
// to waiting (lanshare queue retry).
const QueueRetried = "retried"

// RetryJob sends the job id, held as failed or source-changed, back to
// waiting: it is tried as soon as its peer is seen, with its tries and
// last error cleared. A source-changed job takes its files as they are
// now (see above). The error wraps ErrNoJob when there is no such job,
// ErrJobNotHeld when it is not held (it waits or is being delivered), and
// ErrSourceUnreadable when a file of a source-changed job is gone or no
// longer what it was; then nothing changed.
func (a *Agent) RetryJob(id string) (QueueJob, error) {
	qa := a.queue
	id = strings.ToLower(strings.TrimSpace(id))
	qa.mu.Lock()
	delivering := qa.busy[id] != nil
	qa.mu.Unlock()
	r, err := qa.q.retry(id, delivering)
	if err != nil {
		return QueueJob{}, err
	}
	qa.mu.Lock()
	delete(qa.next, r.ID)
	delete(qa.fails, r.ID)
	qa.mu.Unlock()
	j := r.job()
	qa.event(QueueEvent{Kind: QueueRetried, Job: j})
	qa.poke()
	return j, nil
}

// retry puts the held job id back to waiting, and returns it as it is
// now; see RetryJob. delivering says whether a try of it runs (for the
// error's words).
func (q *jobQueue) retry(id string, delivering bool) (*queueRecord, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i, err := q.findLocked(id)
	if err != nil {
		return nil, err
	}
	r := *q.jobs[i]
	switch r.State {
	case JobFailed:
	case JobSourceChanged:
		entries, err := restat(r.Entries)
		if err != nil {
			return nil, fmt.Errorf("job %s stays held: %w; cancel it (lanshare queue cancel %s) and queue what is there now",
				r.ID, err, r.ID)
		}
		r.Entries = entries
	default:
		now := "waits for its peer already"
		if delivering {
			now = "is being delivered now"
		}
		return nil, fmt.Errorf("%w: job %s %s (only a failed or source-changed job is retried)", ErrJobNotHeld, r.ID, now)
	}
	r.State, r.Attempts, r.LastAttempt, r.LastError = JobWaiting, 0, time.Time{}, ""
	jobs := append([]*queueRecord(nil), q.jobs...)
	jobs[i] = &r
	if err := q.saveLocked(jobs); err != nil {
		return nil, err
	}
	return &r, nil
}

// restat returns entries with the size, mtime and identity of each
// file's source as it is now. A source that is gone, or is no longer a
// file (a folder), is an error wrapping ErrSourceUnreadable that names it.
func restat(entries []queueEntry) ([]queueEntry, error) {
	out := make([]queueEntry, len(entries))
	for i, e := range entries {
		src := e.source()
		fi, err := os.Stat(src)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: %s: %w", ErrSourceUnreadable, Escape(src), errReasonNoPath(err))
		case e.Dir && !fi.IsDir():
			return nil, fmt.Errorf("%w: %s is no longer a folder", ErrSourceUnreadable, Escape(src))
		case !e.Dir && !fi.Mode().IsRegular():
			return nil, fmt.Errorf("%w: %s is no longer a regular file", ErrSourceUnreadable, Escape(src))
		}
		if !e.Dir {
			e.Size, e.MTime = uint64(fi.Size()), fi.ModTime().UnixNano()
			e.Dev, e.Ino, _ = statID(fi)
		}
		out[i] = e
	}
	return out, nil
}

// RetryQueued sends the held job id of the agent that runs with config
// directory dir back to waiting; the reply holds the job. See
// Agent.RetryJob.
func RetryQueued(ctx context.Context, dir, id string) (*ControlReply, error) {
	return askQueue(ctx, dir, 5*time.Second, ControlRequest{Op: OpRetryJob, ID: id})
}

// retryControl answers the control request OpRetryJob.
func (a *Agent) retryControl(req ControlRequest) ControlReply {
	j, err := a.RetryJob(req.ID)
	if err != nil {
		return ControlReply{Error: err.Error(), Failure: queueFailure(err)}
	}
	return ControlReply{Job: &j}
}

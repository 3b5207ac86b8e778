package peer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQueueRetryFailedJob: a job refused by its peer is held as failed;
// once the peer would take it, `queue retry` sends it back to waiting
// (tries and error cleared) and it is delivered. An unknown id and a job
// that waits already are refused, naming them, and change nothing.
func TestQueueRetryFailedJob(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.Accept = AcceptTrusted })
	config := t.TempDir()
	src := writeTree(t, map[string]string{"a.txt": "hello", "later.txt": "later"})
	alice := startQueueSender(t, config)
	job := enqueue(t, config, bob.ID(), filepath.Join(src, "a.txt"))
	showPeer(t, config, bob)
	alice.wait(t, QueueFailed)

	if _, err := RetryQueued(context.Background(), config, "ffffff"); !errors.Is(err, ErrNoJob) || !strings.Contains(err.Error(), "ffffff") {
		t.Errorf("retrying an unknown job: %v, want ErrNoJob naming it", err)
	}
	other := enqueue(t, config, testSender(t).Identity.ID, filepath.Join(src, "later.txt"))
	_, err := RetryQueued(context.Background(), config, other.ID)
	if !errors.Is(err, ErrJobNotHeld) || !strings.Contains(err.Error(), "job "+other.ID+" waits for its peer already") {
		t.Errorf("retrying a waiting job: %v, want ErrJobNotHeld", err)
	}
	if _, _, err := alice.CancelJob(other.ID); err != nil {
		t.Fatal(err)
	}
	if jobs := listQueue(t, config); len(jobs) != 1 || jobs[0].State != JobFailed || jobs[0].Attempts != 1 {
		t.Fatalf("after the refused retries the queue holds %+v, want the job failed as it was", jobs)
	}

	trustIn(t, bob, &Sender{Identity: alice.id}, "alice")
	rep, err := RetryQueued(context.Background(), config, strings.ToUpper(job.ID))
	if err != nil || rep.Job == nil || rep.Job.ID != job.ID || rep.Job.State != JobWaiting || rep.Job.Attempts != 0 || rep.Job.LastError != "" {
		t.Fatalf("retry %s: %+v, %v", job.ID, rep, err)
	}
	if ev := alice.wait(t, QueueRetried); ev.Job.ID != job.ID {
		t.Errorf("retried event for %s", ev.Job.ID)
	}
	if ev := alice.wait(t, QueueDelivered); ev.Job.ID != job.ID {
		t.Fatalf("delivered %s, want %s", ev.Job.ID, job.ID)
	}
	assertTree(t, bob.dir, map[string]string{"a.txt": "hello"})
	if jobs := listQueue(t, config); len(jobs) != 0 {
		t.Errorf("after the delivery the queue holds %+v", jobs)
	}
}

// TestQueueRetrySourceChanged: a job whose file changed is held; a retry
// while a file of it is gone fails, naming it, and the job stays held; a
// retry once it is back takes the files as they are now, and they are
// delivered so.
func TestQueueRetrySourceChanged(t *testing.T) {
	bob := startAgent(t, nil)
	config := t.TempDir()
	src := writeTree(t, map[string]string{"a.txt": "hello", "b.txt": "world"})
	a, b := filepath.Join(src, "a.txt"), filepath.Join(src, "b.txt")
	alice := startQueueSender(t, config)
	job := enqueue(t, config, bob.ID(), a, b)
	appendFile(t, b, ", changed")
	showPeer(t, config, bob)
	alice.wait(t, QueueSourceChanged)

	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	_, err := RetryQueued(context.Background(), config, job.ID)
	if !errors.Is(err, ErrSourceUnreadable) || !strings.Contains(err.Error(), "a.txt") || !strings.Contains(err.Error(), "stays held") {
		t.Errorf("retry with a file gone: %v, want ErrSourceUnreadable naming a.txt", err)
	}
	jobs := listQueue(t, config)
	if len(jobs) != 1 || jobs[0].State != JobSourceChanged || !strings.Contains(jobs[0].LastError, "b.txt changed") {
		t.Fatalf("after the refused retry the queue holds %+v, want the job held as before", jobs)
	}

	if err := os.WriteFile(a, []byte("hello again"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := RetryQueued(context.Background(), config, job.ID)
	if err != nil || rep.Job.State != JobWaiting || rep.Job.Bytes != uint64(len("hello again")+len("world, changed")) {
		t.Fatalf("retry: %+v, %v", rep, err)
	}
	if ev := alice.wait(t, QueueDelivered); ev.Job.ID != job.ID {
		t.Fatalf("delivered %s, want %s", ev.Job.ID, job.ID)
	}
	assertTree(t, bob.dir, map[string]string{"a.txt": "hello again", "b.txt": "world, changed"})
}

// TestQueueRetryRecordsSources: a retry of a source-changed job records
// each file's size, mtime and identity as they are now, in the file; a
// failed job keeps its record as it was.
func TestQueueRetryRecordsSources(t *testing.T) {
	config := t.TempDir()
	dir := writeTree(t, map[string]string{"a.txt": "hello", "sub/": ""})
	a := filepath.Join(dir, "a.txt")
	q := openQueue(config)
	r := &queueRecord{Target: "bob", PeerID: queueTestID, Queued: time.Now().Round(0), State: JobWaiting,
		Entries: queueEntries(collect(t, a, filepath.Join(dir, "sub")))}
	if err := q.add(r); err != nil {
		t.Fatal(err)
	}
	if _, err := q.retry(r.ID, false); !errors.Is(err, ErrJobNotHeld) {
		t.Errorf("retry of a waiting job: %v", err)
	}
	// Replaced by another file, larger and newer.
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("hello, world"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := os.Chtimes(other, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, a); err != nil {
		t.Fatal(err)
	}
	if err := q.update(r.ID, func(x *queueRecord) { x.State, x.Attempts, x.LastError = JobSourceChanged, 1, "changed" }); err != nil {
		t.Fatal(err)
	}
	got, err := q.retry(r.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSources(got.Entries); err != nil {
		t.Errorf("after the retry the sources still differ from the record: %v", err)
	}
	reread, err := openQueue(config).snapshot()
	if err != nil || len(reread) != 1 {
		t.Fatalf("queue file after the retry: %v, %v", reread, err)
	}
	e := reread[0].Entries[0]
	fi, _ := os.Stat(a)
	dev, ino, _ := statID(fi)
	if e.Size != 12 || e.MTime != later.UnixNano() || e.Dev != dev || e.Ino != ino || reread[0].State != JobWaiting || reread[0].Attempts != 0 {
		t.Errorf("recorded %+v (state %s, %d tries), want size 12, mtime %d, id %d/%d, waiting", e, reread[0].State, reread[0].Attempts, later.UnixNano(), dev, ino)
	}
	if !reread[0].Entries[1].Dir || reread[0].Entries[1].Path != "sub" {
		t.Errorf("the folder entry became %+v", reread[0].Entries[1])
	}

	// A failed job goes back to waiting with its record as it was.
	appendFile(t, a, "!")
	if err := q.update(r.ID, func(x *queueRecord) { x.State = JobFailed }); err != nil {
		t.Fatal(err)
	}
	got, err = q.retry(r.ID, false)
	if err != nil || got.State != JobWaiting || got.Entries[0].Size != 12 {
		t.Errorf("retry of a failed job: %+v, %v; want the record of 12 bytes kept", got, err)
	}
}

package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// queueSender is a sending agent on loopback (no discovery) whose config
// directory outlives it, so that it can be restarted, and the steps of
// queued jobs it reported.
type queueSender struct {
	*Agent
	config string
	events chan QueueEvent
	static chan StaticStatus
	mu     sync.Mutex
	logs   []string
	stop   func()
}

func startQueueSender(t testing.TB, config string) *queueSender {
	t.Helper()
	s := &queueSender{config: config, events: make(chan QueueEvent, 256), static: make(chan StaticStatus, 64)}
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), config, "alice", "127.0.0.1:0"
	cfg.SpaceMargin, cfg.LocalSend = 0, false
	cfg.OnQueue = func(ev QueueEvent) { s.events <- ev }
	cfg.OnStatic = func(st StaticStatus) {
		select {
		case s.static <- st:
		default:
		}
	}
	cfg.Logf = func(format string, args ...any) {
		s.mu.Lock()
		s.logs = append(s.logs, strings.TrimSpace(fmt.Sprintf(format, args...)))
		s.mu.Unlock()
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			a.Close()
		})
	}
	t.Cleanup(s.stop)
	return s
}

// wait returns the sender's next event of kind, failing the test on a
// failure of another kind or when none comes within 20 s.
func (s *queueSender) wait(t testing.TB, kind string) QueueEvent {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-s.events:
			if ev.Kind == kind {
				return ev
			}
			if ev.Kind == QueueFailed || ev.Kind == QueueSourceChanged {
				t.Fatalf("job %s: %s (%v) while waiting for %s", ev.Job.ID, ev.Kind, ev.Err, kind)
			}
		case <-deadline:
			t.Fatalf("no %s event within 20s", kind)
		}
	}
}

// showPeer makes to visible to the agent with config directory config: a
// static peer, checked at once.
func showPeer(t testing.TB, config string, to interface {
	Addr() net.Addr
	ID() string
}) {
	t.Helper()
	st, err := LoadStatic(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(StaticPeer{Addr: to.Addr().String(), ID: to.ID(), Name: "bob"}); err != nil {
		t.Fatal(err)
	}
}

func enqueue(t testing.TB, config, target string, paths ...string) QueueJob {
	t.Helper()
	rep, err := EnqueueWith(context.Background(), config, target, paths)
	if err != nil {
		t.Fatalf("enqueue %q for %s: %v", paths, target, err)
	}
	return *rep.Job
}

func listQueue(t testing.TB, config string) []QueueJob {
	t.Helper()
	jobs, err := ListQueue(context.Background(), config)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// TestQueueDeliversOnceAcrossRestarts: a job queued while its peer is
// not seen waits, outlives the sender's restart, and is delivered when
// the peer is seen, byte for byte; then it is gone from the queue. After
// a crash between the receipt and the queue's write (the old queue file
// back), the next start delivers it again and the receiver skips every
// file as already there: no second copy.
func TestQueueDeliversOnceAcrossRestarts(t *testing.T) {
	bob := startAgent(t, nil)
	config := t.TempDir()
	content := strings.Repeat("report ", 1<<20) // 7 MiB: a resumable size
	src := writeTree(t, map[string]string{"report.bin": content, "notes/a.txt": "a"})
	alice := startQueueSender(t, config)
	job := enqueue(t, config, bob.ID(), filepath.Join(src, "report.bin"), filepath.Join(src, "notes"))
	if job.PeerID != bob.ID() || job.ByName || job.Files != 2 || job.Dirs != 1 || job.Bytes != uint64(len(content)+1) || job.State != JobWaiting {
		t.Fatalf("queued %+v", job)
	}
	if ev := alice.wait(t, QueueQueued); ev.Job.ID != job.ID {
		t.Errorf("queued event for %s, want %s", ev.Job.ID, job.ID)
	}
	if st, err := QueryAgent(context.Background(), config); err != nil || st.Queued != 1 {
		t.Errorf("status: queued %d (%v), want 1", st.Queued, err)
	}

	alice.stop()
	alice = startQueueSender(t, config)
	if jobs := listQueue(t, config); len(jobs) != 1 || jobs[0].ID != job.ID || jobs[0].State != JobWaiting || jobs[0].Attempts != 0 {
		t.Fatalf("after a restart the queue holds %+v, want job %s waiting", jobs, job.ID)
	}
	saved, err := os.ReadFile(filepath.Join(config, queueFileName))
	if err != nil {
		t.Fatal(err)
	}

	showPeer(t, config, bob)
	ev := alice.wait(t, QueueDelivered)
	if ev.Job.ID != job.ID || ev.Report == nil {
		t.Fatalf("delivered %+v", ev)
	}
	want := map[string]string{"report.bin": content, "notes/": "", "notes/a.txt": "a"}
	assertTree(t, bob.dir, want)
	if jobs := listQueue(t, config); len(jobs) != 0 {
		t.Errorf("after the delivery the queue holds %+v", jobs)
	}

	alice.stop()
	if err := os.WriteFile(filepath.Join(config, queueFileName), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	alice = startQueueSender(t, config)
	ev = alice.wait(t, QueueDelivered)
	for i, r := range ev.Report.Results {
		if ev.Report.Items[i].Entry.Kind == proto.KindFile && r.Status != proto.Skipped {
			t.Errorf("second delivery of %s: %v (%s), want skipped as already there", ev.Report.Items[i].Entry.Path, r.Status, r.Reason)
		}
	}
	if ev.Report.Sent != 0 {
		t.Errorf("the second delivery sent %d bytes, want none", ev.Report.Sent)
	}
	assertTree(t, bob.dir, want)
	if jobs := listQueue(t, config); len(jobs) != 0 {
		t.Errorf("after the second delivery the queue holds %+v", jobs)
	}
}

// TestQueueCancelledJobNeverArrives: a job cancelled before its peer is
// seen is never delivered, while a job queued with it is.
func TestQueueCancelledJobNeverArrives(t *testing.T) {
	bob := startAgent(t, nil)
	config := t.TempDir()
	src := writeTree(t, map[string]string{"dropped.txt": "never", "marker.txt": "after"})
	alice := startQueueSender(t, config)
	dropped := enqueue(t, config, bob.ID(), filepath.Join(src, "dropped.txt"))
	marker := enqueue(t, config, bob.ID(), filepath.Join(src, "marker.txt"))

	rep, err := CancelQueued(context.Background(), config, strings.ToUpper(dropped.ID))
	if err != nil || rep.Job == nil || rep.Job.ID != dropped.ID || rep.WasDelivering {
		t.Fatalf("cancel %s: %+v, %v", dropped.ID, rep, err)
	}
	if _, err := CancelQueued(context.Background(), config, dropped.ID); !errors.Is(err, ErrNoJob) {
		t.Errorf("cancelling it again: %v, want ErrNoJob", err)
	}
	if _, err := CancelQueued(context.Background(), config, "ffffff"); !errors.Is(err, ErrNoJob) || !strings.Contains(err.Error(), "ffffff") {
		t.Errorf("cancelling an unknown job: %v, want ErrNoJob naming it", err)
	}
	if jobs := listQueue(t, config); len(jobs) != 1 || jobs[0].ID != marker.ID {
		t.Fatalf("after the cancel the queue holds %+v, want only %s", jobs, marker.ID)
	}
	if ev := alice.wait(t, QueueCancelled); ev.Job.ID != dropped.ID {
		t.Errorf("cancelled event for %s", ev.Job.ID)
	}
	showPeer(t, config, bob)
	if ev := alice.wait(t, QueueDelivered); ev.Job.ID != marker.ID {
		t.Fatalf("delivered %s, want %s", ev.Job.ID, marker.ID)
	}
	assertTree(t, bob.dir, map[string]string{"marker.txt": "after"})
}

// TestQueueSourceChangedIsHeld: a job whose file changed after it was
// queued is not sent: it is reported, naming the file, and kept in the
// queue as source-changed.
func TestQueueSourceChangedIsHeld(t *testing.T) {
	bob := startAgent(t, nil)
	config := t.TempDir()
	src := writeTree(t, map[string]string{"a.txt": "hello", "b.txt": "world"})
	alice := startQueueSender(t, config)
	job := enqueue(t, config, bob.ID(), filepath.Join(src, "a.txt"), filepath.Join(src, "b.txt"))
	appendFile(t, filepath.Join(src, "b.txt"), " changed")
	showPeer(t, config, bob)
	ev := alice.wait(t, QueueSourceChanged)
	if ev.Job.ID != job.ID || ev.Err == nil || !strings.Contains(ev.Err.Error(), "b.txt") {
		t.Fatalf("source-changed %+v, want job %s naming b.txt", ev, job.ID)
	}
	jobs := listQueue(t, config)
	if len(jobs) != 1 || jobs[0].State != JobSourceChanged || !strings.Contains(jobs[0].LastError, "b.txt changed since it was queued") || jobs[0].Attempts != 1 {
		t.Fatalf("queue holds %+v, want the job held as source-changed", jobs)
	}
	assertEmpty(t, bob.dir)
	if st, err := QueryAgent(context.Background(), config); err != nil || st.Queued != 0 || st.QueueHeld != 1 {
		t.Errorf("status: queued %d, held %d (%v); want 0 and 1", st.Queued, st.QueueHeld, err)
	}
}

// TestQueueRefusedIsHeld: a peer that refuses the job (here: it takes
// only trusted peers) holds it as failed, with the reason, not retried.
func TestQueueRefusedIsHeld(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.Accept = AcceptTrusted })
	config := t.TempDir()
	src := writeTree(t, map[string]string{"a.txt": "hello"})
	alice := startQueueSender(t, config)
	job := enqueue(t, config, bob.ID(), filepath.Join(src, "a.txt"))
	showPeer(t, config, bob)
	ev := alice.wait(t, QueueFailed)
	var re *RefusedError
	if ev.Job.ID != job.ID || !errors.As(ev.Err, &re) || re.Code != proto.CodeDenied {
		t.Fatalf("failed %+v, want job %s refused as denied", ev, job.ID)
	}
	if jobs := listQueue(t, config); len(jobs) != 1 || jobs[0].State != JobFailed || !strings.Contains(jobs[0].LastError, "only trusted peers") {
		t.Fatalf("queue holds %+v, want the job held as failed with the reason", jobs)
	}
	assertEmpty(t, bob.dir)
}

// TestEnqueueTargets: a job is queued only for one key known now; a name
// of no known key, of two keys, an address of no key, a LocalSend device
// and this agent itself are refused with a sentinel, before anything is
// queued; bad paths too.
func TestEnqueueTargets(t *testing.T) {
	config := t.TempDir()
	alice := startQueueSender(t, config)
	src := writeTree(t, map[string]string{"a.txt": "hello", "other/a.txt": "other"})
	file := filepath.Join(src, "a.txt")
	carol, twin1, twin2, dave := strings.Repeat("c", IDLen), strings.Repeat("d", IDLen), strings.Repeat("e", IDLen), strings.Repeat("f", IDLen)
	known, err := LoadKnown(config)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ id, name string }{{carol, "carol"}, {twin1, "twin"}, {twin2, "twin"}} {
		if err := known.Pin(p.id, p.name); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := LoadStatic(config)
	if err := st.Put(StaticPeer{Addr: "192.0.2.7:52741", ID: dave, Name: "dave"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target string
		paths  []string
		want   error
		id     string
	}{
		{"carol", []string{file}, nil, carol},
		{"CAROL", []string{file}, nil, carol},
		{"192.0.2.7:52741", []string{file}, nil, dave},
		{"dave", []string{file}, nil, dave},
		{GroupID(carol), []string{file}, nil, carol},
		{"nobody", []string{file}, ErrUnknownPeer, ""},
		{"twin", []string{file}, ErrAmbiguousPeer, ""},
		{"192.0.2.8:52741", []string{file}, ErrNotQueueable, ""},
		{"ls-" + strings.Repeat("0a", 32), []string{file}, ErrNotQueueable, ""},
		{alice.ID(), []string{file}, ErrNotQueueable, ""},
		{"carol", []string{filepath.Join(src, "missing")}, nil, ""},
		{"carol", []string{file, filepath.Join(src, "other", "a.txt")}, ErrDuplicatePath, ""},
	} {
		before := len(listQueue(t, config))
		rep, err := EnqueueWith(context.Background(), config, c.target, c.paths)
		switch {
		case c.id != "" && err != nil:
			t.Errorf("queue for %q: %v", c.target, err)
		case c.id != "" && (rep.Job.PeerID != c.id || rep.Job.ByName != (ParseID(c.target) == "")):
			t.Errorf("queue for %q: job %+v, want peer id %s", c.target, rep.Job, c.id)
		case c.id == "" && err == nil:
			t.Errorf("queue %q for %q: queued, want an error", c.paths, c.target)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("queue for %q: %v, want %v", c.target, err, c.want)
		}
		if c.id == "" && len(listQueue(t, config)) != before {
			t.Errorf("queue for %q failed but added a job", c.target)
		}
	}

	// A path whose name cannot be sent is left out, and said so.
	bad := filepath.Join(src, "caf\xe9.txt")
	if err := os.WriteFile(bad, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := EnqueueWith(context.Background(), config, "carol", []string{file, bad})
	if err != nil || rep.Job.Files != 1 || len(rep.Skipped) != 1 || rep.Skipped[0].Path != Escape(bad) {
		t.Errorf("queue with a name that cannot be sent: %+v, %v; want 1 file queued and the other skipped", rep, err)
	}

	if _, err := EnqueueWith(context.Background(), t.TempDir(), "carol", []string{file}); !errors.Is(err, ErrNoAgent) {
		t.Errorf("queue without an agent: %v, want ErrNoAgent", err)
	}
}

// TestQueueFileBadAtStart: an agent whose queue file is corrupt starts
// and receives, says what is wrong, refuses to queue with ErrQueueFile,
// and leaves the file as it is.
func TestQueueFileBadAtStart(t *testing.T) {
	config := t.TempDir()
	path := filepath.Join(config, queueFileName)
	corrupt := []byte(`{"version":1,"jobs":[{"id":"0a1b2c"`)
	if err := os.WriteFile(path, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	alice := startQueueSender(t, config)
	src := writeTree(t, map[string]string{"a.txt": "hello"})
	_, err := EnqueueWith(context.Background(), config, strings.Repeat("c", IDLen), []string{filepath.Join(src, "a.txt")})
	if !errors.Is(err, ErrQueueFile) || !strings.Contains(err.Error(), path) {
		t.Errorf("queue with a corrupt file: %v, want ErrQueueFile naming %s", err, path)
	}
	if _, err := ListQueue(context.Background(), config); !errors.Is(err, ErrQueueFile) {
		t.Errorf("list with a corrupt file: %v, want ErrQueueFile", err)
	}
	if st, err := QueryAgent(context.Background(), config); err != nil || st.Queued != 0 {
		t.Errorf("status with a corrupt queue file: %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(corrupt) {
		t.Errorf("the corrupt file was changed")
	}
	alice.stop()
	alice.mu.Lock()
	defer alice.mu.Unlock()
	logged := strings.Join(alice.logs, "\n")
	if !strings.Contains(logged, "bad queue file "+path) || !strings.Contains(logged, "no queued job is delivered") {
		t.Errorf("the agent logged %q, want the bad queue file named", logged)
	}
}

// TestQueueCancelDuringDelivery: a job cancelled while it is being
// delivered (here: its offer waits for the receiver's owner) is stopped
// at once, says so, and nothing of it arrives.
func TestQueueCancelDuringDelivery(t *testing.T) {
	asked := make(chan PendingOffer, 1)
	bob := startAgent(t, func(c *Config) {
		c.Accept = AcceptAsk
		c.OnAsk = func(o PendingOffer) { asked <- o }
	})
	config := t.TempDir()
	src := writeTree(t, map[string]string{"a.txt": "hello"})
	alice := startQueueSender(t, config)
	job := enqueue(t, config, bob.ID(), filepath.Join(src, "a.txt"))
	showPeer(t, config, bob)
	select {
	case <-asked:
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery's offer never reached bob's owner")
	}
	if jobs := listQueue(t, config); len(jobs) != 1 || jobs[0].State != JobDelivering {
		t.Fatalf("while its offer waits the queue holds %+v, want the job delivering", jobs)
	}
	rep, err := CancelQueued(context.Background(), config, job.ID)
	if err != nil || !rep.WasDelivering {
		t.Fatalf("cancel during the delivery: %+v, %v; want it said to have been delivering", rep, err)
	}
	if ev := alice.wait(t, QueueCancelled); ev.Job.ID != job.ID || !ev.WasDelivering {
		t.Errorf("cancelled event %+v", ev)
	}
	if in := bob.next(t); in.Err == nil {
		t.Errorf("bob's side of the cancelled delivery ended without an error: %+v", in)
	}
	assertEmpty(t, bob.dir)
	if p := bob.Pending(); len(p) != 0 {
		t.Errorf("bob still has %+v pending", p)
	}
	if jobs := listQueue(t, config); len(jobs) != 0 {
		t.Errorf("after the cancel the queue holds %+v", jobs)
	}
}

// TestQueueRetriesWhileSeen: a try that fails while the peer is still
// seen (its static check said up; it has stopped since) is recorded with
// its error, reported, and followed by another after a pause of about
// 5 s.
func TestQueueRetriesWhileSeen(t *testing.T) {
	bob := startQueueSender(t, t.TempDir())
	config := t.TempDir()
	alice := startQueueSender(t, config)
	showPeer(t, config, bob)
	select {
	case st := <-alice.static:
		if st.State != StaticUp {
			t.Fatalf("bob's first check: %+v, want up", st)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no check of bob within 20s")
	}
	bob.stop()
	src := writeTree(t, map[string]string{"a.txt": "hello"})
	job := enqueue(t, config, bob.ID(), filepath.Join(src, "a.txt"))
	ev := alice.wait(t, QueueRetry)
	if ev.Job.ID != job.ID || ev.Err == nil || ev.Wait < queueRetryBase*9/10 || ev.Wait > queueRetryBase*11/10 {
		t.Fatalf("retry %+v (wait %v), want job %s, an error and a pause of about %v", ev, ev.Wait, job.ID, queueRetryBase)
	}
	jobs := listQueue(t, config)
	if len(jobs) != 1 || jobs[0].State != JobWaiting || jobs[0].Attempts != 1 || jobs[0].LastError == "" || jobs[0].LastAttempt.IsZero() {
		t.Fatalf("after a failed try the queue holds %+v, want it waiting with the try recorded", jobs)
	}
	if ev := alice.wait(t, QueueRetry); ev.Job.ID != job.ID || ev.Job.Attempts != 2 || ev.Wait < 2*queueRetryBase*9/10 {
		t.Errorf("second retry %+v (wait %v), want attempt 2 and a pause about twice as long", ev, ev.Wait)
	}
}

// TestQueueTargetIgnoresLocalSendPinOfTheName: a name pinned to a lanshare
// key and, by a send --localsend to that agent, to its LocalSend
// certificate, names the lanshare key for a job (it was "names 2 keys").
func TestQueueTargetIgnoresLocalSendPinOfTheName(t *testing.T) {
	alice := startAgent(t, nil)
	bob := startAgent(t, nil)
	known, err := LoadKnown(alice.config)
	must(t, err)
	must(t, known.Pin(bob.ID(), "bob"))
	must(t, known.Pin(LocalSendID(strings.Repeat("ab", 32)), "bob"))
	id, _, byName, err := alice.queueTarget("bob")
	if err != nil || id != bob.ID() || !byName {
		t.Errorf("queueTarget(bob) = %q, %v, %v; want bob's lanshare id", id, byName, err)
	}
}

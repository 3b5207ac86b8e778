package peer

// The running agent's side of `lanshare send --later`: it takes jobs over
// its control socket, and delivers each as soon as its peer is seen
// (discovery's peer-up, a static peer's check), retrying with growing
// pauses while it is, across restarts, until the job is delivered or
// cancelled.
//
// Each job is delivered once: it leaves the queue file (synced) only after
// the receiver's receipt confirmed every file. A crash between the receipt
// and that write sends the job again on the next start, which the receiver
// answers with "already there" for every file it has from us (see Resume
// in the README): nothing arrives twice.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto"
)

// Kinds of QueueEvent.
const (
	QueueQueued        = "queued"         // a job was added
	QueueDelivering    = "delivering"     // a try starts: its peer was seen
	QueueDelivered     = "delivered"      // the receiver confirmed every file; the job left the queue
	QueueRetry         = "retry"          // a try failed; another follows after Wait while the peer is seen
	QueueFailed        = "failed"         // the peer refused the job (or its key changed): held, not tried again
	QueueSourceChanged = "source-changed" // a source changed or vanished since it was queued: held, not sent
	QueueCancelled     = "cancelled"      // the owner dropped the job (lanshare queue cancel)
)

// QueueEvent is a step of a queued job, as Config.OnQueue reports it.
type QueueEvent struct {
	Kind string
	Job  QueueJob
	// Peer is how the job's peer was found for this try: its instance
	// name (delivering, delivered, retry, failed).
	Peer string
	// Err says why (retry, failed, source-changed).
	Err error
	// Wait is the pause before the next try (retry).
	Wait time.Duration
	// Report is the receiver's receipt (delivered).
	Report *Report
	// WasDelivering is set on cancelled when a try was running: the files
	// that arrived before it stopped stay with the receiver.
	WasDelivering bool
}

// Pacing of the deliveries.
const (
	// queueRetryBase is the pause after a failed try while the peer is
	// still seen; it doubles with each failure in a row up to
	// queueRetryMax, and a new sighting of the peer (peer-up, a static
	// peer that comes up) starts again at once.
	queueRetryBase = 5 * time.Second
	queueRetryMax  = 10 * time.Minute
	// queueParallel bounds the deliveries that run at once (one per peer).
	queueParallel = 4
	// queueBrokenLook is how often the agent reads a queue file that it
	// could not read again, for a fix made without a restart.
	queueBrokenLook = time.Minute
	// enqueueLimit bounds a client's wait for the agent to take a job
	// (the agent walks the folders given).
	enqueueLimit = 2 * time.Minute
)

// queueAgent runs the queue for an Agent.
type queueAgent struct {
	a    *Agent
	q    *jobQueue
	wake chan struct{} // a job was added, cancelled or its try ended

	mu       sync.Mutex
	busy     map[string]context.CancelFunc // job id → its running try
	peerBusy map[string]bool               // peer ids with a try running
	next     map[string]time.Time          // job id → no try before
	fails    map[string]int                // job id → failed tries in a row
	staticUp map[string]bool               // ids of the static peers up at the last look
	wg       sync.WaitGroup                // the tries; Add only from run's goroutine
}

func newQueueAgent(a *Agent) *queueAgent {
	return &queueAgent{a: a, q: openQueue(a.cfg.ConfigDir), wake: make(chan struct{}, 1),
		busy: map[string]context.CancelFunc{}, peerBusy: map[string]bool{}, next: map[string]time.Time{},
		fails: map[string]int{}, staticUp: map[string]bool{}}
}

func (qa *queueAgent) poke() {
	select {
	case qa.wake <- struct{}{}:
	default:
	}
}

func (qa *queueAgent) event(ev QueueEvent) {
	if qa.a.cfg.OnQueue != nil {
		qa.a.cfg.OnQueue(ev)
	}
}

func (qa *queueAgent) logf(format string, args ...any) {
	if qa.a.cfg.Logf != nil {
		qa.a.cfg.Logf(format, args...)
	}
}

// startQueue runs the deliveries until the returned function is called;
// that function stops the tries that run (the receiver keeps what arrived,
// and the next start resumes) and waits for them.
func (a *Agent) startQueue(ctx context.Context) func() {
	if err := a.queue.q.loadErr(); err != nil {
		a.queue.logf("%v; no queued job is delivered until it is fixed or moved away", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.queue.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// run starts the tries that are due whenever something changes: a peer
// seen, a static peer's check, a job added or ended, a pause over. It
// returns when ctx is done, once the tries have ended.
func (qa *queueAgent) run(ctx context.Context) {
	defer qa.wg.Wait()
	var events <-chan discovery.Event
	if qa.a.disc != nil {
		ch, unsubscribe := qa.a.disc.Subscribe()
		defer unsubscribe()
		events = ch
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		changed := qa.a.static.changes()
		qa.noteStatic()
		qa.wantStatic()
		wait := qa.startDue(ctx, time.Now())
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Kind != discovery.PeerDown {
				qa.seen(ev.Peer.ID)
			}
		case <-changed:
		case <-qa.wake:
		case <-timer.C:
		}
	}
}

// seen makes the jobs for id due at once: it was just seen.
func (qa *queueAgent) seen(id string) {
	if id == "" {
		return
	}
	recs, err := qa.q.snapshot()
	if err != nil {
		return
	}
	qa.mu.Lock()
	defer qa.mu.Unlock()
	for _, r := range recs {
		if r.PeerID == id {
			delete(qa.next, r.ID)
			delete(qa.fails, r.ID)
		}
	}
}

// wantStatic tells the static checker which peers the jobs wait for.
func (qa *queueAgent) wantStatic() {
	recs, err := qa.q.snapshot()
	if err != nil {
		return
	}
	ids := map[string]bool{}
	for _, r := range recs {
		if r.State == JobWaiting {
			ids[r.PeerID] = true
		}
	}
	qa.a.static.want(ids)
}

// noteStatic makes the jobs for static peers that came up since the last
// look due at once.
func (qa *queueAgent) noteStatic() {
	up := map[string]bool{}
	for _, s := range qa.a.static.statuses() {
		if s.State == StaticUp && s.ID != "" {
			up[s.ID] = true
		}
	}
	qa.mu.Lock()
	var fresh []string
	for id := range up {
		if !qa.staticUp[id] {
			fresh = append(fresh, id)
		}
	}
	qa.staticUp = up
	qa.mu.Unlock()
	for _, id := range fresh {
		qa.seen(id)
	}
}

// startDue starts a try of every waiting job whose peer is seen now and
// whose pause is over, one per peer and queueParallel at most, and
// returns how long until the next pause of such a job ends (an hour when
// none).
func (qa *queueAgent) startDue(ctx context.Context, now time.Time) time.Duration {
	recs, err := qa.q.snapshot()
	if err != nil {
		return queueBrokenLook
	}
	wait := time.Hour
	qa.mu.Lock()
	defer qa.mu.Unlock()
	for _, r := range recs {
		if r.State != JobWaiting || qa.busy[r.ID] != nil || qa.peerBusy[r.PeerID] || len(qa.busy) >= queueParallel {
			continue
		}
		t, ok := qa.a.jobTarget(r)
		if !ok {
			continue
		}
		if nb, ok := qa.next[r.ID]; ok && now.Before(nb) {
			wait = min(wait, nb.Sub(now))
			continue
		}
		tctx, cancel := context.WithCancel(ctx)
		qa.busy[r.ID], qa.peerBusy[r.PeerID] = cancel, true
		qa.wg.Add(1)
		go func() {
			defer qa.wg.Done()
			defer cancel()
			ev := qa.try(tctx, r, t)
			qa.mu.Lock()
			delete(qa.busy, r.ID)
			delete(qa.peerBusy, r.PeerID)
			qa.mu.Unlock()
			// The outcome is reported once the job no longer shows as
			// delivering.
			if ev != nil {
				qa.event(*ev)
			}
			qa.poke()
		}()
	}
	return wait
}

// jobTarget is where r's peer can be reached now: the records of its id
// in the discovery table, and the static peers of its id that are up. ok
// is false when it is seen nowhere.
func (a *Agent) jobTarget(r *queueRecord) (t Target, ok bool) {
	var statics []StaticPeer
	for _, s := range a.static.statuses() {
		if s.ID == r.PeerID && s.State == StaticUp {
			statics = append(statics, s.Peer())
		}
	}
	m, err := findPeer(a.Peers(), r.PeerID, nil)
	switch {
	case err == nil:
		if t, err = withStatic(m, r.PeerID, statics); err != nil {
			return Target{}, false
		}
	case len(statics) > 0:
		t = staticTarget(statics, r.PeerID, r.PeerID)
	default:
		return Target{}, false
	}
	t.Typed, t.ByName = r.Target, r.ByName
	return t, len(t.Addrs) > 0
}

// try delivers r to t once: it checks the sources, sends, records the
// outcome and returns the event that reports it. A try stopped by ctx
// (the agent stops, the job is cancelled) records nothing, and returns
// nil.
func (qa *queueAgent) try(ctx context.Context, r *queueRecord, t Target) *QueueEvent {
	if err := checkSources(r.Entries); err != nil {
		return qa.hold(r, JobSourceChanged, err, QueueSourceChanged, t.Name)
	}
	qa.event(QueueEvent{Kind: QueueDelivering, Job: r.job(), Peer: t.Name})
	procs.hold() // a send uses every core it can
	defer procs.release()
	known, err := LoadKnown(qa.a.cfg.ConfigDir)
	var rep *Report
	if err == nil {
		s := Sender{Identity: qa.a.id, Known: known}
		rep, err = s.Send(ctx, t, r.items(), SendOptions{Name: qa.a.cfg.Name})
	}
	if err == nil {
		if _, rerr := qa.q.remove(r.ID); rerr != nil && !errors.Is(rerr, ErrNoJob) {
			// The next try finds every file already there.
			qa.logf("job %s was delivered, but could not be marked done (%v): it is offered again, and the receiver skips what it has", r.ID, rerr)
		}
		qa.mu.Lock()
		delete(qa.next, r.ID)
		delete(qa.fails, r.ID)
		qa.mu.Unlock()
		return &QueueEvent{Kind: QueueDelivered, Job: r.job(), Peer: t.Name, Report: rep}
	}
	if ctx.Err() != nil {
		return nil
	}
	var se *SourceError
	switch {
	case errors.As(err, &se):
		return qa.hold(r, JobSourceChanged, err, QueueSourceChanged, t.Name)
	case !transient(err):
		return qa.hold(r, JobFailed, err, QueueFailed, t.Name)
	default:
		qa.mu.Lock()
		qa.fails[r.ID]++
		wait := queueRetryBase
		for i := 1; i < qa.fails[r.ID] && wait < queueRetryMax; i++ {
			wait *= 2
		}
		wait = jitter(min(wait, queueRetryMax))
		qa.next[r.ID] = time.Now().Add(wait)
		qa.mu.Unlock()
		j := qa.record(r, JobWaiting, err)
		return &QueueEvent{Kind: QueueRetry, Job: j, Peer: t.Name, Err: err, Wait: wait}
	}
}

// hold keeps r in the queue in state, with err as the reason, and
// returns the event of kind that reports it.
func (qa *queueAgent) hold(r *queueRecord, state string, err error, kind, peer string) *QueueEvent {
	qa.mu.Lock()
	delete(qa.next, r.ID)
	delete(qa.fails, r.ID)
	qa.mu.Unlock()
	j := qa.record(r, state, err)
	return &QueueEvent{Kind: kind, Job: j, Peer: peer, Err: err}
}

// record saves a try of r that ended with err, leaving it in state, and
// returns the job as it is now. A job cancelled meanwhile stays gone.
func (qa *queueAgent) record(r *queueRecord, state string, err error) QueueJob {
	now := time.Now()
	j := r.job()
	j.State, j.Attempts, j.LastAttempt, j.LastError = state, j.Attempts+1, now, oneLineErr(err)
	uerr := qa.q.update(r.ID, func(x *queueRecord) {
		x.State, x.Attempts, x.LastAttempt, x.LastError = j.State, x.Attempts+1, now, j.LastError
	})
	if uerr != nil && !errors.Is(uerr, ErrNoJob) {
		qa.logf("job %s: %v", r.ID, uerr)
	}
	return j
}

// transient reports whether a try that ended with err is worth another
// while the peer is seen: it could not be reached, the connection broke,
// the receiver was busy, out of space or could not write. A refusal by
// its policy or its owner, a name it refuses, a key that changed or
// another protocol version are not.
func transient(err error) bool {
	var re *RefusedError
	switch {
	case errors.Is(err, ErrKeyChanged), errors.Is(err, ErrNotSendable), errors.Is(err, proto.ErrVersionMismatch),
		errors.Is(err, ErrKnownFile):
		return false
	case errors.As(err, &re):
		switch re.Code {
		case proto.CodeBusy, proto.CodeShuttingDown, proto.CodeNoSpace, proto.CodeTooMany, proto.CodeIO,
			proto.CodeDigest, proto.CodeAborted:
			return true
		}
		return false
	}
	return true
}

func oneLineErr(err error) string {
	if err == nil {
		return ""
	}
	return trimReason(strings.Join(strings.Fields(err.Error()), " "))
}

// counts returns how many jobs wait (or are being delivered) and how many
// are held (failed, source changed).
func (qa *queueAgent) counts() (waiting, held int) {
	recs, err := qa.q.snapshot()
	if err != nil {
		return 0, 0
	}
	for _, r := range recs {
		if r.State == JobWaiting {
			waiting++
		} else {
			held++
		}
	}
	return waiting, held
}

// Queue returns the jobs of the queue, in queue order; the error wraps
// ErrQueueFile when its file cannot be read.
func (a *Agent) Queue() ([]QueueJob, error) {
	recs, err := a.queue.q.snapshot()
	if err != nil {
		return nil, err
	}
	a.queue.mu.Lock()
	defer a.queue.mu.Unlock()
	out := make([]QueueJob, 0, len(recs))
	for _, r := range recs {
		j := r.job()
		if a.queue.busy[r.ID] != nil {
			j.State = JobDelivering
		}
		out = append(out, j)
	}
	return out, nil
}

// Enqueue queues paths (absolute) for the peer that target names, and
// returns the job and the paths it left out (as Collect skips them). The
// peer must be known by its key: target is its whole id, or a name, id
// prefix or address that a pin, a static peer or the discovery table
// ties to exactly one key now. The error wraps ErrUnknownPeer,
// ErrAmbiguousPeer, ErrKeyChanged, ErrNotSendable, ErrNotQueueable, ErrQueueFull,
// ErrQueueFile, ErrNothingToSend or ErrDuplicatePath.
func (a *Agent) Enqueue(target string, paths []string) (QueueJob, []Skipped, error) {
	if err := a.queue.q.loadErr(); err != nil {
		return QueueJob{}, nil, err
	}
	id, name, byName, err := a.queueTarget(target)
	if err != nil {
		return QueueJob{}, nil, err
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return QueueJob{}, nil, fmt.Errorf("%s: not an absolute path", Escape(p))
		}
	}
	items, skipped, err := CollectSkipped(paths)
	if err != nil {
		return QueueJob{}, skipped, err
	}
	r := &queueRecord{Target: target, Peer: name, PeerID: id, ByName: byName, Queued: time.Now().Round(0),
		State: JobWaiting, Entries: queueEntries(items)}
	if err := a.queue.q.add(r); err != nil {
		return QueueJob{}, skipped, err
	}
	j := r.job()
	a.queue.event(QueueEvent{Kind: QueueQueued, Job: j})
	a.queue.poke()
	return j, skipped, nil
}

// CancelJob drops the job id from the queue. A try that runs is stopped:
// the files that arrived before stay with the receiver (delivering is
// true then). The error wraps ErrNoJob when there is no such job.
func (a *Agent) CancelJob(id string) (j QueueJob, delivering bool, err error) {
	r, err := a.queue.q.remove(strings.ToLower(strings.TrimSpace(id)))
	if err != nil {
		return QueueJob{}, false, err
	}
	qa := a.queue
	qa.mu.Lock()
	if cancel := qa.busy[r.ID]; cancel != nil {
		delivering = true
		cancel()
	}
	delete(qa.next, r.ID)
	delete(qa.fails, r.ID)
	qa.mu.Unlock()
	j = r.job()
	qa.event(QueueEvent{Kind: QueueCancelled, Job: j, WasDelivering: delivering})
	qa.poke()
	return j, delivering, nil
}

// queueTarget finds the one key target names for a job: its id, the
// peer's display name if known, and whether it was named by anything but
// the whole id.
func (a *Agent) queueTarget(target string) (id, name string, byName bool, err error) {
	lsRefusal := fmt.Errorf("%w: %s is a LocalSend device; LocalSend has no resume and no receipt that would let a second try skip what arrived, so a job could arrive twice: send to it while it is online", ErrNotQueueable, Escape(target))
	known, err := LoadKnown(a.cfg.ConfigDir)
	if err != nil {
		return "", "", false, err
	}
	static, err := LoadStatic(a.cfg.ConfigDir)
	if err != nil {
		return "", "", false, err
	}
	statics := matchStatic(static.List(), target)
	if whole := ParseID(target); whole != "" {
		id = whole
	} else if host, port, serr := net.SplitHostPort(target); serr == nil && host != "" && isPort(port) {
		ids := staticIDs(statics)
		if len(ids) != 1 {
			return "", "", false, fmt.Errorf("%w: %s is an address, which names no key; add it as a static peer first (lanshare peers add %s), or queue by the peer's name or id",
				ErrNotQueueable, Escape(target), Escape(target))
		}
		id, byName = ids[0], true
	} else {
		byName = true
		var ids []string
		pins := known.PinnedTo(target)
		if own := slices.DeleteFunc(slices.Clone(pins), IsLocalSendID); len(own) > 0 {
			// The name is also a LocalSend certificate's (a send
			// --localsend to that agent pinned it): a job goes over
			// lanshare's protocol, to the lanshare keys.
			pins = own
		}
		switch sids := staticIDs(statics); {
		case len(pins) > 0:
			ids = pins
		case len(sids) > 0:
			ids = sids
		default:
			m, ferr := findPeer(a.Peers(), target, nil)
			if errors.Is(ferr, ErrAmbiguousPeer) || errors.Is(ferr, ErrNotSendable) {
				return "", "", false, ferr
			}
			if ferr == nil {
				ids, name = []string{m.peer.ID}, m.peer.Name
			}
		}
		switch {
		case len(ids) > 1:
			var shown []string
			for _, x := range ids {
				shown = append(shown, ShortID(x))
			}
			return "", "", false, fmt.Errorf("%w: %s names %d keys (ids %s); queue by the whole id of one", ErrAmbiguousPeer, Escape(target), len(ids), strings.Join(shown, ", "))
		case len(ids) == 0 && a.localSendDevice(target):
			return "", "", false, lsRefusal
		case len(ids) == 0:
			return "", "", false, fmt.Errorf("%w %s with a known key: --later delivers only to a key known now; send to it once while it is online, trust it (lanshare trust), add it as a static peer, or queue by its whole id",
				ErrUnknownPeer, Escape(target))
		}
		id = ids[0]
	}
	switch {
	case IsLocalSendID(id):
		return "", "", false, lsRefusal
	case id == a.ID():
		return "", "", false, fmt.Errorf("%w: %s is this agent", ErrNotQueueable, Escape(target))
	}
	if name == "" {
		name = a.peerName(id, static.List(), known)
	}
	if err := known.Check(Target{Name: Escape(target), DisplayName: name, ID: id, ByName: byName, Typed: target}); err != nil {
		return "", "", false, err
	}
	return id, name, byName, nil
}

// peerName is the display name of id as the discovery table, the static
// peers or the known peers know it, or "".
func (a *Agent) peerName(id string, statics []StaticPeer, known *Known) string {
	for _, p := range a.Peers() {
		if p.ID == id && p.Name != "" {
			return p.Name
		}
	}
	for _, s := range statics {
		if s.ID == id && s.Name != "" {
			return s.Name
		}
	}
	if k, ok := known.ByID(id); ok {
		return k.Name
	}
	return ""
}

// localSendDevice reports whether a LocalSend device the agent knows
// answers to target (its alias).
func (a *Agent) localSendDevice(target string) bool {
	if a.lsdisc == nil {
		return false
	}
	return slices.ContainsFunc(a.lsdisc.Devices(), func(d discovery.LocalSendDevice) bool {
		return strings.EqualFold(d.Alias, target)
	})
}

func isPort(s string) bool {
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

// queueControl answers the control requests of the queue.
func (a *Agent) queueControl(req ControlRequest) ControlReply {
	switch req.Op {
	case OpEnqueue:
		paths := make([]string, len(req.RawPaths))
		for i, p := range req.RawPaths {
			paths[i] = string(p)
		}
		j, skipped, err := a.Enqueue(req.Target, paths)
		rep := ControlReply{}
		for _, s := range skipped {
			rep.Skipped = append(rep.Skipped, QueueSkipped{Path: Escape(s.Path), Reason: s.Reason()})
		}
		if err != nil {
			rep.Error, rep.Failure = err.Error(), queueFailure(err)
			return rep
		}
		rep.Job = &j
		return rep
	case OpCancelJob:
		j, delivering, err := a.CancelJob(req.ID)
		if err != nil {
			return ControlReply{Error: err.Error(), Failure: queueFailure(err)}
		}
		return ControlReply{Job: &j, WasDelivering: delivering}
	case OpRetryJob:
		return a.retryControl(req) // queue_retry.go
	}
	jobs, err := a.Queue()
	if err != nil {
		return ControlReply{Error: err.Error(), Failure: queueFailure(err)}
	}
	a.queue.poke() // a file fixed by hand is read again
	if jobs == nil {
		jobs = []QueueJob{}
	}
	return ControlReply{Jobs: jobs}
}

// QueueSkipped is a path that Enqueue left out, and why: Path as Escape
// shows it (a name need not be UTF-8; a JSON string is).
type QueueSkipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// queueFailures name, on the control socket, the errors a client tells
// apart.
var queueFailures = []struct {
	name string
	err  error
}{
	{"unknown-peer", ErrUnknownPeer},
	{"ambiguous-peer", ErrAmbiguousPeer},
	{"key-changed", ErrKeyChanged},
	{"not-sendable", ErrNotSendable},
	{"not-queueable", ErrNotQueueable},
	{"queue-full", ErrQueueFull},
	{"queue-file", ErrQueueFile},
	{"no-job", ErrNoJob},
	{"not-held", ErrJobNotHeld},
	{"source-unreadable", ErrSourceUnreadable},
	{"nothing-to-send", ErrNothingToSend},
	{"duplicate-path", ErrDuplicatePath},
	{"known-file", ErrKnownFile},
	{"static-file", ErrStaticFile},
}

func queueFailure(err error) string {
	for _, f := range queueFailures {
		if errors.Is(err, f.err) {
			return f.name
		}
	}
	return ""
}

// queueError is an error the agent returned, with the sentinel its
// Failure names.
type queueError struct {
	msg string
	err error
}

func (e *queueError) Error() string { return e.msg }
func (e *queueError) Unwrap() error { return e.err }

// askQueue sends req to the agent in dir and returns its reply; a reply
// with an error is returned with it, wrapping the sentinel it names.
func askQueue(ctx context.Context, dir string, limit time.Duration, req ControlRequest) (*ControlReply, error) {
	var rep ControlReply
	if err := exchange(ctx, dir, limit, req, &rep); err != nil {
		return nil, err
	}
	if rep.Error == "" {
		return &rep, nil
	}
	for _, f := range queueFailures {
		if f.name == rep.Failure {
			return &rep, &queueError{msg: rep.Error, err: f.err}
		}
	}
	if strings.HasPrefix(rep.Error, "unknown request") {
		return &rep, fmt.Errorf("the agent runs an older lanshare, without the queue (%s): restart it", Escape(rep.Error))
	}
	return &rep, errors.New(rep.Error)
}

// EnqueueWith asks the agent that runs with config directory dir to queue
// paths (made absolute here) for target; see Agent.Enqueue. The reply
// holds the job and the paths left out, also with an error. The error
// wraps ErrNoAgent when no agent runs, or what Enqueue's does.
func EnqueueWith(ctx context.Context, dir, target string, paths []string) (*ControlReply, error) {
	abs := make([][]byte, len(paths))
	for i, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", Escape(p), err)
		}
		abs[i] = []byte(a)
	}
	return askQueue(ctx, dir, enqueueLimit, ControlRequest{Op: OpEnqueue, Target: target, RawPaths: abs})
}

// ListQueue returns the jobs of the queue of the agent that runs with
// config directory dir.
func ListQueue(ctx context.Context, dir string) ([]QueueJob, error) {
	rep, err := askQueue(ctx, dir, 5*time.Second, ControlRequest{Op: OpQueue})
	if err != nil {
		return nil, err
	}
	return rep.Jobs, nil
}

// CancelQueued drops the job id from the queue of the agent that runs
// with config directory dir; the reply holds the job, and whether a try
// of it was running.
func CancelQueued(ctx context.Context, dir, id string) (*ControlReply, error) {
	return askQueue(ctx, dir, 5*time.Second, ControlRequest{Op: OpCancelJob, ID: id})
}

package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// States of a static peer, as the running agent and `lanshare peers` see
// it.
const (
	// StaticUnknown: not checked yet.
	StaticUnknown = "unknown"
	// StaticUp: the address answered with the key the peer was added
	// with (any key, for an unverified peer: see StaticStatus.SeenID).
	StaticUp = "up"
	// StaticDown: the address could not be reached, or the TLS
	// handshake failed.
	StaticDown = "down"
	// StaticKeyChanged: the address answered with another key than the
	// one the peer was added with. Nothing is sent to it.
	StaticKeyChanged = "key-changed"
)

// StaticStatus is a static peer and what its last check found. Field
// names are stable (`lanshare status --json`, the control socket).
type StaticStatus struct {
	Addr string `json:"addr"`
	ID   string `json:"id"` // the id it was added with; "" while unverified
	Name string `json:"name"`
	// State is StaticUnknown, StaticUp, StaticDown or StaticKeyChanged.
	State string `json:"state"`
	// SeenID is the id that answered at Addr when it is not ID: the key
	// of an unverified peer, or the new key of one whose key changed.
	SeenID string `json:"seen_id,omitempty"`
	// Error says why a peer is down.
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked,omitzero"`
	// Since is when the peer entered its state, as far as this agent saw.
	Since time.Time `json:"since,omitzero"`
}

// Peer is the static peer s describes.
func (s StaticStatus) Peer() StaticPeer { return StaticPeer{Addr: s.Addr, ID: s.ID, Name: s.Name} }

// staticCheckTimeout bounds one check of a static peer: resolving its
// name (a DNS name is resolved at every dial), connecting (dialTimeout,
// spread over the addresses a name resolves to), the TLS handshake, and
// the close.
const staticCheckTimeout = 10 * time.Second

// dialStatic connects to addr and runs the TLS handshake, accepting any
// key, and returns the connection and the id of the key that answered,
// all within staticCheckTimeout (or ctx).
func dialStatic(ctx context.Context, id *Identity, addr string) (*tls.Conn, string, error) {
	ctx, cancel := context.WithTimeout(ctx, staticCheckTimeout)
	defer cancel()
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	tc := tls.Client(raw, id.ClientTLS(""))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, "", fmt.Errorf("%w with %s: %w", ErrHandshake, addr, turnedAway(err))
	}
	return tc, PeerID(tc.ConnectionState()), nil
}

// closeProbe ends a connection on which nothing but the TLS handshake
// ran: it sends close_notify, and reads what the receiver still sends
// (session tickets, its own close_notify) for a second at most, so that
// the receiver sees a clean end of stream before a hello, which a
// running agent takes for a probe and does not log (see isProbe), rather
// than a reset.
func closeProbe(tc *tls.Conn) {
	_ = tc.SetDeadline(time.Now().Add(time.Second))
	if tc.CloseWrite() == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(tc, 64<<10))
	}
	tc.Close()
}

// isProbe reports whether a received connection was a probe: a peer that
// completed the TLS handshake, proving its key, and closed the stream
// cleanly before its hello, as static-peer checks do. The agent does not
// report probes as transfers.
func isProbe(peerID string, tr *Transfer, err error) bool {
	return peerID != "" && tr == nil && errors.Is(err, io.EOF) && !errors.Is(err, ErrHandshake)
}

// CheckStatic dials p once, within staticCheckTimeout or ctx, and returns
// what it found: up when the key that answers is the one p was added
// with (any key while p is unverified, with SeenID set to it), key-changed
// when it is another, down when nothing answered. Nothing but the TLS
// handshake runs on the connection.
func CheckStatic(ctx context.Context, id *Identity, p StaticPeer) StaticStatus {
	st := StaticStatus{Addr: p.Addr, ID: p.ID, Name: p.Name}
	tc, got, err := dialStatic(ctx, id, p.Addr)
	st.Checked = time.Now()
	if err != nil {
		st.State, st.Error = StaticDown, trimReason(strings.Join(strings.Fields(err.Error()), " "))
		return st
	}
	closeProbe(tc)
	switch {
	case p.ID == "":
		st.State, st.SeenID = StaticUp, got
	case got != p.ID:
		st.State, st.SeenID = StaticKeyChanged, got
	default:
		st.State = StaticUp
	}
	return st
}

// ProbeStatic connects to addr as the identity id, calling itself name,
// and returns the id of the key that answers and the display name the
// peer gives in its hello (inside TLS), all within staticCheckTimeout (or
// ctx). To have the peer's hello it offers an empty batch, which serve
// does not log; a peer whose owner decides on offers is hung up on as
// soon as it says it waits, and one that refuses us still says its name
// first. A peer of another major protocol version is
// refused (proto.ErrVersionMismatch).
func ProbeStatic(ctx context.Context, id *Identity, addr, name string) (peerID, peerName string, err error) {
	tc, got, err := dialStatic(ctx, id, addr)
	if err != nil {
		return "", "", err
	}
	defer tc.Close()
	deadline := time.Now().Add(staticCheckTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = tc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { tc.Close() })
	defer stop()
	rep, err := Send(tc, nil, SendOptions{Name: name, IdleTimeout: staticCheckTimeout,
		// The owner need not decide on nothing: hang up.
		OnWait: func(Waiting) { tc.Close() }})
	if errors.Is(err, proto.ErrVersionMismatch) || rep == nil {
		if err == nil {
			err = errors.New("no hello")
		}
		return "", "", fmt.Errorf("%s: %w", addr, err)
	}
	return got, rep.Peer, nil
}

// Scheduling of the running agent's checks of its static peers.
const (
	// staticUpEvery is how often a peer that answered is checked again.
	staticUpEvery = 30 * time.Second
	// staticDownMax caps the backoff of a peer that does not answer: its
	// checks double from staticUpEvery up to this; but a peer that queued
	// jobs wait for (see want) is checked every staticUpEvery, so that a
	// job goes soon after the peer is back.
	staticDownMax = 4 * time.Minute
	// staticParallel bounds the checks that run at once.
	staticParallel = 8
	// staticReloadEvery is how often the agent looks whether the file
	// changed (a stat), so that `lanshare peers add` takes effect at once.
	staticReloadEvery = time.Second
	// staticStartSpread spreads the first checks after a start, so that
	// a long list does not dial all at once.
	staticStartSpread = 5 * time.Second
)

// staticChecker is the running agent's view of its static peers: it
// re-reads the file when it changes and checks each peer in turn, never
// two checks of one peer at once, at most staticParallel at a time.
type staticChecker struct {
	dir      string
	id       *Identity
	logf     func(format string, args ...any)
	onChange func(StaticStatus) // may be nil

	mu      sync.Mutex
	loaded  bool
	stamp   fileStamp
	entries []*staticEntry  // in file order
	changed chan struct{}   // closed and replaced when entries or a status change
	wanted  map[string]bool // ids that queued jobs wait for (see want)
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  int64 // modification time, Unix nanoseconds
	size int64
	ok   bool
}

type staticEntry struct {
	status StaticStatus
	next   time.Time // when to check next
	fails  int       // checks in a row that found it down
	busy   bool      // a check runs
	warned string    // the new key last logged for this entry
}

func newStaticChecker(dir string, id *Identity, logf func(string, ...any), onChange func(StaticStatus)) *staticChecker {
	return &staticChecker{dir: dir, id: id, logf: logf, onChange: onChange, changed: make(chan struct{})}
}

// changes returns a channel that is closed at the next change of the
// list or of a status.
func (c *staticChecker) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// notifyLocked wakes the waiters on changes; c.mu must be held.
func (c *staticChecker) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// statuses returns what the checker knows of every static peer, in file
// order; nil when there are none.
func (c *staticChecker) statuses() []StaticStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []StaticStatus
	for _, e := range c.entries {
		out = append(out, e.status)
	}
	return out
}

// run checks the static peers until ctx is done, and waits for the
// checks it started.
func (c *staticChecker) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, staticParallel)
	tick := time.NewTicker(staticReloadEvery)
	defer tick.Stop()
	for {
		c.reload(time.Now())
		for _, d := range c.due(time.Now(), len(slots), cap(slots)) {
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				st := CheckStatic(ctx, c.id, d.peer)
				e := d.entry
				if ctx.Err() == nil && c.done(e, st, time.Now()) && c.onChange != nil {
					c.onChange(st)
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// dueCheck is a check to run: the entry, and the peer it is of.
type dueCheck struct {
	entry *staticEntry
	peer  StaticPeer
}

// want tells the checker the ids that queued jobs wait for: while one of
// them is down, it is checked every staticUpEvery rather than backing off.
func (c *staticChecker) want(ids map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wanted = ids
}

// due marks busy and returns the entries whose check is due, as many as
// free slots of all there are.
func (c *staticChecker) due(now time.Time, used, all int) []dueCheck {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []dueCheck
	for _, e := range c.entries {
		if used+len(out) >= all {
			break
		}
		next := e.next
		if e.status.State == StaticDown && e.status.ID != "" && c.wanted[e.status.ID] && !e.status.Checked.IsZero() {
			if soon := e.status.Checked.Add(staticUpEvery); soon.Before(next) {
				next = soon
			}
		}
		if !e.busy && !now.Before(next) {
			e.busy = true
			out = append(out, dueCheck{e, e.status.Peer()})
		}
	}
	return out
}

// done records a check's outcome and schedules the next: staticUpEvery
// after it answered, doubling from there up to staticDownMax while it
// does not, each give or take a tenth. An entry removed or changed
// meanwhile is left alone. It reports whether the state changed.
func (c *staticChecker) done(e *staticEntry, st StaticStatus, now time.Time) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.busy = false
	if !c.has(e) || e.status.Peer() != st.Peer() {
		return false
	}
	st.Since = e.status.Since
	if changed = st.State != e.status.State || st.SeenID != e.status.SeenID; changed {
		st.Since = now
	}
	e.status = st
	c.notifyLocked()
	wait := staticUpEvery
	if st.State == StaticDown {
		e.fails++
		for i := 1; i < e.fails && wait < staticDownMax; i++ {
			wait *= 2
		}
		wait = min(wait, staticDownMax)
	} else {
		e.fails = 0
	}
	e.next = now.Add(jitter(wait))
	if st.State == StaticKeyChanged && e.warned != st.SeenID && c.logf != nil {
		e.warned = st.SeenID
		c.logf("static peer %s at %s now holds key %s, not %s, the one it was added with: nothing is sent to it; if its owner confirms the new id, accept it with: lanshare peers add --replace %s",
			Escape(st.Peer().Instance()), Escape(st.Addr), GroupID(st.SeenID), GroupID(st.ID), Escape(st.Addr))
	}
	return changed
}

func (c *staticChecker) has(e *staticEntry) bool {
	for _, x := range c.entries {
		if x == e {
			return true
		}
	}
	return false
}

// jitter is d give or take a tenth.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// reload re-reads the static-peers file when it changed. Entries that
// stay (same address, id and name) keep their state and schedule; new
// ones are checked at once, or spread over staticStartSpread on the first
// read. A file that cannot be read is logged once per change, and the
// list read before is kept.
func (c *staticChecker) reload(now time.Time) {
	path := filepath.Join(c.dir, staticFile)
	var stamp fileStamp
	if fi, err := os.Stat(path); err == nil {
		stamp = fileStamp{mod: fi.ModTime().UnixNano(), size: fi.Size(), ok: true}
	}
	c.mu.Lock()
	if c.loaded && stamp == c.stamp {
		c.mu.Unlock()
		return
	}
	first := !c.loaded
	c.loaded, c.stamp = true, stamp
	c.mu.Unlock()

	peers, err := readStatic(path)
	if err != nil {
		if c.logf != nil {
			c.logf("static peers not re-read: %v", err)
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.entries
	c.entries = make([]*staticEntry, 0, len(peers))
	for _, p := range peers {
		if i := indexEntry(old, p); i >= 0 {
			c.entries = append(c.entries, old[i])
			continue
		}
		next := now
		if first && len(peers) > 1 {
			next = now.Add(rand.N(staticStartSpread))
		}
		c.entries = append(c.entries, &staticEntry{status: StaticStatus{Addr: p.Addr, ID: p.ID, Name: p.Name, State: StaticUnknown}, next: next})
	}
	c.notifyLocked()
}

func indexEntry(entries []*staticEntry, p StaticPeer) int {
	for i, e := range entries {
		if e.status.Peer() == p {
			return i
		}
	}
	return -1
}

// startStatic runs the checks of the static peers until the returned
// function is called; that function waits for them.
func (a *Agent) startStatic(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.static.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// StaticPeers returns what the agent knows of its static peers, in the
// order of the static-peers file.
func (a *Agent) StaticPeers() []StaticStatus {
	return a.static.statuses()
}

package peer

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// Defaults of AcceptAsk.
const (
	// DefaultAskTimeout is how long a stranger's offer waits for the
	// owner's answer before it is declined.
	DefaultAskTimeout = 2 * time.Minute
	// DefaultMaxPending is how many offers may wait for the owner at once;
	// pendingPerHost of them from one address.
	DefaultMaxPending = 16
	pendingPerHost    = 4
	// legacyAskTimeout bounds the wait for a sender of protocol 1.0,
	// which is not told that it waits and gives up after its idle
	// timeout (60 s by default).
	legacyAskTimeout = 45 * time.Second
)

// ErrNoPending means no offer waits for the owner under that id (it was
// answered, expired, or its sender went away).
var ErrNoPending = errors.New("no such pending offer")

// PendingOffer is a stranger's offer that waits for the owner's decision
// under Config.Accept AcceptAsk. Field names are stable (`lanshare
// pending --json`).
type PendingOffer struct {
	ID      string    `json:"id"`   // what `lanshare accept` takes
	From    string    `json:"from"` // the sender's display name, from its hello (not authenticated)
	PeerID  string    `json:"peer_id"`
	Remote  string    `json:"remote"`
	Files   int       `json:"files"`
	Dirs    int       `json:"dirs"`
	Bytes   uint64    `json:"bytes"`
	Texts   int       `json:"texts,omitempty"` // a text message offered (1), instead of or with files
	First   []string  `json:"first"`           // the first few paths offered
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
	// Streams counts the files among Files whose size comes only at
	// their end (a pipe); Bytes leaves them out.
	Streams int `json:"streams,omitempty"`
}

// Decision is the owner's answer to a PendingOffer.
type Decision struct {
	Accept bool
	// Trust, with Accept, trusts the sender's key in known_peers (under
	// its display name unless another id has that name).
	Trust  bool
	Reason string // for a decline, told to the sender
}

// pendingOffer is a PendingOffer as the agent keeps it.
type pendingOffer struct {
	PendingOffer
	host    string
	memory  int64
	decided chan Decision // buffered: the first decision wins
}

// consents holds the offers that wait for the owner. Safe for concurrent
// use.
type consents struct {
	max, perHostMax int
	maxMemory       int64

	mu      sync.Mutex
	seq     int
	waiting map[string]*pendingOffer
	perHost map[string]int
	memory  int64
}

func newConsents(max int, maxMemory int64) *consents {
	return &consents{max: max, perHostMax: min(pendingPerHost, max), maxMemory: maxMemory,
		waiting: map[string]*pendingOffer{}, perHost: map[string]int{}}
}

// add registers p, or refuses it (proto.CodeBusy) when the bounds are
// reached.
func (cs *consents) add(p *pendingOffer) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if len(cs.waiting) >= cs.max || cs.perHost[p.host] >= cs.perHostMax || cs.memory+p.memory > cs.maxMemory {
		return &RefusedError{Code: proto.CodeBusy, Reason: "too many offers wait for the receiver's owner; try again later"}
	}
	cs.seq++
	p.ID = strconv.Itoa(cs.seq)
	cs.waiting[p.ID] = p
	cs.perHost[p.host]++
	cs.memory += p.memory
	return nil
}

func (cs *consents) remove(p *pendingOffer) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.waiting[p.ID] != p {
		return
	}
	delete(cs.waiting, p.ID)
	if cs.perHost[p.host]--; cs.perHost[p.host] <= 0 {
		delete(cs.perHost, p.host)
	}
	cs.memory -= p.memory
}

func (cs *consents) list() []PendingOffer {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]PendingOffer, 0, len(cs.waiting))
	for _, p := range cs.waiting {
		out = append(out, p.PendingOffer)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out
}

func (cs *consents) decide(id string, d Decision) (PendingOffer, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	p, ok := cs.waiting[strings.TrimSpace(id)]
	if !ok {
		return PendingOffer{}, fmt.Errorf("%w %s", ErrNoPending, Escape(id))
	}
	if d.Trust && p.PeerID == "" {
		// Nothing names the sender: an old LocalSend app presents no
		// certificate.
		return PendingOffer{}, fmt.Errorf("%w: %s presented no key or certificate to trust; accept it without --trust", ErrCannotTrust, Escape(p.From))
	}
	select {
	case p.decided <- d:
		return p.PendingOffer, nil
	default:
		return PendingOffer{}, fmt.Errorf("%w %s: answered already", ErrNoPending, Escape(id))
	}
}

// Pending returns the offers that wait for the owner now, oldest first.
func (a *Agent) Pending() []PendingOffer { return a.consents.list() }

// Decide answers the pending offer id; the error wraps ErrNoPending when
// none waits under that id.
func (a *Agent) Decide(id string, d Decision) error {
	_, err := a.consents.decide(id, d)
	return err
}

// consent returns the Policy.Consent of a transfer from peerID on c: the
// strangers' budget under AcceptEveryone, the owner's decision under
// AcceptAsk. charge receives the budget's charge to settle when the
// transfer ends.
func (a *Agent) consent(c *agentConn, peerID string, charge **strangerCharge) func(OfferSummary, func(time.Duration) (<-chan struct{}, error)) error {
	switch {
	case a.cfg.Accept == AcceptAsk:
		return func(o OfferSummary, wait func(time.Duration) (<-chan struct{}, error)) error {
			return a.ask(c, peerID, o, wait)
		}
	case a.strangers != nil:
		return func(o OfferSummary, _ func(time.Duration) (<-chan struct{}, error)) error {
			// A refusal is logged with the transfer's outcome (OnTransfer).
			ch, err := a.strangers.take(o.Need, o.Files+o.Dirs+o.Texts)
			var re *RefusedError
			if errors.As(err, &re) {
				return err
			}
			if err != nil && a.cfg.Logf != nil {
				a.cfg.Logf("%v", err)
			}
			*charge = ch
			return nil
		}
	}
	return nil
}

// ask holds a stranger's offer until the owner decides (Decide), the
// offer expires, or the connection is given up.
func (a *Agent) ask(c *agentConn, peerID string, o OfferSummary, wait func(time.Duration) (<-chan struct{}, error)) error {
	timeout := a.cfg.AskTimeout
	if !o.CanWait {
		timeout = min(timeout, legacyAskTimeout)
	}
	now := time.Now()
	p := &pendingOffer{
		PendingOffer: PendingOffer{From: o.From, PeerID: peerID, Remote: c.RemoteAddr().String(),
			Files: o.Files, Dirs: o.Dirs, Bytes: o.Bytes, Texts: o.Texts, Streams: o.Streams, First: o.First, Since: now, Expires: now.Add(timeout)},
		host: c.host, memory: o.Memory, decided: make(chan Decision, 1),
	}
	if err := a.consents.add(p); err != nil {
		return err
	}
	defer a.consents.remove(p)
	// While it waits, the connection is no eviction victim: the bounds
	// above keep waiting strangers from holding every slot or the memory.
	c.pending.Store(true)
	defer c.pending.Store(false)
	gone, err := wait(timeout)
	if err != nil {
		return err
	}
	if a.cfg.OnAsk != nil {
		a.cfg.OnAsk(p.PendingOffer)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var d Decision
	select {
	case d = <-p.decided:
	case <-t.C:
		return &RefusedError{Code: proto.CodeDenied, Reason: "no answer from the receiver's owner within " + timeout.String()}
	case <-c.done:
		return &RefusedError{Code: proto.CodeShuttingDown, Reason: "the receiver gave the connection up"}
	case <-gone:
		return &RefusedError{Code: proto.CodeAborted, Reason: "the sender went away while its offer waited"}
	}
	if !d.Accept {
		reason := "declined by the receiver's owner"
		if r := strings.TrimSpace(d.Reason); r != "" {
			reason += ": " + r
		}
		return &RefusedError{Code: proto.CodeDenied, Reason: reason}
	}
	if d.Trust {
		if err := a.trustSender(peerID, o.From); err != nil && a.cfg.Logf != nil {
			a.cfg.Logf("could not trust %s: %v", ShortID(peerID), err)
		}
	}
	return nil
}

// trustSender trusts peerID in known_peers under name, unless another id
// is known under that name (a name in a hello proves nothing: it must
// not make a stranger pass for a known peer), then without a name.
func (a *Agent) trustSender(peerID, name string) error {
	known, err := LoadKnown(a.cfg.ConfigDir)
	if err != nil {
		return err
	}
	for _, k := range known.ByName(name) {
		if k.ID != peerID {
			name = ""
		}
	}
	if name != "" && checkComponent(name) != nil {
		name = ""
	}
	return known.Trust(peerID, name)
}

// StrangersLeft returns what strangers may still send today and the
// day's budget; ok is false when there is no budget.
func (a *Agent) StrangersLeft() (left, limit uint64, ok bool) {
	if a.strangers == nil {
		return 0, 0, false
	}
	return a.strangers.Left()
}

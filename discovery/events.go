package discovery

import (
	"sync"
	"time"
)

// subscriber queues events for one Subscribe caller. The queue coalesces
// per instance (at most one pending event per peer, merged so the reader
// still sees a consistent story), so it is bounded by the table size and a
// slow reader never loses the latest state nor stalls discovery. A peer is
// keyed as in the table (peerKey).
type subscriber struct {
	mu      sync.Mutex
	order   []string         // instance keys in arrival order; may hold stale keys
	pending map[string]Event // the one pending event per key
	wake    chan struct{}
	quit    chan struct{}
	stopped sync.Once
	out     chan Event
}

func newSubscriber() *subscriber {
	return &subscriber{
		pending: map[string]Event{},
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		out:     make(chan Event),
	}
}

// push queues ev, merging it with a pending event for the same peer:
// up+update = up, up+down = nothing (the reader never saw it), update+down
// = down, down+up = update (the reader knows it; it is back with new data).
func (s *subscriber) push(ev Event) {
	key := peerKey(ev.Peer)
	s.mu.Lock()
	old, ok := s.pending[key]
	switch {
	case !ok:
		s.pending[key] = ev
		s.order = append(s.order, key)
	case old.Kind == PeerUp && ev.Kind == PeerDown:
		delete(s.pending, key)
	case old.Kind == PeerUp:
		s.pending[key] = Event{Kind: PeerUp, Peer: ev.Peer}
	case old.Kind == PeerDown && ev.Kind != PeerDown:
		s.pending[key] = Event{Kind: PeerUpdate, Peer: ev.Peer}
	default:
		s.pending[key] = ev
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) pop() (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.order) > 0 {
		key := s.order[0]
		s.order = s.order[1:]
		if ev, ok := s.pending[key]; ok {
			delete(s.pending, key)
			return ev, true
		}
	}
	s.order = nil
	return Event{}, false
}

// pump delivers queued events until stop; it closes out when it returns.
func (s *subscriber) pump() {
	defer close(s.out)
	for {
		ev, ok := s.pop()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.quit:
				return
			}
		}
		select {
		case s.out <- ev:
		case <-s.quit:
			return
		}
	}
}

func (s *subscriber) stop() { s.stopped.Do(func() { close(s.quit) }) }

// logLimiter passes at most one line per key per interval to logf and says
// how many it held back, so hostile traffic cannot flood the log.
type logLimiter struct {
	logf       func(string, ...any)
	every      time.Duration
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

func newLogLimiter(logf func(string, ...any), every time.Duration) *logLimiter {
	return &logLimiter{logf: logf, every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

func (l *logLimiter) printf(key, format string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		l.suppressed[key]++
		l.mu.Unlock()
		return
	}
	n := l.suppressed[key]
	l.last[key] = now
	l.suppressed[key] = 0
	l.mu.Unlock()
	if n > 0 {
		format += " (%d similar suppressed)"
		args = append(args, n)
	}
	l.logf("discovery: "+format, args...)
}

package discovery

import (
	"context"
	"time"
)

// DefaultBrowseWait is the wait Browse uses when given zero.
const DefaultBrowseWait = time.Second

// browseOffsets are when a one-shot Browse sends its query: twice, so one
// lost packet does not hide a peer.
var browseOffsets = []time.Duration{0, 250 * time.Millisecond}

// Browse looks for peers once without advertising anything (no running
// agent needed) and returns each peer found within wait, sorted by
// instance. It queries the selected interfaces (ifaces as in Config.Ifaces)
// at once, asking for unicast answers (the QU bit), and again after 250ms,
// asking for multicast answers from those that did not answer; if UDP port
// 5353 cannot be shared it queries from an ephemeral port instead
// (responders then answer by unicast). It blocks for wait (or until ctx is
// done, returning what it found with ctx's error).
func Browse(ctx context.Context, ifaces []string, wait time.Duration) ([]Peer, error) {
	return BrowseUntil(ctx, ifaces, wait, nil)
}

// untilEvery is how often BrowseUntil asks its enough function when
// nothing changes.
const untilEvery = 50 * time.Millisecond

// BrowseUntil is Browse that can end early: enough, if not nil, is called
// on the caller's goroutine with the peers found so far and the time since
// the start, whenever the table changes and every 50ms; the browse ends
// as soon as it returns true, else after wait.
func BrowseUntil(ctx context.Context, ifaces []string, wait time.Duration, enough func(peers []Peer, elapsed time.Duration) bool) ([]Peer, error) {
	if wait <= 0 {
		wait = DefaultBrowseWait
	}
	s := newService(Config{Ifaces: ifaces}, false)
	s.browseOffsets = browseOffsets
	defer s.Close()
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if enough == nil {
		if err := s.Run(rctx); err != nil {
			return nil, err
		}
		return s.Peers(), ctx.Err()
	}
	events, stop := s.Subscribe()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(rctx) }() // ends with rctx; waited for below
	start := time.Now()
	tick := time.NewTicker(untilEvery)
	defer tick.Stop()
	for {
		select {
		case <-events:
		case <-tick.C:
		case err := <-errc:
			if err != nil {
				return nil, err
			}
			return s.Peers(), ctx.Err()
		}
		if enough(s.Peers(), time.Since(start)) {
			cancel()
			if err := <-errc; err != nil {
				return nil, err
			}
			return s.Peers(), ctx.Err()
		}
	}
}

// Watch browses continuously without advertising and calls fn, on the
// caller's goroutine, for every peer event, starting with a PeerUp per peer
// found. It blocks until ctx is done and then returns nil, or returns an
// error if browsing cannot start. A slow fn delays later events but loses
// none (see Service.Subscribe).
func Watch(ctx context.Context, ifaces []string, fn func(Event)) error {
	s := newService(Config{Ifaces: ifaces}, false)
	defer s.Close()
	events, stop := s.Subscribe()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	for {
		select {
		case ev := <-events:
			fn(ev)
		case err := <-errc:
			return err
		}
	}
}

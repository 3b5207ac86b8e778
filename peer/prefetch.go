package peer

import (
	"sync/atomic"

	"github.com/lanshare/lanshare/proto"
)

// While the receiver plans its answer to an offer, the sender has nothing
// to do: for 10,000 files, tens of milliseconds. A prefetcher reads and
// hashes the offer's first small files then, so that the stream carries
// them without a system call on the sender. On a machine that both sends
// and receives (loopback) that moves a third of a small-file stream's
// reading out of the time the two sides share the processors.
//
// A file read ahead is read as readWhole reads it, and only if it still
// has the offered size and mtime. When its turn comes, one stat checks
// that it still has them: what it held then is what is sent. A file that
// could not be read ahead, or was removed or changed since, is sent (or
// reported) the common way, as if it had not been read ahead.

const (
	// prefetchMax is the largest file read ahead.
	prefetchMax = 64 << 10
	// prefetchBytes bounds the bytes read ahead, together.
	prefetchBytes = 8 << 20
)

// prefetched is a file read ahead: its bytes and their digest.
type prefetched struct {
	data   []byte
	digest [proto.DigestSize]byte
	ok     bool
}

// prefetcher reads ahead on a goroutine of its own, which wait stops and
// waits for.
type prefetcher struct {
	stop  atomic.Bool
	done  chan struct{}
	files []prefetched // by entry
}

// startPrefetch starts reading ahead the small files of items, in offer
// order, until wait is called or prefetchBytes are read. It returns nil
// when no item is worth it.
func startPrefetch(items []Item) *prefetcher {
	total := 0
	for _, it := range items {
		if prefetchable(it) {
			total += int(it.Entry.Size)
		}
	}
	if total == 0 {
		return nil
	}
	p := &prefetcher{done: make(chan struct{}), files: make([]prefetched, len(items))}
	go p.run(items, make([]byte, min(total, prefetchBytes))) // owned by p: wait waits for it
	return p
}

// prefetchable reports whether it may be read ahead: a file of at most
// prefetchMax bytes read from a path.
func prefetchable(it Item) bool {
	return it.Entry.Kind == proto.KindFile && it.Source != "" && it.Stream == nil && it.Entry.Size <= prefetchMax
}

func (p *prefetcher) run(items []Item, arena []byte) {
	defer close(p.done)
	h := proto.NewDigest()
	for i, it := range items {
		if p.stop.Load() {
			return
		}
		if !prefetchable(it) {
			continue
		}
		n := int(it.Entry.Size)
		if n > len(arena) {
			return
		}
		b := arena[:n:n]
		if !readWhole(it, b) {
			continue
		}
		arena = arena[n:]
		h.Reset()
		h.Write(b)
		f := &p.files[i]
		copy(f.digest[:], h.Sum(nil))
		f.data, f.ok = b, true
	}
}

// wait stops the reading ahead and returns, by entry, the files read. It
// is safe on a nil prefetcher (nothing read) and more than once.
func (p *prefetcher) wait() []prefetched {
	if p == nil {
		return nil
	}
	p.stop.Store(true)
	<-p.done
	return p.files
}

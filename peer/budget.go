package peer

import (
	"fmt"
	"sync"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// DefaultMemoryBudget is the memory that the offers of all connections,
// and the per-entry state of their transfers, may take at once. With the
// sinks' buffers (maxSinkChunks, 64 MiB) and each connection's own
// (about 0.6 MiB, for MaxConns plus the trusted reserve: 72 by default)
// it keeps the agent's heap under 512 MiB whatever senders offer.
const DefaultMemoryBudget = 320 << 20

// MemoryLimit is the soft memory limit for the Go runtime that `lanshare
// serve` sets (runtime/debug.SetMemoryLimit) unless GOMEMLIMIT is set.
// The budget bounds what offers keep live; without a limit the garbage
// collector lets the heap grow to about twice the live data before it
// collects, which took a real agent to 468 MiB of RSS under 72 strangers'
// offers (lanshare-bench scenario 7), with this limit to well under
// 512 MiB.
const MemoryLimit = 384 << 20

// transferEntryCost is what a transfer holds per offered entry besides
// the decoded offer, an upper bound: its answer reply, result, key,
// offsets and flags, the reasons of refused entries, and the encoded
// answer and receipt.
const transferEntryCost = 512

// offerCharge is the memory charged to a transfer for an offer of
// payloadLen bytes and entries entries: the payload, held once but read
// while the strings derived from its paths (saved-as names, reasons) may
// take as much again, plus the decoded entries and the transfer's
// per-entry state.
func offerCharge(payloadLen, entries int) int64 {
	return 2*int64(payloadLen) + int64(entries)*int64(proto.OfferEntryCost+transferEntryCost)
}

// pressureEvery is how often an offer that waits for memory asks again
// for an eviction.
const pressureEvery = 250 * time.Millisecond

// memBudget is a counting semaphore over bytes, shared by every
// connection: a transfer takes its offer's charge from it before the
// offer is allocated, and gives it back when the transfer ends.
type memBudget struct {
	mu     sync.Mutex
	limit  int64
	used   int64
	owners map[<-chan struct{}]int64 // charge per holder, by its Policy.Done
	freed  chan struct{}             // closed and replaced whenever bytes are given back
	// pressure, if set, is called (without mu) while an acquire waits: at
	// first, whenever bytes came free but not enough, and every
	// pressureEvery. The agent evicts a stranger's connection that holds
	// a share.
	pressure func()
}

func newMemBudget(limit int64) *memBudget {
	return &memBudget{limit: limit, owners: map[<-chan struct{}]int64{}, freed: make(chan struct{})}
}

// acquire takes n bytes for owner (a transfer's Policy.Done; nil for
// none), waiting for them until deadline or until done is closed. It
// fails with a *RefusedError: CodeTooLarge when n is more than the whole
// budget, CodeBusy when the bytes did not come free in time.
func (b *memBudget) acquire(n int64, owner, done <-chan struct{}, deadline time.Time) error {
	if n > b.limit {
		return &RefusedError{Code: proto.CodeTooLarge,
			Reason: fmt.Sprintf("offer needs %s of memory, over this receiver's budget of %s", FormatBytes(uint64(n)), FormatBytes(uint64(b.limit)))}
	}
	var timer *time.Timer
	retry := time.NewTicker(pressureEvery)
	defer func() {
		retry.Stop()
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			if owner != nil {
				b.owners[owner] += n
			}
			b.mu.Unlock()
			return nil
		}
		freed, pressure := b.freed, b.pressure
		b.mu.Unlock()
		if pressure != nil {
			pressure()
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case <-freed:
		case <-retry.C: // a holder may have become evictable
		case <-timer.C:
			return &RefusedError{Code: proto.CodeBusy, Reason: "receiver busy: too many large offers at once; try again later"}
		case <-done:
			return &RefusedError{Code: proto.CodeShuttingDown, Reason: "the receiver gave the connection up"}
		}
	}
}

// release gives back n bytes that owner took with acquire.
func (b *memBudget) release(n int64, owner <-chan struct{}) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if owner != nil {
		if b.owners[owner] -= n; b.owners[owner] <= 0 {
			delete(b.owners, owner)
		}
	}
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// held returns the bytes owner holds now.
func (b *memBudget) held(owner <-chan struct{}) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.owners[owner]
}

// inUse returns the bytes taken now.
func (b *memBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

package peer

import (
	"os"
	"runtime"
	"sync"
)

// A large file keeps each side of a transfer in system calls most of the
// time: the receiver's writers wait in direct writes of a MiB (which
// ext4 serializes and completes before returning when they extend the
// file), the sender's goroutines in reads of the source and writes of a
// MiB of records to the socket, while their other goroutines decrypt,
// encrypt and hash. With as many Ps as cores (GOMAXPROCS) and every P
// busy or in a system call, Go's monitor thread takes the P of every
// call that lasts more than its tick (20 µs) and hands it to another
// thread, and each time it does, it goes back to waking every 20 µs for
// the next millisecond or more: measured on 2 cores, 16,000 wake-ups per
// GiB on each side, a tenth of each side's CPU in context switches,
// more on a virtual machine where they are dear. One P more than the
// cores lets a goroutine wait in its call while the others run on the
// spare P, so the monitor rarely takes a P and sleeps long: 10% less wall
// time for a 1 GiB file over loopback on 2 cores (1.76 s against 1.95 s,
// interleaved runs), with fewer context switches on both sides.
//
// So while a large file streams (a receiver's direct sink, a sender's
// pipelined file), the process runs on one P more than it had. The
// headroom is process-wide, counted over every such file, and given back
// when the last one ends; GOMAXPROCS set in the environment is obeyed as
// it is.

// headroom counts the streams that want a spare P.
type headroom struct {
	mu     sync.Mutex
	off    bool // the user set GOMAXPROCS
	n      int  // streams holding the spare P
	raised int  // GOMAXPROCS that the first stream set, 0 while n is 0
}

// spareP is the process's headroom.
var spareP = &headroom{off: os.Getenv("GOMAXPROCS") != ""}

// hold adds a P for a stream, if it is the first, and returns the
// function, safe to call once only, that gives it back when the last
// ends.
func (h *headroom) hold() (release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.off {
		return func() {}
	}
	if h.n == 0 {
		h.raised = runtime.GOMAXPROCS(0) + 1
		runtime.GOMAXPROCS(h.raised)
	}
	h.n++
	return h.release
}

func (h *headroom) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n--
	if h.n > 0 {
		return
	}
	// Give the P back unless someone else (the agents' governor, see
	// procs.go) set GOMAXPROCS meanwhile: theirs stands.
	if runtime.GOMAXPROCS(0) == h.raised {
		runtime.GOMAXPROCS(h.raised - 1)
	}
	h.raised = 0
}

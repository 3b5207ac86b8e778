package peer

import (
	"os"
	"runtime"
	"sync"
	"time"
)

// An agent spends most of its life idle, woken by discovery's packets.
// Go's scheduler, with several Ps (GOMAXPROCS), meets each wake-up by
// waking a second thread to look for work and by waking its monitor
// thread, which costs more than the packet. At start-up on a busy LAN
// that is most of an agent's CPU: in the lab, 100 agents starting within
// 3 s on 2 cores used 25 CPU-seconds until every table was full, and
// took 6.1 s after the last start; on one P each, 17.6 CPU-seconds and
// 3.5 s.
//
// So from an agent's start, and after no agent of the process has had a
// connection open or a job in flight for idleProcsAfter, the process
// runs on one P; the first connection or job gives back the Ps it
// started with. A transfer keeps
// every core it can use (hashing, decryption and disk writes run on
// goroutines of their own). GOMAXPROCS set in the environment is obeyed
// as it is: the governor leaves it alone.

// idleProcsAfter is how long the agents must be idle before the process
// goes down to one P: changing GOMAXPROCS stops the world for a moment,
// so connections that come and go in a burst do not flip it each time.
const idleProcsAfter = time.Second

// procGovernor sets GOMAXPROCS for the agents of the process. It is
// process-wide, as GOMAXPROCS is: several agents (in tests) share it.
type procGovernor struct {
	mu     sync.Mutex
	full   int           // GOMAXPROCS when the governor was made
	after  time.Duration // idleProcsAfter, or shorter in tests
	off    bool          // the user set GOMAXPROCS, or there is one P anyway
	agents int           // agents serving
	busy   int           // connections and jobs in flight, over every agent
	low    bool          // the process runs on one P
	timer  *time.Timer
	gen    uint64 // counts idle periods: a stale timer lowers nothing
}

// procs is the process's governor.
var procs = newProcGovernor(runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS") != "")

func newProcGovernor(full int, userSet bool) *procGovernor {
	return &procGovernor{full: full, off: userSet || full <= 1, after: idleProcsAfter}
}

// serving counts an agent that starts serving, and goes down to one P
// at once if nothing is in flight: the start is when an agent hears from
// every other on the LAN. The returned function, to be called once,
// counts it out.
func (g *procGovernor) serving() (done func()) {
	g.mu.Lock()
	g.agents++
	if !g.off && g.busy == 0 {
		g.lowerLocked()
	}
	g.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { g.add(&g.agents, -1) }) }
}

// hold counts a connection or job in flight; release counts it out.
func (g *procGovernor) hold()    { g.add(&g.busy, 1) }
func (g *procGovernor) release() { g.add(&g.busy, -1) }

func (g *procGovernor) add(n *int, d int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	*n += d
	if g.off {
		return
	}
	if g.agents <= 0 || g.busy > 0 {
		g.gen++
		if g.timer != nil {
			g.timer.Stop()
			g.timer = nil
		}
		if g.low {
			g.low = false
			runtime.GOMAXPROCS(g.full)
		}
		return
	}
	if !g.low && g.timer == nil {
		gen := g.gen
		g.timer = time.AfterFunc(g.after, func() { g.lower(gen) })
	}
}

// lower goes down to one P if the agents are still in the idle period
// gen.
func (g *procGovernor) lower(gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gen == g.gen && !g.off && g.agents > 0 && g.busy == 0 {
		g.lowerLocked()
	}
}

func (g *procGovernor) lowerLocked() {
	g.gen++
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
	if !g.low {
		g.low = true
		runtime.GOMAXPROCS(1)
	}
}

package peer

import (
	"runtime"
	"testing"
	"time"
)

// TestProcGovernor checks that the agents' process goes down to one P
// once every agent has been idle for a while, back up to all its Ps at
// the first connection (at once, before the connection is served), and
// back to them when the last agent stops; and that GOMAXPROCS set by the
// user is left alone.
func TestProcGovernor(t *testing.T) {
	start := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(start) })
	const full = 4
	runtime.GOMAXPROCS(full)
	g := newProcGovernor(full, false)
	g.after = 10 * time.Millisecond
	waitProcs := func(want int, why string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); runtime.GOMAXPROCS(0) != want; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GOMAXPROCS is %d, want %d", why, runtime.GOMAXPROCS(0), want)
			}
			time.Sleep(time.Millisecond) // polling the scheduler's state
		}
	}
	done := g.serving()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("an agent that starts serving left GOMAXPROCS at %d, want 1", got)
	}
	g.hold()
	if got := runtime.GOMAXPROCS(0); got != full {
		t.Fatalf("a connection left GOMAXPROCS at %d, want %d", got, full)
	}
	done2 := g.serving() // a second agent, idle
	g.release()
	waitProcs(1, "two idle agents")
	done()
	done() // counted out once
	g.hold()
	g.release()
	waitProcs(1, "the other agent, idle again")
	done2()
	if got := runtime.GOMAXPROCS(0); got != full {
		t.Fatalf("with no agent left, GOMAXPROCS is %d, want %d", got, full)
	}
	if g.agents != 0 || g.busy != 0 {
		t.Fatalf("counted %d agents and %d in flight after all ended", g.agents, g.busy)
	}

	user := newProcGovernor(full, true)
	defer user.serving()()
	if user.timer != nil || user.low || runtime.GOMAXPROCS(0) != full {
		t.Fatalf("GOMAXPROCS set by the user is governed: %d, lowering planned %v", runtime.GOMAXPROCS(0), user.timer != nil)
	}
}

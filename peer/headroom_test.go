package peer

import (
	"runtime"
	"testing"
)

// TestHeadroom: the first stream adds a P, the last gives it back; a
// GOMAXPROCS set meanwhile by someone else stands; and one set by the
// user is left alone.
func TestHeadroom(t *testing.T) {
	start := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(start) })
	runtime.GOMAXPROCS(2)
	h := &headroom{}
	one := h.hold()
	two := h.hold()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("two streams: GOMAXPROCS %d, want 3", got)
	}
	one()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("one stream left: GOMAXPROCS %d, want 3", got)
	}
	two()
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("no stream left: GOMAXPROCS %d, want 2", got)
	}

	three := h.hold()
	runtime.GOMAXPROCS(1) // the agents' governor, say
	three()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS set during a stream became %d, want it left at 1", got)
	}

	user := &headroom{off: true}
	user.hold()()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS set by the user became %d, want 1", got)
	}
}

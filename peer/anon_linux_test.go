package peer

import "testing"

// setEmptyPathDenied makes linkAnon name files by their /proc link until
// the test ends.
func setEmptyPathDenied(t *testing.T) {
	was := emptyPathDenied.Load()
	emptyPathDenied.Store(true)
	t.Cleanup(func() { emptyPathDenied.Store(was) })
}

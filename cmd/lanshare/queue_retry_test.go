package main

import (
	"slices"
	"strings"
	"testing"
)

// TestQueueRetryCommand: `queue retry` is offered by completion next to
// cancel, has its help, and takes exactly one id (a usage error, exit 2,
// otherwise); without a running agent it fails in one line.
func TestQueueRetryCommand(t *testing.T) {
	t.Parallel()
	if got := complete(t, "queue"); !slices.Contains(got, "cancel") || !slices.Contains(got, "retry") {
		t.Errorf("completion after queue = %q, want cancel and retry", got)
	}
	tmp := t.TempDir()
	r := runLanshare(t, tmp, nil, "queue", "retry", "--help")
	for _, want := range []string{"lanshare queue retry [command options] ID", "back to waiting", "source", "consent"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("queue retry --help: exit %d, lacks %q:\n%s", r.code, want, r.stdout)
		}
	}
	if r := runLanshare(t, tmp, nil, "queue", "--help"); !strings.Contains(r.stdout, "lanshare queue retry 3f2a9c") {
		t.Errorf("queue --help does not show retry:\n%s", r.stdout)
	}
	for _, args := range [][]string{{"queue", "retry"}, {"queue", "retry", "a", "b"}} {
		r := runLanshare(t, tmp, nil, args...)
		if r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, r.code, exitUsage)
		}
		checkErrorLine(t, r.stderr, "queue retry takes one job id")
	}
	r = runLanshare(t, tmp, nil, "queue", "bogus")
	checkErrorLine(t, r.stderr, "its commands: cancel, retry")
	r = runLanshare(t, tmp, nil, "queue", "retry", "3f2a9c")
	if r.code != 1 {
		t.Errorf("queue retry without an agent: exit %d, want 1", r.code)
	}
	checkErrorLine(t, r.stderr, "no agent")
}

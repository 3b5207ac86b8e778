package main

import (
	"strings"
	"testing"
	"time"
)

// TestHTTPSURL: a server's address as a device can use it: a listen on
// every address ([::], 0.0.0.0) is shown with this machine's LAN address
// (it was printed as https://[::]:53317), a specific one as it is.
func TestHTTPSURL(t *testing.T) {
	if got := httpsURL("127.0.0.1:53317"); got != "https://127.0.0.1:53317" {
		t.Errorf("httpsURL(127.0.0.1:53317) = %q", got)
	}
	for _, addr := range []string{"[::]:53317", "0.0.0.0:53317"} {
		got := httpsURL(addr)
		if !strings.HasPrefix(got, "https://") || !strings.HasSuffix(got, ":53317") || strings.Contains(got, "[::]") || strings.Contains(got, "0.0.0.0") {
			t.Errorf("httpsURL(%s) = %q, want this machine's address", addr, got)
		}
	}
}

// TestCheckedAgo: peers tells how old the agent's check of a static peer
// is (a key changed since shows only at the next check).
func TestCheckedAgo(t *testing.T) {
	now := time.Now()
	if got := checkedAgo(time.Time{}, now); got != "" {
		t.Errorf("no check: %q", got)
	}
	if got := checkedAgo(now.Add(-300*time.Millisecond), now); got != "" {
		t.Errorf("a check just made: %q", got)
	}
	if got := checkedAgo(now.Add(-20*time.Second), now); got != ", checked 20.0 s ago" {
		t.Errorf("20 s ago: %q", got)
	}
}

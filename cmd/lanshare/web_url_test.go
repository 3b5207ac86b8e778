package main

import (
	"strings"
	"testing"
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

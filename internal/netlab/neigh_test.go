//go:build linux

package netlab

import (
	"strings"
	"testing"
)

// TestPinNeighbours: after PinNeighbours each host holds a permanent
// entry for each address of every other host on its segment, with that
// host's MAC, and unicast between hosts still arrives.
func TestPinNeighbours(t *testing.T) {
	lab := New(t, 3)
	lab.PinNeighbours()
	h0, h1 := lab.Host(0), lab.Host(1)
	mac1, err := macOf(h1.NS, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	out := h0.IP("neigh", "show", "dev", "eth0", "nud", "permanent")
	for _, want := range []string{"10.77.0.2 lladdr " + mac1, "fe80::77:0:2 lladdr " + mac1, "fd77::2 lladdr " + mac1, "10.77.0.3 ", "fe80::77:0:3 ", "fd77::3 "} {
		if !strings.Contains(out, want) {
			t.Errorf("host 0's permanent neighbours lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "10.77.0.1 ") {
		t.Errorf("host 0 has a neighbour entry for itself:\n%s", out)
	}
	_, lines := child(t, h1, "listen", h1.Addr().String()+":7777")
	expectLine(t, lines, "ready")
	child(t, h0, "send", h1.Addr().String()+":7777")
	if l := expectLine(t, lines, "got"); l != "got hello from 10.77.0.1" {
		t.Fatalf("listener printed %q", l)
	}
}

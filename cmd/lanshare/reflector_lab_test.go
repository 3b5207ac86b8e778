package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanshare/lanshare/internal/netlab"
)

// TestLabAcrossReflector: two segments joined by a router that forwards
// IP and runs avahi's reflector (enable-reflector=yes), as home and
// office routers join VLANs. The reflector repeats each segment's mDNS on
// the other from its own address there, so what arrives is on-link by
// source and IP TTL while the records name addresses of the other
// segment; and it answers questions from its cache with the asked records
// alone, so SRV, TXT and addresses must be asked for. Agents on either
// side list each other with the other segment's addresses, a one-shot
// `peers` from a host without an agent lists both, and send by name
// (from the agent's table) works both ways, routed through the router.
func TestLabAcrossReflector(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 1)
	seg1 := lab.AddSegment()
	router := lab.AddHost()
	lab.Attach(router, 0)
	lab.Attach(router, seg1)
	eastHost := lab.AddHost()
	lab.Attach(eastHost, seg1)
	observer := lab.AddHost()
	lab.Attach(observer, seg1)
	for _, h := range []*netlab.Host{eastHost, observer} {
		h.RouteVia(router, 0)
	}
	lab.Host(0).RouteVia(router, seg1)
	netlab.StartAvahiReflector(t, router, "router")

	west := launchAgent(t, lab.Host(0), "west")
	east := launchAgent(t, eastHost, "east")
	west.ready(t)
	east.ready(t)
	waitPeerUp(t, west, east)
	waitPeerUp(t, east, west)
	// The observer looks right after the agents' start-up announcements,
	// which avahi has just reflected onto its segment: avahi then answers
	// no query for those records for 500 ms (its response history, RFC
	// 6762 §6), so both of a one-shot look's queries (at 0 and 250 ms)
	// can go unanswered and west shows up only with its next
	// announcement, about 1 s in. A person does not look that soon after
	// a start; the test waits 2 s rather than depend on which comes first.
	checkListed(t, peersOn(t, observer, "--wait", "2s"), []*labAgent{west, east}, nil)

	for _, c := range []struct{ from, to *labAgent }{{west, east}, {east, west}} {
		base := "from-" + c.from.name + ".bin"
		src := filepath.Join(t.TempDir(), base)
		data := randomFile(t, src, 64<<10)
		r := runLanshareOn(t, c.from.host.CommandContext, c.from.tmp, nil, "send", "--config", c.from.config, "--name", c.from.name, c.to.name, src)
		if r.code != 0 {
			t.Fatalf("send %s %s on %s across the router: exit %d; stderr:\n%s", c.to.name, src, c.from.name, r.code, r.stderr)
		}
		got, err := os.ReadFile(filepath.Join(c.to.dir, base))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s's copy of %s: %d bytes (%v), want the %d sent", c.to.name, base, len(got), err, len(data))
		}
	}
}

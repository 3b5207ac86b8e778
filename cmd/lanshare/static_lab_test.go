package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// staticListed is one entry of `peers --json` with the fields of static
// peers, spelled out as scripts rely on them.
type staticListed struct {
	Instance string   `json:"instance"`
	Name     string   `json:"name"`
	ID       string   `json:"id"`
	Addrs    []string `json:"addrs"`
	Sendable bool     `json:"sendable"`
	Static   bool     `json:"static"`
	State    string   `json:"state"`
	SeenID   string   `json:"seen_id"`
}

// staticPeersOn runs `lanshare peers --json args...` on h and returns the
// list, failing the test unless it exits 0 with a JSON array.
func staticPeersOn(t testing.TB, h *netlab.Host, args ...string) []staticListed {
	t.Helper()
	r := runLanshareOn(t, h.CommandContext, t.TempDir(), nil, append([]string{"peers", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("lanshare peers --json %q on %s: exit %d; stderr:\n%s", args, h.NS, r.code, r.stderr)
	}
	var list []staticListed
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("lanshare peers --json %q: %v; stdout:\n%s", args, err, r.stdout)
	}
	return list
}

// TestLabStaticPeerAcrossRouter: two agents on two segments joined by a
// plain IP router, with no mDNS reflector: discovery does not cross, so
// west names east by address (`peers add`). The add pins east's key; the
// running agent checks east and logs it up; `peers` lists it as static
// and up; `send east` reaches it through the router and the file arrives
// whole (and send completes the name). Then east is reinstalled (a new key at the same address): the
// agent logs the changed key, `peers` shows it, and a send by name is
// refused with exit 6 and the way to accept the new key, with nothing
// sent.
func TestLabStaticPeerAcrossRouter(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 1)
	seg1 := lab.AddSegment()
	router := lab.AddHost()
	lab.Attach(router, 0)
	lab.Attach(router, seg1)
	eastHost := lab.AddHost()
	lab.Attach(eastHost, seg1)
	eastHost.RouteVia(router, 0)
	lab.Host(0).RouteVia(router, seg1)
	if out, err := router.Command("sysctl", "-q", "-w", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("router: enabling IPv4 forwarding: %v: %s", err, out)
	}

	west := launchAgent(t, lab.Host(0), "west")
	east := launchAgent(t, eastHost, "east")
	west.ready(t)
	east.ready(t)
	// No multicast crosses the router: a look from west's segment finds
	// west alone.
	if got := instances(peersOn(t, west.host)); !slices.Equal(got, []string{west.instance}) {
		t.Fatalf("a look on west's segment lists %q; want west alone (the segments must not share multicast)", got)
	}

	on := func(a *labAgent, args ...string) runResult {
		t.Helper()
		return runLanshareOn(t, a.host.CommandContext, a.tmp, nil, args...)
	}
	r := on(west, "peers", "add", east.addr.String(), "--config", west.config, "--name", "west")
	if r.code != 0 || !strings.Contains(r.stdout, "added "+east.instance+" at "+east.addr.String()) || !strings.Contains(r.stdout, peer.GroupID(east.id)) {
		t.Fatalf("peers add %s: exit %d\nstdout:\n%s\nstderr:\n%s", east.addr, r.code, r.stdout, r.stderr)
	}
	west.out.waitFor(t, "west's \"static peer up\" line for east", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool {
			return strings.Contains(l, " static peer up: "+east.instance+" at "+east.addr.String())
		})
	})
	list := staticPeersOn(t, west.host, "--config", west.config)
	i := slices.IndexFunc(list, func(p staticListed) bool { return p.Instance == east.instance })
	if i < 0 {
		t.Fatalf("peers on west does not list east: %+v", list)
	}
	if p := list[i]; !p.Static || p.State != peer.StaticUp || p.ID != east.id || p.Name != "east" || !p.Sendable || !slices.Contains(p.Addrs, east.addr.String()) {
		t.Errorf("east listed as %+v; want static, up, sendable, with its id and address %s", p, east.addr)
	}

	r = on(west, "status", "--config", west.config)
	if want := "  " + east.instance + " at " + east.addr.String() + ": up"; r.code != 0 || !strings.Contains(r.stdout, "\n"+want+"\n") {
		t.Errorf("status on west: exit %d, lacks %q:\n%s", r.code, want, r.stdout)
	}
	// send completes its target to the static peer's name.
	if got := completeOn(t, west.host.CommandContext, "send", "--config", west.config); !slices.Equal(got, []string{"east"}) {
		t.Errorf("send <TAB> on west completes to %q, want the static peer east", got)
	}

	src := filepath.Join(t.TempDir(), "across.bin")
	data := randomFile(t, src, 256<<10)
	r = on(west, "send", "--config", west.config, "--name", "west", "east", src)
	if r.code != 0 {
		t.Fatalf("send east (a static peer) across the router: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	got, err := os.ReadFile(filepath.Join(east.dir, "across.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("east's copy: %d bytes (%v), want the %d sent", len(got), err, len(data))
	}

	// East is reinstalled: a new key at the same address.
	east.stopClean(t)
	east2 := launchAgent(t, eastHost, "east", "--listen", fmt.Sprintf(":%d", east.port))
	east2.ready(t)
	if east2.id == east.id || east2.port != east.port {
		t.Fatalf("the new east has id %s port %d; want a new id on port %d", east2.id, east2.port, east.port)
	}
	for _, target := range []string{"east", east.addr.String()} {
		r = on(west, "send", "--config", west.config, "--name", "west", target, src)
		if r.code != exitUntrusted {
			t.Errorf("send %s to the reinstalled east: exit %d, want %d; stderr:\n%s", target, r.code, exitUntrusted, r.stderr)
		}
		checkErrorLine(t, r.stderr, "refusing to send to "+east.instance, "not the one it was added with", "lanshare peers add --replace "+east.addr.String())
	}
	if entries, _ := os.ReadDir(east2.dir); slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == "across.bin" }) {
		t.Errorf("the reinstalled east received the file")
	}
	// `peers static` checks now: east's key changed.
	r = on(west, "peers", "static", "--json", "--config", west.config)
	var statics []peer.StaticStatus
	if err := json.Unmarshal([]byte(r.stdout), &statics); r.code != 0 || err != nil {
		t.Fatalf("peers static --json: exit %d, %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
	}
	if len(statics) != 1 || statics[0].State != peer.StaticKeyChanged || statics[0].ID != east.id || statics[0].SeenID != east2.id {
		t.Errorf("peers static lists %+v; want east at %s, key-changed, seen id %s", statics, east.addr, east2.id)
	}
	// Once its owner confirms the new id, --replace accepts it.
	r = on(west, "peers", "add", "--replace", east.addr.String(), "--config", west.config, "--name", "west")
	if r.code != 0 || !strings.Contains(r.stdout, peer.GroupID(east2.id)) {
		t.Fatalf("peers add --replace: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = on(west, "send", "--config", west.config, "--name", "west", "east", src)
	if r.code != 0 {
		t.Fatalf("send east after --replace: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(east2.dir, "across.bin")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the new east's copy: %d bytes (%v)", len(got), err)
	}
}

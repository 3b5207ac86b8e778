package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
)

func goldenPeers() (peers []discovery.Peer, selfID string) {
	alice := strings.Repeat("a", peer.IDLen)
	bob := "3fa2" + strings.Repeat("b", peer.IDLen-4)
	mk := func(name, id, version string, addrs ...string) discovery.Peer {
		p := discovery.Peer{Instance: name, Name: name, ID: id, Version: version, Host: "h.local", Port: 52741}
		if id != "" {
			p.Instance = discovery.InstanceName(name, id)
		}
		for _, a := range addrs {
			p.Addrs = append(p.Addrs, netip.MustParseAddrPort(a))
		}
		return p
	}
	return []discovery.Peer{
		mk("alice", alice, peer.ProtocolVersion, "192.168.1.12:52741"),
		mk("bob", bob, peer.ProtocolVersion, "192.168.1.20:52741", "[fe80::1%eth0]:52741"),
		mk("evil\x1b[2J", strings.Repeat("c", peer.IDLen), "2.0", "192.168.1.66:52741"),
		mk("plain thing", "", "", "192.168.1.30:4242"),
		impostor(bob),
	}, alice
}

// impostor is a record that takes bob's instance label over its own name
// and id: label "bob (3fa2)", TXT name mallory, id mmmm...
func impostor(bobID string) discovery.Peer {
	return discovery.Peer{Instance: discovery.InstanceName("bob", bobID), Name: "mallory", ID: strings.Repeat("m", peer.IDLen),
		Version: peer.ProtocolVersion, Host: "m.local", Port: 52741, Addrs: []netip.AddrPort{netip.MustParseAddrPort("192.168.1.66:52741")}}
}

// TestPeersTableGolden pins the table `lanshare peers` prints: escaped
// names, short ids, the own agent and unsendable records marked.
func TestPeersTableGolden(t *testing.T) {
	peers, self := goldenPeers()
	var b bytes.Buffer
	if err := renderPeers(&b, peers, self, false, time.Second); err != nil {
		t.Fatal(err)
	}
	want := `NAME                  ID         ADDRESSES                                VERSION
alice (aaaa)          aaaa-aaaa  192.168.1.12:52741                       1.2  (this device)
bob (3fa2)            3fa2-bbbb  192.168.1.20:52741 [fe80::1%eth0]:52741  1.2
"evil\x1b[2J (cccc)"  cccc-cccc  192.168.1.66:52741                       2.0  (cannot receive from us)
plain thing           -          192.168.1.30:4242                        -    (cannot receive from us)
bob (3fa2)            mmmm-mmmm  192.168.1.66:52741                       1.2  (suspicious label: its name and id make mallory (mmmm))
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	if err := renderPeers(&b, nil, self, false, 300*time.Millisecond); err != nil || b.String() != "no peers found within 300ms\n" {
		t.Errorf("empty table: %q, %v", b.String(), err)
	}
}

// TestPeersJSONGolden pins the JSON fields of `lanshare peers --json`.
func TestPeersJSONGolden(t *testing.T) {
	peers, self := goldenPeers()
	var b bytes.Buffer
	if err := renderPeers(&b, peers[3:5], self, true, time.Second); err != nil {
		t.Fatal(err)
	}
	want := `[
  {
    "name": "plain thing",
    "instance": "plain thing",
    "id": "",
    "addrs": [
      "192.168.1.30:4242"
    ],
    "version": "",
    "host": "h.local",
    "self": false,
    "sendable": false,
    "suspicious": false,
    "static": false,
    "kind": "lanshare"
  },
  {
    "name": "mallory",
    "instance": "bob (3fa2)",
    "id": "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm",
    "addrs": [
      "192.168.1.66:52741"
    ],
    "version": "1.2",
    "host": "m.local",
    "self": false,
    "sendable": true,
    "suspicious": true,
    "static": false,
    "kind": "lanshare"
  }
]
`
	if got := b.String(); got != want {
		t.Errorf("json:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	if err := renderPeers(&b, nil, self, true, time.Second); err != nil || b.String() != "[]\n" {
		t.Errorf("empty json: %q, %v", b.String(), err)
	}
}

// TestPeersListsLocalSendDevices: LocalSend devices are listed as such,
// one row per device (its IPv4 and IPv6 addresses together), plain-HTTP
// ones marked unauthenticated, lanshare agents' own LocalSend side left
// out (they are listed as lanshare peers), and names escaped.
func TestPeersListsLocalSendDevices(t *testing.T) {
	fp := strings.Repeat("AB", 32)
	devs := []discovery.LocalSendDevice{
		{Alias: "Pixel 9", Version: "2.2", DeviceModel: "Google", DeviceType: discovery.LocalSendMobile, Fingerprint: fp,
			Addr: netip.MustParseAddrPort("10.77.0.9:53317"), Protocol: discovery.LocalSendHTTPS},
		{Alias: "Pixel 9", Version: "2.2", DeviceModel: "Google", DeviceType: discovery.LocalSendMobile, Fingerprint: fp,
			Addr: netip.MustParseAddrPort("[fd00::9]:53317"), Protocol: discovery.LocalSendHTTPS},
		{Alias: "old\x1b[2Jphone", Version: "2.1", DeviceType: discovery.LocalSendDesktop, Fingerprint: "random-string",
			Addr: netip.MustParseAddrPort("10.77.0.8:53317"), Protocol: discovery.LocalSendHTTP},
		{Alias: "bob", Version: "2.2", DeviceModel: peer.LocalSendModel, DeviceType: discovery.LocalSendHeadless, Fingerprint: strings.Repeat("CD", 32),
			Addr: netip.MustParseAddrPort("10.77.0.2:53317"), Protocol: discovery.LocalSendHTTPS},
	}
	var b bytes.Buffer
	if err := renderListing(&b, nil, nil, devs, "", false, time.Second); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "bob") {
		t.Errorf("a lanshare agent's LocalSend side is listed:\n%s", out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("an alias reached the terminal raw:\n%q", out)
	}
	if n := strings.Count(out, "Pixel 9"); n != 1 {
		t.Errorf("Pixel 9 listed %d times, want once with both addresses:\n%s", n, out)
	}
	for _, want := range []string{"ls-abab-abab", "10.77.0.9:53317 [fd00::9]:53317", "(LocalSend mobile, Google)", "plain HTTP: not authenticated", "LocalSend 2.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := renderListing(&b, nil, nil, devs, "", true, time.Second); err != nil {
		t.Fatal(err)
	}
	var got []peerJSON
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != "localsend" || got[0].ID != "ls-"+strings.ToLower(fp) || got[0].Protocol != "https" || len(got[0].Addrs) != 2 || got[1].ID != "" || got[1].Protocol != "http" {
		t.Errorf("--json: %+v", got)
	}
}

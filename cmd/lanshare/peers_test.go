package main

import (
	"bytes"
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
alice (aaaa)          aaaa-aaaa  192.168.1.12:52741                       1.1  (this device)
bob (3fa2)            3fa2-bbbb  192.168.1.20:52741 [fe80::1%eth0]:52741  1.1
"evil\x1b[2J (cccc)"  cccc-cccc  192.168.1.66:52741                       2.0  (cannot receive from us)
plain thing           -          192.168.1.30:4242                        -    (cannot receive from us)
bob (3fa2)            mmmm-mmmm  192.168.1.66:52741                       1.1  (suspicious label: its name and id make mallory (mmmm))
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
    "static": false
  },
  {
    "name": "mallory",
    "instance": "bob (3fa2)",
    "id": "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm",
    "addrs": [
      "192.168.1.66:52741"
    ],
    "version": "1.1",
    "host": "m.local",
    "self": false,
    "sendable": true,
    "suspicious": true,
    "static": false
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

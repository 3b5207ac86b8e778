package main

// End-to-end tests of issue 13's findings 1 and 9 through the real binary
// on a lab LAN: an attacker's forged mDNS records that take bob's name,
// instance name, id prefix or whole id as their label over the attacker's
// own TXT name and id, and `lanshare trust ID` next to a pinned name.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// mdnsGroup is the IPv4 mDNS group and port.
var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

// forgeRecords makes lab host h answer every mDNS query, as an attacker's
// responder would, with a _lanshare._tcp record per label, each carrying
// the TXT name and id given and pointing at h's first address and port.
// It announces them once at once, and runs until the test ends.
func forgeRecords(t testing.TB, h *netlab.Host, port uint16, name, id string, labels ...string) {
	t.Helper()
	answer, err := forgedAnswer(h.Addr().AsSlice(), port, name, id, labels).Pack()
	if err != nil {
		t.Fatal(err)
	}
	pc := forgedResponder(t, h, func() []byte { return answer })
	if _, err := pc.WriteTo(answer, nil, mdnsGroup); err != nil {
		t.Fatalf("announcing forged records from %s: %v", h.NS, err)
	}
}

// forgedResponder opens an mDNS socket on lab host h's first interface,
// sending with IP TTL 255 as a responder on the link does, and answers
// every query for _lanshare._tcp with the packed message answer returns
// (nothing when it returns nil): by multicast, or by unicast to a legacy
// querier. The caller may send its own packets on the returned socket. It
// runs until the test ends.
func forgedResponder(t testing.TB, h *netlab.Host, answer func() []byte) *ipv4.PacketConn {
	t.Helper()
	var pc *ipv4.PacketConn
	err := h.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = sharePort(fd) })
			return errors.Join(err, serr)
		}}
		c, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5353")
		if err != nil {
			return err
		}
		pc = ipv4.NewPacketConn(c)
		ifi, err := net.InterfaceByName(h.Ifaces[0].Name)
		if err == nil {
			err = pc.JoinGroup(ifi, mdnsGroup)
		}
		if err == nil {
			err = pc.SetMulticastInterface(ifi)
		}
		if err == nil {
			err = pc.SetMulticastTTL(255)
		}
		if err == nil {
			err = pc.SetTTL(255)
		}
		if err != nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("forged responder on %s: %v", h.NS, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 9000)
		for {
			n, _, src, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed at the end of the test
			}
			var q dns.Msg
			if q.Unpack(buf[:n]) != nil || q.Response || !slices.ContainsFunc(q.Question, func(q dns.Question) bool {
				return strings.EqualFold(q.Name, "_lanshare._tcp.local.")
			}) {
				continue
			}
			a := answer()
			if a == nil {
				continue
			}
			dst := net.Addr(mdnsGroup)
			if u, ok := src.(*net.UDPAddr); ok && u.Port != 5353 {
				dst = u // a legacy query: answer it by unicast
			}
			_, _ = pc.WriteTo(a, nil, dst)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc
}

// forgedAnswer is an mDNS response with one _lanshare._tcp instance per
// label: PTR, SRV to a host of ours, TXT with name and id, and its A.
func forgedAnswer(addr net.IP, port uint16, name, id string, labels []string) *dns.Msg {
	const service = "_lanshare._tcp.local."
	host := "forged-" + id[:8] + ".local."
	hdr := func(name string, typ uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 120}
	}
	m := new(dns.Msg)
	m.Response, m.Authoritative = true, true
	for _, l := range labels {
		inst := escapeDNSLabel(l) + "." + service
		m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(service, dns.TypePTR), Ptr: inst})
		m.Extra = append(m.Extra,
			&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Target: host, Port: port},
			&dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: []string{"id=" + id, "v=" + peer.ProtocolVersion, "name=" + name}})
	}
	m.Extra = append(m.Extra, &dns.A{Hdr: hdr(host, dns.TypeA), A: addr})
	return m
}

// escapeDNSLabel writes a label in the presentation format miekg/dns reads.
func escapeDNSLabel(l string) string {
	var b strings.Builder
	for _, c := range []byte(l) {
		if strings.IndexByte(` .()\"';@`, c) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// suspiciousPeer is what the test reads of `peers --json`.
type suspiciousPeer struct {
	Instance   string `json:"instance"`
	ID         string `json:"id"`
	Suspicious bool   `json:"suspicious"`
}

// TestForgedLabelNeverReceives (issue 13, findings 1 and 3): alice has
// sent to bob, so bob's name is pinned to his key. mallory, a real agent,
// answers mDNS with records labelled "bob", bob's instance name "bob
// (xxxx)" exactly, bob's id prefix and bob's whole id, over his own name
// and id. `peers` lists bob as he is next to mallory's records, each
// marked suspicious (the claim of bob's own label is listed apart, not in
// bob's place). Whatever alice types for bob, the file reaches bob, and
// `trust bob` trusts bob; once bob is gone every such send and `trust bob`
// exits 6. mallory gets nothing and is never trusted.
func TestForgedLabelNeverReceives(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	bob := launchAgent(t, lab.Host(0), "bob")
	bob.ready(t)
	alice := newSender(t, lab.Host(2).CommandContext, "alice")
	f := filepath.Join(t.TempDir(), "secret.bin")
	randomFile(t, f, 4096)
	alice.sendOK(t, "bob", f)

	mallory := launchAgent(t, lab.Host(1), "mallory")
	mallory.ready(t)
	forged := []string{"bob", bob.instance, bob.id[:4], bob.id}
	forgeRecords(t, lab.Host(1), mallory.port, "mallory", mallory.id, forged...)

	r := runLanshareOn(t, lab.Host(2).CommandContext, t.TempDir(), nil, "peers", "--json")
	var listed []suspiciousPeer
	if err := json.Unmarshal([]byte(r.stdout), &listed); r.code != 0 || err != nil {
		t.Fatalf("lanshare peers --json: exit %d, %v; stdout:\n%s", r.code, err, r.stdout)
	}
	for _, label := range forged {
		if !slices.Contains(listed, suspiciousPeer{Instance: label, ID: mallory.id, Suspicious: true}) {
			t.Errorf("peers --json does not list mallory's label %q as suspicious: %+v", label, listed)
		}
	}
	// mallory's claim of bob's own label is listed next to bob, not in
	// his place.
	if !slices.Contains(listed, suspiciousPeer{Instance: bob.instance, ID: bob.id}) {
		t.Errorf("peers --json does not list bob as he is, next to mallory's claim of his label: %+v", listed)
	}

	typed := []string{"bob", bob.instance, bob.id[:4]}
	for i, what := range typed {
		fi := filepath.Join(t.TempDir(), fmt.Sprintf("to-bob-%d.bin", i))
		data := randomFile(t, fi, 4096)
		if r := alice.send(t, what, fi); r.code != 0 {
			t.Errorf("send %q with bob there and mallory's forged labels: exit %d, want 0 (to bob); stderr:\n%s", what, r.code, r.stderr)
		}
		if got, err := os.ReadFile(filepath.Join(bob.dir, filepath.Base(fi))); err != nil || !bytes.Equal(got, data) {
			t.Errorf("send %q: bob's copy: %d bytes (%v), want the %d sent", what, len(got), err, len(data))
		}
	}
	if r := alice.lanshare(t, "trust", "bob"); r.code != 0 || !strings.Contains(r.stdout, peer.GroupID(bob.id)) {
		t.Errorf("trust bob with bob there: exit %d, stdout %q, want bob's id %s trusted; stderr:\n%s", r.code, r.stdout, peer.GroupID(bob.id), r.stderr)
	}
	bob.stopClean(t)
	for _, what := range typed {
		if r := alice.send(t, what, f); r.code != exitUntrusted {
			t.Errorf("send %q with bob gone and mallory's forged labels: exit %d, want %d; stderr:\n%s", what, r.code, exitUntrusted, r.stderr)
		}
	}
	if r := alice.lanshare(t, "trust", "bob"); r.code != exitUntrusted {
		t.Errorf("trust bob with bob gone and mallory labelled bob: exit %d, want %d; stdout %q, stderr:\n%s", r.code, exitUntrusted, r.stdout, r.stderr)
	}

	for _, p := range alice.trusted(t) {
		if p.id == peer.GroupID(mallory.id) {
			t.Errorf("alice knows mallory's key: %+v", p)
		}
	}
	if got := readTree(t, mallory.dir); len(got) != 0 {
		var names []string
		for p := range got {
			names = append(names, p)
		}
		t.Errorf("mallory's folder holds %q", names)
	}
	mallory.stopClean(t)
	if got := received(mallory.out.Lines()); len(got) != 0 {
		t.Errorf("mallory logged received %q", got)
	}
}

// TestTrustIDKeepsOtherKeysPin (issue 13, finding 9): after bob's key
// changed, `lanshare trust NEWID` without --replace trusts the new id but
// leaves the name bob pinned to the old key, says how to replace it, and a
// send by name is still refused; the name is only the new key's once the
// user asks with --replace.
func TestTrustIDKeepsOtherKeysPin(t *testing.T) {
	t.Parallel()
	k := changeKey(t)
	if k.refused.code != exitUntrusted {
		t.Fatalf("send bob after bob's key changed: exit %d, want %d; stderr:\n%s", k.refused.code, exitUntrusted, k.refused.stderr)
	}
	oldID, newID := peer.GroupID(k.oldBob.id), peer.GroupID(k.newBob.id)
	r := k.alice.lanshare(t, "trust", newID)
	if r.code != 0 || !strings.Contains(r.stdout, "lanshare trust --replace "+newID) {
		t.Errorf("trust NEWID: exit %d, stdout %q, want it to say how to replace the old key; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := []knownPeer{{"bob", peer.Seen, oldID}, {"-", peer.Trusted, newID}}
	if got := k.alice.trusted(t); !slices.Equal(got, want) {
		t.Errorf("alice's known peers after trust NEWID = %q, want %q", got, want)
	}
	if r := k.alice.send(t, "bob", k.second); r.code != exitUntrusted {
		t.Errorf("send bob after trust NEWID without --replace: exit %d, want %d; stderr:\n%s", r.code, exitUntrusted, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(k.newBob.dir, "second.bin")); err == nil {
		t.Error("second.bin reached the new key before the user replaced the old one")
	}
	if r := k.alice.lanshare(t, "trust", "--replace", "bob"); r.code != exitUsage {
		t.Errorf("trust --replace NAME: exit %d, want %d (it needs the whole id)", r.code, exitUsage)
	}
	r = k.alice.lanshare(t, "trust", "--replace", newID)
	if r.code != 0 || !strings.Contains(r.stdout, "forgot bob id "+oldID) {
		t.Errorf("trust --replace NEWID: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got, want := k.alice.trusted(t), []knownPeer{{"bob", peer.Trusted, newID}}; !slices.Equal(got, want) {
		t.Errorf("alice's known peers after trust --replace = %q, want %q", got, want)
	}
	k.alice.sendOK(t, "bob", k.second)
}

package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := LoadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// handshake runs a TLS handshake between client and server over loopback
// TCP (a net.Pipe would deadlock when both sides write an alert at once)
// and returns both sides' errors and ids.
func handshake(t testing.TB, client, server *tls.Config) (clientID, serverID string, cerr, serr error) {
	t.Helper()
	a, b := tcpPair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := tls.Server(b, server)
		if serr = s.HandshakeContext(context.Background()); serr == nil {
			clientID = PeerID(s.ConnectionState())
		}
		b.Close()
	}()
	c := tls.Client(a, client)
	if cerr = c.HandshakeContext(context.Background()); cerr == nil {
		serverID = PeerID(c.ConnectionState())
	}
	a.Close()
	<-done
	return clientID, serverID, cerr, serr
}

func TestTLSMutualIDs(t *testing.T) {
	alice, bob := testIdentity(t), testIdentity(t)
	gotClient, gotServer, cerr, serr := handshake(t, alice.ClientTLS(bob.ID), bob.ServerTLS())
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if gotClient != alice.ID || gotServer != bob.ID {
		t.Errorf("server sees client %s (want %s); client sees server %s (want %s)", gotClient, alice.ID, gotServer, bob.ID)
	}
	// An address target: any key, learned from the handshake.
	if _, gotServer, cerr, serr := handshake(t, alice.ClientTLS(""), bob.ServerTLS()); cerr != nil || serr != nil || gotServer != bob.ID {
		t.Errorf("handshake without expected id: client %v, server %v, server id %s", cerr, serr, gotServer)
	}
}

// TestTLSImpostorRefused pins the core promise: a host that advertises
// bob's id without bob's key cannot complete a handshake with a sender
// that expects bob.
func TestTLSImpostorRefused(t *testing.T) {
	alice, bob, mallory := testIdentity(t), testIdentity(t), testIdentity(t)
	_, _, cerr, _ := handshake(t, alice.ClientTLS(bob.ID), mallory.ServerTLS())
	if !errors.Is(cerr, ErrWrongKey) {
		t.Fatalf("handshake with an impostor: %v, want ErrWrongKey", cerr)
	}
	for _, want := range []string{GroupID(bob.ID), GroupID(mallory.ID)} {
		if !strings.Contains(cerr.Error(), want) {
			t.Errorf("error %q does not name %s", cerr, want)
		}
	}
}

func TestTLSClientWithoutCertificateRefused(t *testing.T) {
	bob := testIdentity(t)
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	if _, _, _, serr := handshake(t, cfg, bob.ServerTLS()); serr == nil {
		t.Fatal("server accepted a client without a certificate")
	}
	old := &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, Certificates: []tls.Certificate{testIdentity(t).Cert}}
	if _, _, _, serr := handshake(t, old, bob.ServerTLS()); serr == nil {
		t.Fatal("server accepted TLS 1.2")
	}
}

func fakeID(c byte) string { return strings.Repeat(string(c), IDLen) }

func TestKnownPeers(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := fakeID('a'), fakeID('b'), fakeID('c')
	if err := k.Pin(a, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := k.Pin(a, "renamed"); err != nil { // already known: unchanged
		t.Fatal(err)
	}
	if err := k.Pin(c, "carol\nevil"); err != nil {
		t.Fatal(err)
	}
	if k.IsTrusted(a) {
		t.Error("a pinned peer counts as trusted")
	}
	fi, err := os.Stat(filepath.Join(dir, knownFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("known_peers: %v, %v; want mode 0600", fi, err)
	}

	// Accepting bob's new key replaces the pin on the name.
	if err := k.Replace(b, "Bob"); err != nil {
		t.Fatal(err)
	}
	re, err := LoadKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := re.List()
	if len(got) != 2 || got[0].ID != c || got[0].Name != Escape("carol\nevil") || got[1] != (KnownPeer{ID: b, Level: Trusted, Name: "Bob"}) {
		t.Fatalf("after reload: %+v", got)
	}
	if !re.IsTrusted(b) || re.IsTrusted(a) {
		t.Error("trust not kept across reload")
	}
	if ps := re.ByName("BOB"); len(ps) != 1 || ps[0].ID != b {
		t.Errorf("ByName(BOB) = %+v", ps)
	}
	gone, err := re.Forget("cccc")
	if err != nil || len(gone) != 1 || gone[0].ID != c {
		t.Errorf("Forget(cccc) = %+v, %v", gone, err)
	}
	gone, err = re.Forget("bob")
	if err != nil || len(gone) != 1 || gone[0].ID != b {
		t.Errorf("Forget(bob) = %+v, %v", gone, err)
	}
	if gone, _ := re.Forget("nobody"); len(gone) != 0 {
		t.Errorf("Forget(nobody) removed %+v", gone)
	}
	if len(re.List()) != 0 {
		t.Errorf("left: %+v", re.List())
	}
}

func TestKnownPeersBadLine(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, knownFile), []byte("# ok\n"+fakeID('a')+" trusted a\nnot-an-id trusted x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKnown(dir)
	if !errors.Is(err, ErrKnownFile) || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("LoadKnown = %v, want ErrKnownFile naming line 3", err)
	}
}

// TestKnownPeersKeepOtherProcessesChanges pins a review finding: a long
// send that pins at its end must not undo an untrust made meanwhile.
func TestKnownPeersKeepOtherProcessesChanges(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Trust(fakeID('m'), "mallory"); err != nil {
		t.Fatal(err)
	}
	sending, err := LoadKnown(dir) // a send starts, with mallory trusted
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadKnown(dir) // meanwhile: lanshare untrust mallory
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Forget("mallory"); err != nil {
		t.Fatal(err)
	}
	if err := sending.Pin(fakeID('c'), "carol"); err != nil { // the send ends
		t.Fatal(err)
	}
	final, err := LoadKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	if final.IsTrusted(fakeID('m')) {
		t.Error("the untrust was written over")
	}
	if _, ok := final.ByID(fakeID('c')); !ok {
		t.Error("the pin was lost")
	}
}

// TestTrustNeverForgetsAnotherKey pins finding 9 of issue 13: trusting an
// id under a name leaves every other id of that name as it was; only
// Replace, the user's explicit acceptance of a new key, forgets them.
func TestTrustNeverForgetsAnotherKey(t *testing.T) {
	k, err := LoadKnown(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seen, trusted, other, newKey := fakeID('a'), fakeID('b'), fakeID('c'), fakeID('d')
	must(t, k.Pin(seen, "bob"))
	must(t, k.Trust(trusted, "Bob"))
	must(t, k.Pin(other, "carol"))
	must(t, k.Trust(newKey, "bob"))
	for _, id := range []string{seen, trusted, other, newKey} {
		if _, ok := k.ByID(id); !ok {
			t.Errorf("Trust(%s, bob) forgot %s", ShortID(newKey), ShortID(id))
		}
	}
	if p, _ := k.ByID(seen); p.Level != Seen {
		t.Errorf("the pin became %q", p.Level)
	}
	must(t, k.Replace(newKey, "BOB"))
	got := k.List()
	want := []KnownPeer{{ID: other, Level: Seen, Name: "carol"}, {ID: newKey, Level: Trusted, Name: "BOB"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("after Replace(%s, BOB): %+v, want %+v", ShortID(newKey), got, want)
	}
}

// TestUntrustKeepsThePin: Untrust takes the trust away but keeps the name
// pinned to the id (a nameless trust pins nothing and goes); a peer only
// pinned is left alone and reported.
func TestUntrustKeepsThePin(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := fakeID('a'), fakeID('b'), fakeID('c')
	for _, step := range []error{k.Trust(a, "bob"), k.Trust(b, ""), k.Pin(c, "carol")} {
		if step != nil {
			t.Fatal(step)
		}
	}
	untrusted, pinned, err := k.Untrust("BOB")
	if err != nil || len(untrusted) != 1 || untrusted[0] != (KnownPeer{ID: a, Level: Trusted, Name: "bob"}) || len(pinned) != 0 {
		t.Fatalf("Untrust(BOB) = %+v, %+v, %v", untrusted, pinned, err)
	}
	re, err := LoadKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := re.ByID(a); !ok || p != (KnownPeer{ID: a, Level: Seen, Name: "bob"}) {
		t.Errorf("after untrust bob: %+v, %v; want bob pinned (seen)", p, ok)
	}
	if ids := re.PinnedTo("bob"); len(ids) != 1 || ids[0] != a {
		t.Errorf("after untrust, bob is pinned to %v, want [%s]", ids, ShortID(a))
	}
	if untrusted, _, err := re.Untrust(b[:6]); err != nil || len(untrusted) != 1 {
		t.Fatalf("Untrust(nameless prefix) = %+v, %v", untrusted, err)
	}
	if _, ok := re.ByID(b); ok {
		t.Error("a nameless trusted entry stayed after untrust: it pins nothing")
	}
	untrusted, pinned, err = re.Untrust("carol")
	if err != nil || len(untrusted) != 0 || len(pinned) != 1 || pinned[0].ID != c {
		t.Errorf("Untrust(carol), only pinned = %+v, %+v, %v; want nothing untrusted, carol reported pinned", untrusted, pinned, err)
	}
	if p, ok := re.ByID(c); !ok || p.Level != Seen {
		t.Errorf("untrust of a pinned peer changed it: %+v, %v", p, ok)
	}
}

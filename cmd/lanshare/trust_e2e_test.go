package main

// End-to-end tests of identities and trust through the real binary: names
// pinned to keys, serve --accept trusted, and what serve does with
// connections that are not lanshare over TLS.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

// sender is a lanshare user who runs one-shot commands with its own config
// directory (and so its own key and known peers), on a lab host or, with
// run set to local, in the tests' own namespace.
type sender struct {
	run    commandFunc
	tmp    string // HOME and the like
	config string
	name   string
}

func newSender(t testing.TB, run commandFunc, name string) *sender {
	t.Helper()
	tmp := t.TempDir()
	return &sender{run: run, tmp: tmp, config: filepath.Join(tmp, "config"), name: name}
}

// lanshare runs `lanshare cmd --config CONFIG args...` to completion.
func (s *sender) lanshare(t testing.TB, cmd string, args ...string) runResult {
	t.Helper()
	return runLanshareOn(t, s.run, s.tmp, nil, append([]string{cmd, "--config", s.config}, args...)...)
}

// send runs `lanshare send --config CONFIG --name NAME args...`.
func (s *sender) send(t testing.TB, args ...string) runResult {
	t.Helper()
	return s.lanshare(t, "send", append([]string{"--name", s.name}, args...)...)
}

// sendOK is send, failing the test unless it exits 0.
func (s *sender) sendOK(t testing.TB, args ...string) runResult {
	t.Helper()
	r := s.send(t, args...)
	if r.code != 0 {
		t.Fatalf("%s: lanshare send %q: exit %d, want 0; stderr:\n%s", s.name, args, r.code, r.stderr)
	}
	return r
}

// id returns the sender's id, without dashes, as `lanshare id` prints it.
func (s *sender) id(t testing.TB) string {
	t.Helper()
	r := s.lanshare(t, "id", "--name", s.name)
	if r.code != 0 {
		t.Fatalf("lanshare id: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	for _, l := range lines(r.stdout) {
		if m := groupedID.FindStringSubmatch(l); m != nil {
			return strings.ReplaceAll(m[1], "-", "")
		}
	}
	t.Fatalf("lanshare id printed no \"id: xxxx-xxxx-...\" line:\n%s", r.stdout)
	return ""
}

// knownPeer is one row of `lanshare trusted`.
type knownPeer struct{ name, level, id string }

// trusted runs `lanshare trusted --all` and returns its rows, without the header.
func (s *sender) trusted(t testing.TB) []knownPeer {
	t.Helper()
	r := s.lanshare(t, "trusted", "--all")
	if r.code != 0 {
		t.Fatalf("lanshare trusted: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	ls := lines(r.stdout)
	if len(ls) == 1 && ls[0] == "no known peers" {
		return nil
	}
	if len(ls) == 0 || strings.Join(strings.Fields(ls[0]), " ") != "NAME LEVEL ID" {
		t.Fatalf("lanshare trusted does not start with a \"NAME LEVEL ID\" header:\n%s", r.stdout)
	}
	var rows []knownPeer
	for _, l := range ls[1:] {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Fatalf("lanshare trusted: row %q is not \"NAME LEVEL ID\"", l)
		}
		n := len(f)
		rows = append(rows, knownPeer{name: strings.Join(f[:n-2], " "), level: f[n-2], id: f[n-1]})
	}
	return rows
}

// suggestedTrust returns the arguments of the "lanshare trust [--replace]
// ID" that msg suggests, as the user would copy them; the id is last.
func suggestedTrust(t testing.TB, msg string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(msg, "lanshare trust ")
	var args []string
	for _, f := range strings.Fields(rest) {
		f = strings.TrimRight(f, ".,;:)")
		args = append(args, f)
		if !strings.HasPrefix(f, "-") {
			break
		}
	}
	if !ok || len(args) == 0 || strings.HasPrefix(args[len(args)-1], "-") {
		t.Fatalf("%q suggests no \"lanshare trust ID\"", msg)
	}
	return args
}

// keyChange is the scene of issue 4: alice sent to bob by name, which
// pinned the name to bob's key; bob came back with another key, and alice
// sent to bob by name again (refused is how that went).
type keyChange struct {
	bobHost        *netlab.Host
	alice          *sender
	oldBob, newBob *labAgent // oldBob is stopped
	second         string    // the file whose send was refused
	secondData     []byte
	refused        runResult
}

// changeKey plays the scene of keyChange and checks each step up to the
// refused send, which it returns unchecked.
func changeKey(t testing.TB) *keyChange {
	t.Helper()
	lab := netlab.New(t, 2)
	k := &keyChange{bobHost: lab.Host(0), alice: newSender(t, lab.Host(1).CommandContext, "alice")}
	k.oldBob = launchAgent(t, k.bobHost, "bob")
	k.oldBob.ready(t)

	src := t.TempDir()
	first := filepath.Join(src, "first.bin")
	firstData := randomFile(t, first, 4096)
	k.alice.sendOK(t, "bob", first)
	if got, err := os.ReadFile(filepath.Join(k.oldBob.dir, "first.bin")); err != nil || !bytes.Equal(got, firstData) {
		t.Fatalf("bob's copy of first.bin: %d bytes (%v), want the %d sent", len(got), err, len(firstData))
	}
	want := []knownPeer{{"bob", peer.Seen, peer.GroupID(k.oldBob.id)}}
	if got := k.alice.trusted(t); !slices.Equal(got, want) {
		t.Errorf("alice's known peers after the first send = %q, want %q", got, want)
	}

	// bob comes back with a new key: a reinstall, or an impostor.
	k.oldBob.stopClean(t)
	k.newBob = launchAgent(t, k.bobHost, "bob")
	k.newBob.ready(t)
	if k.newBob.id == k.oldBob.id {
		t.Fatalf("a fresh config dir got the old id %s", k.oldBob.id)
	}
	k.second = filepath.Join(src, "second.bin")
	k.secondData = randomFile(t, k.second, 4096)
	k.refused = k.alice.send(t, "bob", k.second)
	return k
}

// acceptNewKey runs the "lanshare trust ID" that the refusal suggests, as
// alice, and checks that it names bob's new id.
func (k *keyChange) acceptNewKey(t testing.TB) {
	t.Helper()
	suggested := suggestedTrust(t, k.refused.stderr)
	if peer.ParseID(suggested[len(suggested)-1]) != k.newBob.id {
		t.Errorf("the message suggests \"lanshare trust %s\", want the new id %s", suggested, peer.GroupID(k.newBob.id))
	}
	if r := k.alice.lanshare(t, "trust", suggested...); r.code != 0 || !strings.Contains(r.stdout, peer.GroupID(k.newBob.id)) {
		t.Fatalf("lanshare trust %s: exit %d, stdout %q, stderr %q", suggested, r.code, r.stdout, r.stderr)
	}
}

// TestKeyChangedAfterPinning (issue 4): a send by display name pins the
// name to the receiver's key; when a device of that name answers with
// another key, a send by name stops with exit 6 and says how to accept the
// new key, and the command it suggests makes the send work.
func TestKeyChangedAfterPinning(t *testing.T) {
	t.Parallel()
	k := changeKey(t)
	r := k.refused
	if r.code != exitUntrusted {
		t.Errorf("send bob after bob's key changed: exit %d, want %d; stderr:\n%s", r.code, exitUntrusted, r.stderr)
	}
	checkErrorLine(t, r.stderr, peer.GroupID(k.oldBob.id), peer.GroupID(k.newBob.id), "lanshare trust ")
	if got := readTree(t, k.newBob.dir); len(got) != 0 {
		t.Errorf("the new bob's folder holds %v after a send refused for its key", got)
	}
	if t.Failed() {
		return
	}

	k.acceptNewKey(t)
	k.alice.sendOK(t, "bob", k.second)
	if got, err := os.ReadFile(filepath.Join(k.newBob.dir, "second.bin")); err != nil || !bytes.Equal(got, k.secondData) {
		t.Errorf("the new bob's copy of second.bin: %d bytes (%v), want the %d sent", len(got), err, len(k.secondData))
	}
	if _, err := os.Stat(filepath.Join(k.oldBob.dir, "second.bin")); err == nil {
		t.Error("second.bin reached the old bob's folder")
	}
	if got := k.alice.trusted(t); !slices.ContainsFunc(got, func(p knownPeer) bool {
		return p.level == peer.Trusted && p.id == peer.GroupID(k.newBob.id)
	}) {
		t.Errorf("alice's known peers after trust = %q, want the new id %s trusted", got, peer.GroupID(k.newBob.id))
	}

	// The new bob received the one file, once.
	k.newBob.stopClean(t)
	if got := received(k.newBob.out.Lines()); !slices.Equal(got, []string{"second.bin"}) {
		t.Errorf("the new bob logged received %q, want only second.bin; log:\n%s", got, k.newBob.out)
	}
}

// TestTrustNewKeyForgetsOldPin: once alice has accepted bob's new key with
// the command the refusal suggests, the old key no longer passes as bob.
// Known.Trust forgets ids only seen under the trusted name ("trusting is
// how a user accepts a peer's new key"), but `lanshare trust ID` passes it
// the name only for an id already known, and the new id is not: the old
// pin stays, and whoever holds the old key gets files sent to "bob"
// without a word.
func TestTrustNewKeyForgetsOldPin(t *testing.T) {
	t.Parallel()
	k := changeKey(t)
	if k.refused.code != exitUntrusted {
		t.Fatalf("send bob after bob's key changed: exit %d, want %d; stderr:\n%s", k.refused.code, exitUntrusted, k.refused.stderr)
	}
	k.acceptNewKey(t)

	// The old key answers as bob again.
	k.newBob.stopClean(t)
	old := &labAgent{host: k.bobHost, name: "bob", tmp: k.oldBob.tmp, dir: k.oldBob.dir, config: k.oldBob.config}
	old.server = startLanshare(t, k.bobHost.CommandContext, old.tmp, nil,
		"serve", "--dir", old.dir, "--config", old.config, "--name", "bob", "--listen", ":0")
	old.ready(t)
	if old.id != k.oldBob.id {
		t.Fatalf("bob restarted with its old config has id %s, want %s", old.id, k.oldBob.id)
	}

	r := k.alice.send(t, "bob", k.second)
	if r.code != exitUntrusted {
		t.Errorf("send bob to the old key after accepting the new one: exit %d, want %d; stderr:\n%s\nalice's known peers: %q",
			r.code, exitUntrusted, r.stderr, k.alice.trusted(t))
	}
	if _, err := os.Stat(filepath.Join(old.dir, "second.bin")); err == nil {
		t.Error("second.bin reached the old key's holder after alice accepted bob's new key")
	}
}

// TestAcceptTrustedOnly: serve --accept trusted refuses a sender it does
// not trust before anything is written, tells it how to get in, and lets
// it in once trusted, without a restart.
func TestAcceptTrustedOnly(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	bobConfig := filepath.Join(tmp, "config")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", bobConfig,
		"--name", "bob", "--listen", "127.0.0.1:0", "--accept", "trusted")
	alice := newSender(t, local, "alice")
	aliceID := alice.id(t)

	src := t.TempDir()
	files := map[string]string{
		"tree/a.txt":          "alpha\n",
		"tree/sub/b.txt":      "bravo\n",
		"tree/sub/deep/c.txt": "charlie\n",
		"loose.txt":           "loose\n",
	}
	for rel, data := range files {
		writeFile(t, filepath.Join(src, filepath.FromSlash(rel)), []byte(data), 0o644, time.Now())
	}
	if err := os.MkdirAll(filepath.Join(src, "tree", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{srv.addr, filepath.Join(src, "tree"), filepath.Join(src, "loose.txt")}

	r := alice.send(t, args...)
	if r.code != exitRefused {
		t.Errorf("send from an untrusted peer: exit %d, want %d (refused); stderr:\n%s", r.code, exitRefused, r.stderr)
	}
	checkErrorLine(t, r.stderr, "lanshare trust "+peer.GroupID(aliceID))
	if !strings.Contains(r.stderr, "denied") && !strings.Contains(r.stderr, "only trusted peers") {
		t.Errorf("stderr says neither \"denied\" nor why:\n%s", r.stderr)
	}
	if got := readTree(t, share); len(got) != 0 {
		t.Errorf("shared folder holds %v after refusing an untrusted sender", got)
	}
	checkNoTemps(t, share)

	// bob trusts alice while serve runs.
	tr := runLanshare(t, tmp, nil, "trust", "--config", bobConfig, peer.GroupID(aliceID))
	if tr.code != 0 {
		t.Fatalf("lanshare trust alice's id: exit %d; stderr:\n%s", tr.code, tr.stderr)
	}
	alice.sendOK(t, args...)
	want := map[string]entry{"tree": {dir: true}, "tree/sub": {dir: true}, "tree/sub/deep": {dir: true}, "tree/empty": {dir: true}}
	for rel, data := range files {
		want[rel] = entry{data: data}
	}
	got := readTree(t, share)
	for p, w := range want {
		if g, ok := got[p]; !ok || g != w {
			t.Errorf("%s in the shared folder = %+v (present %v), want %+v", p, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("shared folder holds %d entries, want %d: %v", len(got), len(want), got)
	}
	checkNoTemps(t, share)
}

// notLanshare is what a stranger may send to serve's port: payloads that
// are not lanshare over TLS.
var notLanshare = []struct {
	name    string
	payload func(t testing.TB) []byte
}{
	{"connect and hang up", func(testing.TB) []byte { return nil }},
	{"lanshare without TLS", func(t testing.TB) []byte {
		var b bytes.Buffer
		if err := proto.WriteHello(&b, proto.NewHello("plain")); err != nil {
			t.Fatal(err)
		}
		offer := proto.Offer{Entries: []proto.Entry{{Path: "plain.txt", Kind: proto.KindFile, Size: 6, Mode: 0o644}}}
		if err := proto.WriteOffer(&b, offer); err != nil {
			t.Fatal(err)
		}
		return append(b.Bytes(), "plain\n"...)
	}},
	{"random bytes", func(t testing.TB) []byte {
		b := make([]byte, 1500)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return b
	}},
	{"HTTP", func(testing.TB) []byte { return []byte("GET / HTTP/1.1\r\nHost: bob\r\n\r\n") }},
	// A TLS handshake record that promises more than it sends.
	{"truncated TLS record", func(testing.TB) []byte { return []byte{0x16, 0x03, 0x01, 0x40, 0x00, 0x01} }},
}

// poke connects to addr, writes payload, half-closes, and fails the test
// unless the agent then closes the connection within failAfter.
func poke(t testing.TB, addr string, payload []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connecting to serve: %v", err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(failAfter)); err != nil {
		t.Fatal(err)
	}
	// The agent may close before reading everything: a reset is a close.
	if _, err := c.Write(payload); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("writing to serve: %v", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil && !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("half-closing: %v", err)
	}
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("serve did not close the connection: %v", err)
	}
}

// failedLines returns serve's log lines about single failed connections
// (not the summary of those left out).
func failedLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, " failed") && !strings.Contains(l, " not logged") {
			out = append(out, l)
		}
	}
	return out
}

// TestServeSurvivesStrangers: plain TCP, lanshare without TLS and garbage
// on serve's port are closed by the agent; a burst of them is logged once,
// not once each; and serve goes on receiving.
func TestServeSurvivesStrangers(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")

	const burst = 50
	start := time.Now()
	for i := range burst {
		k := notLanshare[i%len(notLanshare)]
		poke(t, srv.addr, k.payload(t))
	}
	t.Logf("%d connections closed in %v", burst, time.Since(start))
	srv.out.waitFor(t, "failed-connection line", func(ls []string) bool { return len(failedLines(ls)) > 0 })
	if got := readTree(t, share); len(got) != 0 {
		t.Errorf("shared folder holds %v after %d connections that were not lanshare over TLS", got, burst)
	}

	f := filepath.Join(t.TempDir(), "after.txt")
	writeFile(t, f, []byte("after\n"), 0o644, time.Now())
	sendOK(t, tmp, "--name", "alice", srv.addr, f)
	if b, err := os.ReadFile(filepath.Join(share, "after.txt")); err != nil || string(b) != "after\n" {
		t.Errorf("after.txt in the shared folder = %q, %v; want \"after\\n\"", b, err)
	}

	// Stopping serve completes its log: it waits for every connection.
	srv.stopClean(t)
	if got := failedLines(srv.out.Lines()); len(got) != 1 {
		t.Errorf("serve logged %d lines about the %d failed connections, want 1 (rate-limited):\n%s",
			len(got), burst, strings.Join(got, "\n"))
	}
	if !slices.ContainsFunc(srv.out.Lines(), func(l string) bool {
		return strings.HasSuffix(l, fmt.Sprintf(" %d more failed connections from 127.0.0.1 not logged", burst-1))
	}) {
		t.Errorf("serve did not sum up the %d failed connections it left out; log:\n%s", burst-1, srv.out)
	}
	if got := received(srv.out.Lines()); !slices.Equal(got, []string{"after.txt"}) {
		t.Errorf("serve logged received %q, want only after.txt; log:\n%s", got, srv.out)
	}
}

// TestReceivedLineNamesSenderID: serve's line for a received file gives
// the sender's short id, the first two groups of what `lanshare id`
// shows for it.
func TestReceivedLineNamesSenderID(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")
	alice := newSender(t, local, "alice")
	short := peer.ShortID(alice.id(t))

	f := filepath.Join(t.TempDir(), "hello.txt")
	writeFile(t, f, []byte("hello\n"), 0o644, time.Now())
	alice.sendOK(t, srv.addr, f)
	srv.out.waitFor(t, "received line with alice's short id "+short, func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool {
			_, rest, ok := strings.Cut(l, " received hello.txt from alice (127.0.0.1:")
			return ok && strings.Contains(rest, ", id "+short+"): saved as hello.txt,")
		})
	})
}

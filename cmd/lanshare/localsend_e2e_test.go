package main

// LocalSend both ways through the binary, with internal/lsdouble, a strict
// LocalSend 2.2 device of our own (mandatory client certificates,
// fingerprints checked both ways, chunked parallel uploads), each on a lab
// host of its own: LocalSend's port is fixed.

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanshare/lanshare/internal/lsdouble"
	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// lsTree writes a folder and a file to send under tmp/name and returns
// the paths to send and the tree they must make.
func lsTree(t testing.TB, tmp, name string) ([]string, map[string]entry) {
	t.Helper()
	src := filepath.Join(tmp, name)
	want := map[string]entry{}
	for p, size := range map[string]int{
		"trip/day1/a.txt": 5,
		"trip/b.txt":      0,
		"photo.jpg":       1<<20 + 3,
	} {
		data := randomFile(t, filepath.Join(src, p), size)
		want[p] = entry{data: string(data)}
	}
	want["trip"], want["trip/day1"] = entry{dir: true}, entry{dir: true}
	return []string{filepath.Join(src, "trip"), filepath.Join(src, "photo.jpg")}, want
}

// TestLocalSendDoubleSendsToServe: a strict LocalSend 2.2 app sends a
// folder and a file to `lanshare serve`; they land byte-identical with the
// folder kept, and the agent logs them as come via LocalSend from the
// device's certificate's id.
func TestLocalSendDoubleSendsToServe(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	bob := launchAgent(t, lab.Host(0), "bob", "--localsend")
	bob.ready(t)
	short := bob.waitLocalSend(t)
	phone := lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile"})
	paths, want := lsTree(t, t.TempDir(), "src")
	files, err := lsdouble.FilesFromPaths(paths...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	res, err := phone.Send(ctx, lsdouble.Target{Addr: netip.AddrPortFrom(lab.Host(0).Addr(), 53317)}, files, lsdouble.SendOptions{Parallel: 3})
	if err != nil {
		t.Fatalf("the app's send: %v", err)
	}
	if !strings.HasPrefix(strings.ToUpper(res.ReceiverFingerprint), short) {
		t.Errorf("bob presented certificate %s; its log says %s", res.ReceiverFingerprint, short)
	}
	waitTree(t, bob.dir, want)
	id := peer.ShortID(peer.LocalSendID(phone.Fingerprint()))
	bob.out.waitFor(t, "bob's transfer line for the app", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool {
			return strings.Contains(l, "transfer from Pixel 9 (") && strings.Contains(l, "id "+id+") via localsend done: received 3 files")
		})
	})
}

// TestSendToLocalSendDouble: `lanshare send NAME` finds a LocalSend app by
// the alias it announces, presents our certificate (the app requires one),
// and the files arrive byte-identical with their folder; the app's
// certificate is pinned, so an app that takes the alias with another
// certificate is refused with exit 6; and a declined offer is exit 3.
func TestSendToLocalSendDouble(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	got := t.TempDir()
	phone := lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile", Addr: ":53317", Dir: got, Multicast: true})
	tmp := t.TempDir()
	config := filepath.Join(tmp, "config")
	paths, want := lsTree(t, tmp, "src")
	send := func(target string, paths ...string) runResult {
		args := append([]string{"send", "--config", config, "--name", "alice", "--wait", "3s", target}, paths...)
		return runLanshareOn(t, lab.Host(0).CommandContext, tmp, nil, args...)
	}
	r := send("Pixel 9", paths...)
	if r.code != 0 {
		t.Fatalf("send to the app by alias: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	waitTree(t, got, want)
	snap := phone.Snapshot()
	if len(snap.Sessions) != 1 || !slices.ContainsFunc(snap.Requests, func(q lsdouble.Request) bool { return q.ClientFingerprint != "" }) {
		t.Errorf("the app saw %d sessions, requests %+v", len(snap.Sessions), snap.Requests)
	}
	known, err := os.ReadFile(filepath.Join(config, "known_peers"))
	if err != nil || !strings.Contains(string(known), peer.LocalSendID(phone.Fingerprint())+" seen Pixel 9") {
		t.Errorf("known_peers does not pin the app: %q, %v", known, err)
	}

	// Declined by the person holding the phone.
	phone.SetBehaviour(lsdouble.Behaviour{Decline: true})
	if r := send("Pixel 9", paths[1]); r.code != exitRefused {
		t.Errorf("declined: exit %d, want %d\nstderr:\n%s", r.code, exitRefused, r.stderr)
	}

	// Another app under the same alias, with another certificate.
	phone.Close()
	impostor := lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile", Addr: ":53317", Dir: t.TempDir(), Multicast: true})
	r = send("Pixel 9", paths[1])
	if r.code != exitUntrusted || !strings.Contains(r.stderr, "trust --replace") {
		t.Errorf("another certificate under a pinned alias: exit %d, want %d with the trust hint\nstderr:\n%s", r.code, exitUntrusted, r.stderr)
	}
	if n := len(impostor.Snapshot().Sessions); n != 0 {
		t.Errorf("the impostor got %d sessions", n)
	}
}

// TestServeAnswersLocalSendAnnouncements: a running agent answers a
// LocalSend app's announcement with POST /register (as app 1.18 does),
// presenting its certificate, and `lanshare peers` lists the app, marked
// as a LocalSend device.
func TestServeAnswersLocalSendAnnouncements(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	bob := launchAgent(t, lab.Host(0), "bob", "--localsend")
	bob.ready(t)
	bob.waitLocalSend(t)
	phone := lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile", Addr: ":53317", Multicast: true})
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	if err := phone.AnnounceOnce(); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.Wait(ctx, func(s lsdouble.Snapshot) bool {
		return slices.ContainsFunc(s.Registrations, func(r lsdouble.Registration) bool { return r.Info.Alias == "bob" && r.Valid })
	}); err != nil {
		t.Fatalf("bob never registered with the app: %v; it saw %+v", err, phone.Snapshot().Registrations)
	}
	r := runLanshareOn(t, lab.Host(0).CommandContext, bob.tmp, nil, "peers", "--config", bob.config, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"kind": "localsend"`) || !strings.Contains(r.stdout, `"name": "Pixel 9"`) {
		t.Errorf("peers (through the agent): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Trusted by its alias, as a lanshare peer is by its name.
	r = runLanshareOn(t, lab.Host(0).CommandContext, bob.tmp, nil, "trust", "--config", bob.config, "Pixel 9")
	if r.code != 0 {
		t.Errorf("trust \"Pixel 9\": exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runLanshareOn(t, lab.Host(0).CommandContext, bob.tmp, nil, "trusted", "--config", bob.config)
	if !strings.Contains(r.stdout, "Pixel 9") || !strings.Contains(r.stdout, "ls-") {
		t.Errorf("trusted does not list the app:\n%s%s", r.stdout, r.stderr)
	}
	r = runLanshareOn(t, lab.Host(0).CommandContext, bob.tmp, nil, "status", "--config", bob.config)
	if r.code != 0 || !strings.Contains(r.stdout, "localsend: https://") || !strings.Contains(r.stdout, "  Pixel 9 (ls-") {
		t.Errorf("status shows no LocalSend side: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestPeersScanFindsLocalSendWithoutMulticast: `peers --scan` finds a
// LocalSend app that announces nothing (multicast blocked), by asking the
// addresses of the /24, over HTTPS and over plain HTTP.
func TestPeersScanFindsLocalSendWithoutMulticast(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 3)
	quiet := lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "quiet phone", Addr: ":53317"})
	lsdouble.StartIn(t, lab.Host(2), lsdouble.Config{Alias: "old laptop", Addr: ":53317", Protocol: "http"})
	tmp := t.TempDir()
	r := runLanshareOn(t, lab.Host(0).CommandContext, tmp, nil, "peers", "--config", filepath.Join(tmp, "config"), "--wait", "300ms", "--scan", "--json")
	if r.code != 0 {
		t.Fatalf("peers --scan: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{`"name": "quiet phone"`, `"protocol": "https"`, `"name": "old laptop"`, `"protocol": "http"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("peers --scan lacks %s:\n%s", want, r.stdout)
		}
	}
	r = runLanshareOn(t, lab.Host(0).CommandContext, tmp, nil, "peers", "--config", filepath.Join(tmp, "config"), "--wait", "300ms", "--json")
	if strings.Contains(r.stdout, "quiet phone") {
		t.Errorf("without --scan, a device that never announced is listed:\n%s", r.stdout)
	}
	// By address, with --localsend: asked who it is, then sent to.
	paths, _ := lsTree(t, tmp, "src")
	addr := netip.AddrPortFrom(lab.Host(1).Addr(), 53317).String()
	r = runLanshareOn(t, lab.Host(0).CommandContext, tmp, nil, append([]string{"send", "--config", filepath.Join(tmp, "config"), "--localsend", addr}, paths...)...)
	if r.code != 0 {
		t.Fatalf("send --localsend %s: exit %d\n%s%s", addr, r.code, r.stdout, r.stderr)
	}
	if n := len(quiet.Snapshot().Files); n != 3 {
		t.Errorf("the app got %d files, want 3", n)
	}
}

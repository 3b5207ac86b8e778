package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/peer"
)

// hasLine reports whether a line holds every part.
func hasLine(lines []string, parts ...string) bool {
	for _, l := range lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// waitExit waits for a process started with startLanshare to end and
// returns its exit code.
func waitExit(t testing.TB, s *server) int {
	t.Helper()
	select {
	case <-s.done:
		return s.state.ExitCode()
	case <-time.After(failAfter):
		t.Fatalf("lanshare still runs after %v; output:\n%s\nstderr:\n%s", failAfter, s.out, s.stderr)
		return -1
	}
}

// TestServeStrangerBudget: strangers together get the budget a day, past
// it a send is refused with the reason (exit 3) and serve logs it, a
// trusted peer still sends, and the budget holds over a restart of serve.
func TestServeStrangerBudget(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	share, bobConfig := filepath.Join(tmp, "share"), filepath.Join(tmp, "config")
	args := []string{"--dir", share, "--config", bobConfig, "--name", "bob", "--listen", "127.0.0.1:0", "--stranger-budget", "100k"}
	srv := startServe(t, tmp, nil, args...)
	srv.out.waitFor(t, "who may send", func(lines []string) bool {
		return hasLine(lines, "accepting from everyone (strangers: 100.0 kB a day, 100.0 kB of 100.0 kB left today); --accept ask or --accept trusted to tighten")
	})
	stranger, other, friend := newSender(t, local, "mallory"), newSender(t, local, "eve"), newSender(t, local, "alice")
	if tr := runLanshare(t, tmp, nil, "trust", "--config", bobConfig, peer.GroupID(friend.id(t))); tr.code != 0 {
		t.Fatalf("lanshare trust: exit %d: %s", tr.code, tr.stderr)
	}
	src := t.TempDir()
	small := randomFile(t, filepath.Join(src, "small.bin"), 60_000)
	randomFile(t, filepath.Join(src, "again.bin"), 60_000)
	big := randomFile(t, filepath.Join(src, "big.bin"), 300_000)

	stranger.sendOK(t, srv.addr, filepath.Join(src, "small.bin"))
	r := stranger.send(t, srv.addr, filepath.Join(src, "again.bin"))
	if r.code != exitRefused {
		t.Fatalf("a stranger past the budget: exit %d, want %d; stderr:\n%s", r.code, exitRefused, r.stderr)
	}
	checkErrorLine(t, r.stderr, "bob refused", "100.0 kB a day", "35.9 kB left today", "need 64.1 kB, with 4 KiB a file or folder", "ask its owner to trust you")
	srv.out.waitFor(t, "the refusal in serve's log", func(lines []string) bool {
		return hasLine(lines, "refused transfer from mallory", "over what this receiver takes from peers it does not trust (100.0 kB a day, 35.9 kB left today; need 64.1 kB, with 4 KiB a file or folder)")
	})
	// A new key is no new budget.
	if r := other.send(t, srv.addr, filepath.Join(src, "again.bin")); r.code != exitRefused {
		t.Errorf("a second stranger past the shared budget: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	friend.sendOK(t, srv.addr, filepath.Join(src, "big.bin"))
	got := readTree(t, share)
	if got["small.bin"].data != string(small) || got["big.bin"].data != string(big) {
		t.Errorf("shared folder: small %v, big %v; want both byte-identical", len(got["small.bin"].data), len(got["big.bin"].data))
	}
	if _, ok := got["again.bin"]; ok {
		t.Error("a refused file is in the shared folder")
	}

	srv.stopClean(t)
	again := startServe(t, tmp, nil, args...)
	again.out.waitFor(t, "the budget left after a restart", func(lines []string) bool {
		return hasLine(lines, "strangers: 100.0 kB a day, 35.9 kB of 100.0 kB left today")
	})
	if r := stranger.send(t, again.addr, filepath.Join(src, "again.bin")); r.code != exitRefused {
		t.Errorf("past the budget after a restart: exit %d; stderr:\n%s", r.code, r.stderr)
	}
}

// TestStrangerBudgetSettingChain: --stranger-budget comes from the flag,
// else LANSHARE_STRANGER_BUDGET, else the config file; a bad value is a
// one-line usage error.
func TestStrangerBudgetSettingChain(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	config := filepath.Join(tmp, "config")
	writeFile(t, filepath.Join(config, "config"), []byte("stranger-budget = 2G\naccept = ask\n"), 0o600, time.Now())
	printed := func(env []string, args ...string) string {
		r := runLanshare(t, tmp, env, append([]string{"serve", "--config", config, "--print-config"}, args...)...)
		if r.code != 0 {
			t.Fatalf("--print-config: exit %d: %s", r.code, r.stderr)
		}
		for _, l := range lines(r.stdout) {
			if strings.HasPrefix(l, "stranger-budget = ") {
				return l
			}
		}
		t.Fatalf("no stranger-budget in:\n%s", r.stdout)
		return ""
	}
	if l := printed(nil); !strings.HasPrefix(l, "stranger-budget = 2G  # "+filepath.Join(config, "config")) {
		t.Errorf("from the config file: %q", l)
	}
	if l := printed([]string{"LANSHARE_STRANGER_BUDGET=5%"}); l != "stranger-budget = 5%  # environment LANSHARE_STRANGER_BUDGET" {
		t.Errorf("from the environment: %q", l)
	}
	if l := printed([]string{"LANSHARE_STRANGER_BUDGET=5%"}, "--stranger-budget", "off"); l != "stranger-budget = off  # command line" {
		t.Errorf("from the command line: %q", l)
	}
	for _, bad := range []string{"120%", "lots", "-1G"} {
		r := runLanshare(t, tmp, nil, "serve", "--config", config, "--dir", filepath.Join(tmp, "share"), "--listen", "127.0.0.1:0", "--stranger-budget", bad)
		if r.code != exitUsage {
			t.Errorf("--stranger-budget %s: exit %d, want %d", bad, r.code, exitUsage)
		}
		checkErrorLine(t, r.stderr, "--stranger-budget", bad)
	}
}

// askServe runs serve --accept ask for bob in tmp.
func askServe(t testing.TB, tmp string, extra ...string) (srv *server, share, config string) {
	t.Helper()
	share, config = filepath.Join(tmp, "share"), filepath.Join(tmp, "config")
	srv = startServe(t, tmp, nil, append([]string{"--dir", share, "--config", config, "--name", "bob", "--listen", "127.0.0.1:0", "--accept", "ask"}, extra...)...)
	return srv, share, config
}

// startSend runs `lanshare send` for s in the background.
func (s *sender) startSend(t testing.TB, args ...string) *server {
	t.Helper()
	return startLanshare(t, s.run, s.tmp, nil, append([]string{"send", "--config", s.config, "--name", s.name}, args...)...)
}

// TestAskPendingAcceptDecline: under --accept ask a stranger's send waits
// and says so; `lanshare pending` lists the offer; `accept` lets it
// through byte-identical; `decline` refuses it with the reason (exit 3);
// an offer nobody answers is refused at its expiry; a trusted peer goes
// straight through.
func TestAskPendingAcceptDecline(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv, share, config := askServe(t, tmp, "--ask-timeout", "1m")
	srv.out.waitFor(t, "who may send", func(lines []string) bool {
		return hasLine(lines, "accepting from trusted peers; others wait up to 1m0s for your answer (lanshare pending, then lanshare accept ID or decline ID)")
	})
	alice := newSender(t, local, "alice")
	src := t.TempDir()
	photo := randomFile(t, filepath.Join(src, "photo.jpg"), 500_000)
	randomFile(t, filepath.Join(src, "notes.txt"), 10)

	send := alice.startSend(t, srv.addr, filepath.Join(src, "photo.jpg"))
	send.out.waitFor(t, "the sender told to wait", func(lines []string) bool {
		return hasLine(lines, "waiting for bob's owner to accept (up to 1m0s)...")
	})
	srv.out.waitFor(t, "the offer in serve's log", func(lines []string) bool {
		return hasLine(lines, "offer 1 waits for your answer: alice (", "offers 1 file, 500.0 kB: photo.jpg", "lanshare accept 1")
	})
	p := runLanshare(t, tmp, nil, "pending", "--config", config)
	if p.code != 0 || !strings.HasPrefix(p.stdout, "1  alice (") || !strings.Contains(p.stdout, "offers 1 file, 500.0 kB: photo.jpg") {
		t.Fatalf("lanshare pending: exit %d:\n%s%s", p.code, p.stdout, p.stderr)
	}
	if got := readTree(t, share); len(got) != 0 {
		t.Fatalf("shared folder holds %v while the offer waits", got)
	}
	if a := runLanshare(t, tmp, nil, "accept", "--config", config, "1"); a.code != 0 || !strings.HasPrefix(a.stdout, "accepted offer 1: alice") {
		t.Fatalf("lanshare accept 1: exit %d:\n%s%s", a.code, a.stdout, a.stderr)
	}
	if code := waitExit(t, send); code != 0 {
		t.Fatalf("send after accept: exit %d; stderr:\n%s", code, send.stderr)
	}
	if got := readTree(t, share); got["photo.jpg"].data != string(photo) {
		t.Errorf("photo.jpg after accept: %d bytes, want the 500000 sent", len(got["photo.jpg"].data))
	}

	send = alice.startSend(t, srv.addr, filepath.Join(src, "notes.txt"))
	send.out.waitFor(t, "the sender told to wait", func(lines []string) bool { return hasLine(lines, "waiting for bob's owner") })
	if d := runLanshare(t, tmp, nil, "decline", "--config", config, "--reason", "not today", "2"); d.code != 0 {
		t.Fatalf("lanshare decline 2: exit %d:\n%s", d.code, d.stderr)
	}
	if code := waitExit(t, send); code != exitRefused {
		t.Errorf("send after decline: exit %d, want %d", code, exitRefused)
	}
	checkErrorLine(t, send.stderr.String(), "bob refused: declined by the receiver's owner: not today")
	if _, ok := readTree(t, share)["notes.txt"]; ok {
		t.Error("a declined file is in the shared folder")
	}
	if d := runLanshare(t, tmp, nil, "decline", "--config", config, "2"); d.code == 0 {
		t.Errorf("decline of an answered offer: exit 0")
	} else {
		checkErrorLine(t, d.stderr, "no such pending offer")
	}
	// accept --trust lets the offer through and trusts alice: her next
	// send goes straight through.
	send = alice.startSend(t, srv.addr, filepath.Join(src, "notes.txt"))
	send.out.waitFor(t, "the sender told to wait", func(lines []string) bool { return hasLine(lines, "waiting for bob's owner") })
	if a := runLanshare(t, tmp, nil, "accept", "--config", config, "--trust", "3"); a.code != 0 || !strings.HasPrefix(a.stdout, "accepted offer 3 (and trusted its sender): alice") {
		t.Fatalf("lanshare accept --trust 3: exit %d:\n%s%s", a.code, a.stdout, a.stderr)
	}
	if code := waitExit(t, send); code != 0 {
		t.Fatalf("send after accept --trust: exit %d; stderr:\n%s", code, send.stderr)
	}
	trusted := runLanshare(t, tmp, nil, "trusted", "--config", config)
	if !strings.Contains(trusted.stdout, "alice") {
		t.Errorf("lanshare trusted after accept --trust:\n%s%s", trusted.stdout, trusted.stderr)
	}
	randomFile(t, filepath.Join(src, "later.txt"), 10)
	r := alice.sendOK(t, srv.addr, filepath.Join(src, "later.txt"))
	if strings.Contains(r.stdout, "waiting") {
		t.Errorf("a trusted peer waited:\n%s", r.stdout)
	}
}

func TestAskOfferExpires(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv, share, _ := askServe(t, tmp, "--ask-timeout", "1s")
	src := t.TempDir()
	randomFile(t, filepath.Join(src, "a.bin"), 1000)
	r := newSender(t, local, "alice").send(t, srv.addr, filepath.Join(src, "a.bin"))
	if r.code != exitRefused {
		t.Fatalf("an offer nobody answered: exit %d, want %d; stderr:\n%s", r.code, exitRefused, r.stderr)
	}
	checkErrorLine(t, r.stderr, "bob refused: no answer from the receiver's owner within 1s")
	if got := readTree(t, share); len(got) != 0 {
		t.Errorf("shared folder holds %v after an expired offer", got)
	}
}

// TestAskPendingBoundedPerAddress: one address has at most 4 offers
// waiting; the fifth is refused at once as busy.
func TestAskPendingBoundedPerAddress(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv, _, config := askServe(t, tmp)
	src := t.TempDir()
	randomFile(t, filepath.Join(src, "a.bin"), 100)
	for range 4 {
		s := newSender(t, local, "s").startSend(t, srv.addr, filepath.Join(src, "a.bin"))
		s.out.waitFor(t, "a waiting send", func(lines []string) bool { return hasLine(lines, "waiting for bob's owner") })
	}
	r := newSender(t, local, "one-too-many").send(t, "--retries", "0", srv.addr, filepath.Join(src, "a.bin"))
	if r.code != exitRefused {
		t.Errorf("a fifth offer from one address: exit %d, want %d; stderr:\n%s", r.code, exitRefused, r.stderr)
	}
	checkErrorLine(t, r.stderr, "too many offers wait for the receiver's owner")
	p := runLanshare(t, tmp, nil, "pending", "--config", config, "--json")
	if n := len(lines(p.stdout)); n != 4 {
		t.Errorf("pending --json: %d offers, want 4:\n%s", n, p.stdout)
	}
}

// TestAskPromptOnTerminal runs serve --accept ask under a pseudo-terminal:
// a stranger's offer is shown with a prompt, "y" lets it through.
func TestAskPromptOnTerminal(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	tty, screen, addr := serveOnTerminal(t, tmp, 160, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "rcfg"),
		"--name", "bob", "--listen", "127.0.0.1:0", "--accept", "ask")
	waitFor(t, "who may send", func() bool {
		return strings.Contains(screen.String(), "others wait up to 2m0s for your answer (asked here, or lanshare pending / accept / decline)")
	})
	src := t.TempDir()
	// A hostile name shows escaped in the prompt; "n" declines it.
	randomFile(t, filepath.Join(src, "a\x1b[31mred.txt"), 10)
	send := newSender(t, local, "mallory").startSend(t, addr, filepath.Join(src, "a\x1b[31mred.txt"))
	waitFor(t, "the prompt", func() bool {
		return strings.Contains(screen.String(), "accept? [y]es, [n]o, [t]rust the sender and accept (")
	})
	if !regexp.MustCompile(`offer 1: mallory \([a-z2-7-]+\) offers 1 file, 10 B: "a\\x1b\[31mred\.txt"\r\n`).MatchString(screen.String()) {
		t.Errorf("the offer's line, with the name escaped, is not on the screen:\n%q", screen.String())
	}
	if _, err := tty.Write([]byte("n\n")); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, send); code != exitRefused {
		t.Errorf("send declined on the terminal: exit %d, want %d", code, exitRefused)
	}
	checkErrorLine(t, send.stderr.String(), "declined by the receiver's owner")
	waitFor(t, "the decline's line", func() bool { return strings.Contains(screen.String(), "declined offer 1") })

	data := randomFile(t, filepath.Join(src, "Vacances été.txt"), 2000)
	send = newSender(t, local, "alice").startSend(t, addr, filepath.Join(src, "Vacances été.txt"))
	waitFor(t, "the second prompt", func() bool {
		return strings.Contains(screen.String(), "offer 2: alice (") && strings.Count(screen.String(), "accept? [y]es") == 2
	})
	if _, err := tty.Write([]byte("y\n")); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, send); code != 0 {
		t.Fatalf("send accepted on the terminal: exit %d; stderr:\n%s", code, send.stderr)
	}
	waitFor(t, "the answer's line", func() bool { return strings.Contains(screen.String(), "accepted offer 2") })
	got := readTree(t, filepath.Join(tmp, "share"))
	for name, e := range got {
		if e.data != string(data) {
			t.Errorf("%q: %d bytes, want the 2000 sent", name, len(e.data))
		}
	}
	if len(got) != 1 {
		t.Errorf("shared folder holds %v, want the one file", got)
	}
	t.Logf("screen:\n%s", screen.String())
}

// TestAskPromptIgnoresTypeAhead: a line typed before an offer is shown
// is not its answer. The owner types "n" and then "y" at the first
// prompt; the "y" must not accept the next offer, which nobody has seen.
func TestAskPromptIgnoresTypeAhead(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	config := filepath.Join(tmp, "rcfg")
	tty, screen, addr := serveOnTerminal(t, tmp, 160, "--dir", filepath.Join(tmp, "share"), "--config", config,
		"--name", "bob", "--listen", "127.0.0.1:0", "--accept", "ask")
	src := t.TempDir()
	randomFile(t, filepath.Join(src, "first.txt"), 10)
	send := newSender(t, local, "mallory").startSend(t, addr, filepath.Join(src, "first.txt"))
	waitFor(t, "the prompt", func() bool { return strings.Contains(screen.String(), "offer 1: mallory (") })
	if _, err := tty.Write([]byte("n\ny\n")); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, send); code != exitRefused {
		t.Errorf("send declined on the terminal: exit %d, want %d", code, exitRefused)
	}
	randomFile(t, filepath.Join(src, "second.txt"), 10)
	send = newSender(t, local, "mallory").startSend(t, addr, filepath.Join(src, "second.txt"))
	waitFor(t, "the second prompt", func() bool {
		return strings.Contains(screen.String(), "offer 2: mallory (") && strings.Count(screen.String(), "accept? [y]es") >= 2
	})
	p := runLanshare(t, tmp, nil, "pending", "--config", config)
	if p.code != 0 || !strings.HasPrefix(p.stdout, "2  mallory (") {
		t.Errorf("the second offer does not wait after its prompt showed: lanshare pending: exit %d:\n%s%s\nscreen:\n%s",
			p.code, p.stdout, p.stderr, screen.String())
	}
	if _, err := tty.Write([]byte("n\n")); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, send); code != exitRefused {
		t.Errorf("second send, declined on the terminal: exit %d, want %d", code, exitRefused)
	}
}

// TestAskWaitingLinesBoundedPerAddress: a stranger that offers and hangs
// up, again and again, does not get a line in serve's log for each
// offer: one per address every 10 s, and a count of the rest.
func TestAskWaitingLinesBoundedPerAddress(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv, _, _ := askServe(t, tmp)
	mallory := newSender(t, local, "mallory")
	src := t.TempDir()
	randomFile(t, filepath.Join(src, "x.txt"), 10)
	const offers = 5
	for range offers {
		send := mallory.startSend(t, srv.addr, filepath.Join(src, "x.txt"))
		send.out.waitFor(t, "the sender told to wait", func(lines []string) bool {
			return hasLine(lines, "waiting for bob's owner to accept")
		})
		_ = send.cmd.Process.Kill()
		waitExit(t, send)
	}
	_ = srv.cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, srv)
	var waits int
	for _, l := range srv.out.Lines() {
		if strings.Contains(l, "waits for your answer") {
			waits++
		}
	}
	if waits != 1 || !strings.Contains(srv.out.String(), fmt.Sprintf("%d more offers from 127.0.0.1 waited for your answer, not logged", offers-1)) {
		t.Errorf("%d offers from one address: %d lines of offers that wait, want 1 and a count of the rest; log:\n%s", offers, waits, srv.out)
	}
}

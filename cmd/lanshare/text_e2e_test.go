package main

// Text messages through the binary: lanshare to lanshare, lanshare to a
// strict LocalSend double, the double to lanshare; hostile characters
// escaped wherever a terminal would show them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/lanshare/lanshare/internal/lsdouble"
	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// hostileText holds what must never reach a terminal raw: a colour
// escape, a screen-clearing 8-bit CSI (C1), a bidi override and isolates,
// and several lines.
const hostileText = "door \x1b[31m4711\x1b[0m \u009b2J\r\nlive \u202eedoc\u202c\n\u2066isolated\u2069 end"

// hostileShown is hostileText as serve's log line shows it.
const hostileShown = `"door \x1b[31m4711\x1b[0m \u009b2J"⏎"live \u202eedoc\u202c"⏎"\u2066isolated\u2069 end"`

// rawHidden returns the characters of out that would steer or deceive a
// terminal: controls other than a line feed, C1 controls, and format
// characters such as bidi overrides.
func rawHidden(out string) []rune {
	var bad []rune
	for _, r := range out {
		if r != '\n' && (!unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r)) {
			bad = append(bad, r)
		}
	}
	return bad
}

// checkNoRaw fails the test if out, what a command printed, holds a
// character that rawHidden reports.
func checkNoRaw(t testing.TB, what, out string) {
	t.Helper()
	if bad := rawHidden(out); len(bad) > 0 {
		t.Errorf("%s prints %q raw:\n%s", what, bad, out)
	}
}

// runLanshareStdin is runLanshare with stdin as the command's input.
func runLanshareStdin(t testing.TB, tmp, stdin string, args ...string) runResult {
	t.Helper()
	netlab.SkipUnlessIsolated(t)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	cmd := exec.CommandContext(ctx, lanshareBin, args...)
	cmd.Env = baseEnv(tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running lanshare %q: %v", args, err)
	}
	return runResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// TestSendTextEndToEnd: `send --text` and `send --text -` deliver a
// message to serve, which logs it escaped on one line (and, with --json,
// as sent in a "text" event that shows nothing raw either), keeps it in
// its history (`history`, `history --text`, escaped), and with
// --save-texts writes it as a file; a message over 64 KiB is refused in
// one line before anything is sent.
func TestSendTextEndToEnd(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg, share := filepath.Join(tmp, "bob"), filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", cfg, "--name", "bob", "--listen", "127.0.0.1:0", "--save-texts")
	jsonCfg, jsonShare := filepath.Join(tmp, "carol"), filepath.Join(tmp, "carol-share")
	js := startLanshare(t, local, tmp, nil, "serve", "--dir", jsonShare, "--config", jsonCfg, "--name", "carol", "--listen", "127.0.0.1:0", "--json")
	js.out.waitFor(t, "carol's listening event", func(ls []string) bool {
		var ev serveEvent
		if len(ls) > 0 && json.Unmarshal([]byte(ls[0]), &ev) == nil && ev.Event == "listening" {
			js.addr = ev.Addr
			return true
		}
		return false
	})
	alice := filepath.Join(tmp, "alice")

	r := sendOK(t, tmp, "--config", alice, "--name", "alice", srv.addr, "--text", hostileText)
	if !strings.HasPrefix(r.stdout, "message delivered to bob (") {
		t.Errorf("send --text printed %q", r.stdout)
	}
	piped := "piped \u2067line\u2069\nsecond line\n"
	r = runLanshareStdin(t, tmp, piped, "send", "--config", alice, "--name", "alice", srv.addr, "--text", "-")
	if r.code != 0 {
		t.Fatalf("send --text -: exit %d\n%s", r.code, r.stderr)
	}
	srv.out.waitFor(t, "bob's two message lines", func(ls []string) bool {
		n := 0
		for _, l := range ls {
			if strings.Contains(l, " message from alice (") {
				n++
			}
		}
		return n == 2
	})
	log := srv.out.String()
	checkNoRaw(t, "serve's log", log)
	if !strings.Contains(log, ": "+hostileShown+" (saved as text-") {
		t.Errorf("serve's log does not show the message escaped as %s:\n%s", hostileShown, log)
	}
	if !strings.Contains(log, `: "piped \u2067line\u2069"⏎second line (saved as text-`) {
		t.Errorf("serve's log does not show the piped message:\n%s", log)
	}

	// Saved as files (--save-texts), byte for byte, the piped one without
	// its last newline.
	var saved []string
	for name, e := range readTree(t, share) {
		if !strings.HasPrefix(name, "text-") || !strings.HasSuffix(name, ".txt") {
			t.Errorf("unexpected %s in the shared folder", name)
		}
		saved = append(saved, e.data)
	}
	slices.Sort(saved)
	if want := []string{hostileText, strings.TrimSuffix(piped, "\n")}; !slices.Equal(saved, want) {
		t.Errorf("saved messages %q, want %q", saved, want)
	}
	checkNoTemps(t, share)

	// The history, as a table and as messages in full.
	h := runLanshare(t, tmp, nil, "history", "--config", cfg)
	checkNoRaw(t, "history", h.stdout)
	if h.code != 0 || !strings.Contains(h.stdout, "message: "+hostileShown) {
		t.Errorf("history: exit %d\n%s", h.code, h.stdout)
	}
	h = runLanshare(t, tmp, nil, "history", "--text", "--config", cfg)
	checkNoRaw(t, "history --text", h.stdout)
	want := []string{`  > "door \x1b[31m4711\x1b[0m \u009b2J"`, `  > "live \u202eedoc\u202c"`, `  > "\u2066isolated\u2069 end"`,
		`  > "piped \u2067line\u2069"`, `  > second line`}
	var got []string
	for _, l := range lines(h.stdout) {
		if strings.HasPrefix(l, "  > ") {
			got = append(got, l)
		} else if !strings.Contains(l, " alice (id ") || !strings.Contains(l, ", saved as text-") {
			t.Errorf("history --text header %q", l)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("history --text lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	h = runLanshare(t, tmp, nil, "history", "--text", "--json", "--config", cfg)
	checkNoRaw(t, "history --text --json", h.stdout)
	var texts []string
	for _, l := range lines(h.stdout) {
		var a peer.Arrival
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("history --text --json: %v in %q", err, l)
		}
		texts = append(texts, a.Text)
	}
	if !slices.Equal(texts, []string{hostileText, strings.TrimSuffix(piped, "\n")}) {
		t.Errorf("history --text --json texts %q", texts)
	}

	// serve --json: the message as sent, in an event a terminal can show.
	sendOK(t, tmp, "--config", alice, "--name", "alice", js.addr, "--text", hostileText)
	var ev serveEvent
	js.out.waitFor(t, "carol's text event", func(ls []string) bool {
		for _, l := range ls {
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "text" {
				return true
			}
		}
		return false
	})
	checkNoRaw(t, "serve --json", js.out.String())
	if ev.Text != hostileText || ev.Name != "alice" || ev.Size == nil || *ev.Size != uint64(len(hostileText)) || ev.SavedAs != "" {
		t.Errorf("text event %+v", ev)
	}
	if tree := readTree(t, jsonShare); len(tree) != 0 {
		t.Errorf("without --save-texts the message was written: %v", tree)
	}

	// Over 64 KiB: one line, exit 2, nothing sent.
	r = runLanshareStdin(t, tmp, strings.Repeat("x", peer.MaxTextLen+1), "send", "--config", alice, "--name", "alice", srv.addr, "--text", "-")
	if r.code != exitUsage {
		t.Errorf("a message over 64 KiB: exit %d, want %d", r.code, exitUsage)
	}
	checkErrorLine(t, r.stderr, "more than 65536 bytes (64 KiB)")
	r = runLanshare(t, tmp, nil, "send", "--config", alice, "--name", "alice", srv.addr, "--text", "")
	checkErrorLine(t, r.stderr, "the message is empty")
	r = runLanshare(t, tmp, nil, "send", "--config", alice, "--name", "alice", srv.addr, "notes.txt", "--text", "hi")
	checkErrorLine(t, r.stderr, "--text sends a message alone")
	h = runLanshare(t, tmp, nil, "history", "--text", "--json", "--config", cfg)
	if n := len(lines(h.stdout)); n != 2 {
		t.Errorf("after the refused sends the history holds %d messages, want 2", n)
	}
}

// TestTextToLocalSendDouble: `send NAME --text` reaches a strict
// LocalSend app as its own text message (one text/plain file, the
// message as its preview, answered 204), byte for byte.
func TestTextToLocalSendDouble(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	phone := lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile", Addr: ":53317", Dir: t.TempDir(), Multicast: true})
	tmp := t.TempDir()
	r := runLanshareOn(t, lab.Host(0).CommandContext, tmp, nil, "send", "--config", filepath.Join(tmp, "config"), "--name", "alice",
		"--wait", "3s", "Pixel 9", "--text", hostileText)
	if r.code != 0 || !strings.Contains(r.stdout, "\nmessage delivered to Pixel 9 (") {
		t.Fatalf("send --text to the app: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	snap := phone.Snapshot()
	if len(snap.Messages) != 1 || snap.Messages[0].Text != hostileText || snap.Messages[0].Alias != "alice" || snap.Messages[0].ClientFingerprint == "" {
		t.Fatalf("the app recorded messages %+v", snap.Messages)
	}
	if len(snap.Sessions) != 1 || !snap.Sessions[0].IsMessage || len(snap.Sessions[0].Offered) != 1 || snap.Sessions[0].Offered[0].FileType != "text/plain" {
		t.Errorf("the app saw sessions %+v", snap.Sessions)
	}
}

// TestLocalSendDoubleTextToServe: a LocalSend app's text message shows in
// serve's log as a lanshare one does, escaped, marked via localsend, and
// in history.
func TestLocalSendDoubleTextToServe(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	bob := launchAgent(t, lab.Host(0), "bob", "--localsend")
	bob.ready(t)
	bob.waitLocalSend(t)
	phone := lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile"})
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	res, err := phone.Send(ctx, lsdouble.Target{Addr: netip.AddrPortFrom(lab.Host(0).Addr(), 53317)}, []lsdouble.File{lsdouble.Text(hostileText)}, lsdouble.SendOptions{})
	if err != nil || res.Status != 204 {
		t.Fatalf("the app's message: %v, %+v", err, res)
	}
	id := peer.ShortID(peer.LocalSendID(phone.Fingerprint()))
	want := " message from Pixel 9 (" + lab.Host(1).Addr().String()
	bob.out.waitFor(t, "bob's message line", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool {
			return strings.Contains(l, want) && strings.Contains(l, "id "+id+") via localsend: "+hostileShown)
		})
	})
	checkNoRaw(t, "serve's log", bob.out.String())
	h := runLanshareOn(t, lab.Host(0).CommandContext, bob.tmp, nil, "history", "--text", "--config", bob.config)
	checkNoRaw(t, "history --text", h.stdout)
	if h.code != 0 || !strings.Contains(h.stdout, "Pixel 9 (id "+id+")\n") || !strings.Contains(h.stdout, `  > "live \u202eedoc\u202c"`) {
		t.Errorf("history --text: exit %d\n%s", h.code, h.stdout)
	}
	if tree := readTree(t, bob.dir); len(tree) != 0 {
		t.Errorf("the message was written into the shared folder: %v", tree)
	}
	if _, err := os.Stat(filepath.Join(bob.config, "history.jsonl")); err != nil {
		t.Error(err)
	}
}

// TestSendTextToSeveral: --text with two --to sends the message to both
// agents, each of which logs it once; a pipe cannot go to two targets.
func TestSendTextToSeveral(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	bob := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "bob-share"), "--config", filepath.Join(tmp, "bob"), "--name", "bob", "--listen", "127.0.0.1:0")
	carol := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "carol-share"), "--config", filepath.Join(tmp, "carol"), "--name", "carol", "--listen", "127.0.0.1:0")
	alice := filepath.Join(tmp, "alice")
	sendOK(t, tmp, "--config", alice, "--name", "alice", "--to", bob.addr, "--to", carol.addr, "--text", "to both of you")
	for _, srv := range []*server{bob, carol} {
		srv.out.waitFor(t, "the message line", func(ls []string) bool {
			n := 0
			for _, l := range ls {
				if strings.Contains(l, " message from alice (") && strings.Contains(l, "to both of you") {
					n++
				}
			}
			return n == 1
		})
	}
	r := runLanshareStdin(t, tmp, "data", "send", "--config", alice, "--to", bob.addr, "--to", carol.addr, "--as", "x.bin", "-")
	if r.code != exitUsage || !strings.Contains(r.stderr, "goes to one target") {
		t.Errorf("a pipe to two targets: exit %d, want %d with a usage error:\n%s", r.code, exitUsage, r.stderr)
	}
}

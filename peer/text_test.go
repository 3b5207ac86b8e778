package peer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// hostileText holds what must never reach a terminal raw: a CSI escape
// sequence, an 8-bit CSI (C1), a bidi override and isolates, and lines.
const hostileText = "door \x1b[31m4711\x1b[0m\u009b2J\r\nlive \u202eedoc\u202c\n\u2066isolated\u2069 end"

func textItem(t testing.TB, text string) Item {
	t.Helper()
	it, err := TextItem(text, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// TestTextRoundTrip: a text message crosses as it was written, hostile
// characters and all, is delivered (not saved), and leaves the shared
// folder empty; over a pipe and over TCP.
func TestTextRoundTrip(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			o := transferOver(t, pair, in, []Item{textItem(t, hostileText)}, nil)
			if o.sendErr != nil || o.recvErr != nil {
				t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
			}
			if r := o.rep.Results[0]; r.Status != proto.Delivered || r.SavedAs != "" {
				t.Errorf("receipt says %+v, want delivered", r)
			}
			if o.rep.Saved() != 1 || o.rep.Sent != uint64(len(hostileText)) {
				t.Errorf("report: %d saved, %d bytes sent", o.rep.Saved(), o.rep.Sent)
			}
			if o.tr.Text != hostileText || len(o.tr.Entries) != 1 || o.tr.Entries[0].Kind != proto.KindText {
				t.Errorf("received text %q, entries %+v", o.tr.Text, o.tr.Entries)
			}
			assertEmpty(t, in.Dir())
		})
	}
}

// TestTextWithFiles: a message and files in one offer: the files are saved,
// the message delivered.
func TestTextWithFiles(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	src := writeTree(t, map[string]string{"a.txt": "alpha"})
	items := append([]Item{textItem(t, "here is a")}, collect(t, filepath.Join(src, "a.txt"))...)
	o := transferOver(t, tcpPair, in, items, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
	}
	if o.tr.Text != "here is a" || o.rep.Results[0].Status != proto.Delivered || o.rep.Results[1].Status != proto.Saved {
		t.Errorf("text %q, results %+v", o.tr.Text, o.rep.Results)
	}
	assertTree(t, in.Dir(), map[string]string{"a.txt": "alpha"})
}

// receiveWith runs one transfer of items into in under pol.
func receiveWith(t testing.TB, in *Inbox, pol Policy, items []Item) (*Report, error, *Transfer, error) {
	t.Helper()
	s, r := tcpPair(t)
	var tr *Transfer
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr, rerr = in.ReceiveWith(r, pol)
		r.Close()
	}()
	rep, err := Send(s, items, SendOptions{Name: "alice", IdleTimeout: 10 * time.Second})
	s.Close()
	<-done
	return rep, err, tr, rerr
}

// TestTextSavedAsFile: with SaveTexts a message is also a file, named by
// the receiver (never after the offered name), in the transfer's folder,
// next to an earlier one without replacing it; the receipt names it.
func TestTextSavedAsFile(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	name := regexp.MustCompile(`^(alice \(ab12\)/)?text-\d{8}-\d{6}( \(\d+\))?\.txt$`)
	want := map[string]string{}
	for i, pol := range []Policy{{SaveTexts: true}, {SaveTexts: true}, {SaveTexts: true, Folder: "alice (ab12)"}} {
		text := strings.Repeat("line\n", i+1) + hostileText
		rep, err, tr, rerr := receiveWith(t, in, pol, []Item{textItem(t, text)})
		if err != nil || rerr != nil {
			t.Fatalf("send %d: %v; receive: %v", i, err, rerr)
		}
		saved := rep.Results[0].SavedAs
		if rep.Results[0].Status != proto.Delivered || !name.MatchString(saved) || tr.Text != text {
			t.Fatalf("send %d: result %+v, text %q", i, rep.Results[0], tr.Text)
		}
		if pol.Folder != "" && !strings.HasPrefix(saved, pol.Folder+"/") {
			t.Errorf("saved as %s, outside the folder %s", saved, pol.Folder)
		}
		if _, dup := want[saved]; dup {
			t.Fatalf("send %d saved as %s again", i, saved)
		}
		want[saved] = text
	}
	want["alice (ab12)/"] = ""
	assertTree(t, in.Dir(), want)
}

// TestTextCorruptedInTransit: a message whose bytes changed on the way
// fails its digest: not delivered, nothing shown or saved.
func TestTextCorruptedInTransit(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	it := textItem(t, "the door code is 4711")
	var head bytes.Buffer
	_ = proto.WriteHello(&head, proto.NewHello("alice"))
	_ = proto.WriteOffer(&head, proto.Offer{Entries: []proto.Entry{it.Entry}})
	at := head.Len() + len("the door code is ")
	s, r := tcpPair(t)
	var tr *Transfer
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr, _ = in.ReceiveWith(r, Policy{SaveTexts: true})
		r.Close()
	}()
	rep, err := Send(&flipConn{Conn: s, at: at}, []Item{it}, SendOptions{Name: "alice"})
	s.Close()
	<-done
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeDigest || rep.Results[0].Status != proto.Failed {
		t.Fatalf("corrupted message: %v, results %+v", err, rep)
	}
	if tr.Text != "" {
		t.Errorf("a corrupted message was delivered: %q", tr.Text)
	}
	assertEmpty(t, in.Dir())
}

// flipConn flips the bits of the byte at offset at of what is written.
type flipConn struct {
	net.Conn
	at, n int
}

func (c *flipConn) Write(p []byte) (int, error) {
	if i := c.at - c.n; i >= 0 && i < len(p) {
		p = bytes.Clone(p)
		p[i] ^= 0xff
	}
	c.n += len(p)
	return c.Conn.Write(p)
}

// TestTextToOlderReceiver: a lanshare 1.1 receiver read kind 3 as a
// malformed offer and answered so after its hello (inbox.go of 1.1: code
// 15, "bad offer: ..."); the sender says, in one line, that the peer
// cannot take texts and which version it speaks.
func TestTextToOlderReceiver(t *testing.T) {
	s, r := tcpPair(t)
	go func() {
		br, bw := bufio.NewReader(r), bufio.NewWriter(r)
		if _, err := proto.ReadHello(br); err != nil {
			return
		}
		_ = proto.WriteHello(bw, proto.Hello{Major: 1, Minor: 1, Name: "old bob"})
		_ = proto.WriteAnswer(bw, proto.Answer{Code: proto.CodeProtocol,
			Reason: "bad offer: reading offer: entry 0: malformed frame: entry kind 3"})
		_ = bw.Flush()
		r.Close()
	}()
	_, err := Send(s, []Item{textItem(t, "hi")}, SendOptions{Name: "alice"})
	var tu *TextUnsupportedError
	if !errors.As(err, &tu) || !errors.Is(err, ErrTextUnsupported) || !errors.Is(err, ErrRefused) {
		t.Fatalf("send to a 1.1 peer: %v", err)
	}
	msg := err.Error()
	for _, w := range []string{"old bob cannot receive text messages", "protocol 1.1", "1.2 or later"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	// The same refusal from a 1.2 peer is its own: a refusal, no more.
	err = textRefused(proto.NewHello("new bob"), []Item{textItem(t, "hi")}, proto.Answer{Code: proto.CodeProtocol})
	if errors.As(err, &tu) || !errors.Is(err, ErrRefused) || err.Error() != "new bob refused the message: protocol error" {
		t.Errorf("a 1.2 peer's refusal read as too old: %v", err)
	}
}

// TestTextLimits: a message is 1 to 64 KiB of UTF-8; --text - takes at
// most that from a reader, without its last newline, and refuses more
// before anything is sent.
func TestTextLimits(t *testing.T) {
	for name, text := range map[string]string{"empty": "", "over the cap": strings.Repeat("x", MaxTextLen+1), "not UTF-8": "caf\xe9"} {
		if _, err := TextItem(text, time.Now()); !errors.Is(err, ErrTextInvalid) {
			t.Errorf("%s: %v, want ErrTextInvalid", name, err)
		}
	}
	if _, err := TextItem(strings.Repeat("é", MaxTextLen/2), time.Now()); err != nil {
		t.Errorf("a message of exactly %d bytes: %v", MaxTextLen, err)
	}
	full := strings.Repeat("x", MaxTextLen)
	for in, want := range map[string]string{full + "\n": full, "two\nlines\r\n": "two\nlines", "no newline": "no newline"} {
		got, err := ReadText(strings.NewReader(in))
		if err != nil || got != want {
			t.Errorf("ReadText(%.20q…) = %.20q…, %v", in, got, err)
		}
	}
	if _, err := ReadText(strings.NewReader(full + "x\n")); !errors.Is(err, ErrTextInvalid) || !strings.Contains(err.Error(), "65536 bytes") {
		t.Errorf("ReadText over the cap: %v", err)
	}
}

// TestEscapeText: no control, C1, bidi or other invisible character comes
// out raw; line breaks show as ⏎; ordinary text is left as it is.
func TestEscapeText(t *testing.T) {
	tests := map[string]string{
		"the door code is 4711":         "the door code is 4711",
		"two\nlines\r\nthree":           "two⏎lines⏎three",
		"esc \x1b[31mred":               `"esc \x1b[31mred"`,
		"csi \u009b2J":                  `"csi \u009b2J"`,
		"rlo \u202eevil\u202c":          `"rlo \u202eevil\u202c"`,
		"\u2066iso\u2069 \u2067x\u2068": `"\u2066iso\u2069 \u2067x\u2068"`,
		"a literal ⏎ sign":              `"a literal ⏎ sign"`,
		`C:\Users`:                      `"C:\\Users"`,
		"ok\n\x07bell":                  `ok⏎"\abell"`,
	}
	for in, want := range tests {
		if got := EscapeText(in); got != want {
			t.Errorf("EscapeText(%q) = %s, want %s", in, got, want)
		}
	}
	for _, r := range EscapeText(hostileText) {
		if r != '⏎' && (!unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r)) {
			t.Errorf("EscapeText left %U raw", r)
		}
	}
}

// TestTextUnderAsk: under --accept ask a stranger's message waits for the
// owner like files (the pending offer says it is a message, of its size,
// naming no path); declined, it is not shown; accepted, it is delivered.
func TestTextUnderAsk(t *testing.T) {
	asked := make(chan PendingOffer, 2)
	bob := startAgent(t, func(c *Config) { c.Accept, c.OnAsk = AcceptAsk, func(p PendingOffer) { asked <- p } })
	alice := testSender(t)
	send := func(text string) chan error {
		res := make(chan error, 1)
		go func() {
			_, err := alice.Send(context.Background(), bob.target(), []Item{textItem(t, text)}, SendOptions{Name: "alice"})
			res <- err
		}()
		return res
	}
	res := send("no thanks")
	p := <-asked
	if p.Texts != 1 || p.Files != 0 || p.Bytes != uint64(len("no thanks")) || len(p.First) != 0 {
		t.Errorf("pending offer %+v", p)
	}
	if err := bob.Decide(p.ID, Decision{}); err != nil {
		t.Fatal(err)
	}
	if re := refusal(t, sendResult(t, res)); re.Code != proto.CodeDenied {
		t.Errorf("declined message: %v", re)
	}
	if in := bob.next(t); in.Transfer == nil || in.Transfer.Text != "" {
		t.Errorf("a declined message was shown: %+v", in.Transfer)
	}
	res = send("yes please")
	p = <-asked
	if err := bob.Decide(p.ID, Decision{Accept: true}); err != nil {
		t.Fatal(err)
	}
	if err := sendResult(t, res); err != nil {
		t.Fatalf("accepted message: %v", err)
	}
	if in := bob.next(t); in.Err != nil || in.Transfer.Text != "yes please" || in.PeerID != alice.Identity.ID {
		t.Errorf("accepted message reported as %+v, %v", in.Transfer, in.Err)
	}
	assertEmpty(t, bob.dir)
}

// TestTextConfigSavesAndTrustedOnly: Config.SaveTexts saves messages as
// files; under --accept trusted a stranger's message is refused before
// anything is read.
func TestTextConfigSavesAndTrustedOnly(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.SaveTexts = true })
	rep, err := testSender(t).Send(context.Background(), bob.target(), []Item{textItem(t, "saved")}, SendOptions{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	saved := rep.Results[0].SavedAs
	if b, err := os.ReadFile(filepath.Join(bob.dir, saved)); err != nil || string(b) != "saved" {
		t.Errorf("saved as %q: %q, %v", saved, b, err)
	}
	if in := bob.next(t); in.Transfer.Text != "saved" || in.Transfer.Entries[0].Result.SavedAs != saved {
		t.Errorf("reported %+v", in.Transfer)
	}

	carol := startAgent(t, func(c *Config) { c.Accept = AcceptTrusted })
	_, err = testSender(t).Send(context.Background(), carol.target(), []Item{textItem(t, "let me in")}, SendOptions{Name: "mallory"})
	if re := refusal(t, err); re.Code != proto.CodeDenied {
		t.Errorf("stranger's message under --accept trusted: %v", err)
	}
	if in := carol.next(t); in.Transfer != nil && in.Transfer.Text != "" {
		t.Errorf("refused message shown: %q", in.Transfer.Text)
	}
}

// postText sends a LocalSend text message as the app does and returns the
// status.
func postText(t testing.TB, c *lsClient, text string) int {
	t.Helper()
	body, _ := json.Marshal(localsend.PrepareUpload{Info: localsend.Info{Alias: "Pixel 9", Version: "2.2", Fingerprint: c.fp},
		Files: map[string]localsend.File{"t": {ID: "t", FileName: "8c3f.txt", Size: int64(len(text)), FileType: "text/plain", Preview: text}}})
	resp, err := c.hc.Post(c.base+localsend.PathPrepareUpload, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLocalSendTextFollowsThePolicy: a LocalSend app's message is taken
// under the policy files are: refused under --accept trusted, waiting for
// the owner under --accept ask, saved with SaveTexts, and over 64 KiB
// refused (413) rather than cut.
func TestLocalSendTextFollowsThePolicy(t *testing.T) {
	t.Run("trusted only", func(t *testing.T) {
		ta := startLocalSendAgent(t, func(c *Config) { c.Accept = AcceptTrusted })
		if code := postText(t, newLSClient(t, ta, true), "hi"); code != http.StatusForbidden {
			t.Errorf("stranger's message: %d, want 403", code)
		}
		ta.mu.Lock()
		defer ta.mu.Unlock()
		for _, in := range ta.incoming {
			if in.Transfer != nil && in.Transfer.Text != "" {
				t.Errorf("refused message reported: %q", in.Transfer.Text)
			}
		}
	})
	t.Run("ask", func(t *testing.T) {
		ta := startLocalSendAgent(t, func(c *Config) { c.Accept = AcceptAsk })
		c := newLSClient(t, ta, true)
		got := make(chan int, 1)
		go func() { got <- postText(t, c, hostileText) }()
		waitFor(t, func() bool { return len(ta.Pending()) == 1 })
		p := ta.Pending()[0]
		if p.Texts != 1 || p.Files != 0 || len(p.First) != 0 {
			t.Errorf("pending %+v", p)
		}
		if err := ta.Decide(p.ID, Decision{Accept: true}); err != nil {
			t.Fatal(err)
		}
		if code := <-got; code != http.StatusNoContent {
			t.Errorf("accepted message: %d, want 204", code)
		}
		if in := ta.next(t); in.Transfer == nil || in.Transfer.Text != hostileText || in.Transfer.Via != ViaLocalSend {
			t.Errorf("reported %+v", in.Transfer)
		}
		assertEmpty(t, ta.dir)
	})
	t.Run("saved", func(t *testing.T) {
		ta := startLocalSendAgent(t, func(c *Config) { c.SaveTexts = true })
		if code := postText(t, newLSClient(t, ta, true), "keep me"); code != http.StatusNoContent {
			t.Fatalf("message: %d", code)
		}
		in := ta.next(t)
		saved := in.Transfer.Entries[0].Result.SavedAs
		if in.Transfer.Text != "keep me" || !strings.HasPrefix(saved, "text-") {
			t.Fatalf("reported %+v", in.Transfer)
		}
		assertTree(t, ta.dir, map[string]string{saved: "keep me"})
	})
	t.Run("over the cap", func(t *testing.T) {
		ta := startLocalSendAgent(t, nil)
		if code := postText(t, newLSClient(t, ta, true), strings.Repeat("x", MaxTextLen+1)); code != http.StatusRequestEntityTooLarge {
			t.Errorf("message over 64 KiB: %d, want 413", code)
		}
		if code := postText(t, newLSClient(t, ta, true), strings.Repeat("x", MaxTextLen)); code != http.StatusNoContent {
			t.Errorf("message of 64 KiB: %d, want 204", code)
		}
	})
}

// TestSendTextToLocalSend: a message goes to a LocalSend device as the
// app sends one (one text/plain file, the text as its preview); a device
// that shows it answers 204, one that takes it as a file gets its bytes
// uploaded; either way it is delivered, once.
func TestSendTextToLocalSend(t *testing.T) {
	for _, asFile := range []bool{false, true} {
		var mu sync.Mutex
		var offered []localsend.File
		dev := newLSDevice(t, true, func(d *lsDevice) {
			d.decide = func(_ int, pu localsend.PrepareUpload) (int, []string) {
				mu.Lock()
				defer mu.Unlock()
				var ids []string
				for id, f := range pu.Files {
					offered = append(offered, f)
					if asFile {
						ids = append(ids, id)
					}
				}
				return 200, ids
			}
		})
		rep, err := SendLocalSend(context.Background(), dev.target(), []Item{textItem(t, "the door code is 4711")},
			LocalSendOptions{SendOptions: SendOptions{Name: "alice"}, Identity: ourLSIdentity(t)})
		if err != nil || rep.Results[0].Status != proto.Delivered {
			t.Fatalf("as a file %v: %v, %+v", asFile, err, rep)
		}
		mu.Lock()
		if len(offered) != 1 || offered[0].Preview != "the door code is 4711" || offered[0].FileType != "text/plain" ||
			offered[0].Size != 21 || !strings.HasSuffix(offered[0].FileName, ".txt") {
			t.Errorf("offered %+v", offered)
		}
		mu.Unlock()
		dev.mu.Lock()
		uploaded := len(dev.received)
		if asFile && dev.received[offered[0].FileName] != "the door code is 4711" || !asFile && uploaded != 0 {
			t.Errorf("as a file %v: the device received %v", asFile, dev.received)
		}
		dev.mu.Unlock()
	}
}

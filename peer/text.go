package peer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lanshare/lanshare/proto"
)

// Text messages: a send of a few words instead of files (send --text).
// Over lanshare's protocol a message is one proto.KindText entry whose
// bytes stream after the answer like a file's, verified by their digest;
// over LocalSend's it is the app's text message (one text/plain file
// whose preview is the text, answered 204). Either way the receiving
// agent's policy applies as for files (who may send, --accept ask, the
// strangers' budget, size caps), and the message goes to the log, the
// --json events and the history (Transfer.Text), not into the shared
// folder unless Config.SaveTexts says so.

// MaxTextLen is the longest text message sent or taken, in bytes of
// UTF-8: proto.MaxTextLen, 64 KiB.
const MaxTextLen = proto.MaxTextLen

// textPath is the name a text message is offered under. Receivers create
// nothing under it: a text saved as a file gets a name of the receiver's
// own (textFileName).
const textPath = "message.txt"

// TextItem returns the item that sends text as a message, written at now.
// The text must be 1 to MaxTextLen bytes of valid UTF-8; otherwise the
// error wraps ErrTextInvalid and says why, with the sizes.
func TextItem(text string, now time.Time) (Item, error) {
	switch {
	case text == "":
		return Item{}, fmt.Errorf("%w: the message is empty", ErrTextInvalid)
	case len(text) > MaxTextLen:
		return Item{}, fmt.Errorf("%w: the message is %d bytes, over the limit of %d bytes (64 KiB)", ErrTextInvalid, len(text), MaxTextLen)
	case !utf8.ValidString(text):
		return Item{}, fmt.Errorf("%w: the message is not UTF-8 text", ErrTextInvalid)
	}
	return Item{Text: text, Entry: proto.Entry{Path: textPath, Kind: proto.KindText, Size: uint64(len(text)), Mode: 0o644, MTime: now}}, nil
}

// ReadText reads a message from r (a pipe, a file: `send --text -`): at
// most MaxTextLen bytes, and one more refuses it with ErrTextInvalid
// before anything is sent. A final newline (echo's, a heredoc's) is not
// part of the message.
func ReadText(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxTextLen+2))
	if err != nil {
		return "", fmt.Errorf("reading the message: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > MaxTextLen {
		return "", fmt.Errorf("%w: more than %d bytes (64 KiB) on standard input, the limit of a message", ErrTextInvalid, MaxTextLen)
	}
	return string(b), nil
}

// isText reports whether items are one text message.
func isText(items []Item) bool {
	return len(items) == 1 && items[0].Entry.Kind == proto.KindText
}

// isTextOffer reports whether an offer is one text message: nothing to
// show a progress bar for.
func isTextOffer(entries []proto.Entry) bool {
	return len(entries) == 1 && entries[0].Kind == proto.KindText
}

// TextUnsupportedError ends a send of a text message to a lanshare agent
// older than protocol 1.2, which refuses the offer as malformed. It
// matches ErrTextUnsupported and ErrRefused.
type TextUnsupportedError struct {
	Peer         string // the receiver's display name, escaped
	Major, Minor uint8  // the protocol version its hello says
}

func (e *TextUnsupportedError) Error() string {
	return fmt.Sprintf("%s cannot receive text messages: it speaks lanshare protocol %d.%d, and texts need %d.%d or later (upgrade lanshare there, or send a file)",
		e.Peer, e.Major, e.Minor, proto.Major, proto.MinorText)
}

// Unwrap gives ErrTextUnsupported and ErrRefused.
func (e *TextUnsupportedError) Unwrap() []error { return []error{ErrTextUnsupported, ErrRefused} }

// textRefused returns the error for an answer that refused an offer of
// items that holds a text message: a *TextUnsupportedError when the
// receiver is older than MinorText (it read the text as a malformed
// entry), else a *RefusedError that names the message ("bob refused the
// message: …"). It is nil for an answer that accepted, or an offer of
// files.
func textRefused(hello proto.Hello, items []Item, a proto.Answer) error {
	if a.Code == proto.CodeOK {
		return nil
	}
	for _, it := range items {
		if it.Entry.Kind != proto.KindText {
			continue
		}
		if hello.Minor < proto.MinorText {
			return &TextUnsupportedError{Peer: peerName(hello.Name), Major: hello.Major, Minor: hello.Minor}
		}
		return &RefusedError{Peer: peerName(hello.Name), Code: a.Code, Reason: a.Reason, Text: isText(items)}
	}
	return nil
}

// sendText streams a text message's bytes and its FileEnd.
func (s *streamer) sendText(index uint32, it Item) error {
	h := proto.NewDigest()
	h.Write([]byte(it.Text))
	fe := proto.FileEnd{Index: index, Status: proto.Sent}
	copy(fe.Digest[:], h.Sum(nil))
	if _, err := s.bw.WriteString(it.Text); err != nil {
		return err
	}
	s.sent += uint64(len(it.Text))
	return proto.WriteFileEnd(s.bw, fe)
}

// receiveText reads text entry i's bytes (at most MaxTextLen: the codec
// checked the size) and its FileEnd. It returns only an error of the
// stream; the entry's own failure is in t.results.
func (t *transfer) receiveText(i int, br *bufio.Reader) error {
	e := t.offer.Entries[i]
	data := make([]byte, e.Size)
	if _, err := io.ReadFull(br, data); err != nil {
		return fmt.Errorf("receiving the text message: %w", unexpected(err))
	}
	fe, err := proto.ReadFileEnd(br)
	if err == nil && fe.Index != uint32(i) {
		err = fmt.Errorf("file-end for entry %d: %w", fe.Index, proto.ErrMalformed)
	}
	if err != nil {
		return fmt.Errorf("receiving the text message: %w", unexpected(err))
	}
	h := proto.NewDigest()
	h.Write(data)
	switch {
	case fe.Status == proto.Aborted:
		t.fail(i, fe.Code, senderReason(fe.Code, fe.Reason))
	case !bytes.Equal(h.Sum(nil), fe.Digest[:]):
		t.fail(i, proto.CodeDigest, "digest mismatch: the message was corrupted in transit")
	default:
		t.takeText(i, data)
	}
	t.elapsed[i] = time.Since(t.start)
	t.pmu.Lock()
	t.wire = 0
	t.pmu.Unlock()
	return nil
}

// takeText takes text entry i's verified bytes: the transfer's message,
// and with Policy.SaveTexts a file of it in the shared folder. A message
// that is not UTF-8 fails (code 15); one that cannot be saved as a file
// is still delivered, and its result says why it was not saved.
func (t *transfer) takeText(i int, data []byte) {
	if !utf8.Valid(data) {
		t.fail(i, proto.CodeProtocol, "the message is not UTF-8 text")
		return
	}
	t.text = string(data)
	res := proto.Result{Status: proto.Delivered}
	if t.policy.SaveTexts {
		saved, err := t.saveText(i, data, time.Now())
		if err != nil {
			res.Code, res.Reason = writeCode(err), trimReason("delivered, but not saved as a file: "+errReason(err))
		}
		res.SavedAs = saved
	}
	t.results[i] = res
}

// saveText writes text entry i's bytes as a file at the top of the
// transfer's folder, with every guarantee a received file has: written
// in the staging folder, synced, then named textFileName(at) or the
// first free "name (n).txt", never replacing anything, and entered in
// the arrived index. It returns the name under the shared folder.
func (t *transfer) saveText(i int, data []byte, at time.Time) (string, error) {
	if err := t.in.ensureStaging(); err != nil {
		return "", err
	}
	f, tmp, err := t.in.createStagingTemp()
	if err != nil {
		return "", err
	}
	t.temps[i] = tmp
	if _, err := f.Write(data); err != nil {
		f.Close()
		t.discard(i)
		return "", err
	}
	root, rel := t.in.stagingRef(tmp)
	if err := (syncJob{i: i, f: f, root: root, name: rel, mode: fileMode, mtime: at}).run(); err != nil {
		t.discard(i)
		return "", err
	}
	dir, err := t.resolveDir("")
	if err != nil {
		t.discard(i)
		return "", err
	}
	t.in.mu.Lock()
	defer t.in.mu.Unlock()
	a, err := t.place(tmp, nil, dir, textFileName(at), "", "", nil, "")
	if err != nil {
		t.discard(i)
		return "", err
	}
	t.temps[i] = ""
	t.touched[dir] = true
	return a.saved, nil
}

// textFileName is the name a text message received at is saved under:
// "text-20260102-150405.txt", local time, so that saved messages sort by
// when they came.
func textFileName(at time.Time) string {
	return "text-" + at.Local().Format("20060102-150405") + ".txt"
}

// ReceiveText takes text entry i of the batch: a LocalSend text message,
// whose text came with the offer. It is the lanshare receiver's
// takeText: the message becomes the batch's Transfer.Text, and is saved
// as a file under Policy.SaveTexts. Like Receive, it may be called once
// for a pending entry.
func (b *Batch) ReceiveText(i int, text string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.t
	switch {
	case b.closed:
		return ErrBatchClosed
	case i < 0 || i >= len(b.state) || b.state[i] != batchPending || t.offer.Entries[i].Kind != proto.KindText:
		return ErrNotPending
	case uint64(len(text)) != t.offer.Entries[i].Size:
		b.state[i] = batchDone
		t.results[i] = proto.Result{Status: proto.Failed, Code: proto.CodeSize, Reason: "size mismatch"}
		return ErrSizeMismatch
	}
	t.takeText(i, []byte(text))
	t.elapsed[i] = time.Since(t.start)
	b.state[i] = batchDone
	if r := t.results[i]; r.Status != proto.Delivered {
		return fmt.Errorf("the text message: %s", r.Reason)
	}
	return nil
}

// textEntry is the inbox entry of a text message that came with its
// offer (LocalSend's).
func textEntry(text string, at time.Time) proto.Entry {
	return proto.Entry{Path: textPath, Kind: proto.KindText, Size: uint64(len(text)), Mode: 0o644, MTime: at}
}

// EscapeText renders a text message for one line of a terminal: each line
// break (LF, or CR LF) as "⏎", every line as Escape shows a name (as it
// is, or quoted with Go escapes when it holds a control character, an
// invisible or bidi format character such as U+202E or U+2066–U+2069, a
// backslash, a quote, or spaces at its ends; a line holding "⏎" itself is
// quoted too, so that it cannot pass for a line break). So an escape
// sequence, a C1 control or a bidi override never reaches the terminal
// raw, and what it shows reads back to the message.
func EscapeText(s string) string {
	lines := TextLines(s)
	for i, l := range lines {
		lines[i] = EscapeTextLine(l)
	}
	return strings.Join(lines, "⏎")
}

// TextLines splits a text message into its lines, without their line
// breaks, as they are: show each with EscapeTextLine, for a reader that
// shows one line of the message per line of the terminal.
func TextLines(s string) []string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// EscapeTextLine is how EscapeText shows one line of a message.
func EscapeTextLine(l string) string {
	if strings.Contains(l, "⏎") {
		return quote(l)
	}
	return Escape(l)
}

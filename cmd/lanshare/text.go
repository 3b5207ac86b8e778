package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

// Text messages in the command line: send --text, serve's log lines and
// events for them, history's column and history --text.
//
// On a terminal a message is always escaped (peer.EscapeText): each line
// break as "⏎", and a line holding a control character, an invisible or
// bidi format character, a backslash, a quote or spaces at its ends
// quoted with Go escapes (\x1b, \u202e). history --text shows a message a
// line per line, each indented by "  > " and escaped so; in JSON the
// message is as sent, with every control and invisible character as a
// \u escape (jsonForTerminal), so that JSON read on a terminal is safe
// too.

// textArg is send's --text: the message (read from stdin for "-"), or nil
// without --text. With --text the command line names only the target.
// A message that cannot be sent (empty, over 64 KiB, not UTF-8) is a
// usage error, before anything is looked up or sent.
func textArg(c *cli.Context, stdin *os.File, stderr io.Writer) (*string, error) {
	if !c.IsSet("text") {
		return nil, nil
	}
	to := len(listValues(c, "to")) > 0
	switch {
	case to && c.NArg() > 0:
		return nil, usageError{msg: fmt.Sprintf("--text sends a message alone, without paths (%s): send files with another command", peer.Escape(c.Args().First())),
			usage: textUsage}
	case !to && (c.NArg() == 0 || c.Args().First() == ""):
		return nil, usageError{msg: "send --text needs a target: lanshare send TARGET --text MESSAGE", usage: textUsage}
	case c.NArg() > 1:
		return nil, usageError{msg: fmt.Sprintf("--text sends a message alone, without paths (%s): send files with another command", peer.Escape(c.Args().Get(1))),
			usage: textUsage}
	}
	text := c.String("text")
	if text == "-" {
		if isTerminal(stdin) {
			fmt.Fprintln(stderr, "lanshare: type the message, then Ctrl-D on a line of its own")
		}
		var err error
		if text, err = peer.ReadText(stdin); err != nil {
			if errors.Is(err, peer.ErrTextInvalid) {
				return nil, usageError{msg: err.Error(), usage: textUsage}
			}
			return nil, err
		}
	}
	if _, err := peer.TextItem(text, time.Now()); err != nil {
		return nil, usageError{msg: err.Error(), usage: textUsage}
	}
	return &text, nil
}

// textUsage is the synopsis shown with a usage error of send --text.
const textUsage = "lanshare send [options] TARGET --text MESSAGE|-"

// textSent is send's summary of a message that arrived.
func textSent(rep *peer.Report) string {
	s := fmt.Sprintf("message delivered to %s (%s)", peer.Escape(rep.Peer), plural(int(rep.Items[0].Entry.Size), "byte"))
	if len(rep.Results) == 1 && rep.Results[0].SavedAs != "" {
		s += ", saved there as " + peer.Escape(rep.Results[0].SavedAs)
	}
	return s
}

// textSavedAs is the file a transfer's text message was saved as, or "".
func textSavedAs(tr *peer.Transfer) string {
	for _, e := range tr.Entries {
		if e.Kind == proto.KindText {
			return e.Result.SavedAs
		}
	}
	return ""
}

// textOnly reports whether a transfer carried nothing but its message.
func textOnly(tr *peer.Transfer) bool {
	for _, e := range tr.Entries {
		if e.Kind != proto.KindText {
			return false
		}
	}
	return true
}

// logText writes serve's line, or event, for a transfer's message:
// "message from alice (ADDR, id …): the door code is 4711", escaped, on
// one line.
func logText(l agentLog, in peer.Incoming, base serveEvent, from string) {
	text := in.Transfer.Text
	ev := base
	size := uint64(len(text))
	ev.Event, ev.Text, ev.Size = "text", text, &size
	note := ""
	if saved := textSavedAs(in.Transfer); saved != "" {
		ev.SavedAs = saved
		note = " (saved as " + peer.Escape(saved) + ")"
	}
	l.event(in.End, prioInfo, ev, "message from %s: %s%s", from, peer.EscapeText(text), note)
}

// historyTextCell is a message in history's table: its start, escaped
// on one line.
func historyTextCell(a peer.Arrival) string {
	text, more := a.Text, ""
	if utf8.RuneCountInString(text) > maxTextCell {
		text, more = string([]rune(text)[:maxTextCell]), "…"
	}
	s := "message: " + peer.EscapeText(text) + more
	if a.SavedAs != "" {
		s += " (saved as " + peer.Escape(a.SavedAs) + ")"
	}
	return s
}

// maxTextCell is how many characters of a message history's table shows;
// history --text shows all.
const maxTextCell = 60

// showTexts prints the text messages of the history, oldest first: for
// each, a line with the time, the sender and its id, then the message a
// line per line, indented by "  > " and escaped. With asJSON, one object
// per line, as history --json prints them.
func showTexts(configDir string, asJSON bool, w io.Writer) error {
	arrivals, err := peer.OpenHistory(configDir).Read()
	if err != nil {
		return err
	}
	var enc *json.Encoder
	if asJSON {
		enc = json.NewEncoder(jsonForTerminal{w})
	}
	n := 0
	for _, a := range arrivals {
		if a.Text == "" {
			continue
		}
		n++
		if enc != nil {
			if err := enc.Encode(a); err != nil {
				return err
			}
			continue
		}
		from := orDash(peer.Escape(a.From))
		if a.ID != "" {
			from += " (id " + peer.ShortID(a.ID) + ")"
		}
		if a.SavedAs != "" {
			from += ", saved as " + peer.Escape(a.SavedAs)
		}
		fmt.Fprintf(w, "%s  %s\n", stamp(a.Time.Local()), from)
		for _, line := range peer.TextLines(a.Text) {
			fmt.Fprintf(w, "  > %s\n", peer.EscapeTextLine(line))
		}
	}
	if n == 0 && enc == nil {
		fmt.Fprintln(w, "no text messages received yet")
	}
	return nil
}

// jsonForTerminal writes what a json.Encoder writes (one whole value a
// call) with every control character and invisible or bidi format
// character left in a string (C1 controls, DEL, U+200B, U+202E,
// U+2066–U+2069, U+FEFF, ...; encoding/json escapes only C0 and
// U+2028/U+2029) as a \u escape: the same JSON to a parser, and nothing
// that steers a terminal that shows it.
type jsonForTerminal struct{ w io.Writer }

func (j jsonForTerminal) Write(p []byte) (int, error) {
	if _, err := j.w.Write(escapeHiddenJSON(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// escapeHiddenJSON returns p, encoding/json's output, with the runes that
// do not show as themselves escaped; p itself when it has none. Outside
// its strings JSON holds only ASCII, so every such rune is in a string.
func escapeHiddenJSON(p []byte) []byte {
	var out []byte
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRune(p[i:])
		if !hiddenInJSON(r, n) {
			if out != nil {
				out = append(out, p[i:i+n]...)
			}
			i += n
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(p)+16), p[:i]...)
		}
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += n
	}
	if out == nil {
		return p
	}
	return out
}

// hiddenInJSON reports whether rune r (n bytes of valid UTF-8) is one
// that jsonForTerminal escapes. ASCII other than DEL is left alone: the
// encoder escaped its controls, and its line ends are its own.
func hiddenInJSON(r rune, n int) bool {
	if r == utf8.RuneError && n == 1 {
		return false // encoding/json never writes one
	}
	if r < 0x7f {
		return false
	}
	return !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) || strings.ContainsRune("\u034f\u115f\u1160\u3164\uffa0\u2800", r)
}

// offeredText names what an offer with a text message holds, for the
// owner who decides on it (the message shows once accepted).
func offeredText(files int) string {
	if files == 0 {
		return "a text message"
	}
	return "a text message and " + plural(files, "file")
}

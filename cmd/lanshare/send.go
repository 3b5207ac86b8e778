package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/cheggaaa/pb/v3"
	"golang.org/x/term"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

type sendArgs struct {
	target, name   string
	configDir      string
	paths          []string
	retries        int
	quiet, json    bool
	verbose        bool // into a pipe: a line for every file
	stdout, stderr io.Writer
	resolve        peer.ResolveOptions
	localsend      bool   // the target is a LocalSend device
	pin            string // a LocalSend device's PIN, given before it asks
	exclude        *peer.Exclude
	text           *string  // --text: a message to send instead of paths
	as             string   // the name standard input ("-") arrives under
	stdin          *os.File // standard input, for "-"
}

func send(ctx context.Context, a sendArgs) error {
	pipe := isPipe(a.paths)
	if meant := swappedSend(a.target, a.paths); meant != "" && !pipe && !agentLacksPeer(ctx, a.configDir, a.paths[len(a.paths)-1]) {
		return swappedError(a.target, a.paths[len(a.paths)-1], meant)
	}
	col, err := collectSend(a)
	if col.done != nil {
		defer col.done()
	}
	if err != nil {
		return err
	}
	items, files, total, left := col.items, col.files, col.total, col.left
	ctx, stop := signalContext(ctx)
	defer stop()
	settlePipe(ctx, items)
	id, known, err := prepareSend(&a)
	if err != nil {
		return err
	}
	target, dev, err := resolveTarget(ctx, a)
	if sig, ok := interruption(ctx); ok && err != nil {
		return interruptedError{sig: sig, what: "nothing was sent: still looking for " + peer.Escape(a.target)}
	}
	if err != nil {
		return err
	}
	if dev != nil {
		if err := refusePipeToLocalSend(items, *dev); err != nil {
			return err
		}
	}
	sender := peer.Sender{Identity: id, Known: known}

	opt := peer.SendOptions{Name: a.name, Retries: a.retries, ConfigDir: a.configDir}
	if a.retries == 0 {
		opt.Retries = -1
	}
	var bar *pb.ProgressBar
	var events *json.Encoder
	switch {
	case a.json:
		events = json.NewEncoder(a.stdout)
		_ = events.Encode(sendEvent{Event: "offer", Peer: target.Name, ID: target.ID, Files: files, Bytes: total, Excluded: col.excluded})
		opt.OnRetry = func(r peer.Retry) {
			_ = events.Encode(sendEvent{Event: "retry", Attempt: r.Attempt, Wait: r.Wait.Seconds(), Reason: oneLine(r.Err)})
		}
	case a.quiet, a.text != nil:
	case isTerminal(a.stdout):
		bar = newSendBar(pipe, total, a.stdout)
		opt.Progress = func(p peer.Progress) {
			bar.SetCurrent(int64(p.Bytes))
			bar.Set("file", peer.Escape(p.Path))
			bar.Set("files", fmt.Sprintf("%d/%d", p.Files, p.FilesTotal))
			bar.Set("note", progressNote(p))
		}
		opt.OnRetry = func(r peer.Retry) {
			bar.Set("note", fmt.Sprintf("connection lost, retrying in %s (%d) ", formatDuration(r.Wait), r.Attempt-1))
		}
	default:
		// Into a pipe or a file: a line per file for the first
		// fileLines (every one with --verbose), then the summary.
		lastFiles, lastAttempt, lastSkipped, listed := 0, 1, 0, 0
		opt.Progress = func(p peer.Progress) {
			if p.Files > lastFiles || p.Attempt != lastAttempt {
				if p.Attempt != lastAttempt {
					lastSkipped = 0 // a retry counts again from its start
				}
				there := p.Skipped > lastSkipped || p.Skipped > 0 && p.Skipped < lastSkipped // (the next batch)
				lastFiles, lastAttempt, lastSkipped = p.Files, p.Attempt, p.Skipped
				if listed++; listed > fileLines && !a.verbose {
					if listed == fileLines+1 {
						fmt.Fprintf(a.stdout, "… the other files are not listed (--verbose lists every one)\n")
					}
					return
				}
				fmt.Fprintf(a.stdout, "%s %d/%d files, %s: %s%s\n", sentOrThere(there), p.Files, p.FilesTotal,
					sentOf(pipe, p), peer.Escape(p.Path), strings.TrimRight(", "+thereNote(there)+progressNote(p), ", "))
			}
		}
		opt.OnRetry = func(r peer.Retry) {
			fmt.Fprintf(a.stdout, "connection lost (%s); retrying in %s (retry %d)\n", oneLine(r.Err), formatDuration(r.Wait), r.Attempt-1)
		}
	}
	// The last progress says what arrived when a send is cut short.
	var last peer.Progress
	show := opt.Progress
	opt.Progress = func(p peer.Progress) {
		last = p
		if show != nil {
			show(p)
		}
	}
	opt.OnWait = func(w peer.Waiting) {
		switch {
		case events != nil:
			_ = events.Encode(sendEvent{Event: "waiting", Peer: w.Peer, Wait: w.Timeout.Seconds(), Reason: w.Reason})
		case a.quiet:
		case bar != nil:
			bar.Set("note", waitingLine(w)+" ")
		default:
			fmt.Fprintln(a.stdout, waitingLine(w))
		}
	}
	start := time.Now()
	var rep *peer.Report
	if dev != nil {
		rep, err = sendLocalSend(ctx, a, *dev, known, items, opt)
	} else {
		rep, err = sender.Send(ctx, target, items, opt)
		err = staticKeyChanged(target, err)
	}
	if pipe && len(items) == 1 {
		total = itemSize(items[0])
	}
	if bar != nil {
		if err == nil {
			bar.SetCurrent(int64(total))
		}
		bar.Finish()
	}
	who := target.Name
	if rep != nil && rep.Peer != "" {
		who = peer.Escape(rep.Peer)
	}
	var stopped *peer.StoppedError
	if sig, ok := interruption(ctx); ok && err != nil && pipe {
		err = interruptedError{sig: sig, what: pipeCutShort(who, items)}
	} else if ok && err != nil {
		err = interruptedError{sig: sig, what: cutShort(who, last, files, total)}
	} else if errors.As(err, &stopped) {
		err = reworded{err: err, msg: fmt.Sprintf("%s stopped (nothing listens at %s any more) after %s; it keeps what arrived: run the same command again once it runs to resume",
			who, stopped.Addr, sentSoFar(last, files, total))}
	}
	if events != nil {
		jsonResults(events, rep, err, time.Since(start))
		if err == nil {
			return left
		}
		return err
	}
	// With more than one item, list every one that failed; the error
	// names the first (or the only one).
	for _, line := range notSaved(rep, err) {
		fmt.Fprintf(a.stderr, "lanshare: %s\n", line)
	}
	if err != nil {
		return err
	}
	if !a.quiet {
		el := time.Since(start)
		switch {
		case a.text != nil:
			fmt.Fprintln(a.stdout, textSent(rep))
		case allThere(rep):
			fmt.Fprintf(a.stdout, "nothing to send: %s already there on %s (%s)\n", plural(files, "file"), peer.Escape(rep.Peer), withExcluded(peer.FormatBytes(total), col.excluded))
		case rep.Sent == 0: // no rate of nothing
			fmt.Fprintf(a.stdout, "sent %s (%s) to %s in %s%s\n", plural(files, "file"), peer.FormatBytes(total),
				peer.Escape(rep.Peer), formatDuration(el), sendNotes(rep, col.excluded))
		default:
			fmt.Fprintf(a.stdout, "sent %s (%s) to %s in %s, %s/s%s\n", plural(files, "file"), peer.FormatBytes(total),
				peer.Escape(rep.Peer), formatDuration(el), peer.FormatBytes(uint64(float64(rep.Sent)/max(el.Seconds(), 1e-3))), sendNotes(rep, col.excluded))
		}
	}
	return left
}

// leftOut is the error for the paths Collect skipped because they cannot
// be read or their names cannot be sent: the rest went, and the exit
// code says something was left behind. Links and special files met in a
// folder are skipped by design and are no error; nil when nothing else was.
func leftOut(skipped []peer.Skipped) error {
	n := 0
	for _, s := range skipped {
		if !errors.Is(s.Err, peer.ErrNotRegular) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return reworded{err: peer.ErrSourceUnreadable,
		msg: fmt.Sprintf("%s could not be sent (see the warnings above); everything else was", plural(n, "path"))}
}

// cutShort says what was sent to who before a send was cut short, from
// the last progress, and how to finish it. Only a receipt says what
// arrived; the receiver keeps the files that did, and a large file's
// partial bytes, for the same command's next run.
func cutShort(who string, last peer.Progress, files int, total uint64) string {
	switch {
	case last.Attempt == 0:
		return fmt.Sprintf("nothing was sent to %s: run the same command again to send", who)
	case last.Files == files:
		return fmt.Sprintf("all %s (%s) were sent to %s, which had not confirmed them yet; run the same command again to check: what arrived is not sent again",
			plural(files, "file"), peer.FormatBytes(total), who)
	}
	return fmt.Sprintf("%d of %s (%s of %s) were sent to %s; run the same command again to resume: what arrived is not sent again",
		last.Files, plural(files, "file"), peer.FormatBytes(last.Bytes), peer.FormatBytes(total), who)
}

// sentSoFar says how much of a send went out, from its last progress.
func sentSoFar(last peer.Progress, files int, total uint64) string {
	if last.Attempt == 0 {
		return "nothing was sent"
	}
	return fmt.Sprintf("%d of %s (%s of %s) were sent", last.Files, plural(files, "file"), peer.FormatBytes(last.Bytes), peer.FormatBytes(total))
}

// reworded is err with a message for people in place of its own.
type reworded struct {
	err error
	msg string
}

func (e reworded) Error() string { return e.msg }
func (e reworded) Unwrap() error { return e.err }

// agentLacksPeer reports whether the running local agent, if any, sees no
// peer that name could mean (a display name, an instance name or an id
// prefix). Without an agent it is false: nothing cheap can tell.
func agentLacksPeer(ctx context.Context, configDir, name string) bool {
	st, err := peer.QueryAgent(ctx, configDir)
	if err != nil {
		return false
	}
	for _, p := range st.Peers {
		if strings.EqualFold(p.Name, name) || strings.EqualFold(p.Instance, name) ||
			len(name) >= 4 && strings.HasPrefix(strings.ToLower(strings.ReplaceAll(p.ID, "-", "")), strings.ToLower(strings.ReplaceAll(name, "-", ""))) {
			return false
		}
	}
	return true
}

// allThere reports whether the receiver had every file of rep already.
func allThere(rep *peer.Report) bool {
	files := 0
	for i, r := range rep.Results {
		if rep.Items[i].Entry.Kind != proto.KindFile {
			continue
		}
		if r.Status != proto.Skipped {
			return false
		}
		files++
	}
	return files > 0
}

// sentOrThere starts a progress line: "sent", or "skipped" for a file
// the receiver had, which did not cross (thereNote says so).
func sentOrThere(there bool) string {
	if there {
		return "skipped"
	}
	return "sent"
}

func thereNote(there bool) string {
	if there {
		return "already there, "
	}
	return ""
}

// progressNote says that a send resumes or retries, for the progress line.
func progressNote(p peer.Progress) string {
	var s string
	if p.Attempt > 1 {
		s = fmt.Sprintf("retry %d, ", p.Attempt-1)
	}
	if p.Resumed > 0 {
		s += fmt.Sprintf("resumed %s, ", peer.FormatBytes(p.Resumed))
	}
	return s
}

// sendNotes says what a finished send did not have to move, and how many
// paths --exclude left out.
func sendNotes(rep *peer.Report, excluded int) string {
	var notes []string
	skipped := 0
	for i, r := range rep.Results {
		if r.Status == proto.Skipped && rep.Items[i].Entry.Kind == proto.KindFile {
			skipped++
		}
	}
	if skipped > 0 {
		notes = append(notes, plural(skipped, "file")+" already there")
	}
	notes = append(notes, renamed(rep)...)
	if rep.Resumed > 0 {
		notes = append(notes, "resumed "+peer.FormatBytes(rep.Resumed))
	}
	if rep.Retries > 0 {
		retries := "1 retry"
		if rep.Retries > 1 {
			retries = fmt.Sprintf("%d retries", rep.Retries)
		}
		notes = append(notes, "after "+retries)
	}
	if excluded > 0 {
		notes = append(notes, excludedNote(excluded))
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, ", ") + ")"
}

// maxRenamed is how many renamed entries a send's summary names.
const maxRenamed = 3

// renamed says which files and folders the receiver saved under another
// name than the one offered (its file system cannot hold the name, or the
// name was taken): "a:b.txt saved as a：b.txt", at most maxRenamed of
// them, then "N more renamed". Only a changed last component counts: the
// files of a renamed folder, or of a receiver's per-peer folder, keep
// their names.
func renamed(rep *peer.Report) []string {
	var out []string
	more := 0
	for i, r := range rep.Results {
		offered := rep.Items[i].Entry.Path
		if r.Status != proto.Saved || r.SavedAs == "" || path.Base(r.SavedAs) == path.Base(offered) {
			continue
		}
		if len(out) == maxRenamed {
			more++
			continue
		}
		out = append(out, fmt.Sprintf("%s saved as %s", peer.Escape(offered), peer.Escape(path.Base(r.SavedAs))))
	}
	if more > 0 {
		out = append(out, fmt.Sprintf("%d more renamed", more))
	}
	return out
}

// sendEvent is one line of `send --json`. Field names are stable.
type sendEvent struct {
	Event   string  `json:"event"` // offer, waiting, file-saved, file-skipped, text-delivered, error, transfer-done
	Peer    string  `json:"peer,omitempty"`
	ID      string  `json:"id,omitempty"`
	Path    string  `json:"path,omitempty"`
	SavedAs string  `json:"saved_as,omitempty"`
	Size    *uint64 `json:"size,omitempty"`
	Files   int     `json:"files,omitempty"`
	Bytes   uint64  `json:"bytes,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	Sent    *uint64 `json:"sent,omitempty"`    // transfer-done: file bytes that crossed the network
	Resumed uint64  `json:"resumed,omitempty"` // transfer-done: file bytes the receiver had from an interrupted send
	Retries int     `json:"retries,omitempty"` // transfer-done: connections after the first
	Attempt int     `json:"attempt,omitempty"` // retry: the attempt about to start (2 for the first retry)
	Wait    float64 `json:"wait,omitempty"`    // retry: seconds before it
	Code    string  `json:"code,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	Exit    int     `json:"exit,omitempty"`
	// offer: paths --exclude left out (a folder once)
	Excluded int `json:"excluded,omitempty"`
}

// jsonResults writes one event per file of rep, then the outcome: an
// error event (with the exit code) or transfer-done.
func jsonResults(enc *json.Encoder, rep *peer.Report, err error, took time.Duration) {
	var saved int
	var bytes uint64
	if rep != nil {
		for i, res := range rep.Results {
			e := rep.Items[i].Entry
			ev := sendEvent{Path: e.Path, SavedAs: res.SavedAs}
			switch res.Status {
			case proto.Saved:
				ev.Event = "file-saved"
				if e.Kind != proto.KindDir {
					size := itemSize(rep.Items[i])
					ev.Size = &size
					saved++
					bytes += size
				}
			case proto.Skipped:
				ev.Event, ev.Reason = "file-skipped", res.Reason
			case proto.Delivered:
				size := e.Size
				ev.Event, ev.Path, ev.Size = "text-delivered", "", &size
			default:
				ev.Event, ev.Code, ev.Reason = "error", res.Code.String(), res.Reason
			}
			_ = enc.Encode(ev)
		}
	}
	if err != nil {
		_ = enc.Encode(sendEvent{Event: "error", Reason: oneLine(err), Exit: exitCode(err)})
		return
	}
	sent := rep.Sent
	_ = enc.Encode(sendEvent{Event: "transfer-done", Peer: rep.Peer, Files: saved, Bytes: bytes, Seconds: took.Seconds(),
		Sent: &sent, Resumed: rep.Resumed, Retries: rep.Retries})
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

const barTemplate = `{{string . "note"}}{{string . "files"}} {{counters . }} {{bar . "[" "=" ">" " " "]"}} {{speed . "%s/s" "?"}} {{rtime . "ETA %s"}} {{string . "file"}}`

func newBar(total uint64, w io.Writer) *pb.ProgressBar {
	bar := pb.ProgressBarTemplate(barTemplate).New(0)
	bar.SetTotal(int64(total))
	bar.Set(pb.Bytes, true)
	bar.Set(pb.SIBytesPrefix, true)
	bar.SetWriter(w)
	bar.SetRefreshRate(200 * time.Millisecond)
	return bar.Start()
}

// plural is "1 file", "2 files".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// resolveTarget finds a.target: a lanshare peer (unless a.localsend), or
// else, when no lanshare peer answers to the name, a LocalSend device
// (dev not nil).
func resolveTarget(ctx context.Context, a sendArgs) (target peer.Target, dev *discovery.LocalSendDevice, err error) {
	if !a.localsend {
		target, err = peer.Resolve(ctx, a.target, a.resolve)
	}
	// A name no lanshare peer answers to may be a LocalSend device's.
	if a.localsend || errors.Is(err, peer.ErrUnknownPeer) {
		d, lerr := findLocalSendDevice(ctx, a)
		switch {
		case lerr == nil:
			dev, err = &d, nil
			target = peer.Target{Name: peer.Escape(d.Alias), DisplayName: d.Alias, ID: peer.LocalSendID(d.Fingerprint)}
		case a.localsend || !errors.Is(lerr, peer.ErrUnknownPeer):
			err = lerr
		}
	}
	return target, dev, err
}

// notSaved lists the files of rep that failed, a line each ("not saved:
// PATH: REASON"), when it holds more than one item, leaving out a file
// err names; beyond notSavedLines, one more line counts the rest by
// reason, so that a folder of 10,000 files that all failed does not flood
// the terminal.
func notSaved(rep *peer.Report, err error) []string {
	if rep == nil || len(rep.Results) < 2 {
		return nil
	}
	var se *peer.SourceError
	ownOnly := errors.As(err, &se) && se.Count == 1 // named by the error
	var lines []string
	counts := map[proto.Code]int{}
	total := 0
	for i, res := range rep.Results {
		if ownOnly && res.Code == proto.CodeSourceChanged {
			continue
		}
		if res.Status != proto.Failed && res.Status != proto.Refused {
			continue
		}
		counts[res.Code]++
		if total++; total <= notSavedLines {
			lines = append(lines, fmt.Sprintf("not saved: %s: %s", peer.Escape(rep.Items[i].Entry.Path), peer.Escape(res.Reason)))
		}
	}
	if more := total - notSavedLines; more > 0 {
		lines = append(lines, fmt.Sprintf("and %d more not saved (all %d: %s)", more, total, describeCounts(counts)))
	}
	return lines
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

func serve(ctx context.Context, cfg peer.Config, asJSON, verbose bool, stdout io.Writer) error {
	// Catch signals before anything is printed, so that a stop right after
	// the address appears is a clean shutdown, not a kill.
	ctx, stop := signalContext(ctx)
	defer stop()
	// On a terminal, a bar per incoming transfer stays under the log.
	out := stdout
	var live *liveBars
	if !asJSON && os.Getenv("JOURNAL_STREAM") == "" && isTerminal(stdout) {
		live = newLiveBars(stdout)
		defer live.Close()
		out = live
		cfg.OnReceiving = live.add
	}
	lg := newAgentLog(out, asJSON)
	lg.verbose = verbose
	limit := &failureLog{}
	asked := &failureLog{} // the lines of offers that wait
	history := peer.OpenHistory(cfg.ConfigDir)
	cfg.OnTransfer = func(in peer.Incoming) {
		if live != nil {
			live.end(in.ID)
		}
		if err := history.Append(arrivals(in)...); err != nil {
			lg.event(time.Now(), prioWarning, serveEvent{Event: "warning", Reason: err.Error()}, "warning: %s", oneLine(err))
		}
		logLimited(lg, limit, in)
	}
	cfg.OnPeer = func(ev discovery.Event) {
		if ev.Kind == discovery.PeerUpdate {
			return
		}
		kind := map[discovery.EventKind]string{discovery.PeerUp: "peer-up", discovery.PeerDown: "peer-down"}[ev.Kind]
		j := toJSON(ev.Peer, "")
		lg.event(time.Now(), prioInfo, serveEvent{Event: kind, Peer: j.Instance, Name: j.Name, PeerID: j.ID, Addrs: j.Addrs, Version: j.Version},
			"%s", describeEvent(ev, ""))
	}
	cfg.OnStatic = func(st peer.StaticStatus) { logStatic(lg, st) }
	cfg.OnQueue = func(ev peer.QueueEvent) { logQueue(lg, ev) }
	cfg.OnDownload = func(d peer.Download) { logDownload(lg, d) }
	cfg.Logf = func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		lg.event(time.Now(), prioWarning, serveEvent{Event: "warning", Reason: msg}, "%s", peer.Escape(msg))
	}
	var prompt *prompter
	if cfg.Accept == peer.AcceptAsk {
		if !asJSON && isTerminal(os.Stdin) {
			prompt = newPrompter(out, max(cfg.MaxPending, peer.DefaultMaxPending))
		}
		cfg.OnAsk = func(o peer.PendingOffer) {
			if prompt != nil && prompt.offer(o) {
				return
			}
			// A stranger that offers and hangs up at once, again and
			// again, gets a line as often as a failure does.
			ok, left := asked.allow(hostPort(o.Remote), time.Now())
			if !ok {
				return
			}
			if left > 0 {
				lg.askedSuppressed(time.Now(), hostPort(o.Remote), left)
			}
			lg.event(time.Now(), prioInfo, serveEvent{Event: "offer-waiting", Count: o.Files, Name: o.From, PeerID: o.PeerID, Remote: o.Remote,
				Bytes: o.Bytes, Offer: o.ID},
				"offer %s waits for your answer: %s; lanshare accept %s [--trust], or lanshare decline %s", o.ID, describeOffer(o), o.ID, o.ID)
		}
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(peer.MemoryLimit)
	}
	agent, err := peer.New(cfg)
	if err != nil {
		return startError(ctx, cfg, err)
	}
	defer agent.Close()
	if prompt != nil {
		prompt.start(agent)
		defer prompt.close()
	}
	if asJSON {
		lg.event(time.Now(), prioInfo, serveEvent{Event: "listening", Addr: agent.Addr().String()}, "")
	} else {
		fmt.Fprintf(out, "listening on %s\n", agent.Addr())
	}
	if port := portGivenUp(cfg, agent.Addr()); port != "" {
		msg := fmt.Sprintf("port %s is in use by another program (another agent on this machine?); listening on port %d instead: peers find this agent by name (a firewall must allow the port), and --listen chooses the port",
			port, agent.Addr().(*net.TCPAddr).Port)
		lg.event(time.Now(), prioWarning, serveEvent{Event: "warning", Reason: msg}, "warning: %s", msg)
	}
	for _, name := range missingIfaces(cfg.Ifaces) {
		lg.event(time.Now(), prioWarning, serveEvent{Event: "warning", Reason: "no network interface named " + name + " yet"},
			"warning: no network interface named %s yet; it is used once it appears", peer.Escape(name))
	}
	lg.event(time.Now(), prioInfo, serveEvent{Event: "sharing", Dir: cfg.Dir, Peer: agent.Instance(), PeerID: agent.ID(), Accept: cfg.Accept},
		"sharing %s as %s, id %s", peer.Escape(cfg.Dir), peer.Escape(agent.Instance()), peer.GroupID(agent.ID()))
	if !asJSON {
		lg.infof(time.Now(), "%s", whoMaySend(cfg, agent, prompt != nil))
	}
	if err := agent.LocalSendUnavailable(); err != nil {
		lg.event(time.Now(), prioWarning, serveEvent{Event: "warning", Reason: err.Error()}, "warning: %s", oneLine(err))
	}
	if addr := agent.LocalSendAddr(); addr != nil {
		pin := ""
		if cfg.LocalSendPIN != "" {
			pin = "; strangers need the PIN"
		}
		lg.event(time.Now(), prioInfo, serveEvent{Event: "localsend", Addr: addr.String(), PeerID: agent.LocalSendFingerprint()},
			"LocalSend apps can send here: %s, certificate %s%s", httpsURL(addr.String()), peer.LocalSendShortFingerprint(agent.LocalSendFingerprint()), pin)
		if cfg.Web {
			var qr io.Writer
			if !asJSON && isTerminal(out) {
				qr = out
			}
			logDropPage(lg, cfg, addr, qr)
			if plain := agent.WebInsecureHTTPAddr(); plain != nil {
				logInsecureHTTP(lg, plain)
			}
		}
	}
	if err := agent.Serve(ctx); err != nil {
		return err
	}
	for host, left := range limit.flush() {
		lg.suppressed(time.Now(), host, left)
	}
	for host, left := range asked.flush() {
		lg.askedSuppressed(time.Now(), host, left)
	}
	lg.event(time.Now(), prioInfo, serveEvent{Event: "stopped"}, "stopped")
	return nil
}

// serveEvent is one line of `serve --json`. Field names are stable; empty
// fields are left out.
type serveEvent struct {
	Event   string   `json:"event"` // listening, sharing, peer-up, peer-down, static-up, static-down, file-saved, file-skipped, text, localsend, web, download, error, transfer-done, warning, suppressed, stopped; queued, delivering, delivered, retry, failed, source-changed, cancelled (send --later)
	Time    string   `json:"time"`
	Addr    string   `json:"addr,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	Accept  string   `json:"accept,omitempty"`
	Peer    string   `json:"peer,omitempty"` // an instance name
	Name    string   `json:"name,omitempty"` // a display name
	PeerID  string   `json:"id,omitempty"`
	Addrs   []string `json:"addrs,omitempty"`
	Version string   `json:"version,omitempty"`
	Remote  string   `json:"remote,omitempty"`
	Path    string   `json:"path,omitempty"`
	SavedAs string   `json:"saved_as,omitempty"`
	Size    *uint64  `json:"size,omitempty"`
	Files   int      `json:"files,omitempty"`
	Bytes   uint64   `json:"bytes,omitempty"`
	Seconds float64  `json:"seconds,omitempty"`
	Code    string   `json:"code,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Count   int      `json:"count,omitempty"`
	Resumed uint64   `json:"resumed,omitempty"` // file-saved: the bytes it had from an interrupted transfer
	Offer   string   `json:"offer,omitempty"`   // offer-waiting: the id to answer (lanshare accept)
	Via     string   `json:"via,omitempty"`     // "localsend" for what came over LocalSend's protocol
	Text    string   `json:"text,omitempty"`    // text: the message, as sent (controls and invisible characters as \u escapes)
	PIN     string   `json:"pin,omitempty"`     // web: the drop page's PIN
	Share   string   `json:"share,omitempty"`   // download: the share link's id
	Job     string   `json:"job,omitempty"`     // queued ... cancelled: the job's id (lanshare queue)
	Wait    float64  `json:"wait,omitempty"`    // retry: seconds before the next try
	Skipped int      `json:"skipped,omitempty"` // delivered: files the receiver had already
}

func stamp(t time.Time) string { return t.Format(time.RFC3339) }

// agentLog writes serve's log: one line per event, on stdout. On a
// terminal or into a file each line starts with its time; under systemd
// (JOURNAL_STREAM set: stdout is the journal) the journal adds the time,
// so lines start instead with their syslog priority, "<6>" for news and
// "<4>" for failures, which journald files as the entry's priority.
// With --json every line is instead one serveEvent.
type agentLog struct {
	l       *log.Logger
	journal bool
	verbose bool          // a line for every file received
	mu      *sync.Mutex   // serialises enc
	enc     *json.Encoder // --json
}

func newAgentLog(w io.Writer, asJSON bool) agentLog {
	g := agentLog{l: log.New(w, "", 0), journal: os.Getenv("JOURNAL_STREAM") != "", mu: &sync.Mutex{}}
	if asJSON {
		g.enc = json.NewEncoder(jsonForTerminal{w})
	}
	return g
}

// event writes ev with --json, else the text line.
func (g agentLog) event(t time.Time, prio int, ev serveEvent, format string, args ...any) {
	if g.enc == nil {
		g.printf(prio, t, format, args...)
		return
	}
	ev.Time = stamp(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = g.enc.Encode(ev)
}

func (g agentLog) suppressed(t time.Time, host string, n int) {
	g.event(t, prioWarning, serveEvent{Event: "suppressed", Remote: host, Count: n},
		"%s from %s not logged", plural(n, "more failed connection"), host)
}

func (g agentLog) askedSuppressed(t time.Time, host string, n int) {
	g.event(t, prioInfo, serveEvent{Event: "suppressed", Remote: host, Count: n},
		"%s from %s waited for your answer, not logged (lanshare pending lists those still waiting)", plural(n, "more offer"), host)
}

// hostPort returns the host of addr, a host:port, or addr.
func hostPort(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// Syslog priorities used in journal mode.
const (
	prioWarning = 4
	prioInfo    = 6
)

func (g agentLog) infof(t time.Time, format string, args ...any) {
	g.printf(prioInfo, t, format, args...)
}

func (g agentLog) printf(prio int, t time.Time, format string, args ...any) {
	if g.journal {
		g.l.Printf("<%d>%s", prio, fmt.Sprintf(format, args...))
		return
	}
	g.l.Printf("%s %s", stamp(t), fmt.Sprintf(format, args...))
}

// arrivals are the files in.Transfer saved, for the history.
func arrivals(in peer.Incoming) []peer.Arrival {
	if in.Transfer == nil {
		return nil
	}
	out := make([]peer.Arrival, 0, len(in.Transfer.Entries)+1)
	remote := fmt.Sprint(in.Remote) // once: a transfer may hold 100,000 files
	if in.Transfer.Text != "" {
		out = append(out, peer.Arrival{Time: in.End, From: in.Transfer.From, ID: in.PeerID, Remote: remote, Text: in.Transfer.Text,
			SavedAs: textSavedAs(in.Transfer)})
	}
	for _, e := range in.Transfer.Entries {
		if e.Kind == proto.KindFile && e.Result.Status == proto.Saved {
			out = append(out, peer.Arrival{Time: in.End, From: in.Transfer.From, ID: in.PeerID,
				Remote: remote, Path: e.Path, SavedAs: e.Result.SavedAs, Size: e.Size})
		}
	}
	return out
}

// logTransfer writes, for a transfer that ended well, one line that sums
// it up (files, bytes, time, sender), after a line for each of the first
// fileLines files it received (every one when the log is verbose) and
// one that counts the rest; or, for a transfer that failed, one that says
// why. With --json every file gets its event (file-saved,
// file-skipped), then error events or transfer-done.
func logTransfer(l agentLog, in peer.Incoming) { logTransferNames(l, in, notSavedLines) }

// logTransferNames is logTransfer with a line for each of the first
// lines files not saved (0: only the line that counts them).
func logTransferNames(l agentLog, in peer.Incoming, lines int) {
	if in.Err == nil && in.Transfer != nil && len(in.Transfer.Entries) == 0 && l.enc == nil {
		// An empty offer: a peer learning our name and key (peers
		// add). Nothing happened worth a line.
		return
	}
	name := ""
	if in.Transfer != nil {
		name = in.Transfer.From
	}
	from := "?"
	if name != "" {
		from = peer.Escape(name)
	}
	if in.PeerID != "" {
		from = fmt.Sprintf("%s (%s, id %s)", from, in.Remote, peer.ShortID(in.PeerID))
	} else {
		from = fmt.Sprintf("%s (%s)", from, in.Remote)
	}
	base := serveEvent{Name: name, PeerID: in.PeerID, Remote: fmt.Sprint(in.Remote)}
	if in.Transfer != nil && in.Transfer.Via != "" {
		base.Via = in.Transfer.Via
		from += " via " + in.Transfer.Via
	}
	if in.Transfer != nil && in.Transfer.Text != "" {
		logText(l, in, base, from)
		if in.Err == nil && textOnly(in.Transfer) {
			return
		}
	}
	var files, skipped int
	var bytes, moved, resumed uint64
	if in.Transfer != nil {
		for _, e := range in.Transfer.Entries {
			if e.Kind != proto.KindFile {
				continue
			}
			if e.Result.Status == proto.Skipped {
				skipped++
				if l.enc != nil {
					ev := base
					ev.Event, ev.Path, ev.SavedAs, ev.Reason = "file-skipped", e.Path, e.Result.SavedAs, e.Result.Reason
					l.event(in.End, prioInfo, ev, "")
				}
				continue
			}
			if e.Result.Status != proto.Saved {
				continue
			}
			files++
			bytes += e.Size
			moved += e.Size - min(e.Offset, e.Size)
			resumed += e.Offset
			if l.enc == nil && files > fileLines && !l.verbose {
				continue
			}
			ev := base
			size := e.Size
			ev.Event, ev.Path, ev.SavedAs, ev.Size, ev.Seconds = "file-saved", e.Path, e.Result.SavedAs, &size, e.Elapsed.Seconds()
			ev.Resumed = e.Offset
			note := ""
			if e.Offset > 0 {
				note = fmt.Sprintf(" (resumed at %s)", peer.FormatBytes(e.Offset))
			}
			// No time per file: the transfer's line has it.
			l.event(in.End, prioInfo, ev, "received %s from %s: saved as %s, %s%s", peer.Escape(e.Path), from,
				peer.Escape(e.Result.SavedAs), peer.FormatBytes(e.Size), note)
		}
	}
	if l.enc == nil && files > fileLines && !l.verbose {
		l.infof(in.End, "… and %d more files from %s; serve --verbose lists every one", files-fileLines, from)
	}
	if l.enc == nil && in.Err == nil && in.Transfer != nil {
		l.infof(in.End, "%s", transferLine(from, files, skipped, bytes, moved, resumed, in.End.Sub(in.Start)))
	} else if skipped > 0 && l.enc == nil {
		l.infof(in.End, "%s from %s already there: skipped", plural(skipped, "file"), from)
	}
	var re *peer.RefusedError
	switch {
	case errors.As(in.Err, &re) && re.Path == "":
		ev := base
		ev.Event, ev.Code, ev.Reason = "error", re.Code.String(), re.Reason
		l.event(in.End, prioWarning, ev, "refused transfer from %s: %s", from, peer.Escape(re.Reason))
	case in.Err != nil:
		ev := base
		ev.Event, ev.Reason = "error", oneLine(in.Err)
		l.event(in.End, prioWarning, ev, "transfer from %s failed: %s", from, failureReason(in))
	case in.Transfer != nil:
		// A hostile offer can name 100,000 refused files: the first few
		// get a line each, the rest one line that counts them by reason.
		var total, more int
		counts := map[proto.Code]int{}
		for _, e := range in.Transfer.Entries {
			if e.Result.Status != proto.Failed && e.Result.Status != proto.Refused {
				continue
			}
			counts[e.Result.Code]++
			if total++; total > lines {
				more++
				continue
			}
			ev := base
			ev.Event, ev.Path, ev.Code, ev.Reason = "error", e.Path, e.Result.Code.String(), e.Result.Reason
			l.event(in.End, prioWarning, ev, "not saved %s from %s: %s", peer.Escape(e.Path), from, peer.Escape(e.Result.Reason))
		}
		if more > 0 {
			ev := base
			ev.Event, ev.Count, ev.Reason = "suppressed", more, fmt.Sprintf("all %d not saved: %s", total, describeCounts(counts))
			l.event(in.End, prioWarning, ev, "and %d more not saved from %s; %s", more, from, ev.Reason)
		}
	}
	if in.Err == nil && l.enc != nil {
		ev := base
		ev.Event, ev.Files, ev.Bytes, ev.Seconds = "transfer-done", files, bytes, in.End.Sub(in.Start).Seconds()
		l.event(in.End, prioInfo, ev, "")
	}
}

// logLimited logs a transfer. One that moved file bytes (saved a file, or
// kept part of one for a resume), found files already there or
// delivered a message is always logged, failed or not: its lines cost
// the sender files. Any other (a port scan, garbage, a refused stranger,
// an offer of bad names, of folders or empty files, a hang-up after the
// answer) only as often as limit lets through, and so are the names of
// the files a transfer refused.
func logLimited(lg agentLog, limit *failureLog, in peer.Incoming) {
	names := notSavedLines
	if moved := movedFiles(in.Transfer); !moved || anyRefused(in.Transfer) {
		ok, left := limit.allow(hostOf(in.Remote), in.End)
		if ok && left > 0 {
			lg.suppressed(in.End, hostOf(in.Remote), left)
		}
		switch {
		case !ok && !moved:
			return
		case !ok:
			// It saved files, but also refused some: the refused
			// names, which the sender chooses freely, are counted,
			// not listed.
			names = 0
		}
	}
	logTransferNames(lg, in, names)
}

// movedFiles reports whether tr saved a file of at least one byte, found
// one already there, kept part of one for a resume, or delivered a text
// message (limited on its own, see peer.ErrTooManyTexts).
func movedFiles(tr *peer.Transfer) bool {
	return tr != nil && slices.ContainsFunc(tr.Entries, func(e peer.Received) bool {
		return e.Kind == proto.KindFile && e.Size > 0 && (e.Result.Status == proto.Saved || e.Result.Status == proto.Skipped) ||
			e.Kept > 0 || e.Result.Status == proto.Delivered
	})
}

// anyRefused reports whether tr refused an entry.
func anyRefused(tr *peer.Transfer) bool {
	return tr != nil && slices.ContainsFunc(tr.Entries, func(e peer.Received) bool { return e.Result.Status == proto.Refused })
}

// failureReason says why a transfer failed, for serve's line: the
// error, worded for the two usual cuts (this agent stopping, the sender
// or the network gone), and what of the file it was cut in is kept for a
// resume.
func failureReason(in peer.Incoming) string {
	msg := oneLine(in.Err)
	switch {
	case errors.Is(in.Err, peer.ErrClosed):
		msg = "this agent stopped in the middle"
	case errors.Is(in.Err, io.ErrUnexpectedEOF), errors.Is(in.Err, syscall.ECONNRESET):
		msg += " (the sender stopped, or the network dropped)"
	}
	if in.Transfer == nil {
		return msg
	}
	var kept []string
	for _, e := range in.Transfer.Entries {
		if e.Kept > 0 {
			kept = append(kept, fmt.Sprintf("%s of %s", peer.FormatBytes(e.Kept), peer.Escape(e.Path)))
		}
	}
	if len(kept) > 0 {
		msg += "; kept for a resume (the same send again goes on from there): " + strings.Join(kept, ", ")
	}
	return msg
}

// transferLine sums up a transfer that ended well: "transfer from alice (ADDR, id
// ttj3-5jp3) done: received 5000 files, 1.2 GB in 13.3 s, 92.1 MB/s", with
// what it did not have to move; one that moved nothing says so.
func transferLine(from string, files, skipped int, bytes, moved, resumed uint64, took time.Duration) string {
	var notes []string
	if skipped > 0 {
		notes = append(notes, plural(skipped, "file")+" already there")
	}
	if resumed > 0 {
		notes = append(notes, "resumed "+peer.FormatBytes(resumed))
	}
	note := ""
	if len(notes) > 0 {
		note = " (" + strings.Join(notes, ", ") + ")"
	}
	switch {
	case files == 0 && skipped > 0:
		return fmt.Sprintf("transfer from %s done: nothing new, %s already there", from, plural(skipped, "file"))
	case files == 0:
		return fmt.Sprintf("transfer from %s done: nothing received%s", from, note)
	case moved == 0:
		return fmt.Sprintf("transfer from %s done: received %s, %s; no bytes had to move%s", from, plural(files, "file"), peer.FormatBytes(bytes), note)
	}
	rate := peer.FormatBytes(uint64(float64(moved)/max(took.Seconds(), 1e-3))) + "/s"
	return fmt.Sprintf("transfer from %s done: received %s, %s in %s, %s%s", from, plural(files, "file"), peer.FormatBytes(bytes), formatDuration(took), rate, note)
}

// fileLines is how many received files of one transfer get a line each
// in serve's text log (unless --verbose); one more line counts the rest.
const fileLines = 10

// notSavedLines is how many files of one transfer that were not saved
// get a line each in serve's log and in send's errors; the rest are
// counted in one more.
const notSavedLines = 10

// describeCounts renders counts per code, largest first: "99990 unsafe
// name, 10 digest mismatch".
func describeCounts(counts map[proto.Code]int) string {
	codes := make([]proto.Code, 0, len(counts))
	for c := range counts {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if counts[codes[i]] != counts[codes[j]] {
			return counts[codes[i]] > counts[codes[j]]
		}
		return codes[i] < codes[j]
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d %s", counts[c], c)
	}
	return strings.Join(parts, ", ")
}

// failureLog lets through one line about a failed connection per remote
// host and interval, so that a port scan, garbage or a stranger retrying
// cannot flood the log; the next line that gets through says how many were
// left out. It tracks at most failureLogHosts hosts.
type failureLog struct {
	mu    sync.Mutex
	hosts map[string]*hostFailures
}

type hostFailures struct {
	last       time.Time
	suppressed int
}

const (
	failureLogEvery = 10 * time.Second
	failureLogHosts = 1024
)

// allow reports whether to log a failure from host at now, and how many
// were left out since the last one logged.
func (f *failureLog) allow(host string, now time.Time) (ok bool, left int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hosts == nil || len(f.hosts) >= failureLogHosts {
		f.hosts = map[string]*hostFailures{}
	}
	h := f.hosts[host]
	if h == nil {
		h = &hostFailures{}
		f.hosts[host] = h
	}
	if !h.last.IsZero() && now.Sub(h.last) < failureLogEvery {
		h.suppressed++
		return false, 0
	}
	h.last, left, h.suppressed = now, h.suppressed, 0
	return true, left
}

// flush returns, per host, the failures left out and not yet reported.
func (f *failureLog) flush() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for host, h := range f.hosts {
		if h.suppressed > 0 {
			out[host] = h.suppressed
			h.suppressed = 0
		}
	}
	return out
}

// hostOf is the address part of a remote address.
func hostOf(a net.Addr) string {
	if a == nil {
		return "?"
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// whoMaySend is serve's line about who may send, and how to tighten it.
func whoMaySend(cfg peer.Config, agent *peer.Agent, prompt bool) string {
	switch cfg.Accept {
	case peer.AcceptTrusted:
		return "accepting transfers only from trusted peers (lanshare trusted)"
	case peer.AcceptAsk:
		where := "lanshare pending, then lanshare accept ID or decline ID"
		if prompt {
			where = "asked here, or lanshare pending / accept / decline"
		}
		return fmt.Sprintf("accepting from trusted peers; others wait up to %s for your answer (%s)", cfg.AskTimeout, where)
	}
	left, limit, ok := agent.StrangersLeft()
	if !ok {
		return "accepting from everyone, strangers without a limit; --stranger-budget, --accept ask or --accept trusted to tighten"
	}
	return fmt.Sprintf("accepting from everyone (strangers: %s, %s of %s left today); --accept ask or --accept trusted to tighten",
		cfg.StrangerBudget, peer.FormatBytes(left), peer.FormatBytes(limit))
}

// portGivenUp returns the port of cfg.Listen when the agent, allowed to
// (cfg.ListenAnyIfTaken), listens on another one because it was taken;
// else "".
func portGivenUp(cfg peer.Config, addr net.Addr) string {
	_, want, err := net.SplitHostPort(cfg.Listen)
	if err != nil || !cfg.ListenAnyIfTaken || want == "0" {
		return ""
	}
	if ta, ok := addr.(*net.TCPAddr); ok && strconv.Itoa(ta.Port) != want {
		return want
	}
	return ""
}

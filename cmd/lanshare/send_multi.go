package main

// One send to several peers (--to, repeated), and what a send to one
// shares with it: the paths collected once (--exclude), the identity, and
// the way names resolve.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cheggaaa/pb/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

// listFlag is a repeatable flag whose every value is taken whole:
// urfave/cli's StringSliceFlag splits values at commas, which peer names
// and file names may hold.
type listFlag []string

func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
func (l *listFlag) String() string     { return "" }

// listValues returns the values given to c's repeatable flag name.
func listValues(c *cli.Context, name string) []string {
	if l, ok := c.Generic(name).(*listFlag); ok && l != nil {
		return *l
	}
	return nil
}

// sendCommand reads send's targets and paths from its command line:
// TARGET PATH..., or with --to (repeated) only paths; and its --exclude
// patterns.
func sendCommand(c *cli.Context, text bool) (targets, paths []string, ex *peer.Exclude, err error) {
	args := c.Args().Slice()
	targets = listValues(c, "to")
	switch {
	case text && len(targets) == 0:
		targets, args = args[:1], nil // textArg checked there is one
	case text:
		args = nil // and that there is none
	case len(targets) == 0:
		if len(args) < 2 {
			if len(args) == 1 && c.IsSet("as") {
				return nil, nil, nil, usageError{msg: "--as names standard input, given as the path -: lanshare send TARGET --as NAME -"}
			}
			return nil, nil, nil, usageError{msg: "send needs a target and at least one path: lanshare send TARGET PATH... (or --to TARGET, repeated, then PATH...)"}
		}
		targets, args = args[:1], args[1:]
	case len(args) == 0:
		return nil, nil, nil, usageError{msg: "send --to TARGET needs at least one path"}
	default:
		if _, lerr := os.Lstat(args[0]); lerr != nil && len(args) > 1 && !strings.ContainsAny(args[0], `/\`) {
			return nil, nil, nil, usageError{msg: fmt.Sprintf("with --to, every argument is a path, and %s is not one here: give every target with --to", shellQuote(args[0]))}
		}
	}
	for i, t := range targets {
		if t == "" {
			return nil, nil, nil, usageError{msg: "empty target: give a peer name, id or HOST:PORT"}
		}
		for _, u := range targets[:i] {
			if strings.EqualFold(t, u) {
				return nil, nil, nil, usageError{msg: fmt.Sprintf("--to %s given twice", shellQuote(t))}
			}
		}
	}
	if len(targets) > 1 && isPipe(args) {
		return nil, nil, nil, usageError{msg: "- (standard input) can be read once, so it goes to one target: use tee, or a file"}
	}
	ex, err = peer.NewExclude(listValues(c, "exclude"))
	if err != nil {
		return nil, nil, nil, usageError{msg: "--exclude: " + err.Error()}
	}
	return targets, args, ex, nil
}

// collected is what a send offers: collected once, whatever the number
// of targets.
type collected struct {
	items    []peer.Item
	files    int    // regular files among items
	total    uint64 // their bytes
	excluded int    // paths --exclude left out (a folder once)
	// left is leftOut's error for the paths skipped with a warning (on
	// stderr, printed here); nil when none was.
	left error
	// done, when not nil, puts standard input back as it was after a
	// pipe was sent: call it when the send is over.
	done func()
}

// collectSend collects a's paths, leaving out what a.exclude excludes,
// and warns about each path it skipped.
func collectSend(a sendArgs) (collected, error) {
	if a.text != nil {
		it, err := peer.TextItem(*a.text, time.Now())
		if err != nil {
			return collected{}, usageError{msg: err.Error(), usage: textUsage}
		}
		return collected{items: []peer.Item{it}}, nil
	}
	if items, done, pipe, err := collectPipe(a); pipe || err != nil {
		return collected{items: items, files: len(items), done: done}, err
	}
	items, skipped, excluded, err := peer.CollectExcluding(a.paths, a.exclude)
	for _, s := range skipped {
		fmt.Fprintf(a.stderr, "lanshare: warning: %s: %s\n", peer.Escape(s.Path), s.Reason())
	}
	if errors.Is(err, peer.ErrDuplicatePath) {
		return collected{}, usageError{msg: err.Error()}
	}
	if err != nil {
		return collected{}, err
	}
	c := collected{items: items, excluded: len(excluded), left: leftOut(skipped)}
	for _, it := range items {
		c.total += it.Entry.Size
		if it.Entry.Kind == proto.KindFile {
			c.files++
		}
	}
	return c, nil
}

// prepareSend loads our identity and the pins, and sets a.resolve to
// find names as every send does: the running local agent's live table
// first, pinned names to their keys, static peers without discovery.
func prepareSend(a *sendArgs) (*peer.Identity, *peer.Known, error) {
	id, err := peer.LoadIdentity(a.configDir)
	if err != nil {
		return nil, nil, err
	}
	known, err := peer.LoadKnown(a.configDir)
	if err != nil {
		return nil, nil, err
	}
	configDir := a.configDir
	a.resolve.Known = func(ctx context.Context) []discovery.Peer {
		st, err := peer.QueryAgent(ctx, configDir)
		if err != nil {
			return nil
		}
		return st.Peers
	}
	// A name pinned to keys resolves to those keys first, whatever other
	// records claim; Send refuses anything else it resolves to.
	a.resolve.Pins = known
	static, err := peer.LoadStatic(a.configDir)
	if err != nil {
		return nil, nil, err
	}
	a.resolve.Static = static.List()
	return id, known, nil
}

// multiTarget is one --to of a send to several peers, and how its send
// went.
type multiTarget struct {
	index int    // among the --to given
	typed string // as given to --to
	label string // typed, escaped: how its lines name it
	// Set by its goroutine, read once every goroutine is done.
	who  string // the peer as it named itself, else label
	rep  *peer.Report
	err  error
	last peer.Progress // the last progress, for a send cut short
	took time.Duration // from the first connection on, as a send to one times it
	// Output: one of these, by the mode of the whole send.
	bar    *pb.ProgressBar
	events *json.Encoder
}

// multiOut is where a send to several peers writes: its lines, one at a
// time, whole.
type multiOut struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
}

func (o *multiOut) printf(w io.Writer, format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(w, format, args...)
}

// taggedLines is an io.Writer of JSON objects, one per line (as a
// json.Encoder writes them), that adds "to": the target as given, in
// front of each object's fields, and writes each line whole to out.
type taggedLines struct {
	out  *multiOut
	tag  []byte // `{"to":"…",`
	part []byte // a line not yet ended
}

func newTaggedLines(out *multiOut, to string) *taggedLines {
	q, _ := json.Marshal(to)
	return &taggedLines{out: out, tag: append(append([]byte(`{"to":`), q...), ',')}
}

func (t *taggedLines) Write(p []byte) (int, error) {
	t.part = append(t.part, p...)
	for {
		i := strings.IndexByte(string(t.part), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := t.part[:i+1]
		t.out.mu.Lock()
		if len(line) > 2 && line[0] == '{' && line[1] != '}' {
			_, _ = t.out.stdout.Write(t.tag)
			_, _ = t.out.stdout.Write(line[1:])
		} else {
			_, _ = t.out.stdout.Write(line)
		}
		t.out.mu.Unlock()
		t.part = t.part[i+1:]
	}
}

// claims records which peer each target reached, so that two targets
// that name one peer do not send it the same files twice at once.
type claims struct {
	mu sync.Mutex
	by map[string]string // peer id or address → the label of its target
	// turn[i] is closed once target i has claimed its peer, or failed to
	// find one: a target claims only after every earlier one, so that of
	// two --to naming one peer the later is always the duplicate, however
	// fast each was found.
	turn []chan struct{}
}

func newClaims(n int) *claims {
	c := &claims{by: map[string]string{}, turn: make([]chan struct{}, n)}
	for i := range c.turn {
		c.turn[i] = make(chan struct{})
	}
	return c
}

// claim records key for target i, labelled label, once every earlier
// target has had its turn, or says which earlier target has it. key ""
// (target i found no peer) records nothing. Every target calls it once.
func (c *claims) claim(i int, key, label string) (other string, ok bool) {
	defer close(c.turn[i])
	for _, t := range c.turn[:i] {
		<-t // each earlier target claims once it is resolved, or gives up
	}
	if key == "" {
		return "", true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if o, taken := c.by[key]; taken {
		return o, false
	}
	c.by[key] = label
	return "", true
}

// sendMulti sends the same paths to every target at once. The paths are
// collected once; every peer gets its own connection, progress and
// retries. It exits 0 only when every peer confirmed every file; else
// with the exit code of the first target, in the order given, that
// failed. Each failure has its own line on stderr, and the error says
// which targets got everything.
func sendMulti(ctx context.Context, a sendArgs, targets []string) error {
	col, err := collectSend(a)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	id, known, err := prepareSend(&a)
	if err != nil {
		return err
	}
	out := &multiOut{stdout: a.stdout, stderr: a.stderr}
	ts := make([]*multiTarget, len(targets))
	width := 0
	for i, t := range targets {
		ts[i] = &multiTarget{index: i, typed: t, label: peer.Escape(t)}
		ts[i].who = ts[i].label
		width = max(width, pb.CellCount(ts[i].label))
	}
	width = min(width, maxLabelWidth)

	var pool *pb.Pool
	cols := 80 // the terminal's width
	switch {
	case a.json:
		for _, t := range ts {
			t.events = json.NewEncoder(newTaggedLines(out, t.typed))
		}
	case a.quiet:
	case isTerminal(a.stdout):
		var bars []*pb.ProgressBar
		for _, t := range ts {
			t.bar = newPoolBar(col.total, padLabel(t.label, width))
			t.bar.Set("note", "looking for the peer... ")
			bars = append(bars, t.bar)
		}
		// A line longer than the terminal would wrap and throw off the
		// pool's redrawing: a failure's reason is cut to fit.
		if f, ok := a.stdout.(*os.File); ok {
			if c, _, err := term.GetSize(int(f.Fd())); err == nil && c > 0 {
				cols = c
			}
		}
		pool = pb.NewPool(bars...)
		pool.Output = a.stdout
		if err := pool.Start(); err != nil {
			// No terminal to draw on after all: lines, as into a pipe.
			pool = nil
			for _, t := range ts {
				t.bar = nil
			}
		}
	}

	taken := newClaims(len(ts))
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Add(1)
		go func() { // owned by sendMulti: it waits for every one
			defer wg.Done()
			sendOne(ctx, a, id, known, col, t, out, taken)
			if t.bar != nil {
				if t.err == nil {
					t.bar.SetCurrent(int64(col.total))
					t.bar.Set("note", "")
				} else {
					// Its line says why in place of a bar that would
					// stand still; the summary below says it whole.
					t.bar.Set("reason", pb.StripString(oneLine(t.err), max(cols-width-len(" failed: ")-1, 10)))
					t.bar.SetTemplateString(`{{string . "peer"}} failed: {{string . "reason"}}`)
				}
				t.bar.Finish()
			}
		}()
	}
	wg.Wait()
	if pool != nil {
		_ = pool.Stop()
	}
	return multiSummary(a, col, ts, out)
}

// excludedNote says how many paths --exclude left out: "3 paths excluded".
func excludedNote(n int) string { return plural(n, "path") + " excluded" }

// withExcluded is s, then excludedNote(n) after a comma when n > 0.
func withExcluded(s string, n int) string {
	if n == 0 {
		return s
	}
	return s + ", " + excludedNote(n)
}

// maxLabelWidth is the widest a target's name is shown in front of its
// progress bar; a longer one is cut.
const maxLabelWidth = 24

// padLabel pads (or cuts) s to width terminal cells.
func padLabel(s string, width int) string {
	if n := pb.CellCount(s); n <= width {
		return s + strings.Repeat(" ", width-n)
	}
	r := []rune(s)
	for len(r) > 0 && pb.CellCount(string(r))+1 > width {
		r = r[:len(r)-1]
	}
	s = string(r) + "…"
	return s + strings.Repeat(" ", max(width-pb.CellCount(s), 0))
}

// newPoolBar is a progress bar for a pool: the target's name, then what a
// send to one peer shows.
func newPoolBar(total uint64, label string) *pb.ProgressBar {
	bar := pb.ProgressBarTemplate(`{{string . "peer"}} ` + barTemplate).New(0)
	bar.SetTotal(int64(total))
	bar.Set(pb.Bytes, true)
	bar.Set(pb.SIBytesPrefix, true)
	bar.Set("peer", label)
	return bar
}

// sendOne resolves t and sends it col, as a send to one peer does,
// reporting on t's bar, its events or its lines.
func sendOne(ctx context.Context, a sendArgs, id *peer.Identity, known *peer.Known, col collected, t *multiTarget, out *multiOut, taken *claims) {
	a.target = t.typed
	target, dev, err := resolveTarget(ctx, a)
	key := ""
	if err == nil {
		key = target.ID
		if key == "" && len(target.Addrs) > 0 {
			key = target.Addrs[0]
		}
	}
	if other, ok := taken.claim(t.index, key, t.label); !ok {
		err = reworded{err: peer.ErrAmbiguousPeer, msg: fmt.Sprintf("%s is the peer --to %s names too (%s); it gets the files once", t.label, other, target.Name)}
	}
	if sig, ok := interruption(ctx); ok && err != nil {
		err = interruptedError{sig: sig, what: "nothing was sent: still looking for " + t.label}
	}
	if err != nil {
		t.err = err
		if t.events != nil {
			_ = t.events.Encode(sendEvent{Event: "error", Reason: oneLine(err), Exit: exitCode(err)})
		}
		return
	}

	opt := peer.SendOptions{Name: a.name, Retries: a.retries}
	if a.retries == 0 {
		opt.Retries = -1
	}
	prefix := t.label + ": "
	switch {
	case t.events != nil:
		_ = t.events.Encode(sendEvent{Event: "offer", Peer: target.Name, ID: target.ID, Files: col.files, Bytes: col.total, Excluded: col.excluded})
		opt.OnRetry = func(r peer.Retry) {
			_ = t.events.Encode(sendEvent{Event: "retry", Attempt: r.Attempt, Wait: r.Wait.Seconds(), Reason: oneLine(r.Err)})
		}
		opt.OnWait = func(w peer.Waiting) {
			_ = t.events.Encode(sendEvent{Event: "waiting", Peer: w.Peer, Wait: w.Timeout.Seconds(), Reason: w.Reason})
		}
	case a.quiet:
	case t.bar != nil:
		bar := t.bar
		bar.Set("note", "")
		opt.Progress = func(p peer.Progress) {
			bar.SetCurrent(int64(p.Bytes))
			bar.Set("file", peer.Escape(p.Path))
			bar.Set("files", fmt.Sprintf("%d/%d", p.Files, p.FilesTotal))
			bar.Set("note", progressNote(p))
		}
		opt.OnRetry = func(r peer.Retry) {
			bar.Set("note", fmt.Sprintf("connection lost, retrying in %s (%d) ", formatDuration(r.Wait), r.Attempt-1))
		}
		opt.OnWait = func(w peer.Waiting) { bar.Set("note", waitingLine(w)+" ") }
	default:
		// Into a pipe or a file: as a send to one peer, each line
		// starting with the target's name.
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
						out.printf(a.stdout, "%s… the other files are not listed (--verbose lists every one)\n", prefix)
					}
					return
				}
				out.printf(a.stdout, "%s%s %d/%d files, %s of %s: %s%s\n", prefix, sentOrThere(there), p.Files, p.FilesTotal,
					peer.FormatBytes(p.Bytes), peer.FormatBytes(p.Total), peer.Escape(p.Path), strings.TrimRight(", "+thereNote(there)+progressNote(p), ", "))
			}
		}
		opt.OnRetry = func(r peer.Retry) {
			out.printf(a.stdout, "%sconnection lost (%s); retrying in %s (retry %d)\n", prefix, oneLine(r.Err), formatDuration(r.Wait), r.Attempt-1)
		}
		opt.OnWait = func(w peer.Waiting) { out.printf(a.stdout, "%s%s\n", prefix, waitingLine(w)) }
	}
	show := opt.Progress
	opt.Progress = func(p peer.Progress) {
		t.last = p
		if show != nil {
			show(p)
		}
	}

	start := time.Now()
	var rep *peer.Report
	if dev != nil {
		rep, err = sendLocalSendAlongside(ctx, a, *dev, known, col.items, opt)
	} else {
		sender := peer.Sender{Identity: id, Known: known}
		rep, err = sender.Send(ctx, target, col.items, opt)
		err = staticKeyChanged(target, err)
	}
	who := target.Name
	if rep != nil && rep.Peer != "" {
		who = peer.Escape(rep.Peer)
	}
	var stopped *peer.StoppedError
	if sig, ok := interruption(ctx); ok && err != nil {
		err = interruptedError{sig: sig, what: cutShort(who, t.last, col.files, col.total)}
	} else if errors.As(err, &stopped) {
		err = reworded{err: err, msg: fmt.Sprintf("%s stopped (nothing listens at %s any more) after %s; it keeps what arrived: run the same command again once it runs to resume",
			who, stopped.Addr, sentSoFar(t.last, col.files, col.total))}
	}
	t.who, t.rep, t.err, t.took = who, rep, err, time.Since(start)
	if t.events != nil {
		jsonResults(t.events, rep, err, time.Since(start))
	}
}

// sendLocalSendAlongside sends to a LocalSend device as sendLocalSend
// does, except that it never asks for a PIN on the terminal, where other
// peers' progress is drawn: a device that wants one gets --pin, or the
// send to it fails and says so.
func sendLocalSendAlongside(ctx context.Context, a sendArgs, dev discovery.LocalSendDevice, known *peer.Known, items []peer.Item, opt peer.SendOptions) (*peer.Report, error) {
	ident, err := peer.LoadLocalSendIdentity(a.configDir)
	if err != nil {
		return nil, err
	}
	s := peer.LocalSendSender{Identity: ident, Known: known}
	lo := peer.LocalSendOptions{SendOptions: opt}
	lo.PIN = func(ctx context.Context, req peer.PINRequest) (string, error) {
		switch {
		case a.pin == "":
			return "", fmt.Errorf("%s asks for a PIN: give it with --pin (a send to several peers does not ask)", peer.Escape(req.Peer))
		case req.Wrong:
			return "", fmt.Errorf("%s refused the PIN", peer.Escape(req.Peer))
		}
		return a.pin, nil
	}
	return s.Send(ctx, dev, items, lo)
}

// multiSummary prints what every target got, in the order given: a line
// per peer on stdout for those that got everything, the failure on
// stderr for the others. It returns nil when every target got every file
// (or col.left when paths were skipped), else an error that counts them,
// with the first failure's exit code.
func multiSummary(a sendArgs, col collected, ts []*multiTarget, out *multiOut) error {
	var failed []string
	var first error
	for _, t := range ts {
		if t.err != nil {
			if first == nil {
				first = t.err
			}
			failed = append(failed, fmt.Sprintf("%s (exit %d)", t.label, exitCode(t.err)))
			if a.json {
				continue
			}
			for _, line := range notSaved(t.rep, t.err) {
				out.printf(a.stderr, "lanshare: %s: %s\n", t.label, line)
			}
			out.printf(a.stderr, "lanshare: %s: %s\n", t.label, oneLine(t.err))
			continue
		}
		if a.quiet || a.json {
			continue
		}
		to := ""
		if !strings.EqualFold(t.who, t.label) {
			to = " to " + t.who
		}
		rep := t.rep
		switch {
		case allThere(rep):
			out.printf(a.stdout, "%s: nothing to send: %s already there%s (%s)\n", t.label, plural(col.files, "file"),
				strings.Replace(to, " to ", " on ", 1), withExcluded(peer.FormatBytes(col.total), col.excluded))
		case rep.Sent == 0:
			out.printf(a.stdout, "%s: sent %s (%s)%s in %s%s\n", t.label, plural(col.files, "file"), peer.FormatBytes(col.total), to,
				formatDuration(t.took), sendNotes(rep, col.excluded))
		default:
			out.printf(a.stdout, "%s: sent %s (%s)%s in %s, %s/s%s\n", t.label, plural(col.files, "file"), peer.FormatBytes(col.total), to,
				formatDuration(t.took), peer.FormatBytes(uint64(float64(rep.Sent)/max(t.took.Seconds(), 1e-3))), sendNotes(rep, col.excluded))
		}
	}
	if first == nil {
		return col.left
	}
	got := len(ts) - len(failed)
	return reworded{err: first, msg: fmt.Sprintf("%d of %d peers got every file; not %s", got, len(ts), strings.Join(failed, ", "))}
}

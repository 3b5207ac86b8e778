package peer

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/lanshare/lanshare/proto"
)

// Item is one local file or directory to send.
type Item struct {
	Entry  proto.Entry // as offered: relative slash path, kind, size, mode, mtime
	Source string      // local path it is read from
	Text   string      // a proto.KindText entry's message (see TextItem); Source is empty
	// Stream is what a proto.KindStream entry sends (see StreamItem).
	Stream *Stream `json:"-"`
	// id is the identity of the file Collect found at Source (zero where
	// the platform gives none, or the item was not collected here): what
	// is sent must be that very file. A folder on the way to Source that
	// another user swaps for a symbolic link, between the walk and the
	// send, would otherwise have the sender send whatever the link leads
	// to, under the offered name.
	id fileID
}

// Collect turns command-line paths into the items to send, in offer order.
// A directory is walked recursively and sent with its structure, empty
// directories included, under its own base name. Paths given explicitly are
// followed if they are symlinks; symlinks and special files met inside a
// walked directory are skipped. A file or directory that cannot be read, or
// whose name the protocol cannot carry (not valid UTF-8, a path over
// proto.CheckPath's caps), is skipped too, explicit or met in a walk,
// before anything is offered: nothing of it is sent, not even an empty
// folder. Each skipped path is reported to warn (see CollectSkipped). A
// path that does not exist, or is neither a file nor a directory, is an
// error.
//
// Every relative path is offered once. The same file reached twice (a path
// named twice, through a symlink, or named and also inside a directory
// named, when both give it the same relative path) is sent once, where it
// first appears; directories of the same relative path from different
// sources are merged, as cp -r merges them into one folder. Two different
// files, or a file and a directory, that would arrive under the same
// relative path are an error wrapping ErrDuplicatePath, before anything is
// sent: one would otherwise arrive renamed or not at all, and which one
// would depend on the receiver.
func Collect(paths []string, warn func(path, reason string)) ([]Item, error) {
	items, skipped, err := CollectSkipped(paths)
	if warn != nil {
		for _, s := range skipped {
			warn(s.Path, s.Reason())
		}
	}
	return items, err
}

// Skipped is a local path that Collect left out of a send.
type Skipped struct {
	Path string // the local path, as found
	// Err says why; it wraps ErrUnreadable (permission denied, an I/O
	// error), ErrNameNotCarried, or ErrNotRegular (a symbolic link or
	// special file inside a walked directory).
	Err error
}

// Reason is the warning to show for s, after its path: "skipped: ...".
func (s Skipped) Reason() string {
	if errors.Is(s.Err, ErrNotRegular) {
		return "skipped: " + strings.TrimPrefix(s.Err.Error(), ErrNotRegular.Error()+": ")
	}
	return "skipped: " + s.Err.Error()
}

// CollectSkipped is Collect, returning the paths it skipped instead of
// reporting them to a callback. The skipped paths are returned also with
// an error.
func CollectSkipped(paths []string) ([]Item, []Skipped, error) {
	c := collector{}
	return c.collect(paths)
}

func (c *collector) collect(paths []string) ([]Item, []Skipped, error) {
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, c.skipped, fmt.Errorf("%s: %w", p, err)
		}
		fi, err := os.Stat(abs)
		if errors.Is(err, fs.ErrPermission) {
			// In a folder we may not search: it is there, unreadable.
			c.skip(p, unreadable(err))
			continue
		}
		if err != nil {
			return nil, c.skipped, fmt.Errorf("%s: %w", p, errReasonNoPath(err))
		}
		base := filepath.Base(abs)
		if base == string(filepath.Separator) || base == "." {
			return nil, c.skipped, fmt.Errorf("%s: cannot send a file system root", p)
		}
		if c.excludes(p, base, fi.IsDir()) {
			continue
		}
		if err := carried(base); err != nil {
			c.skip(p, err)
			continue
		}
		switch {
		case fi.Mode().IsRegular():
			if err := readable(abs, false); err != nil {
				c.skip(p, err)
				continue
			}
			c.items = append(c.items, fileItem(base, abs, fi))
		case fi.IsDir():
			if err := c.walk(abs, base); err != nil {
				return nil, c.skipped, err
			}
		default:
			return nil, c.skipped, fmt.Errorf("%s: not a regular file or directory", p)
		}
	}
	if len(c.items) == 0 {
		return nil, c.skipped, ErrNothingToSend
	}
	items, err := dedupe(c.items)
	return items, c.skipped, err
}

// collector gathers the items and skipped paths of a Collect.
type collector struct {
	items    []Item
	skipped  []Skipped
	exclude  *Exclude // see CollectExcluding
	excluded []string
}

func (c *collector) skip(p string, err error) {
	c.skipped = append(c.skipped, Skipped{Path: p, Err: err})
}

// carried reports whether the relative path rel can be offered: an error
// wrapping ErrNameNotCarried if not.
func carried(rel string) error {
	if !utf8.ValidString(rel) {
		return fmt.Errorf("%w: not valid UTF-8", ErrNameNotCarried)
	}
	if err := proto.CheckPath(rel); err != nil {
		return fmt.Errorf("%w: %w", ErrNameNotCarried, err)
	}
	return nil
}

// unreadable wraps err, a failure to read a local file or directory, in
// ErrUnreadable, with its reason alone (the path is shown apart).
func unreadable(err error) error {
	if errors.Is(err, ErrUnreadable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnreadable, errReasonNoPath(err))
}

// readable reports whether the file or directory at p can be opened and,
// for a directory, listed: an error wrapping ErrUnreadable if not.
func readable(p string, dir bool) error {
	if !dir {
		if err := checkOpen(p); err != nil {
			return unreadable(err)
		}
		return nil
	}
	f, err := os.Open(p)
	if err == nil {
		// A folder we may list but not search (r without x) shows its
		// names and hides its files.
		var names []string
		names, err = f.Readdirnames(1)
		if err == nil {
			_, err = os.Lstat(filepath.Join(p, names[0]))
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if f != nil {
		f.Close()
	}
	if err != nil {
		return unreadable(err)
	}
	return nil
}

// dedupe keeps the first item of every relative path; see Collect. It
// keeps them in items, which it changes: a copy of 10,000 items was a
// sixth of the time of a Collect.
func dedupe(items []Item) ([]Item, error) {
	first := make(map[string]int, len(items)) // path → index in out
	out := items[:0]
	for j, it := range items {
		i, ok := first[it.Entry.Path]
		if !ok {
			first[it.Entry.Path] = len(out)
			if len(out) < j {
				items[len(out)] = it
			}
			out = out[:len(out)+1]
			continue
		}
		prev := out[i]
		switch {
		case prev.Entry.Kind == proto.KindDir && it.Entry.Kind == proto.KindDir:
		case prev.Entry.Kind == it.Entry.Kind && sameFile(prev.Source, it.Source):
		default:
			return nil, fmt.Errorf("%w: %s and %s would both arrive as %s; send them in two commands, or rename one",
				ErrDuplicatePath, Escape(prev.Source), Escape(it.Source), Escape(it.Entry.Path))
		}
	}
	return out, nil
}

// sameFile reports whether paths a and b are one file.
func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

func fileItem(rel, src string, fi fs.FileInfo) Item {
	return Item{Source: src, id: infoID(fi), Entry: proto.Entry{
		Path: rel, Kind: proto.KindFile, Size: uint64(fi.Size()),
		Mode: uint32(fi.Mode().Perm()), MTime: fi.ModTime(),
	}}
}

// infoID is the identity of the file fi describes (a Stat or Lstat), or
// none where the platform's FileInfo holds none (Windows: opening every
// file collected to ask would cost a handle each).
func infoID(fi fs.FileInfo) fileID {
	dev, ino, _ := statID(fi)
	return fileID{dev: dev, ino: ino}
}

// errReplaced: the file opened to send is not the one collected.
var errReplaced = errors.New("it was replaced since it was collected")

// isCollected reports nil if the open file f is the file it collected (or
// it has no identity to compare), else errReplaced.
func (it Item) isCollected(f *os.File) error {
	if it.id == (fileID{}) {
		return nil
	}
	id, _, err := openIdentity(f)
	if err != nil {
		return err
	}
	if id != (fileID{}) && id != it.id {
		return errReplaced
	}
	return nil
}

// walkSerial adds the directory root, offered as base, and everything in
// it that can be sent: filepath.WalkDir's walk, in its lexical order, a
// folder's item before its contents. It is walk where walk has no faster
// way (see walk_unix.go), and what that way must give, path for path.
func (c *collector) walkSerial(root, base string) error {
	// The root was named: a symbolic link to a folder is followed (see
	// Collect). WalkDir lstats its root, but a final separator makes that
	// the folder the link names (POSIX path resolution; Go's Lstat does
	// the same on Windows), and the paths below it are found through the
	// link, as walk finds them. Collect found a folder there: a root that
	// lstat does not call one is a link (or, on Windows, a junction,
	// which Lstat calls irregular).
	start := root
	if fi, err := os.Lstat(root); err == nil && !fi.IsDir() {
		start = root + string(filepath.Separator)
	}
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if p == start {
			p = root
		}
		if p != root && d != nil && c.exclude != nil {
			if rel, rerr := filepath.Rel(root, p); rerr == nil && c.excludes(p, filepath.ToSlash(filepath.Join(base, rel)), d.IsDir()) {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
		}
		if err != nil {
			if p == root && d == nil {
				return err
			}
			if d != nil && d.IsDir() {
				// Its listing failed after it was added: it goes, with
				// nothing in it, and no empty folder arrives for it.
				if n := len(c.items) - 1; n >= 0 && c.items[n].Source == p {
					c.items = c.items[:n]
				}
				c.skip(p, unreadable(err))
				return fs.SkipDir
			}
			c.skip(p, unreadable(err))
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(filepath.Join(base, rel))
		if err := carried(rel); err != nil {
			c.skip(p, err)
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch t := d.Type(); {
		case t.IsDir():
			fi, err := d.Info()
			if err == nil {
				err = readable(p, true)
			}
			if err != nil {
				c.skip(p, unreadable(err))
				return fs.SkipDir
			}
			c.items = append(c.items, Item{Source: p, Entry: proto.Entry{
				Path: rel, Kind: proto.KindDir, Mode: uint32(fi.Mode().Perm()), MTime: fi.ModTime(),
			}})
		case t.IsRegular():
			fi, err := d.Info()
			if err == nil {
				err = readable(p, false)
			}
			if err != nil {
				c.skip(p, unreadable(err))
				return nil
			}
			c.items = append(c.items, fileItem(rel, p, fi))
		case t&fs.ModeSymlink != 0:
			c.skip(p, fmt.Errorf("%w: symbolic link", ErrNotRegular))
		default:
			c.skip(p, ErrNotRegular)
		}
		return nil
	})
}

// Progress reports a running send.
type Progress struct {
	Path       string // the file being sent, as offered
	Bytes      uint64 // bytes of files done so far, including skipped and resumed ones
	Total      uint64 // bytes of all files
	Files      int    // files finished
	FilesTotal int
	// Skipped counts the files among Files that the receiver already
	// had, which did not cross.
	Skipped int
	// Resumed counts the bytes the receiver already had from an earlier,
	// interrupted send, which did not cross again.
	Resumed uint64
	// Attempt is 1 for the first connection, and counts the retries after
	// a dropped connection.
	Attempt int
}

// Waiting says that a receiver's owner decides on an offer.
type Waiting struct {
	Peer    string        // the receiver's display name, from its hello
	Timeout time.Duration // the longest the answer may take
	Reason  string        // the receiver's words
}

// Retry describes a retry after a dropped connection.
type Retry struct {
	Attempt int           // the attempt about to start: 2 for the first retry
	Max     int           // the most consecutive retries without progress
	Err     error         // why the last attempt ended
	Wait    time.Duration // the pause before the attempt
}

// SendOptions configure a send.
type SendOptions struct {
	// Name is our display name, sent in the hello.
	Name string
	// IdleTimeout drops the connection when nothing moves for this long,
	// also while waiting for the receipt. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Progress, if set, is called from the sending goroutine as bytes go
	// out. It must return quickly.
	Progress func(Progress)
	// Dial, if set, opens the connection to addr in place of a plain TCP
	// dial: to run the transfer over TLS, for one. SendTo closes the
	// connection it returns.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Retries is how many times in a row SendTo sends a batch again,
	// after a pause that doubles each time, when its connection drops
	// (or a resumed file fails its digest) without progress; an attempt
	// that moved bytes starts the count again. Zero means DefaultRetries;
	// negative means none.
	Retries int
	// OnRetry, if set, is called before each retry.
	OnRetry func(Retry)
	// OnWait, if set, is called when the receiver says that its owner
	// decides on the offer (see proto.Wait): the answer may take up to
	// Waiting.Timeout.
	OnWait func(Waiting)
	// ConfigDir, if set, is the agent's config folder, where a send
	// keeps the digest states of the large files it sends, so that a
	// resume of one does not read again the bytes the receiver has (see
	// the digest cache). Empty keeps none.
	ConfigDir string
	// retryBase replaces the first retry's pause in tests.
	retryBase time.Duration
	// done, set by SendTo to its context's, ends a wait for a stream's
	// source, which the connection's close does not.
	done <-chan struct{}
}

// DefaultIdleTimeout is how long a connection may stall before it is dropped.
const DefaultIdleTimeout = 60 * time.Second

// DefaultRetries is how many retries in a row a send makes without progress.
const DefaultRetries = 6

// Pauses before retries: the first, and the longest.
const (
	retryBase = 250 * time.Millisecond
	retryMax  = 8 * time.Second
)

// Report is the receiver's verdict on a send.
type Report struct {
	Peer    string         // the receiver's display name, from its hello
	Items   []Item         // what was offered
	Results []proto.Result // the receipt: one per item
	Sent    uint64         // file bytes that crossed the connection
	// Resumed counts the file bytes the receiver already had from an
	// interrupted send; Retries, the connections after the first.
	Resumed uint64
	Retries int
	// RecordedAs is the id the receiver says it authenticated us as
	// (from the receipt); empty when it did not learn one.
	RecordedAs string
	// had is the file bytes the receiver said it had when it answered:
	// the files already there and the offsets it resumed from. A retry
	// that finds it grown shows that the attempt before kept something.
	// from holds, by entry, the offset a file resumed from.
	had  uint64
	from []uint64
}

// dropped counts the bytes the receiver had of files that resumed and
// then failed their digest: it threw the partial files away, and takes
// them whole next time.
func (r *Report) dropped() uint64 {
	var n uint64
	for i, res := range r.Results {
		if res.Status == proto.Failed && res.Code == proto.CodeDigest && i < len(r.from) {
			n += r.from[i]
		}
	}
	return n
}

// Saved counts the items the receipt says are saved or already there,
// and a text message delivered.
func (r *Report) Saved() int {
	n := 0
	for _, res := range r.Results {
		if res.Status == proto.Saved || res.Status == proto.Skipped || res.Status == proto.Delivered {
			n++
		}
	}
	return n
}

// newlySaved counts the files the receipt says this attempt saved (not
// those already there, nor folders, saved at every try) and a text
// message delivered.
func (r *Report) newlySaved() int {
	n := 0
	for i, res := range r.Results {
		if res.Status == proto.Saved && i < len(r.Items) && r.Items[i].Entry.Kind != proto.KindDir || res.Status == proto.Delivered {
			n++
		}
	}
	return n
}

// SendTo dials addr and sends items, in batches of at most
// proto.MaxEntries. It blocks until every batch has its receipt, ctx ends,
// or a batch fails. When a connection drops after the first one was made,
// it sends the batch again (see SendOptions.Retries): the receiver skips
// the files that arrived and resumes the one that was cut. The error is
// nil only when every item was saved.
func SendTo(ctx context.Context, addr string, items []Item, opt SendOptions) (*Report, error) {
	all := &Report{}
	var total uint64
	for _, it := range items {
		total += it.Entry.Size
	}
	retries := opt.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	if isText(items) {
		retries = -1 // a message that may have arrived is not sent twice
	}
	var done uint64
	attempt := 1
	reached := false // a receiver's hello arrived: it is there to retry with
	for len(items) > 0 {
		batch := items[:batchLen(items)]
		items = items[len(batch):]
		fails := 0
		var had uint64 // the most the receiver had of batch at an answer
		lowered := false
		for {
			o := opt
			if opt.Progress != nil {
				base, n := done, attempt
				o.Progress = func(p Progress) {
					p.Bytes += base
					p.Total = total
					p.Attempt = n
					opt.Progress(p)
				}
			}
			rep, err := sendBatch(ctx, addr, batch, o)
			var saved int
			if rep != nil {
				reached = true
				all.Peer = rep.Peer
				all.Sent += rep.Sent
				all.Resumed += rep.Resumed
				all.RecordedAs = rep.RecordedAs
				saved = rep.newlySaved()
			}
			if err != nil && streamStarted(batch) != nil {
				// A stream cannot be read again: no retry.
				if rep != nil {
					all.Items = append(all.Items, rep.Items...)
					all.Results = append(all.Results, rep.Results...)
				}
				return all, streamFailed(batch, rep, err)
			}
			if reached && errors.Is(err, syscall.ECONNREFUSED) {
				// It answered before and now nothing listens there: its
				// agent stopped (and said goodbye). Retrying is waiting
				// for a restart nobody promised.
				return all, &StoppedError{Peer: all.Peer, Addr: addr, Err: err}
			}
			// A receiver that turned us away at once (every slot taken)
			// is there too: it frees a slot for a newcomer within
			// seconds (see Config.EvictAfter).
			there := reached || errors.Is(err, ErrTurnedAway)
			if err == nil || !there || !retryable(rep, err) || ctx.Err() != nil {
				if rep != nil {
					all.Items = append(all.Items, rep.Items...)
					all.Results = append(all.Results, rep.Results...)
				}
				if err != nil {
					return all, err
				}
				break
			}
			// It moved if the receiver saved something new, or has more
			// of the batch than at any answer before: the attempt before
			// kept files or bytes. Files already there are not new (a
			// file failing its digest on every try, beside files skipped
			// each time, made the retries endless), and bytes sent are not
			// enough: a receiver
			// that fails a file for space, though its free-space figure
			// says there is room (no inodes left, a quota), throws them
			// away, and counting them made the retries endless.
			if rep != nil && (saved > 0 || rep.had > had) {
				fails = 0 // the count starts again
			}
			if rep != nil {
				// What a resumed file that failed its digest had is gone:
				// the mark comes down by it, or a large file cut again on
				// its way back up would not count as moving until it
				// passed its old offset. Once a batch: a receiver that
				// failed every resume so would have the mark come down
				// for ever, and the retries never end.
				had = max(had, rep.had)
				if d := rep.dropped(); d > 0 && !lowered {
					had -= min(had, d)
					lowered = true
				}
			}
			if fails++; retries < 0 || fails > retries {
				if reached && !errors.Is(err, ErrIncomplete) {
					err = fmt.Errorf("%w: %w", ErrIncomplete, err)
				}
				if attempt > 1 {
					err = fmt.Errorf("gave up after %d attempts: %w", attempt, err)
				}
				return all, err
			}
			wait := opt.retryBase
			if wait == 0 {
				wait = retryBase
			}
			wait = min(wait<<(fails-1), retryMax)
			attempt++
			all.Retries++
			if opt.OnRetry != nil {
				opt.OnRetry(Retry{Attempt: attempt, Max: retries, Err: err, Wait: wait})
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return all, fmt.Errorf("%w: %w", ctx.Err(), err)
			}
		}
		for _, it := range batch {
			done += it.Entry.Size
		}
	}
	return all, nil
}

// StoppedError ends a send whose receiver stopped during it: after its
// agent was reached, a new connection to it was refused, because nothing
// listens there any more. It matches ErrPeerStopped and ErrIncomplete.
// The receiver keeps the files that arrived and a large file's partial
// bytes, so that the same send, once the agent runs again, resumes.
type StoppedError struct {
	Peer string // the receiver's display name, from its hello
	Addr string
	Err  error // the refused connection
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("%s stopped (nothing listens at %s any more)", peerName(e.Peer), e.Addr)
}

// Unwrap gives ErrPeerStopped, ErrIncomplete and the refused connection.
func (e *StoppedError) Unwrap() []error { return []error{ErrPeerStopped, ErrIncomplete, e.Err} }

// retryable reports whether a batch that ended with err is worth sending
// again: its connection failed (not a refusal, a wrong key or another
// protocol version), or the receipt says a resumed file failed its
// digest, so that the receiver dropped it and takes it whole next time.
func retryable(rep *Report, err error) bool {
	var re *RefusedError
	switch {
	case errors.Is(err, ErrWrongKey), errors.Is(err, ErrKeyChanged), errors.Is(err, proto.ErrVersionMismatch),
		errors.Is(err, proto.ErrMalformed), errors.Is(err, proto.ErrBadMagic),
		errors.Is(err, proto.ErrUnexpectedFrame), errors.Is(err, proto.ErrTooLarge),
		errors.Is(err, ErrNotSendable): // the receiver cannot take it, however often asked
		return false
	case rep != nil && rep.Results != nil:
		// A receipt came: only digest failures are worth another try.
		for _, r := range rep.Results {
			if r.Status == proto.Failed && r.Code == proto.CodeDigest {
				return true
			}
		}
		return false
	case errors.As(err, &re):
		// A whole batch refused; only "busy" may pass.
		return re.Code == proto.CodeBusy || re.Code == proto.CodeShuttingDown
	}
	return true
}

// batchLen is how many of items fit in one offer.
func batchLen(items []Item) int {
	size := 4
	for i, it := range items {
		size += 23 + len(it.Entry.Path)
		if i == proto.MaxEntries || size > proto.MaxFrameLen {
			return i
		}
	}
	return len(items)
}

func sendBatch(ctx context.Context, addr string, items []Item, opt SendOptions) (*Report, error) {
	dial := opt.Dial
	if dial == nil {
		d := net.Dialer{Timeout: 10 * time.Second}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	conn, err := dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	opt.done = ctx.Done()
	rep, err := Send(conn, items, opt)
	if err != nil && ctx.Err() != nil {
		return rep, fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return rep, err
}

// Send runs the sending side of one transfer on conn and waits for the
// receipt. It does not close conn. The error is nil only when the receipt
// confirms every item; otherwise the Report, if not nil, says which were
// saved.
func Send(conn net.Conn, items []Item, opt SendOptions) (*Report, error) {
	if len(items) > proto.MaxEntries {
		return nil, fmt.Errorf("%d items in one batch (max %d): %w", len(items), proto.MaxEntries, proto.ErrTooLarge)
	}
	idle := opt.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	c := &idleConn{conn, idle}
	br, bw := bufio.NewReaderSize(c, 64<<10), bufio.NewWriterSize(c, bufSize)
	offer := proto.Offer{Entries: make([]proto.Entry, len(items))}
	for i, it := range items {
		offer.Entries[i] = it.Entry
	}
	if err := proto.WriteHello(bw, proto.NewHello(opt.Name)); err != nil {
		return nil, err
	}
	if err := proto.WriteOffer(bw, offer); err != nil {
		return nil, turnedAway(err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("sending offer: %w", turnedAway(err))
	}
	pf := startPrefetch(items)
	defer pf.wait()
	hello, err := proto.ReadHello(br)
	if err != nil {
		return nil, fmt.Errorf("waiting for the receiver's hello: %w", turnedAway(unexpected(err)))
	}
	rep := &Report{Peer: hello.Name, Items: items}
	if err := hello.CheckVersion(); err != nil {
		return rep, fmt.Errorf("%s: %w", peerName(hello.Name), err)
	}
	if err := checkStreamPeer(hello, items); err != nil {
		return rep, err
	}
	answer, err := proto.ReadAnswerWaiting(br, func(w proto.Wait) {
		// The answer may take as long as the owner has, and then some.
		c.idle = idle + w.Timeout
		if opt.OnWait != nil {
			opt.OnWait(Waiting{Peer: peerName(hello.Name), Timeout: w.Timeout, Reason: w.Reason})
		}
	})
	c.idle = idle
	if err != nil {
		return rep, fmt.Errorf("waiting for %s's answer: %w", peerName(hello.Name), unexpected(err))
	}
	if err := textRefused(hello, items, answer); err != nil {
		return rep, err
	}
	if answer.Code != proto.CodeOK {
		return rep, &RefusedError{Peer: peerName(hello.Name), Code: answer.Code, Reason: answer.Reason}
	}
	if len(answer.Replies) != len(items) {
		return rep, fmt.Errorf("answer has %d replies for %d entries: %w", len(answer.Replies), len(items), proto.ErrMalformed)
	}

	s := streamer{conn: conn, idle: idle, bw: bw, buf: make([]byte, bufSize), progress: opt.Progress, done: opt.done,
		cache: openDigestCache(opt.ConfigDir), fromCache: map[uint32]partialStamp{}, ahead: pf.wait()}
	defer func() {
		// Also when the connection drops: what moved, moved.
		rep.Sent, rep.Resumed = s.sent, s.prog.Resumed
	}()
	for i, it := range items {
		s.prog.Total += it.Entry.Size
		if it.Entry.Kind != proto.KindDir {
			s.prog.FilesTotal++
		}
		if it.Entry.Kind == proto.KindFile {
			switch r := answer.Replies[i]; r.Status {
			case proto.Skip:
				rep.had += it.Entry.Size
			case proto.Accept:
				rep.had += min(r.Offset, it.Entry.Size)
				if r.Offset > 0 {
					if rep.from == nil {
						rep.from = make([]uint64, len(items))
					}
					rep.from[i] = min(r.Offset, it.Entry.Size)
				}
			}
		}
	}
	for i, it := range items {
		r := answer.Replies[i]
		if it.Entry.Kind == proto.KindText && r.Status == proto.Accept {
			if err := s.sendText(uint32(i), it); err != nil {
				return rep, fmt.Errorf("sending the message to %s: %w", peerName(hello.Name), err)
			}
			continue
		}
		if it.Entry.Kind == proto.KindStream {
			if err := s.streamEntry(uint32(i), it, r); err != nil {
				return rep, streamBroke(c, br, rep, fmt.Errorf("sending %s to %s: %w", Escape(it.Entry.Path), peerName(hello.Name), err))
			}
			continue
		}
		if it.Entry.Kind != proto.KindFile {
			continue
		}
		if r.Status == proto.Accept {
			if r.Offset > it.Entry.Size {
				return rep, fmt.Errorf("%s: offset %d beyond size %d: %w", Escape(it.Entry.Path), r.Offset, it.Entry.Size, proto.ErrMalformed)
			}
			unread := len(s.unread)
			if err := s.sendFile(uint32(i), it, r.Offset); err != nil {
				return rep, streamBroke(c, br, rep, fmt.Errorf("sending %s to %s: %w", Escape(it.Entry.Path), peerName(hello.Name), err))
			}
			if len(s.unread) > unread {
				// Not sent: the progress must not count it.
				s.report(it.Entry.Path)
				continue
			}
		} else {
			s.prog.Bytes += it.Entry.Size
			if r.Status == proto.Skip {
				s.prog.Skipped++
			}
		}
		s.prog.Files++
		s.report(it.Entry.Path)
	}
	if err := proto.WriteDone(bw); err != nil {
		return rep, streamBroke(c, br, rep, err)
	}
	if err := bw.Flush(); err != nil {
		return rep, streamBroke(c, br, rep, fmt.Errorf("sending to %s: %w", peerName(hello.Name), err))
	}
	closeWrite(conn)

	receipt, err := proto.ReadReceipt(br)
	if err != nil {
		return rep, fmt.Errorf("%w: no receipt from %s: %w", ErrIncomplete, peerName(hello.Name), unexpected(err))
	}
	if len(receipt.Results) != len(items) {
		return rep, fmt.Errorf("receipt has %d results for %d entries: %w", len(receipt.Results), len(items), proto.ErrMalformed)
	}
	rep.Results = receipt.Results
	s.dropFailedStates(receipt.Results)
	rep.RecordedAs = receipt.Sender
	err = rep.check()
	if len(s.unread) > 0 && err != nil {
		// Our own failure comes first: the receiver only saw it.
		first := s.unread[0]
		return rep, &SourceError{Path: first.Source, Err: first.err, Count: len(s.unread), cause: err}
	}
	return rep, err
}

// SourceError is a send's failure to read files it offered (one that
// became unreadable, shrank or changed after Collect): they were not sent,
// and nothing was saved under their names. It matches ErrSourceUnreadable,
// and what the receipt says (ErrIncomplete, or a *RefusedError with
// proto.CodeSourceChanged).
type SourceError struct {
	Path  string // the first such file, as given to Collect
	Err   error  // why it could not be read
	Count int    // how many such files
	cause error  // the receipt's verdict
}

func (e *SourceError) Error() string {
	what := "cannot read " + Escape(e.Path)
	if e.Count > 1 {
		what = fmt.Sprintf("cannot read %d files, first %s", e.Count, Escape(e.Path))
	}
	return fmt.Sprintf("%s: %s; not sent", what, Escape(errReasonNoPath(e.Err).Error()))
}

// Unwrap gives ErrSourceUnreadable and the receipt's verdict.
func (e *SourceError) Unwrap() []error { return []error{ErrSourceUnreadable, e.cause} }

func peerName(n string) string {
	if n == "" {
		return "receiver"
	}
	return Escape(n)
}

// check turns a receipt with failures into an error naming the first one.
// The count is of files, as the progress counts them ("3 of 11 files not
// saved"); folders are counted only when no file failed.
func (r *Report) check() error {
	var firstFile, firstDir error
	var files, dirs, failedFiles, failedDirs int
	for i, res := range r.Results {
		e := r.Items[i].Entry
		isFile := e.Kind != proto.KindDir
		if isFile {
			files++
		} else {
			dirs++
		}
		if res.Status == proto.Saved || res.Status == proto.Skipped || res.Status == proto.Delivered && e.Kind == proto.KindText {
			continue
		}
		p := e.Path
		if e.Kind == proto.KindText {
			p = "" // a name of ours, not the user's: "bob refused: ..."
		}
		err := &RefusedError{Peer: peerName(r.Peer), Path: p, Code: res.Code, Reason: res.Reason,
			Failed: res.Status == proto.Failed && p != "" && failedCode(res.Code, e.Kind)}
		switch {
		case isFile && firstFile == nil:
			firstFile = err
		case !isFile && firstDir == nil:
			firstDir = err
		}
		if isFile {
			failedFiles++
		} else {
			failedDirs++
		}
	}
	switch {
	case failedFiles+failedDirs == 0:
		return nil
	case failedFiles+failedDirs == 1 && len(r.Results) == 1:
		return cmp.Or(firstFile, firstDir)
	case failedFiles > 0:
		return fmt.Errorf("%w: %d of %d %s not saved; first: %w", ErrIncomplete, failedFiles, files, pluralWord(files, "file"), firstFile)
	}
	return fmt.Errorf("%w: %d of %d %s not created; first: %w", ErrIncomplete, failedDirs, dirs, pluralWord(dirs, "folder"), firstDir)
}

// pluralWord is what, or its plural for n other than 1.
func pluralWord(n int, what string) string {
	if n == 1 {
		return what
	}
	return what + "s"
}

// streamer writes accepted files back to back.
type streamer struct {
	conn     net.Conn // under bw, for sendfile
	idle     time.Duration
	bw       *bufio.Writer
	buf      []byte
	sent     uint64
	prog     Progress
	progress func(Progress)
	last     time.Time
	unread   []unreadFile    // files that could not be read in full
	done     <-chan struct{} // see SendOptions.done
	cache    *digestCache
	// fromCache holds the stamps of the files whose digest went on
	// from a kept state, by index.
	fromCache map[uint32]partialStamp
	// digest is the hash of the files sent from their start, one after
	// another, reset for each (see planDigest).
	digest hash.Hash
	// corkBuf gathers a chunk's TLS records (see writeCorked).
	corkBuf []byte
	// ahead holds, by entry, the files read ahead (see prefetcher).
	ahead []prefetched
}

// unreadFile is a file the streamer could not read in full, padded and
// marked aborted.
type unreadFile struct {
	Source string
	err    error
}

func (s *streamer) report(path string) {
	if s.progress == nil {
		return
	}
	s.prog.Path = path
	s.progress(s.prog)
}

// sendFile streams the bytes of it from offset and its FileEnd. A source
// that cannot be read in full is padded with zeros and marked aborted, so
// the stream stays in step and the rest of the batch goes on; only a
// connection error is returned.
func (s *streamer) sendFile(index uint32, it Item, offset uint64) error {
	e := it.Entry
	if offset == 0 && int(index) < len(s.ahead) && s.ahead[index].ok && unchanged(it) {
		p := &s.ahead[index]
		return s.sendWhole(index, e, p.data, &p.digest)
	}
	if offset == 0 && e.Size <= uint64(len(s.buf)) && readWhole(it, s.buf[:e.Size]) {
		return s.sendWhole(index, e, s.buf[:e.Size], nil)
	}
	fe := proto.FileEnd{Index: index, Status: proto.Sent}
	f, rerr := openSource(it.Source)
	if f != nil {
		defer f.Close()
		rerr = it.isCollected(f)
	}
	// The digest covers the whole file, what the receiver already has
	// too: for a resumed file it goes on from a kept state, or is hashed
	// while the rest streams (see planDigest).
	var d digestPlan
	if rerr == nil {
		d = s.planDigest(f, index, e, offset)
		defer d.finish(f, s.cache) // after whole is cancelled
		if d.whole != nil {
			defer d.whole.cancel()
		}
	}
	if rerr == nil && offset > 0 {
		_, rerr = f.Seek(int64(offset), io.SeekStart)
	}
	s.prog.Bytes += offset
	s.prog.Resumed += offset
	var err error
	switch left := e.Size - offset; {
	case rerr != nil:
		err = s.pad(left, e.Path)
	case left >= pipeMin:
		rerr, err = s.sendPipelined(readJob{f: f, h: d.h, log: d.streamLog(), from: int64(d.from), off: int64(offset), n: left}, e.Path)
	default:
		if rerr = hashRange(f, d.h, d.from, offset, d.streamLog()); rerr != nil {
			err = s.pad(left, e.Path)
		} else {
			rerr, err = s.sendSerial(f, d.h, left, e.Path)
		}
	}
	if err != nil {
		return err
	}
	if rerr == nil {
		if fi, err := f.Stat(); err != nil || uint64(fi.Size()) != e.Size || !fi.ModTime().Equal(e.MTime) {
			rerr = errors.New("it changed while being sent")
		}
	}
	if rerr == nil && d.whole != nil {
		fe.Digest, rerr = d.whole.wait()
	}
	if rerr != nil {
		s.unread = append(s.unread, unreadFile{Source: it.Source, err: rerr})
		fe = proto.FileEnd{Index: index, Status: proto.Aborted, Code: proto.CodeSourceChanged,
			Reason: trimReason(strings.TrimPrefix(errReason(rerr), "open "))}
	} else if d.whole == nil {
		copy(fe.Digest[:], d.h.Sum(nil))
	}
	return proto.WriteFileEnd(s.bw, fe)
}

// sendWhole sends entry index, e, whose bytes b were read whole (see
// readWhole), and its end: a small file costs no *os.File, whose
// making, locking and finalizer took a tenth of the sender's time on
// 4 KiB files.
//
// digest, if not nil, is b's digest, found when b was read ahead (see
// prefetcher).
func (s *streamer) sendWhole(index uint32, e proto.Entry, b []byte, digest *[proto.DigestSize]byte) error {
	fe := proto.FileEnd{Index: index, Status: proto.Sent}
	if digest != nil {
		fe.Digest = *digest
	} else {
		if s.digest == nil {
			s.digest = proto.NewDigest()
		}
		s.digest.Reset()
		s.digest.Write(b)
		copy(fe.Digest[:], s.digest.Sum(nil))
	}
	if _, err := s.bw.Write(b); err != nil {
		return err
	}
	s.advance(uint64(len(b)), e.Path)
	return proto.WriteFileEnd(s.bw, fe)
}

// sendSerial sends the next n bytes of f, hashing them into h, on this
// goroutine: small files are not worth a pipeline. It returns the reason
// the source could not be sent in full (the rest was padded with zeros),
// and a connection error, which ends the transfer.
func (s *streamer) sendSerial(f *os.File, h hash.Hash, n uint64, path string) (rerr, err error) {
	for n > 0 {
		chunk := s.buf[:min(n, uint64(len(s.buf)))]
		if _, err := io.ReadFull(f, chunk); err != nil {
			return fmt.Errorf("it shrank or became unreadable: %w", unexpected(err)), s.pad(n, path)
		}
		h.Write(chunk)
		if _, err := s.bw.Write(chunk); err != nil {
			return nil, err
		}
		n -= uint64(len(chunk))
		s.advance(uint64(len(chunk)), path)
	}
	return nil, nil
}

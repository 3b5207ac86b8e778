package peer

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// File modes given to what the inbox creates, whatever the sender offered:
// never setuid, setgid, sticky or executable.
const (
	fileMode fs.FileMode = 0o644
	dirMode  fs.FileMode = 0o755
	// sharedMode is the mode of a shared folder the inbox creates: its
	// files are the user's, not every local user's.
	sharedMode fs.FileMode = 0o700
)

// tempPrefix starts the name of every temporary file the inbox writes, so
// that they are hidden and recognisable.
const tempPrefix = ".lanshare-"

// InboxConfig configures an Inbox.
type InboxConfig struct {
	// Dir is the shared folder; it is created if missing.
	Dir string
	// Name is this agent's display name, sent in the hello.
	Name string
	// SpaceMargin is the free space an offer must leave untouched.
	SpaceMargin uint64
	// HandshakeTimeout bounds the time from connection to a complete offer.
	HandshakeTimeout time.Duration
	// IdleTimeout drops a connection on which nothing moves for this long.
	IdleTimeout time.Duration
	// MinRate is the fewest bytes a sender must deliver, after the answer,
	// per RateWindow of time the inbox spends waiting for them; a slower
	// one is dropped (ErrTooSlow). A zero RateWindow means no minimum.
	MinRate    uint64
	RateWindow time.Duration
	// MemoryBudget caps the memory that the offers of all transfers in
	// flight, and their per-entry state, take at once; zero means
	// DefaultMemoryBudget. An offer waits for its share within the
	// handshake deadline, or is refused as busy.
	MemoryBudget int64
	// NameRules are the names the shared folder can hold; an offered
	// name they forbid is saved under a mapped name. "" is NamesNative.
	NameRules NameRules

	// freeSpace and freeFiles replace the file system queries in tests.
	freeSpace func(dir string) (uint64, error)
	freeFiles func(dir string) (free, total uint64, err error)
}

// Inbox receives transfers into the shared folder. All file system work
// goes through an os.Root, so nothing an offer says can reach outside the
// folder, through symlinks or otherwise. Safe for concurrent use.
type Inbox struct {
	cfg  InboxConfig
	root *os.Root

	mu       sync.Mutex // guards reserved, index, recent and dirs, and serialises commits
	reserved uint64     // bytes accepted by transfers in flight
	// reservedFiles is the files (inodes) that transfers in flight may
	// still make.
	reservedFiles uint64
	index         *os.File // the arrived index, open for appending
	// indexTorn: the index may not end in a newline (an append failed,
	// or the agent died in one); indexDirty: appends not yet synced.
	indexTorn, indexDirty bool
	// indexAppends counts the appends to the index.
	indexAppends uint64
	// indexSize is the index's size, as this inbox wrote it; -1 when
	// unknown. The index is this inbox's alone.
	indexSize int64
	// indexBuf holds the lines of the last append, for the next one to
	// reuse (see recordArrivals).
	indexBuf []byte
	recent   map[string]arrival // key → the files this process committed (bounded)
	dirs     map[string]*dirUse // directories that live transfers resolved, by path under the root

	smu  sync.Mutex           // guards busy
	busy map[string]*transfer // keys of the resumable files being received, and by whom

	// anon says whether the staging folder's file system makes unnamed
	// files (anonUnknown, anonYes, anonNo); anonOnce finds out.
	anon     atomic.Int32
	anonOnce sync.Once

	gmu    sync.Mutex     // guards stg and closed
	stg    *stagingFolder // the staging folder, held open (see staging)
	closed bool

	mem *memBudget // shared by the offers of all transfers in flight
}

// OpenInbox opens the shared folder, creating it private (0700) if it is
// missing: what arrives is for this user, and an existing folder keeps the
// mode its owner gave it. It opens the staging folder in it, and refuses
// (ErrStagingUnsafe) one that another user owns; see staging.
func OpenInbox(cfg InboxConfig) (*Inbox, error) {
	if cfg.freeSpace == nil {
		cfg.freeSpace = freeSpace
	}
	if cfg.freeFiles == nil {
		cfg.freeFiles = freeFiles
	}
	if cfg.MemoryBudget <= 0 {
		cfg.MemoryBudget = DefaultMemoryBudget
	}
	rules, err := cfg.NameRules.resolve()
	if err != nil {
		return nil, err
	}
	cfg.NameRules = rules
	if err := os.MkdirAll(cfg.Dir, sharedMode); err != nil {
		return nil, fmt.Errorf("creating shared folder: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("opening shared folder: %w", err)
	}
	in := &Inbox{cfg: cfg, root: root, busy: map[string]*transfer{}, recent: map[string]arrival{}, dirs: map[string]*dirUse{},
		mem: newMemBudget(cfg.MemoryBudget)}
	if err := in.ensureStaging(); err != nil {
		root.Close()
		return nil, err
	}
	return in, nil
}

// Close releases the shared folder. Transfers must have ended.
func (in *Inbox) Close() error {
	in.mu.Lock()
	if in.index != nil {
		in.index.Close()
		in.index = nil
	}
	in.mu.Unlock()
	in.closeStaging()
	return in.root.Close()
}

// Dir returns the shared folder's path.
func (in *Inbox) Dir() string { return in.cfg.Dir }

// Received is one offered entry's outcome in a transfer.
type Received struct {
	Path    string     // as offered
	Kind    proto.Kind // a stream is reported as the file it became
	Size    uint64     // for a stream, the bytes that arrived
	Result  proto.Result
	Elapsed time.Duration // from the start of the transfer to the file's commit
	Offset  uint64        // where the file resumed: the bytes it had from an earlier transfer
	// Kept is, for a file the transfer was cut in, the bytes of it kept
	// for a resume (0: none).
	Kept uint64
}

// Transfer describes one received batch.
type Transfer struct {
	From    string // the sender's display name, from its hello (not authenticated)
	Entries []Received
	// Text is a text message the sender sent (send --text, a LocalSend
	// app's message), as sent: escape it before showing it (EscapeText).
	// Its entry, of proto.KindText, is among Entries.
	Text string
	// Via is the protocol it came by: "" for lanshare's, "localsend".
	Via string

	minor uint8 // the sender's protocol minor version, from its hello
}

// Policy is what one transfer may do; the agent decides it from who the
// sender is. The zero Policy is the drop box: no size cap beyond free
// space, files 0644, everything under the shared folder's top.
type Policy struct {
	// MaxSize caps the bytes of one transfer (0: no cap); a larger offer
	// is refused whole with proto.CodeTooLarge before anything is created.
	MaxSize uint64
	// Exec keeps the executable bit: a file offered with any x bit lands
	// 0755 instead of 0644.
	Exec bool
	// SenderID is the sender's authenticated id, echoed in the receipt.
	SenderID string
	// SaveTexts also saves a text message as a file at the top of the
	// transfer's folder (text-YYYYMMDD-HHMMSS.txt), with every guarantee
	// a file has; without it a message is only delivered (Transfer.Text).
	SaveTexts bool
	// Folder, if set, is a folder of the shared folder that the transfer
	// lands in (created if missing, merged into if it exists); it must be
	// a single name that CheckName accepts.
	Folder string
	// Watch, if set, is called once the transfer's files start to
	// arrive, with a function that returns its progress at any moment,
	// from any goroutine, until the transfer ends.
	Watch func(progress func() InProgress)
	// Done, if set, is closed when the transfer must be given up (the
	// agent stops, or drops the connection): whatever the transfer waits
	// on besides the network (another transfer's claim, the memory
	// budget) it stops waiting, and ReceiveWith returns soon after.
	Done <-chan struct{}
	// Accepted is when the connection was accepted: the handshake
	// deadline counts from it. Zero means when ReceiveWith is called.
	Accepted time.Time
	// Answered, if set, is called once the answer accepting the offer
	// has been sent.
	Answered func()
	// Consent, if set, has the last word on an offer that everything
	// else accepted, before free space is set aside and before the
	// answer: it returns nil to go on, or an error to refuse the batch
	// (a *RefusedError gives the code and reason) and nothing is created.
	// It may block: it then first calls wait with how long it may take,
	// which tells the sender that the receiver's owner decides (see
	// OfferSummary.CanWait) and lifts the handshake deadline for that
	// long; it must return by then, soon after Done is closed, and soon
	// after the channel wait returns is closed: the sender hung up.
	Consent func(o OfferSummary, wait func(time.Duration) (gone <-chan struct{}, err error)) error
	// StreamBytes, if set, is called before a stream (an entry whose
	// size comes at its end) takes n more bytes, n at a time: it returns
	// nil to go on, or an error to stop the stream (a *RefusedError gives
	// the code and reason) and the transfer with it.
	StreamBytes func(n uint64) error
	// Text, if set, is called once for an offer that holds a text
	// message and that everything else accepted so far, before Consent:
	// it returns nil to go on, or an error to refuse the batch (a
	// *RefusedError gives the code and reason), which ReceiveWith or
	// OpenBatch returns. The agent's rate limit of messages.
	Text func() error
}

// OfferSummary is what Policy.Consent learns of an offer.
type OfferSummary struct {
	From   string   // the sender's display name, from its hello (not authenticated)
	Files  int      // files offered, streams included
	Dirs   int      // directories offered
	Bytes  uint64   // bytes of the files (and text message) offered
	Texts  int      // text messages offered (0 or 1)
	Need   uint64   // bytes that would cross: without files already there or resumed
	First  []string // the first few paths offered, as offered
	Memory int64    // what the offer holds of the memory budget while it waits
	// CanWait is true when the sender speaks protocol 1.1 or later: it is
	// told that the owner decides, and waits for as long as it is told.
	// An older sender waits only for its idle timeout (60 s by default).
	CanWait bool
	// Streams counts the files offered whose size comes only at their
	// end (a pipe): Bytes and Need leave them out.
	Streams int
}

// summaryFirst is how many paths an OfferSummary names.
const summaryFirst = 3

// Receive runs the receiving side of one transfer on conn with the zero
// Policy; see ReceiveWith.
func (in *Inbox) Receive(conn net.Conn) (*Transfer, error) {
	return in.ReceiveWith(conn, Policy{})
}

// ReceiveWith runs the receiving side of one transfer on conn: hello, offer,
// answer, files, receipt. It blocks until the transfer ends and does not
// close conn. Each file gets its final name as soon as it is verified;
// the returned Transfer lists what was saved, also when an error is
// returned (the connection dropped, the receipt could not be sent). On an
// error, no incomplete file is under a final name: a resumable file's
// partial bytes are kept in the staging folder for a resume, other
// temporary files and the empty directories the transfer created are
// removed.
func (in *Inbox) ReceiveWith(conn net.Conn, pol Policy) (*Transfer, error) {
	if pol.Folder != "" {
		if err := CheckName(pol.Folder); err != nil || strings.Contains(pol.Folder, "/") {
			return nil, fmt.Errorf("per-peer folder %s: %w", Escape(pol.Folder), ErrNameUnsafe)
		}
	}
	start := pol.Accepted
	if start.IsZero() {
		start = time.Now()
	}
	// Everything up to the answer (hello, offer, plan, space, the answer's
	// write) is under the handshake deadline: the connection's deadline
	// bounds the network, and at the deadline the gate closes, so that
	// what the transfer waits on besides the network gives up, and the
	// connection is closed for the sender to see.
	owner := pol.Done // the agent's: who holds a share of the memory budget
	g := newGate(pol.Done)
	defer g.stop()
	pol.Done = g.done
	var deadline time.Time
	stopWatchdog := func() bool { return true }
	if in.cfg.HandshakeTimeout > 0 {
		deadline = start.Add(in.cfg.HandshakeTimeout)
		watchdog := time.AfterFunc(time.Until(deadline), func() {
			g.close()
			closeRaw(conn)
		})
		stopWatchdog = watchdog.Stop
		defer watchdog.Stop()
	}
	br, bw, tr, err := in.greet(conn, start)
	if err != nil {
		return tr, err
	}
	var charge int64
	defer func() { in.mem.release(charge, owner) }()
	unread := 0 // of an offer refused before its payload was read
	offer, err := proto.ReadOfferFunc(br, func(payloadLen, entries int) error {
		n := offerCharge(payloadLen, entries)
		// Leave a tenth of the handshake time to say no.
		wait := deadline.Add(-in.cfg.HandshakeTimeout / 10)
		if deadline.IsZero() {
			wait = time.Now().Add(5 * time.Second)
		}
		if err := in.mem.acquire(n, owner, g.done, wait); err != nil {
			unread = payloadLen - 4
			return err
		}
		charge = n
		return nil
	})
	if err != nil {
		code, reason := proto.CodeProtocol, "bad offer: "+err.Error()
		var re *RefusedError
		switch {
		case errors.As(err, &re):
			code, reason = re.Code, re.Reason
		case errors.Is(err, proto.ErrTooLarge):
			code = proto.CodeTooMany
		}
		_ = in.answer(bw, proto.Answer{Code: code, Reason: trimReason(reason)})
		if re != nil {
			// The sender writes its whole offer before it reads the
			// answer: take the rest (without keeping it) so that the
			// answer is not lost to a reset.
			_, _ = io.CopyN(io.Discard, br, int64(unread))
			return tr, &RefusedError{Peer: "we", Code: re.Code, Reason: re.Reason}
		}
		return tr, fmt.Errorf("reading offer: %w", err)
	}
	t := newTransfer(in, pol, offer, start)
	t.conn = conn
	defer func() { tr.Text = t.text }()
	finished := false
	defer func() {
		if !finished {
			t.finish(false)
		}
	}()
	answer, need := t.plan()
	answer = limitSize(answer, need, pol.MaxSize)
	answer, textErr := limitTexts(answer, offer.Entries, pol)
	helloSent := false
	if answer.Code == proto.CodeOK && pol.Consent != nil {
		waited := false
		var watch sync.WaitGroup
		wait := func(d time.Duration) (<-chan struct{}, error) {
			if waited || !stopWatchdog() {
				return nil, fmt.Errorf("waiting for consent: %w", os.ErrDeadlineExceeded)
			}
			waited = true
			if err := conn.SetDeadline(time.Now().Add(d + consentSlack)); err != nil {
				return nil, err
			}
			if tr.minor >= proto.MinorWait {
				helloSent = true
				err := proto.WriteHello(bw, proto.NewHello(in.cfg.Name))
				if err == nil {
					err = proto.WriteWait(bw, proto.Wait{Timeout: d, Reason: "waiting for the owner to accept"})
				}
				if err == nil {
					err = bw.Flush()
				}
				if err != nil {
					return nil, err
				}
			}
			// The sender sends nothing until the answer: a read that
			// returns means it hung up (or broke the protocol).
			gone := make(chan struct{})
			watch.Add(1)
			go func() {
				defer watch.Done()
				defer close(gone)
				_, _ = br.Peek(1)
			}()
			return gone, nil
		}
		o := t.summary(need, charge, tr.minor >= proto.MinorWait)
		o.From = tr.From
		if err := pol.Consent(o, wait); err != nil {
			answer = refusalAnswer(err)
		}
		if waited {
			// Stop watching the sender, then give the answer a handshake
			// timeout of its own.
			_ = conn.SetReadDeadline(time.Now())
			watch.Wait()
			if err := conn.SetDeadline(time.Time{}); err != nil {
				return tr, err
			}
			if in.cfg.HandshakeTimeout > 0 {
				if err := conn.SetDeadline(time.Now().Add(in.cfg.HandshakeTimeout)); err != nil {
					return tr, err
				}
				watchdog := time.AfterFunc(in.cfg.HandshakeTimeout, func() {
					g.close()
					closeRaw(conn)
				})
				stopWatchdog = watchdog.Stop
				defer watchdog.Stop()
			} else {
				stopWatchdog = func() bool { return true }
			}
		}
	}
	if answer.Code == proto.CodeOK {
		files := t.newFiles()
		if err := in.reserve(need, files); err != nil {
			var re *RefusedError
			errors.As(err, &re)
			answer = proto.Answer{Code: re.Code, Reason: re.Reason}
		} else {
			defer in.release(need, files)
		}
	}
	select {
	case <-g.done:
		// The deadline passed, or the agent gave the connection up,
		// while the transfer was being planned.
		return tr, fmt.Errorf("planning the answer: %w", os.ErrDeadlineExceeded)
	default:
	}
	if err := in.answerAfter(bw, answer, helloSent); err != nil {
		return tr, fmt.Errorf("sending answer: %w", err)
	}
	if !stopWatchdog() {
		return tr, fmt.Errorf("sending answer: %w", os.ErrDeadlineExceeded)
	}
	if answer.Code != proto.CodeOK {
		if textErr != nil {
			return tr, textErr
		}
		return tr, &RefusedError{Peer: "we", Code: answer.Code, Reason: answer.Reason}
	}
	if pol.Answered != nil {
		pol.Answered()
	}
	// From the answer on, the idle deadline and the minimum rate bound the
	// connection instead of the handshake deadline.
	var rd io.Reader = conn
	if in.cfg.IdleTimeout > 0 {
		if err := conn.SetDeadline(time.Time{}); err != nil {
			return tr, err
		}
		pc := &pacedConn{Conn: conn, minRate: minRate{idle: in.cfg.IdleTimeout, window: in.cfg.RateWindow, min: in.cfg.MinRate}}
		rd = pc
		bw.Reset(pc)
	}
	// Nothing follows the offer until the answer is sent: br holds no
	// bytes to lose.
	br.Reset(&activeReader{r: rd, t: t})
	t.pmu.Lock()
	t.prog.From, t.wire = tr.From, 0
	for i, e := range offer.Entries {
		if e.Kind == proto.KindDir {
			continue
		}
		t.prog.FilesTotal++
		t.prog.Total += e.Size
		if t.results[i].Status == proto.Skipped || t.results[i].Status == proto.Refused {
			t.prog.Bytes += e.Size
			t.prog.Files++
		}
		t.prog.Bytes += t.offsets[i]
	}
	t.pmu.Unlock()
	if pol.Watch != nil && !isTextOffer(offer.Entries) {
		pol.Watch(t.progress)
	}
	if pol.Folder != "" {
		d, err := t.resolveDir(pol.Folder)
		if err != nil {
			return tr, err
		}
		t.dirs = map[string]string{"": d}
	}
	if err := t.receive(br); err != nil {
		tr.Entries = t.received()
		if errors.Is(err, errOutOfSpace) || errors.Is(err, errStreamStopped) {
			// Tell the sender at once: it is still streaming, and our
			// close stops it. A sender that reads the receipt names the
			// files; one that does not retries, and the offer is refused
			// for the free space.
			t.sendEarlyReceipt(conn, bw)
		}
		return tr, err
	}
	if err := proto.ReadDone(br); err != nil {
		tr.Entries = t.received()
		return tr, fmt.Errorf("reading done: %w", err)
	}
	finished = true
	t.finish(true)
	tr.Entries = t.received()
	fitReceipt(t.results)
	if err := proto.WriteReceipt(bw, proto.Receipt{Results: t.results, Sender: pol.SenderID}); err != nil {
		return tr, fmt.Errorf("sending receipt: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return tr, fmt.Errorf("sending receipt: %w", err)
	}
	return tr, nil
}

// greet starts a transfer on conn: the handshake deadline, and the
// sender's hello, refusing (see refuseVersion) a peer of another major
// version. The Transfer is nil when no hello arrived.
func (in *Inbox) greet(conn net.Conn, start time.Time) (*bufio.Reader, *bufio.Writer, *Transfer, error) {
	if in.cfg.HandshakeTimeout > 0 {
		if err := conn.SetDeadline(start.Add(in.cfg.HandshakeTimeout)); err != nil {
			return nil, nil, nil, err
		}
	}
	br, bw := newBuffers(conn)
	hello, err := proto.ReadHello(br)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading hello: %w", err)
	}
	tr := &Transfer{From: hello.Name, minor: hello.Minor}
	if err := hello.CheckVersion(); err != nil {
		in.refuseVersion(conn, br, bw)
		return nil, nil, tr, err
	}
	return br, bw, tr, nil
}

// refuseVersion answers a peer of another major version with our hello,
// which tells it why, while draining what it sends so that a peer on a
// synchronous connection can finish its writes and read our hello.
func (in *Inbox) refuseVersion(conn net.Conn, br *bufio.Reader, bw *bufio.Writer) {
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, io.LimitReader(br, proto.MaxFrameLen))
	}()
	if proto.WriteHello(bw, proto.NewHello(in.cfg.Name)) == nil && bw.Flush() == nil {
		closeWrite(conn)
	}
	// The drain ends at the peer's close or at the handshake deadline.
	if in.cfg.HandshakeTimeout <= 0 {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	<-drained
}

// answerAfter is answer, without the hello when it was sent already
// (before a wait).
func (in *Inbox) answerAfter(bw *bufio.Writer, a proto.Answer, helloSent bool) error {
	if !helloSent {
		return in.answer(bw, a)
	}
	if err := proto.WriteAnswer(bw, a); err != nil {
		return err
	}
	return bw.Flush()
}

// consentSlack is how much longer than it said it waits a receiver keeps
// a waiting sender's connection.
const consentSlack = 5 * time.Second

// summary sums the offer up for Policy.Consent.
func (t *transfer) summary(need uint64, memory int64, canWait bool) OfferSummary {
	o := OfferSummary{Need: need, Memory: memory, CanWait: canWait}
	for _, e := range t.offer.Entries {
		if e.Kind == proto.KindText {
			o.Texts++
			o.Bytes += e.Size
			continue
		}
		if e.Kind == proto.KindStream {
			o.Streams++
		}
		if e.Kind != proto.KindDir {
			o.Files++
			o.Bytes += e.Size
		} else {
			o.Dirs++
		}
		if len(o.First) < summaryFirst {
			o.First = append(o.First, e.Path)
		}
	}
	return o
}

func (in *Inbox) answer(bw *bufio.Writer, a proto.Answer) error {
	if err := proto.WriteHello(bw, proto.NewHello(in.cfg.Name)); err != nil {
		return err
	}
	if err := proto.WriteAnswer(bw, a); err != nil {
		return err
	}
	return bw.Flush()
}

// fileMargin is the free inodes an offer must leave untouched, on file
// systems that have a fixed number (ext4, tmpfs): a transfer of many
// small files can run out of them long before space, and an inode-less
// disk stops every other program from making a file. On a small file
// system it is a 64th of its inodes.
const fileMargin = 1000

func inodeMargin(total uint64) uint64 { return min(fileMargin, total/64) }

// reserve sets aside need bytes of free space and files inodes for a
// transfer, or refuses.
func (in *Inbox) reserve(need, files uint64) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	free, err := in.cfg.freeSpace(in.cfg.Dir)
	if err != nil {
		return &RefusedError{Code: proto.CodeIO, Reason: "cannot tell free space"}
	}
	avail := uint64(0)
	if free > in.reserved+in.cfg.SpaceMargin {
		avail = free - in.reserved - in.cfg.SpaceMargin
	}
	if need > avail {
		return &RefusedError{Code: proto.CodeNoSpace, Reason: spaceReason(need, avail, in.cfg.SpaceMargin, in.reserved)}
	}
	if files > 0 {
		inodes, total, err := in.cfg.freeFiles(in.cfg.Dir)
		if err != nil {
			return &RefusedError{Code: proto.CodeIO, Reason: "cannot tell free inodes"}
		}
		if total > 0 {
			margin := inodeMargin(total)
			avail := uint64(0)
			if inodes > in.reservedFiles+margin {
				avail = inodes - in.reservedFiles - margin
			}
			if files > avail {
				return &RefusedError{Code: proto.CodeNoSpace, Reason: inodeReason(files, avail, margin, in.reservedFiles)}
			}
		}
	}
	in.reserved += need
	in.reservedFiles += files
	return nil
}

// inodeReason says why an offer's files do not fit, as spaceReason does
// for its bytes.
func inodeReason(need, avail, margin, held uint64) string {
	s := fmt.Sprintf("not enough inodes (need %d for new files and folders, %d free beyond the %d kept free", need, avail, margin)
	if held > 0 {
		s += fmt.Sprintf(" and %d held for transfers in progress", held)
	}
	return s + ")"
}

// spaceReason says why an offer does not fit: what it needs, and what is
// free beyond the margin kept free and the space held for transfers in
// progress, naming both, so that the numbers add up to what df shows.
func spaceReason(need, avail, margin, held uint64) string {
	s := fmt.Sprintf("not enough space (need %s, %s free", FormatBytes(need), FormatBytes(avail))
	if margin > 0 {
		s += " beyond the " + formatMargin(margin) + " kept free"
	}
	if held > 0 {
		s += " and " + FormatBytes(held) + " held for transfers in progress"
	}
	return s + ")"
}

// formatMargin prints the space margin as it is set: whole MiB or GiB
// (the default is 64 MiB), else as FormatBytes does.
func formatMargin(n uint64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return FormatBytes(n)
}

func (in *Inbox) release(n, files uint64) {
	in.mu.Lock()
	in.reserved -= n
	in.reservedFiles -= files
	in.mu.Unlock()
}

// transfer is the receiving state of one batch.
type transfer struct {
	in     *Inbox
	policy Policy
	offer  proto.Offer
	start  time.Time

	dirs     map[string]string          // offered directory → its path under the root
	dirOf    map[string]string          // the reverse: path under the root → offered directory
	used     map[string]bool            // paths of dirs, each counted once in in.dirs
	created  []string                   // directories this transfer created, in order
	names    map[string]map[string]bool // directory → fold keys of the names in it
	keys     []string                   // entry → fileKey, "" if it has none
	claimed  []bool                     // entry → its key is claimed: it is resumable
	offsets  []uint64                   // entry → the offset it is received from
	temps    []string                   // entry → temporary file being written
	anon     anonFiles                  // entry → unnamed file made for it (small.go)
	keep     []bool                     // entry → keep its partial file for a resume
	kept     []uint64                   // entry → the bytes of it kept so, when a cut kept them
	results  []proto.Result             // entry → outcome
	elapsed  []time.Duration
	accepted []bool
	touched  map[string]bool     // directories that got new entries, to sync
	linkDirs map[string]*os.File // directories open for linkFinal
	// recorded holds, by entry, the name recordAhead entered in the
	// arrived index (nil until it entered one).
	recorded []string
	// digest is the hash openTemp hands out, reset for each file: the
	// files of a transfer are received one after another.
	digest   hash.Hash
	dirTimes []dirTime // offered directories' mtimes, applied last

	pmu      sync.Mutex    // guards prog and wire
	prog     InProgress    // Bytes: of the files done, and of those not sent
	wire     uint64        // bytes read since the last file was done
	conn     net.Conn      // closed to give the transfer up (see abort)
	active   atomic.Int64  // when bytes last arrived, in Unix nanoseconds
	released chan struct{} // closed when the transfer lets go of its keys
	quit     chan struct{} // closed by abort
	quitOnce sync.Once
	dupOf    map[int]int // entry → the earlier entry of the offer it repeats
	// outOfSpace: an entry failed for want of space; the transfer stops.
	outOfSpace bool
	// noResume: no entry is resumable or looked up as already there
	// (a Batch: its front end's protocol has no resume).
	noResume bool
	// text is the text message of the offer, once received (text.go).
	text string
}

// abort gives the transfer up: it closes its connection, so that its
// receive fails keeping what arrived, and stops its claims. Safe to call
// more than once, from any goroutine.
func (t *transfer) abort() {
	t.quitOnce.Do(func() {
		close(t.quit)
		if t.conn != nil {
			t.conn.Close()
		}
	})
}

// closed reports whether the transfer was aborted or its connection was
// closed (by the agent, stopping).
func (t *transfer) closed() bool {
	select {
	case <-t.quit:
		return true
	default:
	}
	return t.conn != nil && connClosed(t.conn)
}

// connClosed reports whether c, or the connection it wraps, is a socket
// that was closed. It cannot tell for a connection that is not a socket
// (a net.Pipe), and then reports false.
func connClosed(c net.Conn) bool {
	for {
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	return rc.Control(func(uintptr) {}) != nil
}

// activeReader notes the time of every read that returns bytes, and
// counts the bytes for the transfer's progress.
type activeReader struct {
	r io.Reader
	t *transfer
}

func (a *activeReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.t.active.Store(time.Now().UnixNano())
		a.t.pmu.Lock()
		a.t.wire += uint64(n)
		a.t.pmu.Unlock()
	}
	return n, err
}

// InProgress reports a transfer being received.
type InProgress struct {
	From       string // the sender's display name, from its hello
	Path       string // the file being received, as offered
	Files      int    // files done (saved, skipped or failed)
	FilesTotal int
	Bytes      uint64 // file bytes done, with those already there or resumed
	Total      uint64 // file bytes offered
	// Streaming: a stream is arriving, whose size comes at its end; Total
	// counts what arrived of it so far.
	Streaming bool
}

// progress returns the transfer's progress now; it is safe to call from
// any goroutine.
func (t *transfer) progress() InProgress {
	t.pmu.Lock()
	defer t.pmu.Unlock()
	p := t.prog
	p.Bytes = min(t.prog.Bytes+t.wire, p.Total)
	return p
}

type dirTime struct {
	path  string
	mtime time.Time
}

func newTransfer(in *Inbox, pol Policy, offer proto.Offer, start time.Time) *transfer {
	n := len(offer.Entries)
	t := &transfer{
		in: in, policy: pol, offer: offer, start: start,
		dirs:     map[string]string{"": ""},
		dirOf:    map[string]string{},
		used:     map[string]bool{},
		names:    map[string]map[string]bool{},
		keys:     make([]string, n),
		claimed:  make([]bool, n),
		offsets:  make([]uint64, n),
		temps:    make([]string, n),
		keep:     make([]bool, n),
		kept:     make([]uint64, n),
		results:  make([]proto.Result, n),
		elapsed:  make([]time.Duration, n),
		accepted: make([]bool, n),
		touched:  map[string]bool{},
		released: make(chan struct{}),
		quit:     make(chan struct{}),
		dupOf:    map[int]int{},
	}
	t.active.Store(start.UnixNano())
	return t
}

// plan validates every entry and builds the answer: files that already
// arrived from this sender are skipped, partial files it left are resumed.
// It creates nothing. need is the number of bytes the accepted files will
// add.
func (t *transfer) plan() (a proto.Answer, need uint64) {
	a.Replies = make([]proto.Reply, len(t.offer.Entries))
	ask := map[string]bool{} // keys to look up in the arrived index
	var offered uint64       // bytes of the accepted entries, checked for overflow
	type sameFile struct {
		path  string
		size  uint64
		mtime int64
	}
	seen := map[sameFile]int{} // files offered so far, to their entries
	// The entries of a folder share their first component: it is folded
	// (isStaging) once for a run of them.
	var lastFirst string
	lastStaging := false
	for i, e := range t.offer.Entries {
		err := checkOffered(e.Path)
		if first, _, _ := strings.Cut(e.Path, "/"); err == nil && t.policy.Folder == "" {
			if i == 0 || first != lastFirst {
				lastFirst, lastStaging = first, isStaging(first, t.in.cfg.NameRules)
			}
			if lastStaging {
				err = fmt.Errorf("%s is the receiver's own folder: %w", stagingDir, ErrNameUnsafe)
			}
		}
		if e.Kind == proto.KindText {
			err = nil // nothing is made under a text's name (see textFileName)
		}
		if err != nil {
			a.Replies[i] = proto.Reply{Status: proto.Refuse, Code: proto.CodeBadName, Reason: trimReason(err.Error())}
			t.results[i] = proto.Result{Status: proto.Refused, Code: proto.CodeBadName, Reason: a.Replies[i].Reason}
			continue
		}
		if offered > math.MaxUint64-e.Size {
			// Sizes that wrap around would slip past every cap.
			return proto.Answer{Code: proto.CodeTooLarge, Reason: "offer totals more bytes than a 64-bit count holds"}, 0
		}
		if e.Kind == proto.KindFile {
			f := sameFile{e.Path, e.Size, e.MTime.UnixNano()}
			if first, ok := seen[f]; ok {
				// One file named twice: it crosses once, and the later
				// entry gets the earlier one's outcome (see received).
				t.dupOf[i] = first
				a.Replies[i] = proto.Reply{Status: proto.Skip, Code: proto.CodeExists, Reason: reasonDuplicate}
				t.results[i] = proto.Result{Status: proto.Skipped, Code: proto.CodeExists, Reason: reasonDuplicate}
				continue
			}
			seen[f] = i
		}
		offered += e.Size
		a.Replies[i] = proto.Reply{Status: proto.Accept}
		t.accepted[i] = true
		if t.noResume || e.Kind == proto.KindText {
			continue
		}
		if t.keys[i] = fileKey(t.policy.SenderID, t.policy.Folder, e); t.keys[i] != "" {
			ask[t.keys[i]] = true
		}
	}
	arrived := t.in.arrived(ask)
	// Waiting for other transfers to let go of keys is bounded for the
	// whole offer, and by the handshake deadline.
	deadline := time.Now().Add(claimWait)
	if hs := t.in.cfg.HandshakeTimeout; hs > 0 && t.start.Add(hs).Before(deadline) {
		deadline = t.start.Add(hs)
	}
	for i, e := range t.offer.Entries {
		key := t.keys[i]
		if !t.accepted[i] || key == "" {
			if t.accepted[i] {
				need += e.Size
			}
			continue
		}
		rec, ok := arrived[key]
		if ok && t.in.alreadyThere(rec, e) {
			a.Replies[i] = proto.Reply{Status: proto.Skip, Code: proto.CodeExists, Reason: "already there"}
			t.results[i] = proto.Result{Status: proto.Skipped, SavedAs: rec.saved, Reason: "already there"}
			t.accepted[i] = false
			continue
		}
		if e.Size >= resumeMin && t.in.claim(key, t, deadline) {
			t.claimed[i] = true
			t.offsets[i] = t.in.resumeOffset(key, newRecord(t.policy.SenderID, t.policy.Folder, e), rec)
			a.Replies[i].Offset = t.offsets[i]
		}
		need += e.Size - t.offsets[i]
	}
	return a, need
}

// newFiles is how many files and folders the accepted entries may make,
// each an inode: the files, and every folder they and the accepted
// folders lie in, offered or not (a LocalSend offer names no folders; a
// deep path makes a folder a component), with the per-peer folder. A
// folder that exists already takes none, but is counted: the bound is
// what matters. A message is shown, and saved as a file only when long;
// the margin covers that.
func (t *transfer) newFiles() uint64 {
	n := uint64(0)
	dirs := map[string]bool{}
	for i, e := range t.offer.Entries {
		if !t.accepted[i] || e.Kind == proto.KindText {
			continue
		}
		p := e.Path
		if e.Kind == proto.KindDir {
			p = path.Join(p, "x")
		} else {
			n++
		}
		for d := path.Dir(p); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	n += uint64(len(dirs))
	if t.policy.Folder != "" {
		n++
	}
	return n
}

// isStaging reports whether the top-level name first, as offered or as
// rules map it, is the staging folder's. Trailing dots and spaces do not
// count: a FAT folder drops them (".lanshare." opens ".lanshare").
func isStaging(first string, rules NameRules) bool {
	if foldKey(strings.TrimRight(first, ". ")) == foldKey(stagingDir) {
		return true
	}
	m := rules.mapComponent(first)
	return m != first && foldKey(m) == foldKey(stagingDir)
}

// reasonDuplicate is the reason given for an entry that repeats an
// earlier file of its offer.
const reasonDuplicate = "named twice in one send: received once"

func trimReason(s string) string {
	if len(s) <= proto.MaxReasonLen {
		return s
	}
	s = s[:proto.MaxReasonLen]
	for len(s) > 0 && !utf8RuneStart(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// fail records that accepted entry i was not saved, and discards what was
// received of it.
func (t *transfer) fail(i int, code proto.Code, reason string) {
	t.results[i] = proto.Result{Status: proto.Failed, Code: code, Reason: trimReason(reason)}
	t.outOfSpace = t.outOfSpace || code == proto.CodeNoSpace
	t.discard(i)
}

// discard removes entry i's temporary file (and, for a resumable file, its
// record: what was received is no good).
func (t *transfer) discard(i int) {
	t.anon.close(i)
	if t.temps[i] != "" {
		_ = t.in.remove(t.temps[i])
		t.temps[i] = ""
	}
	if t.claimed[i] {
		t.in.dropPartial(t.keys[i])
	}
}

// receive takes the accepted entries in offer order: it creates each
// offered directory, and reads each file's bytes and FileEnd into a
// temporary file in the staging folder, which gets the file's final name
// as soon as the file is verified and synced (see syncer). A file that
// cannot be written is read and discarded so the stream stays in step; an
// error reading the stream ends the transfer, keeping a resumable file's
// partial bytes. Either way, every file verified before the end is synced
// and named before receive returns.
func (t *transfer) receive(br *bufio.Reader) error {
	buf := make([]byte, bufSize)
	syncs := newSyncer(t.commitSynced)
	syncs.prepare = t.recordAhead
	t.linkDirs = map[string]*os.File{}
	defer func() {
		syncs.drain()
		t.closeLinkDirs()
	}()
	for i, e := range t.offer.Entries {
		if !t.accepted[i] {
			continue
		}
		if e.Kind == proto.KindDir {
			d, err := t.resolveDir(e.Path)
			if err != nil {
				t.fail(i, writeCode(err), errReason(err))
				continue
			}
			t.results[i] = proto.Result{Status: proto.Saved, SavedAs: d}
			t.dirTimes = append(t.dirTimes, dirTime{d, e.MTime})
			continue
		}
		if !t.isSmall(i) {
			// The small files verified before it are made and synced
			// while it arrives, not held until it ends: a disk that
			// fills meanwhile fails it, not them too.
			syncs.flush()
		}
		if e.Kind == proto.KindText {
			if err := t.receiveText(i, br); err != nil {
				return err
			}
			continue
		}
		if e.Kind == proto.KindStream {
			if err := t.receiveStreamEntry(i, br, buf, syncs); err != nil {
				return err
			}
			continue
		}
		t.pmu.Lock()
		t.prog.Path = e.Path
		t.pmu.Unlock()
		var f *os.File
		var err error
		if t.isSmall(i) {
			err = t.receiveSmall(i, br, syncs)
		} else {
			f, err = t.receiveFile(i, br, buf)
		}
		if err != nil {
			return err
		}
		if f != nil {
			root, name := t.in.stagingRef(t.temps[i])
			syncs.put(syncJob{i: i, f: f, root: root, name: name, mode: t.fileMode(e), mtime: e.MTime, size: e.Size})
			t.closeLinkDirs()
		} else {
			t.elapsed[i] = time.Since(t.start)
		}
		t.pmu.Lock()
		t.prog.Bytes += e.Size - t.offsets[i]
		t.prog.Files++
		t.wire = 0
		t.pmu.Unlock()
		if t.outOfSpace && t.bytesAfter(i) {
			// Whatever follows would fail the same way: stop rather
			// than take the rest of the stream for nothing.
			return t.stopOutOfSpace(i)
		}
	}
	return nil
}

// errOutOfSpace ends a transfer whose receiver ran out of space.
var errOutOfSpace = errors.New("out of space: the transfer stopped")

// earlyReceiptWait bounds the write of a receipt sent while the sender
// still streams: on a synchronous connection, it is never read.
const earlyReceiptWait = time.Second

// sendEarlyReceipt sends the receipt of a transfer that stopped early.
func (t *transfer) sendEarlyReceipt(conn net.Conn, bw *bufio.Writer) {
	if conn.SetWriteDeadline(time.Now().Add(earlyReceiptWait)) != nil {
		return
	}
	fitReceipt(t.results)
	if proto.WriteReceipt(bw, proto.Receipt{Results: t.results, Sender: t.policy.SenderID}) == nil {
		_ = bw.Flush()
	}
}

// bytesAfter reports whether file bytes are still to come after entry i.
func (t *transfer) bytesAfter(i int) bool {
	for j := i + 1; j < len(t.offer.Entries); j++ {
		if t.accepted[j] && t.offer.Entries[j].Kind != proto.KindDir {
			return true
		}
	}
	return false
}

// stopOutOfSpace fails the accepted entries after entry i, which were
// not received, and returns errOutOfSpace.
func (t *transfer) stopOutOfSpace(i int) error {
	for j := i + 1; j < len(t.offer.Entries); j++ {
		if t.accepted[j] && t.results[j].Status == 0 {
			t.results[j] = proto.Result{Status: proto.Failed, Code: proto.CodeNoSpace, Reason: "receiver out of space: not received"}
		}
	}
	return fmt.Errorf("after %s: %w", Escape(t.offer.Entries[i].Path), errOutOfSpace)
}

// commitSynced names entry d.i once the syncer is done with it.
func (t *transfer) commitSynced(d syncDone) {
	if d.created {
		t.temps[d.i] = d.name
		if d.anon != nil {
			t.anon.set(len(t.offer.Entries), d.i, d.anon)
		}
	}
	if d.err != nil {
		t.fail(d.i, writeCode(d.err), "could not write: "+errReason(d.err))
	} else if d.stated {
		t.commitFile(d.i, &d.st)
	} else {
		t.commitFile(d.i, nil)
	}
	t.elapsed[d.i] = time.Since(t.start)
}

// receiveFile reads entry i's bytes and FileEnd. It returns only an error
// of the stream; the entry's own failure is in t.results. A file that
// arrived whole and verified is returned open, for the syncer.
func (t *transfer) receiveFile(i int, br *bufio.Reader, buf []byte) (*os.File, error) {
	e := t.offer.Entries[i]
	off := t.offsets[i]
	f, h, werr := t.openTemp(i, buf)
	if tempFileHook != nil && werr == nil {
		f = tempFileHook(e, f)
	}
	var w io.Writer
	if f != nil && werr == nil {
		w = f
	}
	sink := newSink(w, h, int64(off), e.Size-off, buf)
	if err := sink.fill(br, e.Size-off); err != nil {
		_, serr := sink.close()
		t.keepPartial(i, f, errors.Join(werr, serr), sink)
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("receiving %s: %w", Escape(e.Path), unexpected(err))
	}
	digest, serr := sink.close()
	if werr == nil {
		werr = serr
	}
	fe, err := proto.ReadFileEnd(br)
	if err == nil && fe.Index != uint32(i) {
		err = fmt.Errorf("file-end for entry %d: %w", fe.Index, proto.ErrMalformed)
	}
	if err != nil {
		// Every byte arrived, only the end is missing: a resume asks
		// for nothing but the file-end, which checks the whole file.
		t.keepPartial(i, f, werr, sink)
		if f != nil {
			f.Close()
		}
		return nil, fmt.Errorf("receiving %s: %w", Escape(e.Path), unexpected(err))
	}
	if fe.Status != proto.Aborted && werr == nil && digest == fe.Digest {
		return f, nil
	}
	if f != nil {
		f.Close() // before fail removes it
	}
	switch {
	case fe.Status == proto.Aborted:
		t.fail(i, fe.Code, senderReason(fe.Code, fe.Reason))
	case werr != nil && t.claimed[i] && writeCode(werr) == proto.CodeNoSpace:
		// Kept for a resume once there is space: its record says
		// nothing of what was written, so the resume starts a window
		// below its end, and the digest checks the whole file.
		t.results[i] = proto.Result{Status: proto.Failed, Code: proto.CodeNoSpace, Reason: trimReason("could not write: " + errReason(werr))}
		t.outOfSpace = true
		t.keep[i] = true
	case werr != nil:
		t.fail(i, writeCode(werr), "could not write: "+errReason(werr))
	case off > 0:
		t.fail(i, proto.CodeDigest, "digest mismatch after resuming: the partial file was damaged; send it again")
	default:
		t.fail(i, proto.CodeDigest, "digest mismatch: the file was corrupted in transit")
	}
	return nil, nil
}

// tempFileHook, when set (by tests), replaces the open temporary file of
// each entry before its bytes are written.
var tempFileHook func(e proto.Entry, f *os.File) *os.File

// keepPartial keeps resumable entry i's partial file f for a resume when
// its connection ended: the bytes s handed to its writes are surely
// written, unless werr (the first write error) says otherwise, and the
// record keeps the digest state of those s hashed (see digestCheckpoint).
// Call it once s is closed, before f is.
func (t *transfer) keepPartial(i int, f *os.File, werr error, s *sink) {
	if !t.claimed[i] || werr != nil {
		return
	}
	rec := newRecord(t.policy.SenderID, t.policy.Folder, t.offer.Entries[i])
	rec.Written = uint64(s.end())
	if f != nil {
		rec.Digest = checkpoint(f, s.h, uint64(s.hashed()))
	}
	if t.in.writeRecord(t.keys[i], rec) == nil {
		t.keep[i], t.kept[i] = true, rec.Written
	}
}

// openTemp opens entry i's temporary file and returns it with the hash of
// its digest: for a resumed file its partial file, cut to the offset,
// with the digest state kept in its record or else a hash of its bytes
// up to the offset; for a resumable one a new partial file and its
// record; otherwise a new temporary file. The hash is returned even with
// an error.
func (t *transfer) openTemp(i int, buf []byte) (*os.File, hash.Hash, error) {
	// One hash for the transfer's files, one after another: a new one a
	// file was the receiver's largest allocation for small files.
	if t.digest == nil {
		t.digest = proto.NewDigest()
	}
	h := t.digest
	h.Reset()
	if err := t.in.ensureStaging(); err != nil {
		return nil, h, err
	}
	e := t.offer.Entries[i]
	if !t.claimed[i] {
		f, name, err := t.in.createStagingFile(t.fileMode(e))
		t.temps[i] = name
		return f, h, err
	}
	key := t.keys[i]
	t.temps[i] = partPath(key)
	if off := t.offsets[i]; off > 0 {
		f, err := t.in.openStaging(partPath(key), os.O_RDWR, 0)
		saved := hash.Hash(nil)
		if err == nil {
			saved = t.in.resumeDigest(key, f, off)
			err = f.Truncate(int64(off))
		}
		if err == nil && saved == nil {
			err = hashPrefix(f, h, off, buf)
		}
		if err == nil {
			_, err = f.Seek(int64(off), io.SeekStart)
		}
		if err == nil {
			// From here on the file grows past what the record says was
			// written: should the agent die, a resume from that count
			// would send again all it wrote. The record, until the
			// transfer ends (keepPartial), says written up to off (on
			// disk: synced when it was recorded) and this boot: a dead
			// agent's partial resumes below its end unless the system
			// stopped since (resumeOffset).
			if saved != nil {
				h = saved
			}
			rec := newRecord(t.policy.SenderID, t.policy.Folder, e)
			rec.Written, rec.Boot = off, bootID()
			err = t.in.writeRecord(key, rec)
		}
		if err == nil {
			return f, h, nil
		}
		if f != nil {
			f.Close()
		}
		return nil, h, err
	}
	// The record first: a partial file is never without one.
	if err := t.in.writeRecord(key, newRecord(t.policy.SenderID, t.policy.Folder, e)); err != nil {
		return nil, h, err
	}
	f, err := t.in.openStaging(partPath(key), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	return f, h, err
}

// unexpected turns a clean EOF inside a file's bytes into ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func writeCode(err error) proto.Code {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return proto.CodeNoSpace
	}
	return proto.CodeIO
}

// errReasonNoPath is err without the operation and path of a PathError.
func errReasonNoPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// errReason is err's message without the operation and path, which would
// only repeat the temporary file's name.
func errReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, syscall.ENOSPC) {
			return "receiver out of space"
		}
		return pe.Err.Error()
	}
	return err.Error()
}

// fileMode is the mode entry e lands with.
func (t *transfer) fileMode(e proto.Entry) fs.FileMode {
	if t.policy.Exec && e.Mode&0o111 != 0 {
		return fileMode | 0o111
	}
	return fileMode
}

// listing returns the fold keys of the names in dir, read once per transfer.
func (t *transfer) listing(dir string) map[string]bool {
	if m, ok := t.names[dir]; ok {
		return m
	}
	m := map[string]bool{}
	if f, err := t.in.root.Open(pathOrDot(dir)); err == nil {
		names, _ := f.Readdirnames(-1)
		f.Close()
		for _, n := range names {
			m[foldKey(n)] = true
		}
	}
	t.names[dir] = m
	return m
}

func pathOrDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// resolveDir maps an offered directory to one under the root, creating it
// if needed. An existing real directory of exactly the offered name is
// merged into; anything else in the way (a file, a symlink, a name that
// differs only by case or normalisation) makes a new name.
func (t *transfer) resolveDir(offered string) (string, error) {
	if offered == "." {
		offered = ""
	}
	if d, ok := t.dirs[offered]; ok {
		return d, nil
	}
	parentOffered, name := path.Split(offered)
	parent, err := t.resolveDir(strings.TrimSuffix(parentOffered, "/"))
	if err != nil {
		return "", err
	}
	name = t.in.cfg.NameRules.mapComponent(name)
	room := roomIn(parent)
	exact := path.Join(parent, fitName(name, 0, room))
	if exact == parent {
		return "", fmt.Errorf("directory %s: %w", Escape(offered), errPathTooLong)
	}
	names := t.listing(parent)
	// Under the inbox lock, so that no transfer's clean-up removes the
	// directory between the look and the count of its new user.
	t.in.mu.Lock()
	defer t.in.mu.Unlock()
	// An offered directory merges into one of its name, unless another
	// directory of this offer got that name first (both mapped to it).
	if fi, err := t.in.root.Lstat(exact); err == nil && fi.IsDir() && t.dirOf[exact] == "" {
		t.useDir(exact)
		t.dirs[offered] = exact
		t.dirOf[exact] = offered
		return exact, nil
	}
	for n := 0; n < maxCollisions; n++ {
		cand := fitName(name, n, room)
		if cand == "" {
			return "", fmt.Errorf("directory %s: %w", Escape(offered), errPathTooLong)
		}
		if names[foldKey(cand)] {
			continue
		}
		p := path.Join(parent, cand)
		var err error = syscall.EINVAL
		if badName == nil || !badName(cand) {
			err = t.in.root.Mkdir(p, dirMode)
		}
		if m, ok := windowsFallback(name, err); ok {
			// Merge into a folder of the mapped name, as into one of
			// the offered name.
			name, n = m, -1
			if q := path.Join(parent, fitName(name, 0, room)); q != parent && t.dirOf[q] == "" {
				if fi, err := t.in.root.Lstat(q); err == nil && fi.IsDir() {
					t.useDir(q)
					t.dirs[offered] = q
					t.dirOf[q] = offered
					return q, nil
				}
			}
			continue
		}
		if errors.Is(err, fs.ErrExist) {
			names[foldKey(cand)] = true
			continue
		}
		if err != nil {
			return "", fmt.Errorf("creating directory %s: %w", Escape(p), err)
		}
		names[foldKey(cand)] = true
		// Mkdir's mode is filtered by the umask; the inbox promises 0755.
		_ = t.in.root.Chmod(p, dirMode)
		t.useDir(p)
		t.created = append(t.created, p)
		t.touched[parent] = true
		t.dirs[offered] = p
		t.dirOf[p] = offered
		return p, nil
	}
	return "", fmt.Errorf("directory %s: %d names taken: %w", Escape(exact), maxCollisions, fs.ErrExist)
}

// maxCollisions bounds the search for a free name.
const maxCollisions = 10_000

// errPathTooLong means no name for an entry keeps its saved-as path
// within proto.MaxPathLen, which the receipt must carry.
var errPathTooLong = fmt.Errorf("saved-as path would be over %d bytes: %w", proto.MaxPathLen, proto.ErrTooLarge)

// roomIn is the most bytes a name in dir may have for its path to fit in
// proto.MaxPathLen.
func roomIn(dir string) int {
	if dir == "" {
		return proto.MaxPathLen
	}
	return proto.MaxPathLen - len(dir) - 1
}

// fitName returns name for n = 0, else "stem (n).ext", with the stem cut
// (and, if that is not enough, the extension dropped) to fit in room
// bytes and in a path component. It returns "" when nothing fits.
func fitName(name string, n, room int) string {
	room = min(room, proto.MaxComponentLen)
	if n == 0 && len(name) <= room {
		return name // stem + ext, without making it again
	}
	stem, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		stem, ext = name[:i], name[i:]
	}
	suffix := ""
	if n > 0 {
		suffix = fmt.Sprintf(" (%d)", n)
	}
	if len(stem)+len(suffix)+len(ext) <= room {
		return stem + suffix + ext
	}
	if room-len(suffix)-len(ext) < 1 {
		ext = ""
	}
	stem = cutUTF8(stem, room-len(suffix)-len(ext))
	if suffix == "" && ext == "" {
		// The cut may have left a dot or a space at the end.
		stem = strings.TrimRight(stem, ". ")
	}
	if stem == "" {
		return ""
	}
	return stem + suffix + ext
}

// cutUTF8 returns the longest prefix of s of at most n bytes that ends on
// a character boundary.
func cutUTF8(s string, n int) string {
	if n >= len(s) {
		return s
	}
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// fitReceipt makes every result fit its frame, as a last resort: a
// saved-as path over proto.MaxPathLen (which no name made here has) is
// shown with its middle elided, and reasons are cut, so that one result
// never keeps the receipt from going out.
func fitReceipt(results []proto.Result) {
	const elided = "…"
	for i := range results {
		r := &results[i]
		if len(r.SavedAs) > proto.MaxPathLen {
			half := (proto.MaxPathLen - len(elided)) / 2
			tail := r.SavedAs[len(r.SavedAs)-half:]
			for len(tail) > 0 && !utf8RuneStart(tail[0]) {
				tail = tail[1:]
			}
			r.SavedAs = cutUTF8(r.SavedAs, half) + elided + tail
		}
		r.Reason = trimReason(r.Reason)
	}
}

// commitFile gives verified entry i its final name: the offered one in
// its directory, or the first free "name (n)", and records its arrival.
// It holds the inbox lock so concurrent transfers pick names one at a time.
// A file whose arrival cannot be recorded (the disk is full) is not
// saved; a resumable one keeps its partial file for the next send.
func (t *transfer) commitFile(i int, st *arrival) {
	e := t.offer.Entries[i]
	dir, err := t.resolveDir(path.Dir(e.Path))
	if err != nil {
		t.fail(i, writeCode(err), errReason(err))
		return
	}
	t.in.mu.Lock()
	defer t.in.mu.Unlock()
	if rec, ok := t.in.recent[t.keys[i]]; ok && t.keys[i] != "" && t.in.alreadyThere(rec, e) {
		// Another transfer of this sender committed the file after we
		// planned: the connection it came on dropped, its sender
		// reconnected, and the two overlapped.
		t.discard(i)
		t.results[i] = proto.Result{Status: proto.Skipped, SavedAs: rec.saved, Reason: "already there"}
		return
	}
	rec := ""
	if t.claimed[i] {
		rec = recPath(t.keys[i])
	}
	pre := ""
	if t.recorded != nil {
		pre = t.recorded[i]
	}
	a, err := t.place(t.temps[i], t.anon.get(i), dir, t.in.cfg.NameRules.mapComponent(path.Base(e.Path)), t.keys[i], rec, st, pre)
	if errors.Is(err, errNotRecorded) && t.claimed[i] {
		t.results[i] = proto.Result{Status: proto.Failed, Code: writeCode(err), Reason: trimReason("could not write: " + errReason(err))}
		t.outOfSpace = t.outOfSpace || writeCode(err) == proto.CodeNoSpace
		t.keep[i] = true
		return
	}
	if err != nil {
		t.fail(i, writeCode(err), errReason(err))
		return
	}
	t.temps[i] = ""
	t.anon.close(i)
	t.results[i] = proto.Result{Status: proto.Saved, SavedAs: a.saved}
	t.touched[dir] = true
	if t.keys[i] != "" {
		if len(t.in.recent) >= maxRecent {
			clear(t.in.recent)
		}
		t.in.recent[t.keys[i]] = a
	}
}

// recordAhead enters in the arrived index, with one write, the names that
// the files of ds (about to be committed in a row) will take: each the
// first name free in its folder, as place picks it. place then records
// only a name it tries that is not the one recorded here (a name taken
// in the meantime, a mapped name): each name is still in the index
// before it is tried, and a record of a name not made is harmless, as
// place says. Entries it cannot tell about are left to place.
func (t *transfer) recordAhead(ds []syncDone) {
	recs := make([]arrival, 0, len(ds))
	idx := make([]int, 0, len(ds))
	taken := make(map[string]bool, len(ds)) // fold keys of the names picked here, by folder
	for _, d := range ds {
		if d.err != nil || !d.stated || t.claimed[d.i] {
			continue
		}
		e := t.offer.Entries[d.i]
		dir, err := t.resolveDir(path.Dir(e.Path))
		if err != nil {
			continue
		}
		name := t.in.cfg.NameRules.mapComponent(path.Base(e.Path))
		cand, key := fitName(name, 0, roomIn(dir)), ""
		if cand != "" {
			key = foldKey(cand)
		}
		if cand == "" || t.listing(dir)[key] {
			continue // place finds a name itself
		}
		if key = dir + "/" + key; taken[key] {
			continue
		}
		taken[key] = true
		a := d.st
		a.key, a.saved = cmp.Or(t.keys[d.i], "-"), path.Join(dir, cand)
		recs = append(recs, a)
		idx = append(idx, d.i)
	}
	if len(recs) < 2 {
		return
	}
	t.in.mu.Lock()
	err := t.in.recordArrivals(recs)
	t.in.mu.Unlock()
	if err != nil {
		return
	}
	if t.recorded == nil {
		t.recorded = make([]string, len(t.offer.Entries))
	}
	for k, i := range idx {
		t.recorded[i] = recs[k].saved
	}
}

// maxRecent bounds the commits an inbox remembers in memory.
const maxRecent = 100_000

// errNotRecorded means a file got no final name because its arrival
// could not be entered in the arrived index.
var errNotRecorded = errors.New("arrival not recorded")

// place gives the temporary file tmp its final name in dir: name, or the
// first free "name (n)", and returns its arrival record. It never
// replaces anything: the new name is made with a hard link, which fails
// if the name exists. Each name is entered in the arrived index before it
// is tried, so that whenever the agent dies, a file under its final name
// is found as already there; when the entry cannot be made, nothing is
// named and the error wraps errNotRecorded. (An entry for a name that was
// not made is harmless: a file is already there only if it is the very
// file recorded.) rec, if not empty, is the partial file's record, removed
// only once the file has its final name: an agent that dies before that
// leaves its partial file whole with its record, and the next send
// resumes it. (Removed earlier, a death between the removal and the link
// left a whole partial file without a record, which the next send sent
// again from its start.) Should the agent die after the link, before tmp
// is removed, the partial file is a second name of the final file: the
// start-up clean removes a staging file with two names, and a resume
// never writes into the file of an arrival (see resumeOffset). st, if
// not nil, is tmp as statArrival would find it (the syncer stated the
// open file); pre, if not empty, is a final path already recorded for
// st (see recordAhead), which is not recorded again.
func (t *transfer) place(tmp string, anon *anonFile, dir, name, fileKey, rec string, st *arrival, pre string) (_ arrival, err error) {
	// named is the name an unnamed file got here, removed if it does
	// not become the final one.
	named := ""
	defer func() {
		if err != nil && named != "" {
			_ = t.in.remove(named)
		}
	}()
	names := t.listing(dir)
	room := roomIn(dir)
	var a arrival
	stated := false
	if st != nil {
		a, stated = *st, true
		a.key = fileKey
		if a.key == "" {
			a.key = "-"
		}
	}
	for n := 0; n < maxCollisions; n++ {
		cand := fitName(name, n, room)
		if cand == "" {
			return arrival{}, fmt.Errorf("%s: %w", Escape(path.Join(dir, name)), errPathTooLong)
		}
		key := foldKey(cand)
		if names[key] {
			continue
		}
		final := path.Join(dir, cand)
		if !stated {
			var err error
			if anon != nil {
				a, err = anonArrival(fileKey, anon)
			} else {
				a, err = t.in.statArrival(fileKey, tmp)
			}
			if err != nil {
				return arrival{}, err
			}
			stated = true
		}
		a.saved = final
		if final != pre {
			if err := t.in.recordArrival(a); err != nil {
				return arrival{}, fmt.Errorf("%w: %w", errNotRecorded, err)
			}
		}
		pre = "" // a later candidate is recorded anew
		if placeHook != nil {
			placeHook(tmp)
		}
		var err error = syscall.EINVAL
		moved := false
		switch {
		case badName != nil && badName(cand):
		case anon != nil:
			if err = t.linkAnonFinal(anon, dir, final); err == nil {
				moved = true
			} else if errors.Is(err, syscall.EXDEV) || noHardLinks(err) {
				// Another file system, no hard links: the ways that
				// follow take a name.
				s, serr := t.in.staging()
				if serr == nil {
					tmp, serr = t.in.nameAnon(s, anon)
				}
				if serr != nil {
					return arrival{}, errors.Join(err, serr)
				}
				anon, named = nil, tmp
				n--
				continue
			}
		default:
			if err = t.moveFinal(tmp, dir, final); err == nil {
				moved = true
			} else if !errors.Is(err, fs.ErrExist) {
				err = t.linkFinal(tmp, dir, final)
			}
		}
		if m, ok := windowsFallback(name, err); ok {
			name, n = m, -1
			continue
		}
		if errors.Is(err, fs.ErrExist) {
			names[key] = true
			continue
		}
		if errors.Is(err, syscall.EXDEV) {
			// dir is on another file system than the staging folder
			// (a mount inside the shared folder): copy the file there.
			if tmp, err = t.copyInto(tmp, dir); err != nil {
				return arrival{}, err
			}
			stated, pre = false, ""
			n--
			continue
		}
		if noHardLinks(err) {
			// No hard links here (FAT, some network file systems): fall
			// back to a rename after checking the name is free.
			if _, lerr := t.in.root.Lstat(final); lerr == nil {
				names[key] = true
				continue
			}
			err := t.in.rename(tmp, final)
			if m, ok := windowsFallback(name, err); ok {
				name, n = m, -1
				continue
			}
			if errors.Is(err, fs.ErrExist) {
				names[key] = true // taken since the check
				continue
			}
			if err != nil {
				return arrival{}, err
			}
			names[key] = true
			if rec != "" {
				_ = t.in.remove(rec)
			}
			return a, nil
		}
		if err != nil {
			return arrival{}, err
		}
		names[key] = true
		if rec != "" {
			_ = t.in.remove(rec)
		}
		if !moved {
			_ = t.in.remove(tmp)
		}
		return a, nil
	}
	return arrival{}, fmt.Errorf("%s: %d names taken: %w", Escape(path.Join(dir, name)), maxCollisions, fs.ErrExist)
}

// linkFinal is in.link, with final's directory dir held open while the
// commits of one hand-over run (see closeLinkDirs): it is opened once for
// the files of a group, not once a file (the opening walks the path from
// the shared folder's top, a system call a component).
// Only receive's commits hold directories (linkDirs not nil): others
// open and close one for each link.
func (t *transfer) linkFinal(tmp, dir, final string) error {
	if t.linkDirs == nil {
		return t.in.link(tmp, final)
	}
	d, err := t.linkDir(dir)
	if err != nil {
		return err
	}
	return t.in.linkIn(tmp, d, final)
}

// linkDir returns dir open, from t.linkDirs, opening it there if it is
// not yet. t.linkDirs must not be nil.
func (t *transfer) linkDir(dir string) (*os.File, error) {
	if d := t.linkDirs[dir]; d != nil {
		return d, nil
	}
	d, err := t.in.root.Open(pathOrDot(dir))
	if err != nil {
		return nil, err
	}
	t.linkDirs[dir] = d
	return d, nil
}

// moveFinal gives tmp the name final in dir by moving it there, in one
// rename that fails with EEXIST rather than replace anything (a link and
// the removal of tmp are two system calls). Any other error leaves tmp
// where it was, for linkFinal: where there is no such rename (another
// system, an older kernel, a file system that cannot), and for every
// commit but receive's.
func (t *transfer) moveFinal(tmp, dir, final string) error {
	if t.linkDirs == nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: final, Err: errors.ErrUnsupported}
	}
	d, err := t.linkDir(dir)
	if err != nil {
		return err
	}
	return t.in.moveIn(tmp, d, final)
}

// closeLinkDirs closes the directories linkFinal holds open.
func (t *transfer) closeLinkDirs() {
	for dir, d := range t.linkDirs {
		d.Close()
		delete(t.linkDirs, dir)
	}
}

// windowsFallback returns the name under which to try again a name the
// file system refused as invalid (EINVAL): the shared folder, or a folder
// in it, is FAT, exFAT, NTFS or an SMB share, which hold only what the
// Windows rules allow, whatever the system's own rules. ok is false for
// any other error, or a name the Windows rules leave as it is.
func windowsFallback(name string, err error) (mapped string, ok bool) {
	if !errors.Is(err, syscall.EINVAL) {
		return "", false
	}
	mapped = NamesWindows.mapComponent(name)
	return mapped, mapped != name
}

// placeHook, when set (by tests), runs in place before each attempt to
// give tmp a final name, after its arrival is recorded: where a test
// looks at what an agent dying there would leave.
var placeHook func(tmp string)

// badName, when set (by tests), makes the inbox see the names it reports
// as refused by the file system (EINVAL), as FAT refuses a:b.txt.
var badName func(name string) bool

// noHardLinks reports whether err from a hard link means that the file
// system makes none (FAT, some network file systems) or no more of this
// file. Any other error, such as a missing file, is the link's own.
func noHardLinks(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.EMLINK) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) ||
		sysNoHardLinks(err)
}

// copyInto copies the verified temporary file tmp to a new temporary file
// in dir, synced and with tmp's mode and times, removes tmp, and returns
// the copy's name.
func (t *transfer) copyInto(tmp, dir string) (string, error) {
	src, err := t.in.openStaging(tmp, os.O_RDONLY, 0)
	if err != nil {
		return "", err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return "", err
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	name := path.Join(dir, tempPrefix+hex.EncodeToString(rnd[:])+".part")
	dst, err := t.in.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = syncJob{f: dst, root: t.in.root, name: name, mode: fi.Mode().Perm(), mtime: fi.ModTime()}.run()
	} else {
		dst.Close()
	}
	if err != nil {
		_ = t.in.root.Remove(name)
		return "", err
	}
	_ = t.in.remove(tmp)
	return name, nil
}

// syncDir makes the entries of dir durable. Errors are ignored: not every
// platform can sync a directory, and the files themselves are synced.
func syncDir(root *os.Root, dir string) {
	f, err := root.Open(pathOrDot(dir))
	if err != nil {
		return
	}
	_ = f.Sync()
	f.Close()
}

// syncDirs makes the entries of the directories t touched durable. A
// directory's fsync costs a disk flush, as a file's does, and a tree of
// small files touches many: where there is a barrier (see syncer), one a
// file system does for them all. It returns the devices whose file
// systems such a barrier made durable whole, if any.
func (t *transfer) syncDirs() (synced map[uint64]bool) {
	barrier := fileSystemBarrier()
	if barrier == nil || len(t.touched) < 2 {
		for d := range t.touched {
			syncDir(t.in.root, d)
		}
		return nil
	}
	seen := map[uint64]bool{} // devices synced
	for d := range t.touched {
		id, _, err := fileIdentity(t.in.root, pathOrDot(d))
		if err != nil || seen[id.dev] {
			continue
		}
		seen[id.dev] = true
		f, err := t.in.root.Open(pathOrDot(d))
		if err != nil {
			continue
		}
		if barrier(f) != nil {
			// Which one failed is not told: each, as without a barrier.
			for d := range t.touched {
				syncDir(t.in.root, d)
			}
			f.Close()
			return nil
		}
		f.Close()
	}
	return seen
}

// finish ends the transfer. Files already given their final names stay:
// they are complete and verified. A temporary file is removed, unless it
// is a resumable file's partial bytes kept for a resume; when the transfer
// failed, the directories it created are removed if empty and no other
// transfer uses them (see releaseDirs); when it succeeded, the directories
// it created take the offered mtimes. Then the directories that changed
// are synced, and last the transfer lets go of its resumable files' keys:
// a transfer that takes one over finds everything done.
func (t *transfer) finish(ok bool) {
	for i, tmp := range t.temps {
		if tmp != "" && !t.keep[i] {
			t.discard(i)
		}
	}
	created := t.releaseDirs(ok)
	if ok {
		// Directory times last, deepest first, since adding entries to
		// a directory changes its mtime. Only directories this transfer
		// created take the sender's time; a merged-into one keeps its own.
		for _, d := range t.created {
			created[d] = true
		}
		for i := len(t.dirTimes) - 1; i >= 0; i-- {
			if dt := t.dirTimes[i]; created[dt.path] && !dt.mtime.IsZero() {
				_ = t.in.root.Chtimes(dt.path, dt.mtime, dt.mtime)
			}
		}
	}
	t.in.mu.Lock()
	appends := t.in.indexAppends
	t.in.mu.Unlock()
	synced := t.syncDirs()
	t.in.mu.Lock()
	if t.in.indexAppends == appends && t.in.indexOn(synced) {
		// The barrier came after every append so far: the index is
		// durable, and its fsync would only cost another disk flush.
		t.in.indexDirty = false
	}
	t.in.syncArrived()
	t.in.mu.Unlock()
	for i := range t.temps {
		if t.claimed[i] {
			t.in.unclaim(t.keys[i])
		}
	}
	close(t.released)
}

// dirUse counts the live transfers that resolved a directory of the
// shared folder, so that a failed transfer's clean-up never removes a
// directory another one is merging into.
type dirUse struct {
	users int
	// kept: a transfer that used it succeeded, so it is in a receipt.
	kept bool
	// orphan: the transfer that created it failed while others used it;
	// the last of them removes it if it fails too and the directory is
	// empty, or takes it as its own if it succeeds.
	orphan bool
}

// useDir counts t as a user of the directory p. The caller holds in.mu.
func (t *transfer) useDir(p string) {
	if p == "" || t.used[p] {
		return
	}
	t.used[p] = true
	u := t.in.dirs[p]
	if u == nil {
		u = &dirUse{}
		t.in.dirs[p] = u
	}
	u.users++
}

// releaseDirs ends t's use of the directories it resolved. When t failed,
// it removes those it created (or that an earlier failed transfer left to
// it) if they are empty and no live transfer uses them; an empty one still
// in use is left to its last user. It returns the directories such a
// failed transfer left to t, when t succeeded: t takes them as created.
func (t *transfer) releaseDirs(ok bool) map[string]bool {
	in := t.in
	adopted := map[string]bool{}
	created := map[string]bool{}
	for _, d := range t.created {
		created[d] = true
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	var remove []string
	for p := range t.used {
		u := in.dirs[p]
		u.users--
		switch {
		case ok:
			if u.orphan && !u.kept {
				adopted[p] = true
			}
			u.kept = true
		case u.kept:
		case created[p] || u.orphan:
			if u.users == 0 {
				remove = append(remove, p)
			} else {
				u.orphan = true
			}
		}
		if u.users == 0 {
			delete(in.dirs, p)
		}
	}
	// Deepest first; a directory that is not empty stays.
	slices.SortFunc(remove, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, p := range remove {
		_ = in.root.Remove(p)
	}
	return adopted
}

func (t *transfer) received() []Received {
	out := make([]Received, len(t.offer.Entries))
	for i := range t.offer.Entries {
		if t.results[i].Status == 0 {
			t.results[i] = proto.Result{Status: proto.Failed, Code: proto.CodeInternal, Reason: "not processed"}
		}
	}
	for i, first := range t.dupOf {
		switch r := t.results[first]; r.Status {
		case proto.Saved, proto.Skipped:
			t.results[i] = proto.Result{Status: proto.Skipped, Code: proto.CodeExists, SavedAs: r.SavedAs, Reason: reasonDuplicate}
		default:
			t.results[i] = r
		}
	}
	for i, e := range t.offer.Entries {
		r := t.results[i]
		out[i] = Received{Path: e.Path, Kind: receivedKind(e.Kind), Size: e.Size, Result: r, Offset: t.offsets[i], Kept: t.kept[i]}
		if t.elapsed != nil {
			out[i].Elapsed = t.elapsed[i]
		}
	}
	return out
}

// FormatBytes renders n in SI units, as people read disk sizes: "4.2 GB".
func FormatBytes(n uint64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

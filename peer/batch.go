package peer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// A Batch is the inbox's side of a transfer whose files arrive as separate
// streams, in any order and possibly at the same time, instead of one after
// another on one connection: LocalSend's HTTP uploads are received this
// way. It knows nothing of the wire: a front end turns what it reads into
// entries and streams, and the inbox gives every guarantee it gives the
// lanshare protocol. Offered names are checked and mapped, nothing is ever
// overwritten, each file is written in the staging folder, its size and
// digest are verified, it is synced, and only then does it get its final
// name; free space is set aside for the whole batch when it opens, and the
// Policy (size caps, per-peer folder, consent) applies as for ReceiveWith.
// A batch's files are not resumable: LocalSend has no resume.
//
// Receive may be called for different entries from different goroutines at
// once; Close ends the batch and must be called exactly once, after every
// Receive has returned.
type Batch struct {
	t     *transfer
	need  uint64 // free space set aside
	files uint64 // inodes set aside

	mu     sync.Mutex // guards state, tries and the transfer's naming state
	state  []batchState
	tries  []int
	closed bool
}

type batchState uint8

const (
	batchSkip      batchState = iota // not accepted, or a directory
	batchPending                     // accepted, no bytes yet (or a failed try)
	batchReceiving                   // a Receive runs for it
	batchDone                        // saved, or failed for good
)

// Errors of Batch.Receive, for the front end to map onto its protocol.
var (
	// ErrNotPending: the entry was not accepted, is being received by
	// another call, or is done.
	ErrNotPending = errors.New("file not pending")
	// ErrDigestMismatch: the bytes arrived whole but their digest is not
	// the one announced; the entry may be sent again (BatchTries in all).
	ErrDigestMismatch = errors.New("checksum mismatch")
	// ErrSizeMismatch: the stream held fewer or more bytes than offered.
	ErrSizeMismatch = errors.New("size does not match the offer")
	// ErrBatchClosed: the batch has ended.
	ErrBatchClosed = errors.New("transfer ended")
)

// BatchTries is how many times an entry's bytes may arrive with a wrong
// digest before the entry fails for good (LocalSend allows three).
const BatchTries = 3

// OpenBatch plans a batch offered by from (a display name, not
// authenticated): it checks every entry's name, skips files named twice,
// applies pol (MaxSize, Folder, Consent) and sets the free space aside. It
// blocks while pol.Consent does; wait is handed to Consent as
// ReceiveWith's is (it may be nil: then Consent cannot wait). A refusal of
// the whole batch is a *RefusedError and nothing was created; otherwise
// Accepted lists the entries whose bytes are expected. The caller holds
// the offer's share of the memory budget.
func (in *Inbox) OpenBatch(from string, entries []proto.Entry, pol Policy, wait func(time.Duration) (<-chan struct{}, error)) (*Batch, error) {
	if pol.Folder != "" {
		if err := CheckName(pol.Folder); err != nil || bytes.ContainsRune([]byte(pol.Folder), '/') {
			return nil, fmt.Errorf("per-peer folder %s: %w", Escape(pol.Folder), ErrNameUnsafe)
		}
	}
	start := pol.Accepted
	if start.IsZero() {
		start = time.Now()
	}
	t := newTransfer(in, pol, proto.Offer{Entries: entries}, start)
	t.noResume = true
	answer, need := t.plan()
	answer = limitSize(answer, need, pol.MaxSize)
	answer, textErr := limitTexts(answer, entries, pol)
	if answer.Code == proto.CodeOK && pol.Consent != nil {
		if wait == nil {
			wait = func(time.Duration) (<-chan struct{}, error) {
				return nil, fmt.Errorf("waiting for consent: %w", errors.ErrUnsupported)
			}
		}
		o := t.summary(need, 0, true)
		o.From = from
		if err := pol.Consent(o, wait); err != nil {
			answer = refusalAnswer(err)
		}
	}
	files := t.newFiles()
	if answer.Code == proto.CodeOK {
		if err := in.reserve(need, files); err != nil {
			answer = refusalAnswer(err)
			need, files = 0, 0
		}
	} else {
		need, files = 0, 0
	}
	if answer.Code != proto.CodeOK {
		t.finish(false)
		if textErr != nil {
			return nil, textErr
		}
		return nil, &RefusedError{Peer: "we", Code: answer.Code, Reason: answer.Reason}
	}
	b := &Batch{t: t, need: need, files: files, state: make([]batchState, len(entries)), tries: make([]int, len(entries))}
	t.pmu.Lock()
	t.prog.From = from
	for i, e := range entries {
		if e.Kind == proto.KindText && t.accepted[i] {
			b.state[i] = batchPending // see ReceiveText
		}
		if e.Kind != proto.KindFile {
			continue
		}
		t.prog.FilesTotal++
		t.prog.Total += e.Size
		if t.accepted[i] {
			b.state[i] = batchPending
		} else {
			t.prog.Bytes += e.Size
			t.prog.Files++
		}
	}
	t.pmu.Unlock()
	if pol.Folder != "" {
		d, err := t.resolveDir(pol.Folder)
		if err != nil {
			b.Close()
			return nil, err
		}
		t.dirs = map[string]string{"": d}
	}
	if pol.Answered != nil {
		pol.Answered()
	}
	if pol.Watch != nil && !isTextOffer(entries) {
		pol.Watch(t.progress)
	}
	return b, nil
}

// limitSize refuses an accepted answer whose need is over max (0: no cap).
func limitSize(a proto.Answer, need, max uint64) proto.Answer {
	if a.Code == proto.CodeOK && max > 0 && need > max {
		return proto.Answer{Code: proto.CodeTooLarge, Reason: fmt.Sprintf("transfer of %s is over this receiver's limit of %s",
			FormatBytes(need), FormatBytes(max))}
	}
	return a
}

// refusalAnswer is the answer that refuses a batch for err: its code and
// reason when it is a *RefusedError, CodeDenied otherwise.
func refusalAnswer(err error) proto.Answer {
	var re *RefusedError
	if errors.As(err, &re) {
		return proto.Answer{Code: re.Code, Reason: trimReason(re.Reason)}
	}
	return proto.Answer{Code: proto.CodeDenied, Reason: trimReason(err.Error())}
}

// Accepted returns the entries whose bytes the batch expects, in offer
// order.
func (b *Batch) Accepted() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int
	for i, s := range b.state {
		if s != batchSkip {
			out = append(out, i)
		}
	}
	return out
}

// Result returns entry i's outcome so far (Status 0: not received yet).
func (b *Batch) Result(i int) proto.Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.t.results[i]
}

// Finished reports whether no accepted entry is pending or being received.
func (b *Batch) Finished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.state {
		if s == batchPending || s == batchReceiving {
			return false
		}
	}
	return true
}

// Receive reads entry i's bytes from r: exactly the size offered, and then
// the end of r. When sum is not nil, the bytes' SHA-256 must equal it.
// It writes them to a temporary file in the staging folder, syncs the file
// and gives it its final name, and returns nil once the file is saved
// (Result says where). On ErrDigestMismatch the entry may be received
// again, BatchTries times in all; on any other error the entry has failed
// for good, and nothing of it is under a final name. r is not closed.
func (b *Batch) Receive(i int, r io.Reader, sum []byte) error {
	t := b.t
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return ErrBatchClosed
	case i < 0 || i >= len(b.state) || b.state[i] != batchPending:
		b.mu.Unlock()
		return ErrNotPending
	}
	b.state[i] = batchReceiving
	b.mu.Unlock()
	e := t.offer.Entries[i]
	t.pmu.Lock()
	t.prog.Path = e.Path
	t.pmu.Unlock()
	done, err := b.receive(i, e, r, sum)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == nil:
		// Named, or failed while naming: the result says.
		b.state[i] = batchDone
		if t.results[i].Status != proto.Saved {
			err = fmt.Errorf("saving %s: %s", Escape(e.Path), t.results[i].Reason)
		}
	case errors.Is(err, ErrDigestMismatch) && b.tries[i]+1 < BatchTries:
		b.tries[i]++
		b.state[i] = batchPending
	default:
		b.state[i] = batchDone
		if t.results[i].Status == 0 {
			code := proto.CodeIO
			if errors.Is(err, ErrDigestMismatch) {
				code = proto.CodeDigest
			}
			t.results[i] = proto.Result{Status: proto.Failed, Code: code, Reason: trimReason(err.Error())}
		}
	}
	t.elapsed[i] = time.Since(t.start)
	t.pmu.Lock()
	t.prog.Bytes -= done
	if b.state[i] == batchDone {
		t.prog.Bytes += e.Size
		t.prog.Files++
	}
	t.pmu.Unlock()
	return err
}

// receive writes entry i into a temporary file, verifies and syncs it,
// and names it. It returns how many of its bytes it counted in the
// progress, and an error when the file was not handed to naming.
func (b *Batch) receive(i int, e proto.Entry, r io.Reader, sum []byte) (counted uint64, err error) {
	t := b.t
	if err := t.in.ensureStaging(); err != nil {
		return 0, fmt.Errorf("receiving %s: %w", Escape(e.Path), err)
	}
	f, name, err := t.in.createStagingFile(t.fileMode(e))
	if err != nil {
		return 0, fmt.Errorf("receiving %s: %w", Escape(e.Path), err)
	}
	b.mu.Lock()
	t.temps[i] = name
	b.mu.Unlock()
	forget := func() {
		f.Close()
		b.mu.Lock()
		t.discard(i)
		b.mu.Unlock()
	}
	// Without a digest to check (a browser's big file), the file is
	// checked by its size alone: hashing it would only cost (SHA-256 was
	// 45% of the agent's time for a drop page's upload).
	var h hash.Hash = noHash{}
	if sum != nil {
		h = sha256.New()
	}
	buf := make([]byte, bufSize)
	cr := &countingReader{r: r, t: t}
	s := newSink(f, h, 0, e.Size, buf)
	ferr := s.fill(cr, e.Size)
	digest, werr := s.close()
	counted = cr.n
	if ferr != nil {
		forget()
		if errors.Is(ferr, io.EOF) || errors.Is(ferr, io.ErrUnexpectedEOF) {
			return counted, fmt.Errorf("receiving %s: %w: the stream ended after %d of %d bytes", Escape(e.Path), ErrSizeMismatch, cr.n, e.Size)
		}
		return counted, fmt.Errorf("receiving %s: %w", Escape(e.Path), ferr)
	}
	if n, _ := io.ReadFull(r, buf[:1]); n > 0 {
		forget()
		return counted, fmt.Errorf("receiving %s: %w: more than the %d bytes offered", Escape(e.Path), ErrSizeMismatch, e.Size)
	}
	if werr != nil {
		forget()
		return counted, fmt.Errorf("receiving %s: could not write: %w", Escape(e.Path), werr)
	}
	if sum != nil && !bytes.Equal(digest[:sha256.Size], sum) {
		forget()
		return counted, fmt.Errorf("receiving %s: %w", Escape(e.Path), ErrDigestMismatch)
	}
	root, rel := t.in.stagingRef(name)
	if err := (syncJob{i: i, f: f, root: root, name: rel, mode: t.fileMode(e), mtime: e.MTime}).run(); err != nil {
		b.mu.Lock()
		t.discard(i)
		b.mu.Unlock()
		return counted, fmt.Errorf("receiving %s: could not write: %w", Escape(e.Path), err)
	}
	b.mu.Lock()
	t.commitFile(i, nil)
	b.mu.Unlock()
	return counted, nil
}

// countingReader counts the bytes read into the transfer's progress.
type countingReader struct {
	r io.Reader
	t *transfer
	n uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += uint64(n)
		c.t.active.Store(time.Now().UnixNano())
		c.t.pmu.Lock()
		c.t.prog.Bytes += uint64(n)
		c.t.pmu.Unlock()
	}
	return n, err
}

// Close ends the batch: entries never received are reported as failed,
// the directories it created and left empty are removed when nothing was
// saved, and the free space set aside is given back. It returns what the
// batch saved, as ReceiveWith does. Receive must not run.
func (b *Batch) Close() *Transfer {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	t := b.t
	ok := true
	for i, s := range b.state {
		if s == batchPending || s == batchReceiving {
			ok = false
			t.results[i] = proto.Result{Status: proto.Failed, Code: proto.CodeIO, Reason: "not received: the sender stopped"}
		} else if s == batchDone && t.results[i].Status != proto.Saved && t.results[i].Status != proto.Delivered {
			ok = false
		}
	}
	b.mu.Unlock()
	// Directories are offered only implied by their files; a directory
	// entry the front end passed is made here, as ReceiveWith would.
	for i, e := range t.offer.Entries {
		if e.Kind == proto.KindDir && t.accepted[i] {
			d, err := t.resolveDir(e.Path)
			if err != nil {
				t.fail(i, writeCode(err), errReason(err))
				continue
			}
			t.results[i] = proto.Result{Status: proto.Saved, SavedAs: d}
			t.dirTimes = append(t.dirTimes, dirTime{d, e.MTime})
		}
	}
	t.finish(ok)
	t.in.release(b.need, b.files)
	return &Transfer{From: t.prog.From, Entries: t.received(), Text: t.text}
}

// noHash is a hash.Hash that hashes nothing, for a file received without
// a digest to check.
type noHash struct{}

func (noHash) Write(p []byte) (int, error) { return len(p), nil }
func (noHash) Sum(b []byte) []byte         { return append(b, make([]byte, sha256.Size)...) }
func (noHash) Reset()                      {}
func (noHash) Size() int                   { return sha256.Size }
func (noHash) BlockSize() int              { return sha256.BlockSize }

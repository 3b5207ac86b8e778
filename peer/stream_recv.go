package peer

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// Receiving a stream (proto.KindStream): a file whose size comes at its
// end. Its chunks go into a temporary file in the staging folder, as a
// file's bytes do, and it gets its final name only once its StreamEnd has
// verified its size and digest and it is synced. Nothing about its size
// can be checked before it starts, so the limits a file's offer is held
// to are checked as its bytes arrive, before each chunk reaches the
// disk: the transfer's size cap (Policy.MaxSize), free space beyond the
// margin (set aside streamStep at a time), and the strangers' budget
// (Policy.StreamBytes). A stream over one of them, or one that cannot be
// written, stops the transfer: the stream's temporary file is removed,
// the receipt goes out at once, and the connection is closed. A stream
// is never resumed: a cut one is removed like any temporary file.

// streamStep is how far ahead of a stream's bytes the receiver sets
// aside free space and charges Policy.StreamBytes: one free-space query
// and one budget write per step.
const streamStep = 16 << 20

// errStreamStopped ends a transfer whose receiver stopped a stream: over
// a limit, or it could not be written.
var errStreamStopped = errors.New("stream stopped, and the transfer with it")

// receivedKind is the kind a Received reports for an entry offered as k:
// a stream is, on the receiver, the file it became.
func receivedKind(k proto.Kind) proto.Kind {
	if k == proto.KindStream {
		return proto.KindFile
	}
	return k
}

// receiveStreamEntry receives stream entry i and hands it, verified, to
// syncs. Like receiveFile it returns only an error of the stream: the
// connection's, or errStreamStopped.
func (t *transfer) receiveStreamEntry(i int, br *bufio.Reader, buf []byte, syncs *syncer) error {
	e := t.offer.Entries[i]
	t.pmu.Lock()
	t.prog.Path, t.prog.Streaming = e.Path, true
	t.pmu.Unlock()
	f, size, err := t.receiveStream(i, br, buf)
	t.pmu.Lock()
	t.prog.Streaming = false
	t.pmu.Unlock()
	// What arrived counts against the size cap of later streams.
	t.offer.Entries[i].Size = size
	if err != nil {
		return err
	}
	if f != nil {
		root, name := t.in.stagingRef(t.temps[i])
		syncs.put(syncJob{i: i, f: f, root: root, name: name, mode: t.fileMode(e), mtime: e.MTime, size: size})
		t.closeLinkDirs()
	} else {
		t.elapsed[i] = time.Since(t.start)
	}
	t.pmu.Lock()
	t.prog.Bytes += size
	t.prog.Files++
	t.wire = 0
	t.pmu.Unlock()
	if t.outOfSpace && t.bytesAfter(i) {
		return t.stopOutOfSpace(i)
	}
	return nil
}

// receiveStream reads stream entry i's chunks into a temporary file, and
// its end. A stream that arrived whole and verified is returned open,
// for the syncer, with its size; a failed one is in t.results and its
// file removed.
func (t *transfer) receiveStream(i int, br *bufio.Reader, buf []byte) (*os.File, uint64, error) {
	e := t.offer.Entries[i]
	f, h, werr := t.openTemp(i, buf)
	if werr != nil {
		closeFile(f)
		return nil, 0, t.stopStream(i, writeCode(werr), "could not write: "+errReason(werr))
	}
	// As many buffers as a large file's, so that the disk's writes run
	// alongside the network's reads.
	s := newSink(streamFile{f}, h, 0, sinkBuffers*sinkChunk, buf)
	b := t.newStreamBudget(i)
	defer b.release()
	var got uint64
	for {
		n, end, err := proto.ReadStreamNext(br)
		if err == nil && end == nil {
			if rerr := b.take(got, uint64(n)); rerr != nil {
				_, _ = s.close()
				f.Close()
				code, reason := proto.CodeTooLarge, rerr.Error()
				var re *RefusedError
				if errors.As(rerr, &re) {
					code, reason = re.Code, re.Reason
				}
				return nil, got, t.stopStream(i, code, reason)
			}
			err = s.fill(br, uint64(n))
		}
		if err != nil {
			_, _ = s.close()
			f.Close()
			return nil, got, fmt.Errorf("receiving %s: %w", Escape(e.Path), unexpected(err))
		}
		if end != nil {
			f, err := t.endStream(i, f, s, got, *end)
			return f, got, err
		}
		got += uint64(n)
		t.pmu.Lock()
		t.prog.Total += uint64(n) // its size is known as it arrives
		t.pmu.Unlock()
		if s.failed() {
			// A file's write error is reported at its end; a stream may
			// never end: stop it now.
			_, werr := s.close()
			f.Close()
			return nil, got, t.stopStream(i, writeCode(werr), "could not write: "+errReason(werr))
		}
	}
}

// endStream checks stream entry i, got bytes in s, against its end. A
// verified stream's file f is returned, open; otherwise the entry fails
// and its file is removed. Only an end that belongs to another entry is
// an error: the stream is out of step.
func (t *transfer) endStream(i int, f *os.File, s *sink, got uint64, end proto.StreamEnd) (*os.File, error) {
	digest, werr := s.close()
	var code proto.Code
	var reason string
	switch {
	case end.Index != uint32(i):
		f.Close()
		return nil, fmt.Errorf("receiving %s: stream-end for entry %d: %w", Escape(t.offer.Entries[i].Path), end.Index, proto.ErrMalformed)
	case end.Status == proto.Aborted:
		code, reason = end.Code, senderReason(end.Code, end.Reason)
	case werr != nil:
		code, reason = writeCode(werr), "could not write: "+errReason(werr)
	case end.Size != got:
		code, reason = proto.CodeSize, fmt.Sprintf("size mismatch: the sender counted %d bytes, %d arrived", end.Size, got)
	case digest != end.Digest:
		code, reason = proto.CodeDigest, "digest mismatch: the stream was corrupted in transit"
	default:
		return f, nil
	}
	f.Close() // before fail removes it
	t.fail(i, code, reason)
	return nil, nil
}

// stopStream fails stream entry i for the reason given, and every
// accepted entry after it, which will not be received, and returns
// errStreamStopped: the rest of the stream is not read.
func (t *transfer) stopStream(i int, code proto.Code, reason string) error {
	t.fail(i, code, reason)
	path := t.offer.Entries[i].Path
	for j := i + 1; j < len(t.offer.Entries); j++ {
		if t.accepted[j] && t.results[j].Status == 0 {
			t.results[j] = proto.Result{Status: proto.Failed, Code: proto.CodeAborted,
				Reason: trimReason("not received: the receiver stopped the transfer at " + Escape(path))}
		}
	}
	return fmt.Errorf("%s: %s: %w", Escape(path), Escape(reason), errStreamStopped)
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// streamFile is a stream's temporary file, hidden from newSink: chunks
// come in any size, and direct I/O takes whole blocks, so a stream is
// written through the page cache, in order, by one writer.
type streamFile struct{ f *os.File }

func (w streamFile) Write(p []byte) (int, error) { return w.f.Write(p) }

// streamBudget makes room for one stream's bytes as they arrive.
type streamBudget struct {
	t    *transfer
	room uint64 // what the transfer's size cap leaves the stream
	upTo uint64 // the size up to which room is made
	held uint64 // free space set aside for the bytes to upTo
}

// newStreamBudget returns the budget of stream entry i: the transfer's
// size cap less the files accepted with it and the streams before it.
func (t *transfer) newStreamBudget(i int) *streamBudget {
	room := uint64(math.MaxUint64)
	if capped := t.policy.MaxSize; capped > 0 {
		var used uint64
		for j, e := range t.offer.Entries {
			switch {
			case !t.accepted[j]:
			case e.Kind == proto.KindFile:
				used = addSat(used, e.Size-t.offsets[j])
			case e.Kind == proto.KindStream && j < i:
				used = addSat(used, e.Size)
			}
		}
		room = 0
		if used < capped {
			room = capped - used
		}
	}
	return &streamBudget{t: t, room: room}
}

// take makes room for n more bytes of a stream that has got bytes, or
// returns why not: a *RefusedError with the code and reason to fail the
// stream with.
func (b *streamBudget) take(got, n uint64) error {
	if got+n > b.room {
		return &RefusedError{Code: proto.CodeTooLarge, Reason: fmt.Sprintf("over this receiver's limit of %s a transfer: stopped after %s",
			FormatBytes(b.t.policy.MaxSize), FormatBytes(got))}
	}
	if got+n <= b.upTo {
		return nil
	}
	// Bytes the stream wrote are on the disk and out of its free space:
	// only the next step is held for it.
	held := b.held
	b.held = 0
	if err := b.t.in.holdStream(held, streamStep); err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			re.Reason += ": stopped after " + FormatBytes(got)
		}
		return err
	}
	b.held = streamStep
	if grow := b.t.policy.StreamBytes; grow != nil {
		if err := grow(streamStep); err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				re.Reason += ": stopped after " + FormatBytes(got)
			}
			return err
		}
	}
	b.upTo += streamStep
	return nil
}

// release gives back the free space the budget holds.
func (b *streamBudget) release() {
	b.t.in.release(b.held, 0)
	b.held = 0
}

// holdStream sets aside step bytes of free space for a stream, in place
// of the held bytes it set aside before, or refuses with a *RefusedError.
// The stream's bytes written so far are on the disk, out of the free
// space it sees, so only the bytes ahead are held: held twice, a stream
// could use half the free space. (A file system that does not count
// written bytes at once as used is caught by its write errors.)
func (in *Inbox) holdStream(held, step uint64) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.reserved -= held
	free, err := in.cfg.freeSpace(in.cfg.Dir)
	if err != nil {
		return &RefusedError{Code: proto.CodeIO, Reason: "cannot tell free space"}
	}
	avail := uint64(0)
	if free > in.reserved+in.cfg.SpaceMargin {
		avail = free - in.reserved - in.cfg.SpaceMargin
	}
	if step > avail {
		return &RefusedError{Code: proto.CodeNoSpace, Reason: spaceReason(step, avail, in.cfg.SpaceMargin, in.reserved)}
	}
	in.reserved += step
	return nil
}

// grow charges n more bytes of a stream to c, or refuses them with a
// *RefusedError (proto.CodeTooLarge) that says the budget and what is
// left of it. Nothing is charged without a budget or a charge.
func (p *strangerPool) grow(c *strangerCharge, n uint64) error {
	if p == nil || c == nil || p.budget.Off() {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	used := p.usedLocked(now)
	limit, err := p.limitLocked(used)
	if err != nil {
		return &RefusedError{Code: proto.CodeIO, Reason: "cannot tell free space"}
	}
	var left uint64
	if used < limit {
		left = limit - used
	}
	if n > left {
		return &RefusedError{Code: proto.CodeTooLarge, Reason: fmt.Sprintf(
			"over what this receiver takes from peers it does not trust (%s, %s left today): ask its owner to trust you",
			p.budget.String(), FormatBytes(left))}
	}
	c.n = addSat(c.n, n)
	p.hours[c.hour] = addSat(p.hours[c.hour], n)
	return p.saveLocked()
}

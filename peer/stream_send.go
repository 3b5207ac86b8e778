package peer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// Sending a stream: data of unknown size (standard input) as one file,
// in proto.Chunk frames and a proto.StreamEnd (protocol 1.2). A reader
// goroutine reads the source and hashes it while the sending goroutine
// puts the chunks on the connection, as for a large file (see
// readAhead). A stream is read once: a send that read any of it is never
// retried, and a receiver never resumes one.

// Stream is a source of unknown size to send as one file, read once from
// its start to its end by the send that takes it. Build one with
// StreamItem.
type Stream struct {
	// Settle, if set, is called when the source has ended, before the
	// stream's end is sent: an error ends the send there, and the
	// receiver drops what it got. It lets a caller hold the end back
	// for a moment in which it may learn that the end was not the
	// data's own: Ctrl-C stops the program that writes into a pipe as it
	// stops the sender, and the pipe's end may come first.
	Settle func() error

	r     io.Reader
	read  atomic.Uint64 // bytes read from r
	used  atomic.Bool   // a send started reading r
	ended atomic.Bool   // the send wrote the stream's end
}

// Read returns how many bytes of the stream were read so far.
func (s *Stream) Read() uint64 { return s.read.Load() }

// Ended reports whether a send read the stream to its end and sent that
// end: the receiver may have saved it, whatever happened after.
func (s *Stream) Ended() bool { return s.ended.Load() }

// StreamSource is how a stream is named in messages: the local name of
// what Item.Source holds for a stream item.
const StreamSource = "standard input"

// StreamItem returns the item that sends what r gives, to its end, as a
// file named name: a relative, slash-separated path that the receiver
// would take (else an error wrapping ErrNameUnsafe). Sent to a receiver
// of protocol 1.1 or older, it fails the send with a *StreamUnsupportedError.
//
// A send that ends early (its connection broke, its context ended) waits
// for a read of r in progress to return; if r has a SetReadDeadline
// method (an *os.File for a pipe in non-blocking mode), it is used to cut
// that read short. r is not closed.
func StreamItem(name string, r io.Reader) (Item, error) {
	if err := checkOffered(name); err != nil {
		return Item{}, fmt.Errorf("%s: %w", Escape(name), err)
	}
	return Item{Source: StreamSource, Stream: &Stream{r: r},
		Entry: proto.Entry{Path: name, Kind: proto.KindStream, Mode: 0o644}}, nil
}

// ErrStreamCut means a send broke off after it read from a stream: the
// stream cannot be read again, so the send is not retried. The receiver
// saved nothing under the stream's name, unless the stream's end went
// out (see StreamCutError.Whole). A send of a stream item that another
// send read from fails with it too.
var ErrStreamCut = errors.New("a stream cannot be sent again")

// StreamCutError ends a send whose connection broke after it started to
// read a stream, without a receipt. It matches ErrStreamCut and
// ErrIncomplete.
type StreamCutError struct {
	Peer string // the receiver's display name, escaped
	Path string // the stream's name, as offered
	Sent uint64 // bytes of the stream read and sent before the break
	// Whole: the stream's end was sent too, so the receiver may have
	// saved it; otherwise it saved nothing under its name.
	Whole bool
	Err   error // why the connection ended
}

func (e *StreamCutError) Error() string {
	if e.Whole {
		return fmt.Sprintf("the connection to %s broke after all of %s (%s) was sent, before %s confirmed it: it may have been saved; a pipe cannot be read again to check (%v)",
			e.Peer, Escape(e.Path), FormatBytes(e.Sent), e.Peer, e.Err)
	}
	return fmt.Sprintf("the connection to %s broke after %s of %s: nothing was saved under that name, and a pipe cannot be read again to resume (%v)",
		e.Peer, FormatBytes(e.Sent), Escape(e.Path), e.Err)
}

// Unwrap gives ErrStreamCut, ErrIncomplete and the connection's error.
func (e *StreamCutError) Unwrap() []error { return []error{ErrStreamCut, ErrIncomplete, e.Err} }

// StreamUnsupportedError means the receiver's protocol is older than
// proto.MinorStream: it cannot take a stream. It matches ErrNotSendable
// and ErrRefused, as a text to such a receiver does.
type StreamUnsupportedError struct {
	Peer         string // the receiver's display name, escaped
	Major, Minor uint8  // its protocol version, from its hello
}

func (e *StreamUnsupportedError) Error() string {
	return fmt.Sprintf("%s runs protocol %d.%d, which cannot take a pipe; update it", e.Peer, e.Major, e.Minor)
}

// Unwrap gives ErrNotSendable and ErrRefused.
func (e *StreamUnsupportedError) Unwrap() []error { return []error{ErrNotSendable, ErrRefused} }

// checkStreamPeer refuses to go on with an offer that holds a stream when
// the receiver's hello says it cannot take one. It is called before the
// answer is read: such a receiver refuses the offer as malformed, which
// would say less.
func checkStreamPeer(hello proto.Hello, items []Item) error {
	if hello.Major != proto.Major || hello.Minor >= proto.MinorStream {
		return nil
	}
	for _, it := range items {
		if it.Entry.Kind == proto.KindStream {
			return &StreamUnsupportedError{Peer: peerName(hello.Name), Major: hello.Major, Minor: hello.Minor}
		}
	}
	return nil
}

// streamStarted returns the first stream of items that a send read from,
// or nil.
func streamStarted(items []Item) *Item {
	for i := range items {
		if s := items[i].Stream; s != nil && s.used.Load() {
			return &items[i]
		}
	}
	return nil
}

// streamFailed is the error that ends a send of batch, which failed with
// err after it read from a stream: the receipt's verdict when one came
// (the receiver stopped the stream, say), else a *StreamCutError. The
// batch is not retried.
func streamFailed(batch []Item, rep *Report, err error) error {
	it := streamStarted(batch)
	if it == nil || (rep != nil && rep.Results != nil) || errors.Is(err, ErrStreamCut) {
		return err
	}
	who := "receiver"
	if rep != nil {
		who = peerName(rep.Peer)
	}
	return &StreamCutError{Peer: who, Path: it.Entry.Path, Sent: it.Stream.Read(), Whole: it.Stream.ended.Load(), Err: err}
}

// streamReceiptWait bounds the read of a receipt after a stream's bytes
// could not be written: a receiver that stopped the stream sends one.
const streamReceiptWait = 2 * time.Second

// receiptAfterReset is false in tests of a send that gets no receipt.
var receiptAfterReset = true

// streamBroke is called when a write failed after a stream of rep
// started to be sent, or when the receiver reset the connection: it may
// have stopped the transfer (over a limit, out of space) and sent its
// receipt before it closed. It reads that receipt, for a short while,
// into rep and returns its verdict; without one, or neither a stream
// started nor a reset, it returns err. (The receipt's bytes arrive before
// the reset, and are read before it.)
func streamBroke(c *idleConn, br *bufio.Reader, rep *Report, err error) error {
	reset := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	if streamStarted(rep.Items) == nil && (!reset || !receiptAfterReset) {
		return err
	}
	c.idle = streamReceiptWait
	receipt, rerr := proto.ReadReceipt(br)
	if rerr != nil || len(receipt.Results) != len(rep.Items) {
		return err
	}
	rep.Results = receipt.Results
	rep.RecordedAs = receipt.Sender
	if verdict := rep.check(); verdict != nil {
		return verdict
	}
	return err
}

// streamEntry sends stream entry index of the batch as its reply r says:
// its chunks and end when accepted, nothing otherwise. It returns only an
// error of the connection (or a reply the protocol forbids).
func (s *streamer) streamEntry(index uint32, it Item, r proto.Reply) error {
	if r.Status != proto.Accept {
		s.prog.Files++
		s.report(it.Entry.Path)
		return nil
	}
	if r.Offset != 0 {
		return fmt.Errorf("%s: offset %d for a stream, which cannot resume: %w", Escape(it.Entry.Path), r.Offset, proto.ErrMalformed)
	}
	if it.Stream == nil || !it.Stream.used.CompareAndSwap(false, true) {
		// Only a second send of the same item gets here: its bytes went.
		return fmt.Errorf("%s: %w", Escape(it.Entry.Path), ErrStreamCut)
	}
	unread := len(s.unread)
	if err := s.sendStream(index, it); err != nil {
		return err
	}
	if len(s.unread) == unread { // else not sent: the progress must not count it
		s.prog.Files++
	}
	s.report(it.Entry.Path)
	return nil
}

// sendStream streams the chunks and the end of stream item it. A source
// that fails is ended with an aborted StreamEnd, so that the receiver
// drops what it got and the rest of the batch goes on; only a connection
// error is returned.
//
// Each chunk is what the source gave since the last one, up to
// proto.MaxChunkLen: while the connection keeps up, every read of the
// source leaves at once, and while it does not, reads gather into full
// chunks. No byte waits for the next read of a slow source.
func (s *streamer) sendStream(index uint32, it Item) error {
	h := proto.NewDigest()
	r := startStreamRead(it.Stream, h)
	defer r.stop()
	var size uint64
	var rerr error
	var carry *piece // read, not yet sent: it did not fit the last chunk
	for rerr == nil {
		first := carry
		if first == nil {
			var p piece
			select {
			case p = <-r.out:
			default:
				// The source has nothing more yet: what was sent so far
				// must not wait for it in our buffer.
				if err := s.bw.Flush(); err != nil {
					return err
				}
				select {
				case p = <-r.out:
				case <-s.done:
					return errStreamWaitEnded
				}
			}
			first = &p
		}
		carry = nil
		pieces := []piece{*first}
		n, end := len(first.buf), first.err != nil
		for !end {
			var p piece
			select {
			case p = <-r.out:
			default:
			}
			if p.buf == nil && p.err == nil {
				break // nothing more read yet
			}
			if n+len(p.buf) > proto.MaxChunkLen {
				carry = &p
				break
			}
			pieces = append(pieces, p)
			n, end = n+len(p.buf), p.err != nil
		}
		if n > 0 {
			if err := proto.WriteChunkHeader(s.bw, n); err != nil {
				return err
			}
		}
		for _, p := range pieces {
			if _, err := s.bw.Write(p.buf); err != nil {
				return err
			}
			if p.free != nil {
				r.free <- p.free
			}
			if p.err != nil {
				rerr = p.err
			}
		}
		if n > 0 {
			size += uint64(n)
			s.advance(uint64(n), it.Entry.Path)
		}
	}
	if rerr == io.EOF {
		rerr = nil
		if it.Stream.Settle != nil {
			if err := it.Stream.Settle(); err != nil {
				return err
			}
		}
	}
	end := proto.StreamEnd{Index: index, Status: proto.Sent, Size: size}
	if rerr != nil {
		s.unread = append(s.unread, unreadFile{Source: it.Source, err: rerr})
		end = proto.StreamEnd{Index: index, Status: proto.Aborted, Code: proto.CodeSourceChanged, Size: size,
			Reason: trimReason("reading " + StreamSource + ": " + errReason(rerr))}
	} else {
		copy(end.Digest[:], h.Sum(nil))
	}
	if err := proto.WriteStreamEnd(s.bw, end); err != nil {
		return err
	}
	it.Stream.ended.Store(true)
	return nil
}

// errStreamWaitEnded ends a send that gave up waiting for its stream's
// source: its context ended.
var errStreamWaitEnded = errors.New("the send ended while it waited for its input")

const (
	// streamPiece is the most one read of a stream's source asks for.
	streamPiece = 256 << 10
	// streamPieces is how many reads may wait to be sent: a connection
	// that falls behind holds the source back by as much.
	streamPieces = 8
)

// piece is what one read of a stream's source gave, hashed.
type piece struct {
	buf  []byte // the bytes read; may be empty
	free []byte // the whole buffer, to give back once buf is sent
	err  error  // io.EOF at the end, or why the source failed; the last piece
}

// streamRead reads a stream's source on its own goroutine, hashing what
// it reads; its owner takes pieces from out, gives each buffer back on
// free, and stops it.
type streamRead struct {
	out  chan piece
	free chan []byte
	quit chan struct{}
	done chan struct{}
	src  io.Reader
}

func startStreamRead(s *Stream, h io.Writer) *streamRead {
	r := &streamRead{
		out:  make(chan piece, streamPieces),
		free: make(chan []byte, streamPieces),
		quit: make(chan struct{}),
		done: make(chan struct{}),
		src:  s.r,
	}
	for range streamPieces {
		r.free <- make([]byte, streamPiece)
	}
	go r.run(s, h) // owned by r: stop waits for it
	return r
}

func (r *streamRead) run(s *Stream, h io.Writer) {
	defer close(r.done)
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.quit:
			return
		}
		n, err := s.r.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			s.read.Add(uint64(n))
		}
		if n == 0 && err == nil {
			r.free <- buf
			continue
		}
		select {
		case r.out <- piece{buf: buf[:n], free: buf, err: err}:
		case <-r.quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// stop ends the reader and waits for it. A read of the source in
// progress is cut short when the source has read deadlines (a pipe that
// the poller watches: see StreamItem); otherwise the reader ends when
// that read returns.
func (r *streamRead) stop() {
	close(r.quit)
	if d, ok := r.src.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = d.SetReadDeadline(time.Now())
	}
	<-r.done
}

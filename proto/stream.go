package proto

import (
	"encoding/binary"
	"fmt"
	"io"
)

// A stream entry (KindStream, since 1.2) is a file whose size the sender
// does not know when it offers it: data from a pipe. It is offered with
// size 0 and accepted from offset 0 only (a stream cannot be read twice,
// so it is never resumed). Its bytes follow, in offer order like a file's,
// as Chunk frames of 1 to MaxChunkLen bytes each, then one StreamEnd
// frame that carries the stream's size and digest. A receiver counts the
// bytes as they arrive and can stop a stream that grows past its limits
// before they reach its disk.

// MinorStream is the first minor version that takes stream entries. A
// sender learns the receiver's version only from the hello that comes
// with the answer, after its offer went: a receiver of an older minor
// refuses such an offer as malformed (code 15), and the sender reports
// the receiver's version rather than that refusal.
const MinorStream = 2

// MaxChunkLen caps the bytes of one Chunk frame. A receiver reads them
// into its own buffers as they arrive; a chunk costs it no allocation.
const MaxChunkLen = 1 << 20

// maxStreamEndLen caps a StreamEnd frame's payload.
const maxStreamEndLen = 4 + 1 + 2 + 2 + MaxReasonLen + 8 + DigestSize

// maxStreamSize caps the size a StreamEnd may declare, as an entry's.
const maxStreamSize = 1 << 62

// StreamEnd follows the chunks of a stream entry.
type StreamEnd struct {
	Index  uint32 // the entry's index in the offer
	Status Status // Sent, or Aborted (the sender's source failed)
	Code   Code   // 0 for Sent
	Reason string
	// Size is the number of bytes in the stream's chunks: for Sent, the
	// stream's size, which the receiver checks against what it counted;
	// for Aborted, what was sent before the source failed.
	Size   uint64
	Digest [DigestSize]byte // BLAKE3-256 of the chunks' bytes, for Sent
}

func (e StreamEnd) check() error {
	if err := (FileEnd{Status: e.Status, Code: e.Code, Reason: e.Reason}).check(); err != nil {
		return err
	}
	if e.Size > maxStreamSize {
		return fmt.Errorf("stream size %d: %w", e.Size, ErrTooLarge)
	}
	return nil
}

// WriteChunk writes p, 1 to MaxChunkLen bytes of a stream, as one Chunk
// frame: its header, then p, in two writes (p is not copied).
func WriteChunk(w io.Writer, p []byte) error {
	if err := WriteChunkHeader(w, len(p)); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// WriteStreamEnd writes e as one frame.
func WriteStreamEnd(w io.Writer, e StreamEnd) error {
	if err := e.check(); err != nil {
		return fmt.Errorf("writing stream-end: %w", err)
	}
	var b enc
	b.u32(e.Index)
	b.u8(uint8(e.Status))
	b.u16(uint16(e.Code))
	b.str(e.Reason)
	b.u64(e.Size)
	b.bytes(e.Digest[:])
	return writeFrame(w, TypeStreamEnd, b)
}

// ReadStreamNext reads the next frame of a stream entry. For a Chunk it
// returns the chunk's length, 1 to MaxChunkLen, and leaves its bytes in r
// for the caller, who must consume exactly that many before the next
// call; end is nil. For a StreamEnd it reads and validates the whole
// frame and returns it as end. Any other frame, an empty chunk, or a
// length over the cap is an error, reported before anything is read past
// the header.
func ReadStreamNext(r io.Reader) (n int, end *StreamEnd, err error) {
	t, n, err := readHeaderOf(r, TypeChunk, TypeStreamEnd)
	if err != nil {
		return 0, nil, err
	}
	if t == TypeChunk {
		if n == 0 {
			return 0, nil, fmt.Errorf("reading chunk: %w: empty", ErrMalformed)
		}
		return n, nil, nil
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, fmt.Errorf("reading stream-end payload: %w", unexpectedEOF(err))
	}
	d := dec[[]byte]{b: p}
	e := StreamEnd{Index: d.u32(), Status: Status(d.u8()), Code: Code(d.u16())}
	e.Reason = d.str("reason", MaxReasonLen)
	e.Size = d.u64()
	copy(e.Digest[:], d.take(DigestSize))
	if err := d.end(); err != nil {
		return 0, nil, fmt.Errorf("reading stream-end: %w", err)
	}
	if err := e.check(); err != nil {
		return 0, nil, fmt.Errorf("reading stream-end: %w", err)
	}
	return 0, &e, nil
}

// WriteChunkHeader writes the header of a Chunk frame of n bytes, 1 to
// MaxChunkLen; the caller writes the n bytes after it.
func WriteChunkHeader(w io.Writer, n int) error {
	if n <= 0 {
		return fmt.Errorf("writing chunk: %w: empty", ErrMalformed)
	}
	if n > MaxChunkLen {
		return fmt.Errorf("writing chunk: %d bytes (max %d): %w", n, MaxChunkLen, ErrTooLarge)
	}
	var hdr [HeaderSize]byte
	copy(hdr[:], Magic)
	hdr[headerVersionAt] = Major
	hdr[headerTypeAt] = byte(TypeChunk)
	binary.BigEndian.PutUint32(hdr[headerLenAt:], uint32(n))
	_, err := w.Write(hdr[:])
	return err
}

package proto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Protocol version spoken by this package. Peers with another Major refuse
// each other in the hello exchange; Minor only adds optional behaviour.
const (
	Major = 1
	Minor = 2
)

// MinorWait is the first minor version whose senders understand a Wait
// frame before the Answer; a receiver sends Wait only to them.
const MinorWait = 1

// Magic opens every frame.
const Magic = "LS"

// HeaderSize is the size of a frame header: magic, version, type, length.
const HeaderSize = 8

// Limits. Each is checked before memory of that size is allocated.
const (
	MaxNameLen      = 256      // agent name in a hello, bytes
	MaxPathLen      = 4096     // entry path, bytes
	MaxComponentLen = 255      // one path component, bytes
	MaxDepth        = 128      // path components per entry
	MaxEntries      = 100_000  // entries per offer
	MaxReasonLen    = 512      // human-readable reason, bytes
	MaxFrameLen     = 64 << 20 // payload of any frame, bytes
	maxHelloLen     = 4 + MaxNameLen
	maxFileEndLen   = 4 + 1 + 2 + 2 + MaxReasonLen + DigestSize
	maxDoneLen      = 0
	maxSmallFrame   = 1 << 10
	headerMagicLen  = len(Magic)
	headerVersionAt = 2
	headerTypeAt    = 3
	headerLenAt     = 4
)

// Type identifies a frame.
type Type uint8

// Frame types, in the order they appear on a connection.
const (
	TypeHello   Type = 1 // both directions, first
	TypeOffer   Type = 2 // sender → receiver
	TypeAnswer  Type = 3 // receiver → sender
	TypeFileEnd Type = 4 // sender → receiver, after each accepted file's bytes
	TypeDone    Type = 5 // sender → receiver, after the last file
	TypeReceipt Type = 6 // receiver → sender, last
	TypeWait    Type = 7 // receiver → sender, before the Answer: the owner decides (1.1)

	TypeChunk     Type = 8 // sender → receiver: bytes of a stream entry (1.2)
	TypeStreamEnd Type = 9 // sender → receiver: after a stream entry's chunks (1.2)
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeOffer:
		return "offer"
	case TypeAnswer:
		return "answer"
	case TypeFileEnd:
		return "file-end"
	case TypeDone:
		return "done"
	case TypeReceipt:
		return "receipt"
	case TypeWait:
		return "wait"
	case TypeChunk:
		return "chunk"
	case TypeStreamEnd:
		return "stream-end"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// maxPayload is the payload cap of each frame type.
func (t Type) maxPayload() int {
	switch t {
	case TypeHello:
		return maxHelloLen
	case TypeFileEnd:
		return maxFileEndLen
	case TypeDone:
		return maxDoneLen
	case TypeOffer, TypeAnswer, TypeReceipt:
		return MaxFrameLen
	case TypeChunk:
		return MaxChunkLen
	case TypeStreamEnd:
		return maxStreamEndLen
	}
	return maxSmallFrame
}

// writeFrame writes one frame with the given payload in a single Write.
func writeFrame(w io.Writer, t Type, payload []byte) error {
	if len(payload) > t.maxPayload() {
		return fmt.Errorf("writing %s: %d bytes: %w", t, len(payload), ErrTooLarge)
	}
	buf := make([]byte, HeaderSize, HeaderSize+len(payload))
	copy(buf, Magic)
	buf[headerVersionAt] = Major
	buf[headerTypeAt] = byte(t)
	binary.BigEndian.PutUint32(buf[headerLenAt:], uint32(len(payload)))
	buf = append(buf, payload...)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame of type want and returns its payload.
//
// The hello frame's layout is frozen across versions, so it is accepted
// whatever version its header carries; any other frame must carry Major.
// A clean end of stream before the first header byte returns io.EOF; an
// end inside a frame returns io.ErrUnexpectedEOF.
func readFrame(r io.Reader, want Type) ([]byte, error) {
	_, p, err := readFrameOf(r, want, 0)
	return p, err
}

// readFrameOf is readFrame for a frame of type want or also (when not
// zero); it returns the frame's type with its payload.
func readFrameOf(r io.Reader, want, also Type) (Type, []byte, error) {
	t, n, err := readHeaderOf(r, want, also)
	if err != nil || n == 0 {
		return t, nil, err
	}
	want = t
	if n <= 64<<10 {
		// Small enough to take at its word: one buffer of its size (a
		// bytes.Buffer reads in steps of at least 512 bytes, which made
		// a 39-byte file-end cost two kilobytes of garbage).
		p := make([]byte, n)
		got, err := io.ReadFull(r, p)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, nil, fmt.Errorf("reading %s payload: %d of %d bytes: %w", want, got, n, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return 0, nil, fmt.Errorf("reading %s payload: %w", want, err)
		}
		return t, p, nil
	}
	// Grow the buffer as bytes actually arrive rather than trusting the
	// declared length, so a peer that declares 64 MiB and sends nothing
	// costs us nothing.
	var buf bytes.Buffer
	got, err := buf.ReadFrom(io.LimitReader(r, int64(n)))
	if err != nil {
		return 0, nil, fmt.Errorf("reading %s payload: %w", want, err)
	}
	if got != int64(n) {
		return 0, nil, fmt.Errorf("reading %s payload: %d of %d bytes: %w", want, got, n, io.ErrUnexpectedEOF)
	}
	return t, buf.Bytes(), nil
}

// readHeader reads a frame header of type want and returns its payload
// length, checked against the type's cap.
func readHeader(r io.Reader, want Type) (int, error) {
	_, n, err := readHeaderOf(r, want, 0)
	return n, err
}

// readHeaderOf reads a frame header of type want or of type also (when
// not zero), and returns its type and payload length, checked against
// the type's cap.
func readHeaderOf(r io.Reader, want, also Type) (Type, int, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, fmt.Errorf("reading %s header: %w", want, err)
	}
	if string(hdr[:headerMagicLen]) != Magic {
		return 0, 0, fmt.Errorf("reading %s: %w", want, ErrBadMagic)
	}
	t := Type(hdr[headerTypeAt])
	if v := hdr[headerVersionAt]; v != Major && t != TypeHello {
		return 0, 0, fmt.Errorf("reading %s: frame of version %d, we speak %d: %w", want, v, Major, ErrVersionMismatch)
	}
	if t != want && (also == 0 || t != also) {
		return 0, 0, fmt.Errorf("reading %s: got %s: %w", want, t, ErrUnexpectedFrame)
	}
	n := binary.BigEndian.Uint32(hdr[headerLenAt:])
	if uint64(n) > uint64(t.maxPayload()) {
		return 0, 0, fmt.Errorf("reading %s: payload of %d bytes (max %d): %w", t, n, t.maxPayload(), ErrTooLarge)
	}
	return t, int(n), nil
}

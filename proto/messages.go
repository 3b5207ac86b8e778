package proto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Code says why something was refused or failed. It travels with a human
// reason; programs act on the code, people read the reason. Unknown codes
// from newer peers decode fine and print as "code N".
type Code uint16

// Codes.
const (
	CodeOK            Code = 0
	CodeVersion       Code = 1  // other protocol major version
	CodeBadName       Code = 2  // unsafe or invalid path
	CodeNoSpace       Code = 3  // not enough free space
	CodeTooLarge      Code = 4  // over a size limit of the receiver
	CodeTooMany       Code = 5  // too many entries, connections or transfers
	CodeDenied        Code = 6  // the receiver's policy refuses this sender
	CodeBusy          Code = 7  // try again later
	CodeExists        Code = 8  // already there, identical; skipped
	CodeIO            Code = 9  // the receiver could not write
	CodeDigest        Code = 10 // digest mismatch
	CodeSize          Code = 11 // size mismatch
	CodeSourceChanged Code = 12 // the sender's file changed or became unreadable
	CodeAborted       Code = 13 // the transfer ended before this entry was done
	CodeInternal      Code = 14
	CodeProtocol      Code = 15 // the peer broke the protocol
	CodeShuttingDown  Code = 16 // the receiver is stopping
)

var codeNames = map[Code]string{
	CodeOK:            "ok",
	CodeVersion:       "protocol version mismatch",
	CodeBadName:       "unsafe name",
	CodeNoSpace:       "not enough space",
	CodeTooLarge:      "too large",
	CodeTooMany:       "too many",
	CodeDenied:        "denied",
	CodeBusy:          "busy",
	CodeExists:        "already there",
	CodeIO:            "write failed",
	CodeDigest:        "digest mismatch",
	CodeSize:          "size mismatch",
	CodeSourceChanged: "source changed",
	CodeAborted:       "aborted",
	CodeInternal:      "internal error",
	CodeProtocol:      "protocol error",
	CodeShuttingDown:  "shutting down",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Hello opens a connection in each direction. Its layout is frozen for all
// versions so that peers of different majors can refuse each other clearly.
type Hello struct {
	Major, Minor uint8
	Name         string // agent display name, at most MaxNameLen bytes
}

// NewHello returns a hello for this package's version.
func NewHello(name string) Hello { return Hello{Major: Major, Minor: Minor, Name: name} }

// CheckVersion returns an error wrapping ErrVersionMismatch if h is of
// another major version than ours.
func (h Hello) CheckVersion() error {
	if h.Major != Major {
		return fmt.Errorf("peer speaks protocol %d.%d, we speak %d.%d: %w", h.Major, h.Minor, Major, Minor, ErrVersionMismatch)
	}
	return nil
}

// Kind is an offered entry's kind.
type Kind uint8

// Kinds.
const (
	KindFile Kind = 1
	KindDir  Kind = 2
	KindText Kind = 3 // a text message (1.2): its bytes are the message, not a file; see text.go

	// KindStream is a file whose size is known only at its end (1.2):
	// its bytes come in Chunk frames and a StreamEnd; see stream.go.
	KindStream Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindText:
		return "text"
	case KindStream:
		return "stream"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Entry is one offered file or directory.
type Entry struct {
	Path  string    // relative, slash-separated; structure checked by the codec, safety by the receiver
	Kind  Kind      // file or dir
	Size  uint64    // bytes; 0 for directories
	Mode  uint32    // permission bits only (0o777)
	MTime time.Time // modification time; zero means unknown
}

// Offer names the whole batch, in streaming order.
type Offer struct {
	Entries []Entry
}

// Status is an entry's state in an Answer, FileEnd or Receipt.
type Status uint8

// Answer statuses.
const (
	Accept Status = 1 // send the bytes from Offset
	Refuse Status = 2 // do not send; Code and Reason say why
	Skip   Status = 3 // do not send; already there (CodeExists)
)

// FileEnd statuses.
const (
	Sent    Status = 1 // all bytes sent; Digest covers the whole file
	Aborted Status = 2 // the sender could not read the file; bytes were padded
)

// Receipt statuses.
const (
	Saved   Status = 1 // saved as SavedAs
	Skipped Status = 2 // already there as SavedAs
	Refused Status = 3 // refused in the answer
	Failed  Status = 4 // accepted but not saved; Code and Reason say why
	// Delivered (1.2) is a text message the receiver took; SavedAs names
	// the file it also saved it as, or is empty.
	Delivered Status = 5
)

// Reply answers one offered entry.
type Reply struct {
	Status Status
	Offset uint64 // byte offset to stream from, for Accept
	Code   Code
	Reason string
}

// Answer is the receiver's one reply to an offer. A Code other than CodeOK
// refuses the whole batch and carries no Replies; otherwise Replies has one
// element per offered entry, in offer order.
type Answer struct {
	Code    Code
	Reason  string
	Replies []Reply
}

// FileEnd follows the bytes of each accepted file.
type FileEnd struct {
	Index  uint32 // the entry's index in the offer
	Status Status // Sent or Aborted
	Code   Code
	Reason string
	Digest [DigestSize]byte // of the whole file, from byte 0, for Sent
}

// Done follows the last FileEnd; after it the sender half-closes.
type Done struct{}

// Result is the receipt's verdict on one offered entry.
type Result struct {
	Status  Status
	SavedAs string // slash-separated path under the shared folder, for Saved and Skipped
	Code    Code
	Reason  string
}

// Receipt is the receiver's final word: one Result per offered entry, in
// offer order. Only a receipt means success.
type Receipt struct {
	Results []Result
	// Sender is the sender's id as the receiver authenticated it (from the
	// sender's certificate), so the sender can see whom the receiver
	// recorded; empty when the receiver did not learn it. At most
	// MaxIDLen bytes.
	Sender string
}

// MaxIDLen caps the sender id in a receipt.
const MaxIDLen = 128

// Encoded sizes without variable parts, used to bound counts.
const (
	entryMinLen  = 1 + 4 + 8 + 8 + 2 // an empty path is then told as such (see CheckPath)
	replyMinLen  = 1 + 8 + 2 + 2
	resultMinLen = 1 + 2 + 2 + 2
)

// --- hello ---

// WriteHello writes h as one frame.
func WriteHello(w io.Writer, h Hello) error {
	if len(h.Name) > MaxNameLen {
		return fmt.Errorf("writing hello: name of %d bytes: %w", len(h.Name), ErrTooLarge)
	}
	var e enc
	e.u8(h.Major)
	e.u8(h.Minor)
	e.str(h.Name)
	return writeFrame(w, TypeHello, e)
}

// ReadHello reads a hello frame. It does not check the version; call
// CheckVersion.
func ReadHello(r io.Reader) (Hello, error) {
	p, err := readFrame(r, TypeHello)
	if err != nil {
		return Hello{}, err
	}
	d := dec[[]byte]{b: p}
	h := Hello{Major: d.u8(), Minor: d.u8(), Name: d.str("name", MaxNameLen)}
	if err := d.end(); err != nil {
		return Hello{}, fmt.Errorf("reading hello: %w", err)
	}
	return h, nil
}

// --- offer ---

// CheckPath checks an entry path's structure: non-empty, at most
// MaxPathLen bytes, at most MaxDepth components of at most
// MaxComponentLen bytes, valid UTF-8. Whether the name is safe to create
// is for the receiver to decide.
func CheckPath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty path", ErrMalformed)
	}
	if len(p) > MaxPathLen {
		return fmt.Errorf("path of %d bytes (max %d): %w", len(p), MaxPathLen, ErrTooLarge)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: path is not valid UTF-8", ErrMalformed)
	}
	if n := strings.Count(p, "/") + 1; n > MaxDepth {
		return fmt.Errorf("path of %d components (max %d): %w", n, MaxDepth, ErrTooLarge)
	}
	for c := range strings.SplitSeq(p, "/") {
		if len(c) > MaxComponentLen {
			return fmt.Errorf("path component of %d bytes (max %d): %w", len(c), MaxComponentLen, ErrTooLarge)
		}
	}
	return nil
}

func (e Entry) check() error {
	if err := CheckPath(e.Path); err != nil {
		return err
	}
	switch e.Kind {
	case KindFile:
	case KindDir:
		if e.Size != 0 {
			return fmt.Errorf("%w: directory with size %d", ErrMalformed, e.Size)
		}
	case KindText:
		if err := checkTextSize(e.Size); err != nil {
			return err
		}
	case KindStream:
		if e.Size != 0 {
			return fmt.Errorf("%w: stream with size %d", ErrMalformed, e.Size)
		}
	default:
		return fmt.Errorf("%w: entry kind %d", ErrMalformed, e.Kind)
	}
	if e.Mode&^0o777 != 0 {
		return fmt.Errorf("%w: mode %#o has bits beyond permissions", ErrMalformed, e.Mode)
	}
	if e.Size > 1<<62 {
		return fmt.Errorf("size %d: %w", e.Size, ErrTooLarge)
	}
	return nil
}

func encodeTime(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

func decodeTime(v uint64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(v))
}

// WriteOffer writes o as one frame after checking every entry.
func WriteOffer(w io.Writer, o Offer) error {
	if len(o.Entries) > MaxEntries {
		return fmt.Errorf("writing offer: %d entries (max %d): %w", len(o.Entries), MaxEntries, ErrTooLarge)
	}
	var e enc
	e.u32(uint32(len(o.Entries)))
	for i, en := range o.Entries {
		if err := en.check(); err != nil {
			return fmt.Errorf("writing offer: entry %d: %w", i, err)
		}
		e.u8(uint8(en.Kind))
		e.u32(en.Mode)
		e.u64(en.Size)
		e.u64(encodeTime(en.MTime))
		e.str(en.Path)
	}
	if err := checkTexts(o.Entries); err != nil {
		return fmt.Errorf("writing offer: %w", err)
	}
	return writeFrame(w, TypeOffer, e)
}

// ReadOffer reads and validates an offer frame.
func ReadOffer(r io.Reader) (Offer, error) { return ReadOfferFunc(r, nil) }

// ReadOfferFunc reads and validates an offer frame. Once it knows the
// payload's declared length and entry count (the count is checked against
// MaxEntries and against what the length can hold), and before it
// allocates anything of that size, it calls reserve (if not nil); an error
// from reserve ends the read and is returned wrapped. The payload is held
// in one allocation of exactly its length, and the entries' paths are
// slices of it, not copies: the offer costs payloadLen plus
// OfferEntryCost bytes per entry.
func ReadOfferFunc(r io.Reader, reserve func(payloadLen, entries int) error) (Offer, error) {
	n, err := readHeader(r, TypeOffer)
	if err != nil {
		return Offer{}, err
	}
	var head [4]byte
	if n < len(head) {
		return Offer{}, fmt.Errorf("reading offer: %w: truncated (need 4 bytes, have %d)", ErrMalformed, n)
	}
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Offer{}, fmt.Errorf("reading offer payload: %w", unexpectedEOF(err))
	}
	entries := int(binary.BigEndian.Uint32(head[:]))
	if entries > MaxEntries {
		return Offer{}, fmt.Errorf("reading offer: %d entries (max %d): %w", entries, MaxEntries, ErrTooLarge)
	}
	rest := n - len(head)
	if uint64(entries)*entryMinLen > uint64(rest) {
		return Offer{}, fmt.Errorf("reading offer: %w: %d entries cannot fit in %d bytes", ErrMalformed, entries, rest)
	}
	if reserve != nil {
		if err := reserve(n, entries); err != nil {
			return Offer{}, fmt.Errorf("reading offer of %d bytes: %w", n, err)
		}
	}
	payload, err := readPayload(r, rest, reserve != nil)
	if err != nil {
		return Offer{}, fmt.Errorf("reading offer payload: %w", err)
	}
	d := dec[string]{b: payload}
	o := Offer{Entries: make([]Entry, 0, entries)}
	for i := 0; i < entries && d.err == nil; i++ {
		en := Entry{Kind: Kind(d.u8()), Mode: d.u32(), Size: d.u64(), MTime: decodeTime(d.u64())}
		en.Path = d.str("path", MaxPathLen)
		if d.err != nil {
			break
		}
		if err := en.check(); err != nil {
			return Offer{}, fmt.Errorf("reading offer: entry %d: %w", i, err)
		}
		o.Entries = append(o.Entries, en)
	}
	if err := d.end(); err != nil {
		return Offer{}, fmt.Errorf("reading offer: %w", err)
	}
	if err := checkTexts(o.Entries); err != nil {
		return Offer{}, fmt.Errorf("reading offer: %w", err)
	}
	return o, nil
}

// readPayload reads the n bytes of a payload into a string. If exact (the
// caller reserved n bytes), it allocates them at once and only them;
// otherwise the buffer grows as bytes arrive, so that a peer that declares
// a large payload and sends nothing costs nothing, and is copied once at
// the end.
func readPayload(r io.Reader, n int, exact bool) (string, error) {
	var got int64
	var err error
	var s string
	lr := io.LimitReader(r, int64(n))
	if exact {
		var sb strings.Builder
		sb.Grow(n)
		got, err = io.CopyBuffer(&sb, lr, make([]byte, min(max(n, 1), 32<<10)))
		s = sb.String()
	} else {
		var buf bytes.Buffer
		got, err = buf.ReadFrom(lr)
		s = buf.String()
	}
	if err != nil {
		return "", err
	}
	if got != int64(n) {
		return "", fmt.Errorf("%d of %d bytes: %w", got, n, io.ErrUnexpectedEOF)
	}
	return s, nil
}

// unexpectedEOF turns a clean end of stream inside a frame into
// io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// OfferEntryCost is the memory a decoded offer holds per entry beyond its
// payload: one Entry.
const OfferEntryCost = int(unsafe.Sizeof(Entry{}))

// --- answer ---

func checkReason(s string) error {
	if len(s) > MaxReasonLen {
		return fmt.Errorf("reason of %d bytes: %w", len(s), ErrTooLarge)
	}
	return nil
}

func (r Reply) check() error {
	switch r.Status {
	case Accept:
		if r.Code != CodeOK {
			return fmt.Errorf("%w: accepted with code %d", ErrMalformed, r.Code)
		}
	case Refuse, Skip:
		if r.Code == CodeOK || r.Offset != 0 {
			return fmt.Errorf("%w: refusal without a code or with an offset", ErrMalformed)
		}
	default:
		return fmt.Errorf("%w: reply status %d", ErrMalformed, r.Status)
	}
	return checkReason(r.Reason)
}

func (a Answer) check() error {
	if err := checkReason(a.Reason); err != nil {
		return err
	}
	if a.Code != CodeOK && len(a.Replies) != 0 {
		return fmt.Errorf("%w: batch refusal with per-entry replies", ErrMalformed)
	}
	if len(a.Replies) > MaxEntries {
		return fmt.Errorf("%d replies: %w", len(a.Replies), ErrTooLarge)
	}
	return nil
}

// WriteAnswer writes a as one frame.
func WriteAnswer(w io.Writer, a Answer) error {
	if err := a.check(); err != nil {
		return fmt.Errorf("writing answer: %w", err)
	}
	var e enc
	e.u16(uint16(a.Code))
	e.str(a.Reason)
	e.u32(uint32(len(a.Replies)))
	for i, r := range a.Replies {
		if err := r.check(); err != nil {
			return fmt.Errorf("writing answer: reply %d: %w", i, err)
		}
		e.u8(uint8(r.Status))
		e.u64(r.Offset)
		e.u16(uint16(r.Code))
		e.str(r.Reason)
	}
	return writeFrame(w, TypeAnswer, e)
}

// --- wait ---

// Wait tells the sender, before the Answer, that the receiver's owner
// decides on the offer: the Answer follows within Timeout (plus the time
// to write it). A receiver sends it only to senders whose hello says
// minor MinorWait or later, at most once per offer.
type Wait struct {
	Timeout time.Duration // at most MaxWait; carried in whole milliseconds
	Reason  string        // human-readable, at most MaxReasonLen bytes
}

// MaxWait caps a Wait's timeout.
const MaxWait = time.Hour

// WriteWait writes w as one frame.
func WriteWait(wr io.Writer, w Wait) error {
	if w.Timeout < 0 || w.Timeout > MaxWait {
		return fmt.Errorf("writing wait: timeout %v: %w", w.Timeout, ErrMalformed)
	}
	if len(w.Reason) > MaxReasonLen {
		return fmt.Errorf("writing wait: reason of %d bytes: %w", len(w.Reason), ErrTooLarge)
	}
	var e enc
	e.u32(uint32(w.Timeout / time.Millisecond))
	e.str(w.Reason)
	return writeFrame(wr, TypeWait, e)
}

func parseWait(p []byte) (Wait, error) {
	d := dec[[]byte]{b: p}
	ms := d.u32()
	w := Wait{Timeout: time.Duration(ms) * time.Millisecond, Reason: d.str("reason", MaxReasonLen)}
	if err := d.end(); err != nil {
		return Wait{}, fmt.Errorf("reading wait: %w", err)
	}
	if w.Timeout > MaxWait {
		return Wait{}, fmt.Errorf("reading wait: timeout %v over %v: %w", w.Timeout, MaxWait, ErrMalformed)
	}
	return w, nil
}

// ReadWait reads a wait frame.
func ReadWait(r io.Reader) (Wait, error) {
	p, err := readFrame(r, TypeWait)
	if err != nil {
		return Wait{}, err
	}
	return parseWait(p)
}

// ReadAnswerWaiting reads the receiver's reply to an offer: an Answer,
// or a Wait and then the Answer. onWait, if not nil, is called with the
// Wait before the Answer is read; a second Wait is an error.
func ReadAnswerWaiting(r io.Reader, onWait func(Wait)) (Answer, error) {
	t, p, err := readFrameOf(r, TypeAnswer, TypeWait)
	if err != nil {
		return Answer{}, err
	}
	if t == TypeWait {
		w, err := parseWait(p)
		if err != nil {
			return Answer{}, err
		}
		if onWait != nil {
			onWait(w)
		}
		if p, err = readFrame(r, TypeAnswer); err != nil {
			return Answer{}, err
		}
	}
	return parseAnswer(p)
}

// ReadAnswer reads and validates an answer frame.
func ReadAnswer(r io.Reader) (Answer, error) {
	p, err := readFrame(r, TypeAnswer)
	if err != nil {
		return Answer{}, err
	}
	return parseAnswer(p)
}

func parseAnswer(p []byte) (Answer, error) {
	d := dec[[]byte]{b: p}
	a := Answer{Code: Code(d.u16()), Reason: d.str("reason", MaxReasonLen)}
	n := d.count("replies", MaxEntries, replyMinLen)
	if n > 0 {
		a.Replies = make([]Reply, 0, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		rp := Reply{Status: Status(d.u8()), Offset: d.u64(), Code: Code(d.u16())}
		rp.Reason = d.str("reason", MaxReasonLen)
		if d.err != nil {
			break
		}
		if err := rp.check(); err != nil {
			return Answer{}, fmt.Errorf("reading answer: reply %d: %w", i, err)
		}
		a.Replies = append(a.Replies, rp)
	}
	if err := d.end(); err != nil {
		return Answer{}, fmt.Errorf("reading answer: %w", err)
	}
	if err := a.check(); err != nil {
		return Answer{}, fmt.Errorf("reading answer: %w", err)
	}
	return a, nil
}

// --- file end ---

func (f FileEnd) check() error {
	switch f.Status {
	case Sent:
		if f.Code != CodeOK {
			return fmt.Errorf("%w: sent with code %d", ErrMalformed, f.Code)
		}
	case Aborted:
		if f.Code == CodeOK {
			return fmt.Errorf("%w: aborted without a code", ErrMalformed)
		}
	default:
		return fmt.Errorf("%w: file-end status %d", ErrMalformed, f.Status)
	}
	return checkReason(f.Reason)
}

// WriteFileEnd writes f as one frame.
func WriteFileEnd(w io.Writer, f FileEnd) error {
	if err := f.check(); err != nil {
		return fmt.Errorf("writing file-end: %w", err)
	}
	var e enc
	e.u32(f.Index)
	e.u8(uint8(f.Status))
	e.u16(uint16(f.Code))
	e.str(f.Reason)
	e.bytes(f.Digest[:])
	return writeFrame(w, TypeFileEnd, e)
}

// ReadFileEnd reads and validates a file-end frame.
func ReadFileEnd(r io.Reader) (FileEnd, error) {
	p, err := readFrame(r, TypeFileEnd)
	if err != nil {
		return FileEnd{}, err
	}
	d := dec[[]byte]{b: p}
	f := FileEnd{Index: d.u32(), Status: Status(d.u8()), Code: Code(d.u16())}
	f.Reason = d.str("reason", MaxReasonLen)
	copy(f.Digest[:], d.take(DigestSize))
	if err := d.end(); err != nil {
		return FileEnd{}, fmt.Errorf("reading file-end: %w", err)
	}
	if err := f.check(); err != nil {
		return FileEnd{}, fmt.Errorf("reading file-end: %w", err)
	}
	return f, nil
}

// --- done ---

// WriteDone writes the done frame.
func WriteDone(w io.Writer) error { return writeFrame(w, TypeDone, nil) }

// ReadDone reads the done frame.
func ReadDone(r io.Reader) error {
	_, err := readFrame(r, TypeDone)
	return err
}

// --- receipt ---

func (r Result) check() error {
	switch r.Status {
	case Saved, Skipped:
		if r.SavedAs == "" {
			return fmt.Errorf("%w: saved without a path", ErrMalformed)
		}
	case Refused, Failed:
		if r.Code == CodeOK {
			return fmt.Errorf("%w: failure without a code", ErrMalformed)
		}
	case Delivered:
	default:
		return fmt.Errorf("%w: result status %d", ErrMalformed, r.Status)
	}
	if len(r.SavedAs) > MaxPathLen {
		return fmt.Errorf("saved-as path of %d bytes: %w", len(r.SavedAs), ErrTooLarge)
	}
	return checkReason(r.Reason)
}

// WriteReceipt writes rc as one frame.
func WriteReceipt(w io.Writer, rc Receipt) error {
	if len(rc.Results) > MaxEntries {
		return fmt.Errorf("writing receipt: %d results: %w", len(rc.Results), ErrTooLarge)
	}
	var e enc
	e.u32(uint32(len(rc.Results)))
	for i, r := range rc.Results {
		if err := r.check(); err != nil {
			return fmt.Errorf("writing receipt: result %d: %w", i, err)
		}
		e.u8(uint8(r.Status))
		e.u16(uint16(r.Code))
		e.str(r.SavedAs)
		e.str(r.Reason)
	}
	if len(rc.Sender) > MaxIDLen {
		return fmt.Errorf("writing receipt: sender id of %d bytes: %w", len(rc.Sender), ErrTooLarge)
	}
	e.str(rc.Sender)
	return writeFrame(w, TypeReceipt, e)
}

// ReadReceipt reads and validates a receipt frame.
func ReadReceipt(r io.Reader) (Receipt, error) {
	p, err := readFrame(r, TypeReceipt)
	if err != nil {
		return Receipt{}, err
	}
	d := dec[[]byte]{b: p}
	n := d.count("results", MaxEntries, resultMinLen)
	rc := Receipt{Results: make([]Result, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		res := Result{Status: Status(d.u8()), Code: Code(d.u16())}
		res.SavedAs = d.str("saved-as path", MaxPathLen)
		res.Reason = d.str("reason", MaxReasonLen)
		if d.err != nil {
			break
		}
		if err := res.check(); err != nil {
			return Receipt{}, fmt.Errorf("reading receipt: result %d: %w", i, err)
		}
		rc.Results = append(rc.Results, res)
	}
	rc.Sender = d.str("sender id", MaxIDLen)
	if err := d.end(); err != nil {
		return Receipt{}, fmt.Errorf("reading receipt: %w", err)
	}
	return rc, nil
}

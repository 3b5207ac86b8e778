package proto

import "errors"

// Decode errors. Every error returned by a Read function wraps one of these
// (or io.EOF / io.ErrUnexpectedEOF when the stream ends), so callers can
// tell a hostile or confused peer from a dropped connection with errors.Is.
var (
	// ErrBadMagic means the bytes where a frame should start are not a
	// lanshare frame: the peer is not lanshare, or sent more file bytes than
	// it declared.
	ErrBadMagic = errors.New("not a lanshare frame (bad magic)")
	// ErrVersionMismatch means the peer speaks another major protocol version.
	ErrVersionMismatch = errors.New("protocol version mismatch")
	// ErrUnexpectedFrame means a well-formed frame arrived out of order.
	ErrUnexpectedFrame = errors.New("unexpected frame type")
	// ErrTooLarge means a length or count exceeds its cap. It is reported
	// before anything of that size is allocated.
	ErrTooLarge = errors.New("length or count over limit")
	// ErrMalformed means a frame's payload does not decode: truncated,
	// trailing bytes, or a field with a value outside its domain.
	ErrMalformed = errors.New("malformed frame")
)

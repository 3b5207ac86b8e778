package proto

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// enc appends big-endian fields to a byte slice.
type enc []byte

func (e *enc) u8(v uint8)     { *e = append(*e, v) }
func (e *enc) u16(v uint16)   { *e = binary.BigEndian.AppendUint16(*e, v) }
func (e *enc) u32(v uint32)   { *e = binary.BigEndian.AppendUint32(*e, v) }
func (e *enc) u64(v uint64)   { *e = binary.BigEndian.AppendUint64(*e, v) }
func (e *enc) bytes(b []byte) { *e = append(*e, b...) }

// str appends a u16 length and the string; callers validate the length first.
func (e *enc) str(s string) {
	e.u16(uint16(len(s)))
	*e = append(*e, s...)
}

// dec reads big-endian fields from a payload, held as a byte slice or, for
// an offer, as one string whose decoded strings are slices of it rather
// than copies. The first failure sticks: later reads return zero values,
// and err reports the first problem.
type dec[S ~string | ~[]byte] struct {
	b   S
	err error
}

func (d *dec[S]) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *dec[S]) take(n int) S {
	var zero S
	if d.err != nil {
		return zero
	}
	if n > len(d.b) {
		d.fail("%w: truncated (need %d bytes, have %d)", ErrMalformed, n, len(d.b))
		return zero
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// be reads an n-byte big-endian unsigned integer.
func (d *dec[S]) be(n int) uint64 {
	v := d.take(n)
	if len(v) != n {
		return 0
	}
	var x uint64
	for i := range n {
		x = x<<8 | uint64(v[i])
	}
	return x
}

func (d *dec[S]) u8() uint8   { return uint8(d.be(1)) }
func (d *dec[S]) u16() uint16 { return uint16(d.be(2)) }
func (d *dec[S]) u32() uint32 { return uint32(d.be(4)) }
func (d *dec[S]) u64() uint64 { return d.be(8) }

// str reads a u16-length-prefixed UTF-8 string of at most max bytes. From
// a string payload it returns a slice of the payload, not a copy.
func (d *dec[S]) str(field string, max int) string {
	n := int(d.u16())
	if d.err != nil {
		return ""
	}
	if n > max {
		d.fail("%s of %d bytes (max %d): %w", field, n, max, ErrTooLarge)
		return ""
	}
	v := d.take(n)
	if d.err != nil {
		return ""
	}
	if !validUTF8(v) {
		d.fail("%w: %s is not valid UTF-8", ErrMalformed, field)
		return ""
	}
	return string(v)
}

func validUTF8[S ~string | ~[]byte](v S) bool {
	switch v := any(v).(type) {
	case string:
		return utf8.ValidString(v)
	case []byte:
		return utf8.Valid(v)
	}
	return utf8.ValidString(string(v))
}

// count reads a u32 element count, capped at max and at what the remaining
// payload can hold given each element's minimum encoded size.
func (d *dec[S]) count(field string, max, minSize int) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n) > uint64(max) {
		d.fail("%d %s (max %d): %w", n, field, max, ErrTooLarge)
		return 0
	}
	if uint64(n)*uint64(minSize) > uint64(len(d.b)) {
		d.fail("%w: %d %s cannot fit in %d bytes", ErrMalformed, n, field, len(d.b))
		return 0
	}
	return int(n)
}

// end reports trailing bytes as malformed and returns the first error.
func (d *dec[S]) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}

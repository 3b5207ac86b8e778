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

// dec reads big-endian fields from a payload. The first failure sticks:
// later reads return zero values, and err reports the first problem.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("%w: truncated (need %d bytes, have %d)", ErrMalformed, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *dec) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *dec) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *dec) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// str reads a u16-length-prefixed UTF-8 string of at most max bytes.
func (d *dec) str(field string, max int) string {
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
	if !utf8.Valid(v) {
		d.fail("%w: %s is not valid UTF-8", ErrMalformed, field)
		return ""
	}
	return string(v)
}

// count reads a u32 element count, capped at max and at what the remaining
// payload can hold given each element's minimum encoded size.
func (d *dec) count(field string, max, minSize int) int {
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
func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}

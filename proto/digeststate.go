package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"reflect"
	"runtime"
	"sync"
	"unsafe"

	"github.com/zeebo/blake3"
)

// ErrDigestState means a saved digest state cannot be used: it is
// damaged, or was saved by a build whose hash library keeps its state
// differently. The caller hashes the bytes again instead.
var ErrDigestState = errors.New("unusable digest state")

// A digest state lets a receiver resume a file's digest where a broken
// transfer left it, without reading the bytes it already has again.
//
// zeebo/blake3 has no way to save a Hasher's state, but its Hasher is
// plain data: integers and fixed arrays (the chunk counter, the stack of
// chaining values of the completed subtrees, the bytes of the unfinished
// chunks), no pointer, which is why its Clone is a copy of the struct.
// The state is that memory, copied out and back in. Since it only means
// something to the same library built for the same architecture, and the
// library trusts its own fields (a wrong length or output size makes it
// panic or allocate without bound), a state is checked before use: it is
// refused unless the Hasher type still holds no pointer and still has
// the fields read below (both checked once, by reflection); it is tagged
// with the architecture and the Hasher's size; the fields that size
// buffers or select the hash are checked (output size, key and flags
// those of NewDigest, buffer lengths within their arrays); and it carries
// the digest of the bytes it covers, which the restored hash must
// reproduce, so that a damaged state, or one laid out by another version
// of the library, is refused rather than used.
//
// Layout: "LSDS1" architecture NUL, uint32 big-endian size of the
// Hasher, the Hasher's bytes, the 32-byte digest so far.
const digestStateMagic = "LSDS1"

type hasherBytes = [unsafe.Sizeof(blake3.Hasher{})]byte

// field is where a field of blake3.Hasher lies in its bytes.
type field struct{ off, size uintptr }

// hasherLayout is what a state is checked against: the fields of
// blake3.Hasher that must be checked, and the bytes of a new Hasher.
type hasherLayout struct {
	ok                 bool
	size, flags, key   field  // must be as in a new Hasher
	buflen, bufn, lvls field  // lengths: h.len ≤ len(h.buf), h.stack.bufn ≤ len(h.stack.lvls)
	bufCap, lvlsCap    uint64 // the lengths of h.buf and h.stack.lvls
	fresh              hasherBytes
}

var layout = sync.OnceValue(func() hasherLayout {
	t := reflect.TypeFor[blake3.Hasher]()
	var l hasherLayout
	if !plain(t) {
		return l
	}
	find := func(kind reflect.Kind, names ...string) (field, reflect.Type, bool) {
		var off uintptr
		ft := t
		for _, n := range names {
			f, ok := ft.FieldByName(n)
			if !ok || ft.Kind() != reflect.Struct {
				return field{}, nil, false
			}
			off += f.Offset
			ft = f.Type
		}
		return field{off, ft.Size()}, ft, ft.Kind() == kind
	}
	var ok [6]bool
	var buf, lvls reflect.Type
	l.size, _, ok[0] = find(reflect.Int, "size")
	l.flags, _, ok[1] = find(reflect.Uint32, "h", "flags")
	l.key, _, ok[2] = find(reflect.Array, "h", "key")
	l.buflen, _, ok[3] = find(reflect.Uint64, "h", "len")
	l.bufn, _, ok[4] = find(reflect.Int, "h", "stack", "bufn")
	l.lvls, lvls, ok[5] = find(reflect.Array, "h", "stack", "lvls")
	if _, buf, _ = find(reflect.Array, "h", "buf"); buf == nil || lvls == nil || ok != [6]bool{true, true, true, true, true, true} ||
		lvls.Elem().Kind() != reflect.Uint8 || (l.bufn.size != 8 && l.bufn.size != 4) {
		return l
	}
	l.bufCap, l.lvlsCap = uint64(buf.Len()), uint64(lvls.Len())
	l.fresh = *(*hasherBytes)(unsafe.Pointer(blake3.New()))
	l.ok = true
	return l
})

// plain reports whether t holds no pointer.
func plain(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Array:
		return plain(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !plain(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// sane reports whether b, the bytes of a Hasher, can be used without
// the library misbehaving: see hasherLayout.
func (l *hasherLayout) sane(b *hasherBytes) bool {
	same := func(f field) bool { return bytes.Equal(b[f.off:f.off+f.size], l.fresh[f.off:f.off+f.size]) }
	num := func(f field) uint64 {
		if f.size == 4 {
			return uint64(binary.NativeEndian.Uint32(b[f.off : f.off+4]))
		}
		return binary.NativeEndian.Uint64(b[f.off : f.off+8])
	}
	if !same(l.size) || !same(l.flags) || !same(l.key) || num(l.buflen) > l.bufCap {
		return false
	}
	n := num(l.bufn)
	if n > l.lvlsCap {
		return false
	}
	for _, lvl := range b[l.lvls.off : l.lvls.off+uintptr(n)] {
		if lvl >= 64 {
			return false
		}
	}
	return true
}

func stateHeader() []byte {
	b := append([]byte(digestStateMagic), runtime.GOARCH...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint32(b, uint32(len(hasherBytes{})))
}

// AppendDigestState appends the state of h, a hash made by NewDigest or
// ResumeDigest, to b. h is not changed. It fails (ErrDigestState) when
// the hash library's state cannot be saved.
func AppendDigestState(b []byte, h hash.Hash) ([]byte, error) {
	bh, ok := h.(*blake3.Hasher)
	if l := layout(); !ok || !l.ok {
		return b, fmt.Errorf("%w: the hash cannot be saved", ErrDigestState)
	}
	b = append(b, stateHeader()...)
	b = append(b, (*hasherBytes)(unsafe.Pointer(bh))[:]...)
	// Sum changes a Hasher's buffers (not what it hashes to): sum a copy.
	return bh.Clone().Sum(b), nil
}

// ResumeDigest returns a hash that goes on from a state that
// AppendDigestState saved, as the saved hash would have, and the digest
// of the bytes the state covers. It fails with ErrDigestState when the
// state is damaged or of another build's library.
func ResumeDigest(state []byte) (h hash.Hash, sum [DigestSize]byte, err error) {
	head := stateHeader()
	l := layout()
	if !l.ok || len(state) != len(head)+len(hasherBytes{})+DigestSize || !bytes.HasPrefix(state, head) {
		return nil, sum, ErrDigestState
	}
	bh := new(blake3.Hasher)
	b := (*hasherBytes)(unsafe.Pointer(bh))
	copy(b[:], state[len(head):])
	if !l.sane(b) {
		return nil, sum, fmt.Errorf("%w: damaged", ErrDigestState)
	}
	copy(sum[:], state[len(state)-DigestSize:])
	defer func() {
		// The checks above leave the library nothing to trip on; should
		// a new version trip all the same, the state is refused.
		if recover() != nil {
			h, err = nil, fmt.Errorf("%w: the library refused it", ErrDigestState)
		}
	}()
	if got := bh.Clone().Sum(nil); !bytes.Equal(got, sum[:]) {
		return nil, sum, fmt.Errorf("%w: it does not hash to its digest", ErrDigestState)
	}
	return bh, sum, nil
}

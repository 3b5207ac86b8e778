package peer

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// The digest cache is the sender's half of a resume without reading the
// prefix again. The digest of a resumed file covers the whole file, and
// the receiver keeps the state of the bytes it has (see
// digestCheckpoint); the sender, to reach the same digest, had to read
// and hash those bytes again: most of a 1 GiB file for a cut at 90%,
// which kept a resumed send at twice the time its missing bytes take.
//
// So while a send hashes a large file it takes the digest state at
// aligned offsets (digestLog), and keeps them, when the file's stream
// ends, in a file of the config folder named after the source's stamp:
// its device, inode, size, mtime and change time (see partialStamp). A
// resume of that file from offset X goes on from the state at the
// largest kept offset at or below X, hashing at most digestStep bytes
// more once the stream's first chunk went out (the recent states are
// kept for every digestStep), or hashing on another goroutine from a
// state further back. The receiver resumes at any directAlign boundary:
// the sender does not need the same offsets, only one at or below.
//
// A state is used only while nothing can have changed the bytes it
// covers:
//   - It is taken of the bytes as this sender read them, and kept only if
//     the source's stamp was the same when it was opened and when its
//     stream ended.
//   - It is used only for a source whose stamp is the same now (Linux,
//     where the change time is set by the kernel alone, fine-grained
//     since 6.13 once it was read; elsewhere there is no cache).
//   - An entry's header and each state are checked (CRC-32C: they guard
//     against damage, and are checked before the first byte of a resume
//     goes out), and the state by proto.ResumeDigest (which checks the
//     digest the state must hash to); anything damaged, of another layout
//     or over the caps is ignored, and the file is hashed from its start.
//
// Should a state all the same be wrong (a bug, a file changed by a
// means that keeps its change time), the digest the receiver computes
// over the bytes it has cannot match: it refuses the file
// (proto.CodeDigest), drops its partial, and the retry sends the file
// whole; the sender drops the entry. A wrong state costs a retry, never
// a wrong file.
//
// Entries are written aside and renamed (no fsync: a torn entry fails
// its check), and the folder is kept under digestCacheMax by removing
// the entries written least recently (a send that used an entry writes
// it again when its stream ends).
//
// Entry layout: "LSDC2\n", the stamp (dev, inode, size, mtime, ctime:
// five uint64), uint16 count, then for each state in increasing offset:
// uint64 offset, uint32 length, uint32 CRC-32C (Castagnoli) of the state;
// the CRC-32C of all that; then the states (proto.AppendDigestState), one
// after the other. Integers are big-endian. A resume reads the header and
// the one state it uses, about 12 KiB, before its first byte goes out.

const (
	// digestCacheMin is the size from which a file's states are kept:
	// hashing a smaller one again costs less than 20 ms.
	digestCacheMin = 64 << 20
	// digestStep is the spacing of the states taken while hashing.
	digestStep = 1 << 20
	// digestRecent is how many of the last states taken are kept: the
	// receiver's offset at a cut lies within the bytes in flight (send
	// and receive buffers, the sender's read-ahead, the receiver's
	// writes), well within 32 MiB.
	digestRecent = 32
	// digestSpread is how many states are kept spread over the file, at
	// multiples of a power of two.
	digestSpread = 32
	// digestCacheMax bounds the cache folder.
	digestCacheMax = 4 << 20
	// digestStateMax bounds one state's length (about 10.9 KiB on
	// 64-bit systems with zeebo/blake3 v0.2.4).
	digestStateMax = 16 << 10
	// digestEntryMax bounds one entry's size.
	digestEntryMax = digestHeaderMax + (digestRecent+digestSpread)*digestStateMax
	// digestHeaderMax bounds an entry's header.
	digestHeaderMax = len(digestCacheMagic) + 5*8 + 2 + (digestRecent+digestSpread)*16 + 4
	// digestCacheDir is the cache's folder in the config folder.
	digestCacheDir = "digests"
)

const digestCacheMagic = "LSDC2\n"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errDigestCache means a cache entry cannot be used: the caller hashes
// the file instead.
var errDigestCache = errors.New("unusable digest cache entry")

// digestMark is the digest state of a file's first at bytes.
type digestMark struct {
	at    uint64
	state []byte // proto.AppendDigestState
}

// digestCache is a folder of digest cache entries. A nil *digestCache
// keeps nothing and finds nothing.
type digestCache struct {
	dir string
	max int64 // bytes of all entries
}

// openDigestCache returns the cache in configDir, or nil for "".
func openDigestCache(configDir string) *digestCache {
	if configDir == "" {
		return nil
	}
	return &digestCache{dir: filepath.Join(configDir, digestCacheDir), max: digestCacheMax}
}

// entryName is the file name of st's entry.
func entryName(st partialStamp) string {
	h := sha256.New()
	fmt.Fprintf(h, "lanshare digest cache 1\x00%d\x00%d\x00%d\x00%d\x00%d", st.Dev, st.Ino, st.Size, st.MTime, st.CTime)
	return hex.EncodeToString(h.Sum(nil)[:16]) + ".dc"
}

// entryRow is a state's line in an entry's header.
type entryRow struct {
	at       uint64
	len, crc uint32
}

// openEntry opens st's entry, checks its header and returns it, with the
// offset of its first state in the file; the caller closes the file. The
// error wraps errDigestCache, or is fs.ErrNotExist when there is none.
// (It does not mark the entry as used: no write before a resume's first
// byte; the send saves the entry again when its stream ends.)
func (c *digestCache) openEntry(st partialStamp) (*os.File, []entryRow, int64, error) {
	if c == nil {
		return nil, nil, 0, fs.ErrNotExist
	}
	p := filepath.Join(c.dir, entryName(st))
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	head := make([]byte, min(fi.Size(), int64(digestHeaderMax)))
	if _, err := f.ReadAt(head, 0); err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	rows, start, err := parseHeader(head, st, fi.Size())
	if err != nil {
		f.Close()
		return nil, nil, 0, err
	}
	return f, rows, start, nil
}

// parseHeader checks an entry's header, the first bytes of an entry of
// size bytes for the file whose stamp is st, and returns its rows and the
// offset of the first state.
func parseHeader(b []byte, st partialStamp, size int64) ([]entryRow, int64, error) {
	bad := func(why string) ([]entryRow, int64, error) { return nil, 0, fmt.Errorf("%w: %s", errDigestCache, why) }
	fixed := len(digestCacheMagic) + 5*8 + 2
	if size > int64(digestEntryMax) {
		return bad("too large")
	}
	if len(b) < fixed+4 || !bytes.HasPrefix(b, []byte(digestCacheMagic)) {
		return bad("not an entry")
	}
	n := int(binary.BigEndian.Uint16(b[fixed-2:]))
	if n > digestRecent+digestSpread {
		return bad("too many states")
	}
	end := fixed + 16*n
	if len(b) < end+4 {
		return bad("cut short")
	}
	if crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:]) {
		return bad("damaged")
	}
	if !bytes.Equal(b[len(digestCacheMagic):len(digestCacheMagic)+5*8], appendStamp(nil, st)) {
		return bad("of another file")
	}
	rows := make([]entryRow, n)
	total := int64(end + 4)
	for i := range rows {
		r := b[fixed+16*i:]
		rows[i] = entryRow{at: binary.BigEndian.Uint64(r), len: binary.BigEndian.Uint32(r[8:]), crc: binary.BigEndian.Uint32(r[12:])}
		if rows[i].len > digestStateMax {
			return bad("state too long")
		}
		if rows[i].at == 0 || rows[i].at > uint64(st.Size) || (i > 0 && rows[i].at <= rows[i-1].at) {
			return bad("offsets out of order")
		}
		total += int64(rows[i].len)
	}
	if total != size {
		return bad("of the wrong size")
	}
	return rows, int64(end + 4), nil
}

// readState reads and checks the state of row, which lies at off in f.
func readState(f *os.File, row entryRow, off int64) ([]byte, error) {
	b := make([]byte, row.len)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, err
	}
	if crc32.Checksum(b, castagnoli) != row.crc {
		return nil, fmt.Errorf("%w: a state is damaged", errDigestCache)
	}
	return b, nil
}

// load returns all the states kept for the file whose stamp is st, in
// increasing offset; the error is openEntry's, or wraps errDigestCache.
func (c *digestCache) load(st partialStamp) ([]digestMark, error) {
	f, rows, off, err := c.openEntry(st)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	marks := make([]digestMark, len(rows))
	for i, r := range rows {
		if marks[i].state, err = readState(f, r, off); err != nil {
			return nil, err
		}
		marks[i].at = r.at
		off += int64(r.len)
	}
	return marks, nil
}

// encodeEntry returns the entry of marks for the file whose stamp is st.
func encodeEntry(st partialStamp, marks []digestMark) []byte {
	b := append([]byte(digestCacheMagic), appendStamp(nil, st)...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(marks)))
	for _, m := range marks {
		b = binary.BigEndian.AppendUint64(b, m.at)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.state)))
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(m.state, castagnoli))
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	for _, m := range marks {
		b = append(b, m.state...)
	}
	return b
}

func appendStamp(b []byte, st partialStamp) []byte {
	for _, v := range []uint64{st.Dev, st.Ino, uint64(st.Size), uint64(st.MTime), uint64(st.CTime)} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// resume returns the hash of the file's first from bytes, from the state
// kept at the largest offset at or below at; or an error when there is
// none it can use. It reads the entry's header and that state only.
func (c *digestCache) resume(st partialStamp, at uint64) (h hash.Hash, from uint64, err error) {
	f, rows, off, err := c.openEntry(st)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	best := -1
	for i, r := range rows {
		if r.at <= at {
			best = i
		}
	}
	if best < 0 {
		return nil, 0, fmt.Errorf("%w: no state at or below %d", errDigestCache, at)
	}
	for _, r := range rows[:best] {
		off += int64(r.len)
	}
	state, err := readState(f, rows[best], off)
	if err != nil {
		return nil, 0, err
	}
	if h, _, err = proto.ResumeDigest(state); err != nil {
		// It passed its check, so it was written so: by another build.
		return nil, 0, fmt.Errorf("%w: %w", errDigestCache, err)
	}
	return h, rows[best].at, nil
}

// save keeps marks, in increasing offset, for the file whose stamp is st,
// replacing its entry, and then removes the entries written least recently
// until the folder is under its cap.
func (c *digestCache) save(st partialStamp, marks []digestMark) error {
	if c == nil || len(marks) == 0 {
		return nil
	}
	if len(marks) > digestRecent+digestSpread {
		return fmt.Errorf("%w: %d states", errDigestCache, len(marks))
	}
	for _, m := range marks {
		if len(m.state) > digestStateMax {
			return fmt.Errorf("%w: a state of %d bytes", errDigestCache, len(m.state))
		}
	}
	b := encodeEntry(st, marks)
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(c.dir, "tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(c.dir, entryName(st)))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	c.trim()
	return nil
}

// drop removes st's entry.
func (c *digestCache) drop(st partialStamp) {
	if c != nil {
		_ = os.Remove(filepath.Join(c.dir, entryName(st)))
	}
}

// trim removes the entries written least recently until the folder holds at
// most c.max bytes, and temporary files left by a process that died
// while writing one.
func (c *digestCache) trim() {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type entry struct {
		name string
		size int64
		used time.Time
	}
	var es []entry
	var total int64
	for _, de := range des {
		fi, err := de.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if strings.HasPrefix(de.Name(), "tmp-") {
			if time.Since(fi.ModTime()) > time.Minute {
				_ = os.Remove(filepath.Join(c.dir, de.Name()))
			}
			continue
		}
		es = append(es, entry{de.Name(), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	slices.SortFunc(es, func(a, b entry) int { return a.used.Compare(b.used) })
	for _, e := range es {
		if total <= c.max {
			return
		}
		if os.Remove(filepath.Join(c.dir, e.name)) == nil {
			total -= e.size
		}
	}
}

// digestLog takes the digest states of a file at every digestStep while
// it is hashed, keeping the last digestRecent of them and those at
// multiples of spread (a power of two, at most digestSpread of them).
// One goroutine at a time may use it.
type digestLog struct {
	spread uint64
	kept   []digestMark // at multiples of spread, and older ones to keep
	recent []digestMark // a ring of the last ones taken
	next   int          // where the next recent one goes
}

// newDigestLog returns a log for a file of size bytes.
func newDigestLog(size uint64) *digestLog {
	spread := uint64(digestStep)
	for size/spread > digestSpread {
		spread <<= 1
	}
	return &digestLog{spread: spread}
}

// keep adds the states of old, an older entry of the same file, at
// multiples of the spread that the log has not taken itself: those
// below where a resume started hashing.
func (l *digestLog) keep(old []digestMark) {
	for _, m := range old {
		if m.at%l.spread == 0 && !slices.ContainsFunc(l.kept, func(k digestMark) bool { return k.at == m.at }) {
			l.kept = append(l.kept, m)
		}
	}
}

// take records the state of h, the hash of the file's first at bytes, if
// at is a multiple of digestStep.
func (l *digestLog) take(at uint64, h hash.Hash) {
	if l == nil || at%digestStep != 0 || at == 0 {
		return
	}
	if at%l.spread == 0 {
		for _, m := range l.kept {
			if m.at == at {
				return
			}
		}
		if state, err := proto.AppendDigestState(nil, h); err == nil {
			l.kept = append(l.kept, digestMark{at: at, state: state})
		}
		return
	}
	var buf []byte
	if l.next < len(l.recent) {
		buf = l.recent[l.next].state[:0] // the oldest: its memory is reused
	}
	state, err := proto.AppendDigestState(buf, h)
	if err != nil {
		return
	}
	if l.next < len(l.recent) {
		l.recent[l.next] = digestMark{at: at, state: state}
	} else {
		l.recent = append(l.recent, digestMark{at: at, state: state})
	}
	l.next = (l.next + 1) % digestRecent
}

// marks returns the states to keep, in increasing offset.
func (l *digestLog) marks() []digestMark {
	if l == nil {
		return nil
	}
	out := slices.Concat(l.kept, l.recent)
	slices.SortFunc(out, func(a, b digestMark) int { return cmp.Compare(a.at, b.at) })
	return slices.CompactFunc(out, func(a, b digestMark) bool { return a.at == b.at })
}

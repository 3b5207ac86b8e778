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
	"io"
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
// before the stream's first (the recent states are kept for every
// digestStep), or hashing on another goroutine from a state further
// back. The receiver resumes at any directAlign boundary: the sender
// does not need the same offsets, only one at or below.
//
// A state is used only while nothing can have changed the bytes it
// covers:
//   - It is taken of the bytes as this sender read them, and kept only if
//     the source's stamp was the same when it was opened and when its
//     stream ended.
//   - It is used only for a source whose stamp is the same now (Linux,
//     where the change time is set by the kernel alone, fine-grained
//     since 6.13 once it was read; elsewhere there is no cache).
//   - An entry is checked whole (a CRC-32C over it: it guards against
//     damage, and is read before the first byte of a resume goes out)
//     and each state by proto.ResumeDigest (which checks the digest the
//     state must hash to); anything damaged, of another layout or over
//     the caps is ignored, and the file is hashed from its start.
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
// the entries used least recently (a use touches the entry's mtime).
//
// Entry layout: "LSDC1\n", the stamp (dev, inode, size, mtime, ctime:
// five uint64, big-endian), uint16 count, then for each state in
// increasing offset: uint64 offset, uint32 length, the state
// (proto.AppendDigestState); then the CRC-32C (Castagnoli) of everything
// before, uint32 big-endian.

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
	digestEntryMax = len(digestCacheMagic) + 5*8 + 2 + (digestRecent+digestSpread)*(12+digestStateMax) + 4
	// digestCacheDir is the cache's folder in the config folder.
	digestCacheDir = "digests"
)

const digestCacheMagic = "LSDC1\n"

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

// load returns the states kept for the file whose stamp is st, in
// increasing offset, or an error wrapping errDigestCache (fs.ErrNotExist
// when there is none). A use marks the entry as recent.
func (c *digestCache) load(st partialStamp) ([]digestMark, error) {
	if c == nil {
		return nil, fs.ErrNotExist
	}
	p := filepath.Join(c.dir, entryName(st))
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(digestEntryMax)+1))
	if err != nil {
		return nil, err
	}
	marks, err := parseEntry(b, st)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now)
	return marks, nil
}

// parseEntry checks an entry and returns its states.
func parseEntry(b []byte, st partialStamp) ([]digestMark, error) {
	bad := func(why string) ([]digestMark, error) { return nil, fmt.Errorf("%w: %s", errDigestCache, why) }
	if len(b) > digestEntryMax {
		return bad("too large")
	}
	if len(b) < len(digestCacheMagic)+5*8+2+4 || !bytes.HasPrefix(b, []byte(digestCacheMagic)) {
		return bad("not an entry")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return bad("damaged")
	}
	body = body[len(digestCacheMagic):]
	if !bytes.Equal(body[:5*8], appendStamp(nil, st)) {
		return bad("of another file")
	}
	body = body[5*8:]
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	if n > digestRecent+digestSpread {
		return bad("too many states")
	}
	marks := make([]digestMark, 0, n)
	for range n {
		if len(body) < 12 {
			return bad("cut short")
		}
		at, l := binary.BigEndian.Uint64(body), binary.BigEndian.Uint32(body[8:])
		body = body[12:]
		if l > digestStateMax || uint64(l) > uint64(len(body)) {
			return bad("state too long")
		}
		if at == 0 || at > uint64(st.Size) || (len(marks) > 0 && at <= marks[len(marks)-1].at) {
			return bad("offsets out of order")
		}
		marks = append(marks, digestMark{at: at, state: body[:l:l]})
		body = body[l:]
	}
	if len(body) != 0 {
		return bad("trailing bytes")
	}
	return marks, nil
}

func appendStamp(b []byte, st partialStamp) []byte {
	for _, v := range []uint64{st.Dev, st.Ino, uint64(st.Size), uint64(st.MTime), uint64(st.CTime)} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

// resume returns the hash of the file's first from bytes, from the state
// kept at the largest offset at or below at, and the states it took it
// from; or an error when there is none it can use.
func (c *digestCache) resume(st partialStamp, at uint64) (h hash.Hash, from uint64, marks []digestMark, err error) {
	marks, err = c.load(st)
	if err != nil {
		return nil, 0, nil, err
	}
	for i := len(marks) - 1; i >= 0; i-- {
		m := marks[i]
		if m.at > at {
			continue
		}
		h, _, err := proto.ResumeDigest(m.state)
		if err != nil {
			// The entry passed its check, so it was written so: by
			// another build. None of its states is of use.
			return nil, 0, nil, fmt.Errorf("%w: %w", errDigestCache, err)
		}
		return h, m.at, marks, nil
	}
	return nil, 0, marks, fmt.Errorf("%w: no state at or below %d", errDigestCache, at)
}

// save keeps marks, in increasing offset, for the file whose stamp is st,
// replacing its entry, and then removes the entries used least recently
// until the folder is under its cap.
func (c *digestCache) save(st partialStamp, marks []digestMark) error {
	if c == nil || len(marks) == 0 {
		return nil
	}
	if len(marks) > digestRecent+digestSpread {
		return fmt.Errorf("%w: %d states", errDigestCache, len(marks))
	}
	b := append([]byte(digestCacheMagic), appendStamp(nil, st)...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(marks)))
	for _, m := range marks {
		if len(m.state) > digestStateMax {
			return fmt.Errorf("%w: a state of %d bytes", errDigestCache, len(m.state))
		}
		b = binary.BigEndian.AppendUint64(b, m.at)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.state)))
		b = append(b, m.state...)
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
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

// trim removes the entries used least recently until the folder holds at
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

// newDigestLog returns a log for a file of size bytes, keeping the
// states of keep (those of an entry for the same file) at multiples of
// the spread.
func newDigestLog(size uint64, keep []digestMark) *digestLog {
	spread := uint64(digestStep)
	for size/spread > digestSpread {
		spread <<= 1
	}
	l := &digestLog{spread: spread}
	for _, m := range keep {
		if m.at%spread == 0 {
			l.kept = append(l.kept, m)
		}
	}
	return l
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

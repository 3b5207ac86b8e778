package peer

import (
	"errors"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/lanshare/lanshare/proto"
)

const (
	// pipelineMin is the file size from which a sink writes on goroutines
	// of its own, so that reading the network and hashing overlap with
	// writing the disk. Smaller files are not worth a goroutine.
	pipelineMin = 1 << 20
	// directMin is the file size from which a sink writes with direct I/O
	// where the file system allows it: the bytes go from our buffers to
	// the disk, without a copy into the page cache (which costs as much
	// CPU as hashing them) and without a long fsync at the end, since the
	// disk is kept busy while the bytes arrive. While the disk falls
	// behind, bytes go through the page cache instead (see next).
	directMin = 8 << 20
	// sinkChunk is the size of a pipelined sink's buffers, and so of its
	// writes: large enough to keep a disk efficient.
	sinkChunk = 1 << 20
	// sinkFirst is the size of a pipelined sink's first block: the file's
	// first bytes (a resume's first new ones) are written once that much
	// arrived, not a whole chunk. A multiple of directAlign.
	sinkFirst = 64 << 10
	// sinkBuffers is how many buffers a pipelined sink has: the reader
	// fills one while the writers have the others in flight.
	sinkBuffers = 6
	// directWriters is how many direct writes a sink keeps in flight.
	// One: a direct write that extends the file, as a sink's do, holds
	// the file's lock and returns once on the disk (ext4, XFS), so more
	// writers only queue on the lock, each holding a P and a thread
	// meanwhile. Measured on 2 cores, 1 GiB over loopback: one writer
	// took 0.1 CPU-s less of the receiver, with a fifth fewer context
	// switches, than four.
	directWriters = 1
	// directAlign is the alignment of memory, length and file offset that
	// direct writes need: a page, which covers the usual block sizes.
	directAlign = 4096
)

// sink hashes the bytes of one received file and writes them to w (which
// may be nil, to discard after a write error). Call fill, then close,
// which returns the digest and the first write error.
// For a small file, hashing and writing run on the caller's goroutine.
// For a large file they run on the sink's own goroutines, in a pipeline:
// the caller reads the network into a buffer, one goroutine hashes the
// filled buffers in order, and writers write the hashed ones, so that the
// reading goroutine, which also decrypts, keeps the socket drained while
// the previous buffer is hashed on another core.
type sink struct {
	w io.Writer
	h hash.Hash

	cur []byte // unpipelined: the one buffer
	off int64  // offset in the file of the next byte to write
	// started is set once fill took its first buffer (see sinkFirst).
	started bool
	hashTo  int64 // offset in the file of the next byte to hash

	// Pipelined mode only.
	taken  int            // buffers taken from sinkChunksFree
	free   chan block     // buffers to read into
	full   chan block     // filled buffers, to the hasher
	hashq  chan block     // hashed buffers, to the writers
	wg     sync.WaitGroup // the hasher and the writers
	at     *os.File       // w, when blocks can be written at their offsets
	direct bool           // at has direct I/O on
	tail   block          // the last, partial block of a direct file
	mu     sync.Mutex
	werr   error

	// Direct mode only: when the disk stalls (see next).
	cached  *os.File // the file opened again without direct I/O
	noCache bool     // it could not be
	stalled bool     // no buffer came free for spillAfter, and none since

	// unspare gives back the spare P a direct sink holds while it
	// writes (see headroom.go); nil otherwise.
	unspare func()
}

// errDirectOff means direct I/O could not be turned off for the buffered
// write of a file's tail.
var errDirectOff = errors.New("cannot turn off direct I/O")

// block is a filled buffer and its offset in the file. In a pipelined
// sink, the hasher hashes its first hash bytes; a tail block is only
// hashed (close writes it).
type block struct {
	b    []byte
	off  int64
	hash int
	tail bool
}

// newSink returns a sink for the n bytes of a file from offset off on,
// hashing into h (which holds the bytes before off). Without a pipeline
// the bytes go to w.Write, which must be at off already. Small files are
// read into buf, which the caller reuses from file to file.
func newSink(w io.Writer, h hash.Hash, off int64, n uint64, buf []byte) *sink {
	s := &sink{w: w, h: h, off: off, hashTo: off}
	if n < pipelineMin {
		s.cur = buf
		return s
	}
	// As many buffers as the file has chunks, up to sinkBuffers, from a
	// pool: a new 1 MiB buffer costs page faults and clearing, which
	// showed in the time of files of a few MiB.
	nbuf := takeSinkChunks(int(min(sinkBuffers, (n+sinkChunk-1)/sinkChunk)))
	if nbuf == 0 {
		// Other sinks hold every buffer the process allows: this file
		// goes through buf, without a pipeline.
		s.cur = buf
		return s
	}
	s.taken = nbuf
	s.free = make(chan block, nbuf)
	s.full = make(chan block, nbuf)
	s.hashq = make(chan block, nbuf)
	for range nbuf {
		s.free <- block{b: getChunk()}
	}
	writers := 1
	if f, ok := w.(*os.File); ok {
		s.at = f
		if n >= directMin && off%directAlign == 0 && setDirect(f, true) {
			s.direct = true
			writers = directWriters
			s.unspare = spareP.hold() // see headroom.go
		}
	}
	var writing sync.WaitGroup
	for range writers {
		writing.Add(1)
		go s.run(&writing) // owned by s: close waits for it
	}
	s.wg.Add(1)
	go s.hashAll(&writing) // owned by s: close waits for it
	return s
}

// hashAll hashes the filled buffers in order and hands them to the
// writers; once the buffers end, it waits for the writers.
func (s *sink) hashAll(writing *sync.WaitGroup) {
	defer s.wg.Done()
	for b := range s.full {
		s.h.Write(b.b[:b.hash])
		if !b.tail {
			s.hashq <- b
		}
	}
	close(s.hashq)
	writing.Wait()
}

func (s *sink) run(writing *sync.WaitGroup) {
	defer writing.Done()
	for b := range s.hashq {
		s.store(b)
		s.free <- block{b: b.b[:cap(b.b)]}
	}
}

// storeHook, when set (by tests), runs before each write of a block by
// the sink's writers.
var storeHook func()

// store writes b, unless an earlier write failed.
func (s *sink) store(b block) {
	if storeHook != nil {
		storeHook()
	}
	if s.failed() {
		return
	}
	var err error
	if s.at == nil {
		_, err = s.w.Write(b.b)
	} else {
		_, err = s.at.WriteAt(b.b, b.off)
		if err != nil && s.direct && directRefused(err) && setDirect(s.at, false) {
			// The file system took the flag but not the write: the
			// rest goes through the page cache.
			_, err = s.at.WriteAt(b.b, b.off)
		}
	}
	s.setErr(err)
}

// setErr keeps err if it is the first write error.
func (s *sink) setErr(err error) {
	if err != nil {
		s.mu.Lock()
		if s.werr == nil {
			s.werr = err
		}
		s.mu.Unlock()
	}
}

func (s *sink) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w == nil || s.werr != nil
}

// fill reads the file's n bytes from r, hashes them and writes them. It
// returns only a read error; write errors are kept for close.
func (s *sink) fill(r io.Reader, n uint64) error {
	inline := s.free == nil // else the hasher hashes what write hands over
	for n > 0 {
		buf := s.next()
		buf = buf[:min(uint64(len(buf)), n)]
		if !inline && !s.started {
			buf = buf[:min(len(buf), sinkFirst)]
		}
		s.started = true
		// Read into the rest of the buffer, which is larger than a
		// bufio.Reader's and so bypasses it. Should the stream break,
		// the digest covers the bytes up to the last directAlign
		// boundary of the file they reach, from which a resume can go on
		// with direct I/O (see hashed). A small file's bytes are hashed
		// as soon as they arrive, while they are in the CPU's cache.
		hashed := 0
		for got := 0; got < len(buf); {
			k, err := r.Read(buf[got:])
			got += k
			to := int((s.off+int64(got))&^(directAlign-1) - s.off)
			if inline && to > hashed {
				s.h.Write(buf[hashed:to])
				hashed = to
			}
			if err != nil && got < len(buf) {
				// Keep what arrived: a resume continues after it.
				hashed = max(hashed, to)
				s.hashTo = s.off + int64(hashed)
				if got > 0 {
					s.write(buf[:got], hashed)
				}
				return err
			}
		}
		if inline {
			s.h.Write(buf[hashed:])
		}
		s.write(buf, len(buf))
		s.hashTo = s.off
		n -= uint64(len(buf))
	}
	return nil
}

// write hands over a filled buffer, of which the first hash bytes are to
// be hashed (by the hasher, in a pipelined sink: the others were already).
func (s *sink) write(b []byte, hash int) {
	if s.free == nil {
		if s.w != nil && s.werr == nil {
			_, s.werr = s.w.Write(b)
		}
		s.off += int64(len(b))
		return
	}
	blk := block{b: b, off: s.off, hash: hash}
	s.off += int64(len(b))
	if s.direct && len(b)%directAlign != 0 {
		// Direct writes take whole blocks: the tail is written by close,
		// buffered, after the others; the hasher only hashes it.
		s.tail = blk
		blk.tail = true
	}
	s.full <- blk
}

// spillAfter is how long a direct sink's reader waits for a buffer before
// it takes the disk for stalled: a writer normally frees one every
// millisecond or two.
const spillAfter = 20 * time.Millisecond

// next returns a buffer to read into: the one buffer of a small file, or
// a free one. In direct mode, when none comes free for spillAfter, the
// disk has stalled (they can, for most of a second), and the reader
// writes blocks that wait for a writer through the page cache itself, as
// a plain write would, until a writer catches up: the bytes wait in
// memory rather than the network waiting for the disk. A disk that is
// merely slower than the network is waited for, as then spilling would
// only cost CPU now and a longer fsync at the end.
func (s *sink) next() []byte {
	if s.free == nil {
		return s.cur
	}
	select {
	case b := <-s.free:
		s.stalled = false
		return b.b
	default:
	}
	if !s.direct || s.noCache {
		return (<-s.free).b
	}
	if !s.stalled {
		t := time.NewTimer(spillAfter)
		select {
		case b := <-s.free:
			t.Stop()
			return b.b
		case <-t.C:
			s.stalled = true
		}
	}
	select {
	case b := <-s.free:
		s.stalled = false
		return b.b
	case blk := <-s.hashq:
		if s.spill(blk) {
			return blk.b[:cap(blk.b)]
		}
		s.hashq <- blk // back to the writers
		return (<-s.free).b
	}
}

// spill writes blk through the page cache. It reports false when the
// file cannot be opened again without direct I/O.
func (s *sink) spill(blk block) bool {
	if s.cached == nil {
		if s.noCache {
			return false
		}
		f, err := reopenCached(s.at)
		if err != nil {
			s.noCache = true
			return false
		}
		s.cached = f
	}
	if !s.failed() {
		_, err := s.cached.WriteAt(blk.b, blk.off)
		s.setErr(err)
	}
	return true
}

// end is the offset after the last byte handed to the sink's writes; once
// close has returned without an error, every byte before it is written.
func (s *sink) end() int64 { return s.off }

// hashed is the offset after the last byte hashed, at most end: the
// bytes before it, and only those, are in the digest. After fill returned
// an error it is a multiple of directAlign (or the offset the sink started
// at); after fill returned nil, it is end. A pipelined sink hashes on
// its own goroutine: its hash holds those bytes once close returned.
func (s *sink) hashed() int64 { return s.hashTo }

// close waits for pending writes and returns the digest of all bytes
// written and the first write error.
func (s *sink) close() (digest [proto.DigestSize]byte, err error) {
	if s.full != nil {
		close(s.full)
		s.wg.Wait()
		if s.direct && !setDirect(s.at, false) && s.werr == nil {
			s.werr = errDirectOff
		}
		if len(s.tail.b) > 0 {
			s.store(s.tail)
			putChunk(s.tail.b)
		}
		if s.cached != nil {
			// Its pages are the file's: the file's fsync writes them.
			s.cached.Close()
		}
		// Every writer is done: the buffers are free to reuse.
		for len(s.free) > 0 {
			putChunk((<-s.free).b)
		}
		sinkChunksFree.Add(int64(s.taken))
		s.taken = 0
		if s.unspare != nil {
			s.unspare()
			s.unspare = nil
		}
	}
	copy(digest[:], s.h.Sum(nil))
	return digest, s.werr
}

// maxSinkChunks caps the buffers that all pipelined sinks of the process
// hold at once (64 MiB), so that memory stays bounded however many
// connections receive large files at the same time; a sink that finds
// fewer than two free receives its file without a pipeline.
const maxSinkChunks = 64

// sinkChunksFree is how many more buffers sinks may take.
var sinkChunksFree = func() *atomic.Int64 {
	var n atomic.Int64
	n.Store(maxSinkChunks)
	return &n
}()

// takeSinkChunks takes up to want buffers from sinkChunksFree: want, or
// as many as are free if that is at least two, or none.
func takeSinkChunks(want int) int {
	for {
		free := sinkChunksFree.Load()
		k := min(int64(want), free)
		if k < 2 {
			return 0
		}
		if sinkChunksFree.CompareAndSwap(free, free-k) {
			return int(k)
		}
	}
}

// chunks holds free sink buffers: sinkChunk bytes, aligned for direct I/O.
var chunks = sync.Pool{New: func() any {
	b := alignedBuffer(sinkChunk)
	return &b
}}

func getChunk() []byte { return *chunks.Get().(*[]byte) }

func putChunk(b []byte) {
	b = b[:cap(b)]
	chunks.Put(&b)
}

// alignedBuffer returns n bytes whose start is aligned on directAlign.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	off := directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)
	return b[off : off+n : off+n]
}

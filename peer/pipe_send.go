package peer

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"time"
)

// The sending side of a large file runs as a two-stage pipeline: a reader
// goroutine reads the source and hashes it, chunk by chunk, while the
// sending goroutine puts the chunks on the connection. On a plain TCP
// connection the chunks go out with sendfile, straight from the page
// cache, so the bytes are copied into user space once (to be hashed)
// rather than twice; on other connections the hashed buffers are written.

const (
	// pipeChunk is the unit handed from the reader to the sender: large
	// enough that a sendfile or write moves a lot per system call.
	pipeChunk = 1 << 20
	// pipeChunks is how many chunks the reader may run ahead by.
	pipeChunks = 3
	// pipeMin is the size from which a file is worth a reader goroutine
	// (and, for sendfile, the flush of the write buffer before it).
	pipeMin = 4 * pipeChunk
	// pipeFirst is the size of a file's first chunk: small, so that the
	// stream's first bytes (a resume's first new ones) go out after a
	// short read, not after a whole chunk is read into fresh memory and
	// encrypted; the chunks after it are full.
	pipeFirst = 64 << 10
)

// hashPiece is how many bytes of a source are read at a time before they
// are hashed: few enough to stay in a core's cache.
const hashPiece = 256 << 10

// chunk is a piece of the source that the reader has read and hashed.
type chunk struct {
	buf []byte // the bytes; return it to the reader's free list when done
	err error  // the source could not be read from here on; buf is nil
}

// readAhead reads and hashes a readJob on its own goroutine. Its owner
// takes chunks from out, gives each buffer back on free, and must call
// stop before using the job's hash, log or file again.
type readAhead struct {
	out  chan chunk
	free chan []byte
	quit chan struct{}
	done chan struct{}
	// hashErr is why the bytes before the job's offset could not be
	// hashed; read it after stop.
	hashErr error
}

// readJob is what a readAhead reads: n bytes of f from off, hashed into
// h, which holds the digest of the bytes before from (at most off: those
// between are read and hashed too, after the first chunk went out), with
// the states taken into log (which may be nil).
type readJob struct {
	f    *os.File
	h    hash.Hash
	log  *digestLog
	from int64
	off  int64
	n    uint64
}

func startReadAhead(j readJob) *readAhead {
	r := &readAhead{
		out:  make(chan chunk, pipeChunks),
		free: make(chan []byte, pipeChunks),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	// One buffer for the first chunk; run makes the others once it went
	// out (fresh memory costs page faults, slow on some virtual machines).
	r.free <- make([]byte, pipeChunk)
	go r.run(j) // owned by r: stop waits for it
	return r
}

func (r *readAhead) run(j readJob) {
	defer close(r.done)
	off, left := j.off, j.n
	for first := true; left > 0; first = false {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.quit:
			return
		}
		buf = buf[:min(uint64(len(buf)), left)]
		if first {
			buf = buf[:min(len(buf), pipeFirst)]
		}
		c := chunk{buf: buf}
		if first {
			// The first chunk goes out as soon as it is read: the
			// stream's first byte waits neither for its hashing nor for
			// the hash to catch up to off. The buffer stays ours to
			// read until we take it from free again.
			if _, err := j.f.ReadAt(buf, off); err != nil {
				c = chunk{err: fmt.Errorf("it shrank or became unreadable: %w", unexpected(err))}
			}
		} else if err := readHashed(j, buf, off); err != nil {
			c = chunk{err: err}
		}
		select {
		case r.out <- c:
		case <-r.quit:
			return
		}
		if c.err != nil {
			return
		}
		if first {
			for range pipeChunks - 1 {
				r.free <- make([]byte, pipeChunk)
			}
			if err := hashRange(j.f, j.h, uint64(j.from), uint64(off), j.log); err != nil {
				r.hashErr = err
				select {
				case r.out <- chunk{err: err}:
				case <-r.quit:
				}
				return
			}
			hashPieces(j.h, j.log, buf, off)
		}
		off += int64(len(buf))
		left -= uint64(len(buf))
	}
}

// readHashed reads buf from f at off, hashing each piece as soon as it is
// read, while it is in the CPU's cache.
func readHashed(j readJob, buf []byte, off int64) error {
	for p, at := buf, off; len(p) > 0; {
		piece := p[:min(len(p), hashPiece-int(at%hashPiece))]
		if _, err := j.f.ReadAt(piece, at); err != nil {
			return fmt.Errorf("it shrank or became unreadable: %w", unexpected(err))
		}
		hashPieces(j.h, j.log, piece, at)
		p, at = p[len(piece):], at+int64(len(piece))
	}
	return nil
}

// hashPieces hashes b, the bytes of the file at off, into h, in pieces
// that end at multiples of hashPiece, where log takes its states.
func hashPieces(h hash.Hash, log *digestLog, b []byte, off int64) {
	for len(b) > 0 {
		piece := b[:min(len(b), hashPiece-int(off%hashPiece))]
		h.Write(piece)
		b, off = b[len(piece):], off+int64(len(piece))
		log.take(uint64(off), h)
	}
}

// stop ends the reader and waits for it.
func (r *readAhead) stop() {
	close(r.quit)
	<-r.done
}

// sendPipelined sends the bytes of job j (see readJob), hashing them. It
// returns the reason the source could not be read in full (the rest was
// padded with zeros), and a connection error, which ends the transfer.
func (s *streamer) sendPipelined(j readJob, path string) (rerr, err error) {
	f, off, n := j.f, j.off, j.n
	sf := s.sendfileConn()
	if sf != nil {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			sf = nil
		} else if err := s.bw.Flush(); err != nil {
			return nil, err
		}
	}
	if n >= directMin {
		defer spareP.hold()() // see headroom.go
	}
	cc := s.corker()
	r := startReadAhead(j)
	defer func() {
		r.stop()
		if rerr == nil {
			rerr = r.hashErr
		}
	}()
	left := n
	for left > 0 && rerr == nil {
		c := <-r.out
		if c.err != nil {
			rerr = c.err
			break
		}
		if sf != nil {
			// The buffer is not needed: sendfile reads the page cache.
			r.free <- c.buf
			sent, err := s.sendfile(sf, f, int64(len(c.buf)))
			if err != nil {
				return nil, err
			}
			if sent < uint64(len(c.buf)) {
				rerr = errors.New("it shrank while being sent")
			}
			s.advance(sent, path)
			left -= sent
			continue
		}
		err := s.writeCorked(cc, c.buf)
		r.free <- c.buf
		if err != nil {
			return nil, err
		}
		s.advance(uint64(len(c.buf)), path)
		left -= uint64(len(c.buf))
	}
	if left > 0 {
		if err := s.pad(left, path); err != nil {
			return rerr, err
		}
	}
	return rerr, nil
}

// writeCorked writes b through the write buffer, with the records TLS
// makes of it gathered by cc (if not nil) into one write to the socket.
func (s *streamer) writeCorked(cc *corkConn, b []byte) error {
	if cc == nil {
		_, err := s.bw.Write(b)
		return err
	}
	if s.corkBuf == nil {
		s.corkBuf = make([]byte, 0, corkSize)
	}
	cc.cork(s.corkBuf)
	_, err := s.bw.Write(b)
	if ferr := cc.uncork(); err == nil {
		err = ferr
	}
	return err
}

// corker returns the corkConn under the streamer's TLS connection, or
// nil.
func (s *streamer) corker() *corkConn {
	nc, ok := s.conn.(interface{ NetConn() net.Conn })
	if !ok {
		return nil
	}
	cc, _ := nc.NetConn().(*corkConn)
	return cc
}

// sendfileConn returns the connection sendfile can write to, or nil.
func (s *streamer) sendfileConn() *net.TCPConn {
	c, _ := s.conn.(*net.TCPConn)
	return c
}

// sendfile copies n bytes from f's current offset to c within the idle
// timeout, and returns how many it sent: fewer if f ended early.
func (s *streamer) sendfile(c *net.TCPConn, f *os.File, n int64) (uint64, error) {
	if err := c.SetWriteDeadline(time.Now().Add(s.idle)); err != nil {
		return 0, err
	}
	sent, err := c.ReadFrom(&io.LimitedReader{R: f, N: n})
	return uint64(sent), err
}

// pad writes n zero bytes in place of a source that could not be read.
func (s *streamer) pad(n uint64, path string) error {
	zeros := make([]byte, min(n, bufSize))
	for n > 0 {
		z := zeros[:min(n, uint64(len(zeros)))]
		if _, err := s.bw.Write(z); err != nil {
			return err
		}
		n -= uint64(len(z))
		s.advance(uint64(len(z)), path)
	}
	return nil
}

// advance counts n more bytes of path as sent.
func (s *streamer) advance(n uint64, path string) {
	s.sent += n
	s.prog.Bytes += n
	if s.progress != nil && time.Since(s.last) > 50*time.Millisecond {
		s.last = time.Now()
		s.report(path)
	}
}

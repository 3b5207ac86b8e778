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
)

// hashPiece is how many bytes of a source are read at a time before they
// are hashed: few enough to stay in a core's cache.
const hashPiece = 256 << 10

// chunk is a piece of the source that the reader has read and hashed.
type chunk struct {
	buf []byte // the bytes; return it to the reader's free list when done
	err error  // the source could not be read from here on; buf is nil
}

// readAhead reads n bytes of f from off, hashing them into h and taking
// states into log (which may be nil), on its own goroutine. Its owner
// takes chunks from out, gives each buffer back on free, and must call
// stop before using h, log or f again.
type readAhead struct {
	out  chan chunk
	free chan []byte
	quit chan struct{}
	done chan struct{}
}

func startReadAhead(f *os.File, h hash.Hash, log *digestLog, off int64, n uint64) *readAhead {
	r := &readAhead{
		out:  make(chan chunk, pipeChunks),
		free: make(chan []byte, pipeChunks),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range pipeChunks {
		r.free <- make([]byte, pipeChunk)
	}
	go r.run(f, h, log, off, n) // owned by r: stop waits for it
	return r
}

func (r *readAhead) run(f *os.File, h hash.Hash, log *digestLog, off int64, left uint64) {
	defer close(r.done)
	for left > 0 {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.quit:
			return
		}
		buf = buf[:min(uint64(len(buf)), left)]
		c := chunk{buf: buf}
		// Hash each piece as soon as it is read, while it is in the
		// CPU's cache. Pieces end at multiples of hashPiece, where log
		// takes its states.
		for p, at := buf, off; len(p) > 0; {
			piece := p[:min(len(p), hashPiece-int(at%hashPiece))]
			if _, err := f.ReadAt(piece, at); err != nil {
				c = chunk{err: fmt.Errorf("it shrank or became unreadable: %w", unexpected(err))}
				break
			}
			h.Write(piece)
			p, at = p[len(piece):], at+int64(len(piece))
			log.take(uint64(at), h)
		}
		select {
		case r.out <- c:
		case <-r.quit:
			return
		}
		if c.err != nil {
			return
		}
		off += int64(len(buf))
		left -= uint64(len(buf))
	}
}

// stop ends the reader and waits for it.
func (r *readAhead) stop() {
	close(r.quit)
	<-r.done
}

// sendPipelined sends n bytes of f from off, hashing them into h and
// taking states into log (which may be nil). It returns the reason the
// source could not be sent in full (the rest was padded with zeros), and
// a connection error, which ends the transfer.
func (s *streamer) sendPipelined(f *os.File, h hash.Hash, log *digestLog, off int64, n uint64, path string) (rerr, err error) {
	sf := s.sendfileConn()
	if sf != nil {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			sf = nil
		} else if err := s.bw.Flush(); err != nil {
			return nil, err
		}
	}
	r := startReadAhead(f, h, log, off, n)
	defer r.stop()
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
		_, err := s.bw.Write(c.buf)
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

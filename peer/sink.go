package peer

import (
	"hash"
	"io"

	"github.com/lanshare/lanshare/proto"
)

// pipelineMin is the file size from which a sink hashes and writes on its
// own goroutine, so that reading the network overlaps with hashing and
// writing the disk. Smaller files are not worth a goroutine.
const pipelineMin = 4 * bufSize

// sink hashes the bytes of one received file and writes them to w (which
// may be nil, to discard after a write error). Use buffer, fill it, write
// it; then close, which returns the digest and the first write error.
type sink struct {
	w    io.Writer
	h    hash.Hash
	werr error

	// Pipelined mode only.
	free, full chan []byte
	done       chan struct{}
	cur        []byte
}

// newSink returns a sink for a file of size bytes. Small files are read
// into buf, which the caller reuses from file to file.
func newSink(w io.Writer, size uint64, buf []byte) *sink {
	s := &sink{w: w, h: proto.NewDigest()}
	if size < pipelineMin {
		s.cur = buf
		return s
	}
	const buffers = 4
	s.free = make(chan []byte, buffers)
	s.full = make(chan []byte, buffers)
	s.done = make(chan struct{})
	for range buffers {
		s.free <- make([]byte, bufSize)
	}
	go s.run() // owned by s: close waits for it
	return s
}

func (s *sink) run() {
	defer close(s.done)
	for b := range s.full {
		s.consume(b)
		s.free <- b[:cap(b)]
	}
}

func (s *sink) consume(b []byte) {
	s.h.Write(b)
	if s.w != nil && s.werr == nil {
		_, s.werr = s.w.Write(b)
	}
}

// buffer returns a buffer to fill; it is the caller's until write.
func (s *sink) buffer() []byte {
	if s.free == nil {
		return s.cur
	}
	return <-s.free
}

// write hands over a filled buffer from buffer.
func (s *sink) write(b []byte) {
	if s.free == nil {
		s.consume(b)
		return
	}
	s.full <- b
}

// close waits for pending writes and returns the digest of all bytes
// written and the first write error.
func (s *sink) close() (digest [proto.DigestSize]byte, err error) {
	if s.full != nil {
		close(s.full)
		<-s.done
	}
	copy(digest[:], s.h.Sum(nil))
	return digest, s.werr
}

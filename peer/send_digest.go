package peer

import (
	"fmt"
	"hash"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/lanshare/lanshare/proto"
)

// fileDigest hashes a whole file on a goroutine of its own, for a resumed
// send whose digest cannot start close to the offset (no kept state
// there, see the digest cache). The digest covers the whole file, and
// hashing the receiver's part first kept the first new byte waiting for
// as long as reading it takes (half a second for a GiB in the page cache,
// seconds from a disk). Instead the stream goes at once, unhashed, and
// this goroutine reads and hashes the file meanwhile, from its start or
// from a kept state. The digest is then of the bytes as this goroutine
// read them: a file that changed while it was sent is caught by the check
// after the stream, as before, or else fails the receiver's digest.
type fileDigest struct {
	done chan struct{}
	stop atomic.Bool
	sum  [proto.DigestSize]byte
	err  error
}

// startFileDigest starts hashing f from offset from, where h holds the
// digest of the bytes before it, to size, taking states into log (which
// may be nil). It reads f with ReadAt (the caller may go on reading f).
// Call wait or cancel before using h or log.
func startFileDigest(f *os.File, h hash.Hash, from, size uint64, log *digestLog) *fileDigest {
	d := &fileDigest{done: make(chan struct{})}
	go func() { // owned by d: wait and cancel wait for it
		defer close(d.done)
		buf := make([]byte, hashPiece)
		for off := from; off < size; {
			if d.stop.Load() {
				d.err = errDigestStopped
				return
			}
			// Pieces end at multiples of their size, where log takes
			// its states.
			b := buf[:min(uint64(len(buf))-off%uint64(len(buf)), size-off)]
			if _, err := f.ReadAt(b, int64(off)); err != nil {
				d.err = fmt.Errorf("it shrank or became unreadable: %w", unexpected(err))
				return
			}
			h.Write(b)
			off += uint64(len(b))
			log.take(off, h)
			// Let the stream's goroutines run: this one would otherwise
			// hold a CPU for its whole time slice, and the first bytes
			// of the stream (measured: 20 to 90 ms late) wait for it.
			runtime.Gosched()
		}
		copy(d.sum[:], h.Sum(nil))
	}()
	return d
}

// hashRange hashes the bytes of f from from to to into h, taking states
// into log (which may be nil), on the caller's goroutine: the catching up
// of a kept state, at most digestStep bytes, to the resume's offset.
// hashPiece divides digestStep.
func hashRange(f *os.File, h hash.Hash, from, to uint64, log *digestLog) error {
	if from >= to {
		return nil
	}
	buf := make([]byte, hashPiece)
	for off := from; off < to; {
		// Pieces end at multiples of their size, where log takes its
		// states.
		b := buf[:min(hashPiece-off%hashPiece, to-off)]
		if _, err := f.ReadAt(b, int64(off)); err != nil {
			return fmt.Errorf("it shrank or became unreadable: %w", unexpected(err))
		}
		h.Write(b)
		off += uint64(len(b))
		log.take(off, h)
	}
	return nil
}

var errDigestStopped = fmt.Errorf("hashing stopped")

// wait returns the file's digest, or why it could not be read, once the
// goroutine is done.
func (d *fileDigest) wait() ([proto.DigestSize]byte, error) {
	<-d.done
	return d.sum, d.err
}

// cancel stops the hashing and waits for its goroutine. Safe after wait
// and more than once.
func (d *fileDigest) cancel() {
	d.stop.Store(true)
	<-d.done
}

// discardHash is a hash.Hash that hashes nothing: the stream of a resumed
// file, whose digest a fileDigest makes.
type discardHash struct{}

var _ hash.Hash = discardHash{}

func (discardHash) Write(p []byte) (int, error) { return len(p), nil }
func (discardHash) Sum(b []byte) []byte         { return b }
func (discardHash) Reset()                      {}
func (discardHash) Size() int                   { return proto.DigestSize }
func (discardHash) BlockSize() int              { return 64 }

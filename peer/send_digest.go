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
// send. The digest covers the whole file, and hashing the receiver's part
// first kept the first new byte waiting for as long as reading it takes
// (half a second for a GiB in the page cache, seconds from a disk).
// Instead the stream goes at once, unhashed, and this goroutine reads and
// hashes the file from its start meanwhile. The digest is then of the
// bytes as this goroutine read them: a file that changed while it was
// sent is caught by the check after the stream, as before, or else fails
// the receiver's digest.
type fileDigest struct {
	done chan struct{}
	stop atomic.Bool
	sum  [proto.DigestSize]byte
	err  error
}

// startFileDigest starts hashing the size bytes of f, which it reads with
// ReadAt (the caller may go on reading f). Call wait or cancel.
func startFileDigest(f *os.File, size uint64) *fileDigest {
	d := &fileDigest{done: make(chan struct{})}
	go func() { // owned by d: wait and cancel wait for it
		defer close(d.done)
		h := proto.NewDigest()
		buf := make([]byte, bufSize)
		for off := uint64(0); off < size; {
			if d.stop.Load() {
				d.err = errDigestStopped
				return
			}
			b := buf[:min(uint64(len(buf)), size-off)]
			if _, err := f.ReadAt(b, int64(off)); err != nil {
				d.err = fmt.Errorf("it shrank or became unreadable: %w", unexpected(err))
				return
			}
			h.Write(b)
			off += uint64(len(b))
			// Let the stream's goroutines run: this one would otherwise
			// hold a CPU for its whole time slice, and the first bytes
			// of the stream (measured: 20 to 90 ms late) wait for it.
			runtime.Gosched()
		}
		copy(d.sum[:], h.Sum(nil))
	}()
	return d
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

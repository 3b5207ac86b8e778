package peer

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// Small files are received into memory, verified, and only then written,
// by the syncer's goroutines: a file of a few KiB costs far more to
// create, set up and name than to receive, and so the stream does not
// wait for the disk, and the disk's work runs alongside it on another
// core. On Linux the file is made without a name (openAnon) and named
// once synced (linkAnon): no temporary name to add to the staging folder
// and remove again. Nothing changes in what a name means: a file gets its
// final name only once its bytes are verified and durable.

// smallMax is the largest file received into memory; the syncer hands a
// group over once it holds groupBuffered bytes of them. The bytes that
// all transfers hold in memory, received and not yet written, are at
// most smallHeldMax: beyond, a small file is written as it arrives, as
// larger ones are.
const (
	smallMax      = 64 << 10
	groupBuffered = 1 << 20
	smallHeldMax  = 16 << 20
)

// smallHeld counts the bytes of the small files' buffers taken and not
// yet put back, in all transfers.
var smallHeld atomic.Int64

// isSmall reports whether entry i is received into memory: a new file
// (not resumable, so with no partial file to keep) of at most smallMax
// bytes, while there is room for it (smallHeldMax).
func (t *transfer) isSmall(i int) bool {
	e := t.offer.Entries[i]
	return e.Kind == proto.KindFile && e.Size <= smallMax && !t.claimed[i] && t.offsets[i] == 0 && tempFileHook == nil &&
		smallHeld.Load()+int64(e.Size) <= smallHeldMax
}

// smallPools hold the buffers of small files, by size class: 1 KiB
// doubled up to smallMax.
var smallPools [8]sync.Pool

func smallClass(n uint64) int {
	if n <= 1<<10 {
		return 0
	}
	return bits.Len64(n-1) - 10
}

func getSmall(n uint64) []byte {
	c := smallClass(n)
	smallHeld.Add(1 << (10 + c))
	if b, ok := smallPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(10+c))
}

func putSmall(b []byte) {
	if cap(b) == 0 {
		return
	}
	smallHeld.Add(-int64(cap(b)))
	b = b[:0]
	smallPools[smallClass(uint64(cap(b)))].Put(&b)
}

// receiveSmall reads small entry i's bytes and FileEnd, and hands a
// verified file to syncs, which writes it. Like receiveFile it returns
// only an error of the stream; the entry's own failure is in t.results.
func (t *transfer) receiveSmall(i int, br *bufio.Reader, syncs *syncer) error {
	e := t.offer.Entries[i]
	data := getSmall(e.Size)
	if _, err := io.ReadFull(br, data); err != nil {
		putSmall(data)
		return fmt.Errorf("receiving %s: %w", Escape(e.Path), unexpected(err))
	}
	if t.digest == nil {
		t.digest = proto.NewDigest()
	}
	h := t.digest
	h.Reset()
	h.Write(data)
	var digest [proto.DigestSize]byte
	copy(digest[:], h.Sum(nil))
	fe, err := proto.ReadFileEnd(br)
	if err == nil && fe.Index != uint32(i) {
		err = fmt.Errorf("file-end for entry %d: %w", fe.Index, proto.ErrMalformed)
	}
	if err != nil {
		putSmall(data)
		return fmt.Errorf("receiving %s: %w", Escape(e.Path), unexpected(err))
	}
	switch {
	case fe.Status == proto.Aborted:
		putSmall(data)
		t.fail(i, fe.Code, senderReason(fe.Code, fe.Reason))
	case digest != fe.Digest:
		putSmall(data)
		t.fail(i, proto.CodeDigest, "digest mismatch: the file was corrupted in transit")
	default:
		syncs.put(syncJob{i: i, data: data, buffered: true, maker: t.in, mode: t.fileMode(e), mtime: e.MTime, size: e.Size})
		t.closeLinkDirs()
		return nil
	}
	t.elapsed[i] = time.Since(t.start)
	return nil
}

// Whether the staging folder's file system makes unnamed files that can
// be named (see openAnon): unknown until the first small file.
const (
	anonUnknown int32 = iota
	anonYes
	anonNo
)

// createSmall creates the file of a small entry, with mode perm: unnamed
// where it can (a), else a named temporary file (f, named name). It runs
// on the syncer's goroutines.
func (in *Inbox) createSmall(perm fs.FileMode) (a *anonFile, f *os.File, name string, err error) {
	if in.anon.Load() != anonNo {
		if s, err := in.staging(); err == nil {
			a, err := s.openAnon(perm)
			if err == nil && (in.anon.Load() == anonYes || in.probeAnon(s, perm)) {
				return a, nil, "", nil
			}
			if a != nil {
				a.Close()
			}
			if err != nil && noAnon(err) {
				in.anon.Store(anonNo)
			}
		}
	}
	f, name, err = in.createStagingFile(perm)
	return nil, f, name, err
}

// probeAnon finds out, once, whether an unnamed file can be given a name
// here (linkAnon needs either a capability or /proc), by naming one in
// the staging folder and removing it again.
func (in *Inbox) probeAnon(s *stagingFolder, perm fs.FileMode) bool {
	in.anonOnce.Do(func() {
		a, err := s.openAnon(perm)
		if err != nil {
			in.anon.Store(anonNo)
			return
		}
		defer a.Close()
		name, err := in.nameAnon(s, a)
		if err != nil {
			in.anon.Store(anonNo)
			return
		}
		_ = in.remove(name)
		in.anon.Store(anonYes)
	})
	return in.anon.Load() == anonYes
}

// nameAnon gives a, an unnamed file of the staging folder s, a temporary
// name there, and returns it: for the ways of naming a file that take a
// name (a copy to another file system, a rename where there are no hard
// links).
func (in *Inbox) nameAnon(s *stagingFolder, a *anonFile) (string, error) {
	for range 10 {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:])
		base := tempPrefixStaging + hex.EncodeToString(rnd[:])
		err := linkAnon(a, s.dir, base)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return path.Join(stagingDir, base), nil
	}
	return "", fmt.Errorf("naming a temporary file: %w", fs.ErrExist)
}

// tempPrefixStaging starts the names of the staging folder's temporary
// files (see createStagingFile).
const tempPrefixStaging = "tmp-"

// anonFiles is a transfer's unnamed files, by entry: set when the syncer
// made one, cleared when it is named or discarded. Only the transfer's
// goroutine uses it.
type anonFiles []*anonFile

func (a *anonFiles) set(n, i int, f *anonFile) {
	if *a == nil {
		*a = make(anonFiles, n)
	}
	(*a)[i] = f
}

func (a anonFiles) get(i int) *anonFile {
	if a == nil {
		return nil
	}
	return a[i]
}

// close closes entry i's unnamed file, if any: unnamed, it is gone.
func (a anonFiles) close(i int) {
	if a != nil && a[i] != nil {
		a[i].Close()
		a[i] = nil
	}
}

// linkAnonFinal names the unnamed file a final in dir (see linkFinal).
func (t *transfer) linkAnonFinal(a *anonFile, dir, final string) error {
	var d *os.File
	var err error
	if t.linkDirs != nil {
		d, err = t.linkDir(dir)
	} else if d, err = t.in.root.Open(pathOrDot(dir)); err == nil {
		defer d.Close()
	}
	if err != nil {
		return err
	}
	return linkAnon(a, d, path.Base(final))
}

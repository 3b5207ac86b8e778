package peer

import (
	"hash"
	"os"

	"github.com/lanshare/lanshare/proto"
)

// digestPlan is how sendFile makes a file's digest: see planDigest.
type digestPlan struct {
	// h hashes the stream's bytes: the digest's own hash, holding the
	// digest of the bytes before from (those between from and the offset
	// are hashed first), or discardHash when whole makes the digest.
	h     hash.Hash
	from  uint64
	whole *fileDigest
	// log takes the digest states to keep, nil for none; stamp is the
	// source's when it was opened; older says that the states of an
	// older entry, before where hashing started, are to be kept too.
	log   *digestLog
	stamp partialStamp
	older bool
}

// planDigest decides how the digest of e, sent from offset, is made, and
// starts it:
//   - From the start (offset 0), the stream's bytes are hashed as they
//     are read.
//   - From a state kept at most digestStep bytes below the offset (see
//     the digest cache), the bytes between are read and hashed by the
//     stream's reader once its first chunk went out, then the stream's as
//     they are read: the prefix is not read.
//   - Otherwise the stream goes unhashed, and a fileDigest hashes the
//     file on a goroutine of its own, from the kept state below the
//     offset if there is one, else from the start.
//
// A file of at least digestCacheMin bytes whose stamp matches the offer
// has its states taken wherever it is hashed, for finish to keep.
func (s *streamer) planDigest(f *os.File, index uint32, e proto.Entry, offset uint64) digestPlan {
	d := digestPlan{from: offset}
	if offset == 0 {
		// Hashed on this goroutine while it streams, and done with
		// before the next file: one hash serves them all (a new one a
		// file was the sender's largest allocation for small files).
		if s.digest == nil {
			s.digest = proto.NewDigest()
		}
		d.h = s.digest
		d.h.Reset()
	} else {
		d.h = proto.NewDigest()
	}
	// A file too small for the cache costs no stat here.
	keep := s.cache != nil && e.Size >= digestCacheMin
	var st partialStamp
	if keep {
		st, keep = sourceStamp(f, e)
	}
	if !keep {
		if offset > 0 {
			d.whole = startFileDigest(f, d.h, 0, e.Size, nil)
			d.h = discardHash{}
		}
		return d
	}
	d.stamp = st
	if offset == 0 {
		d.log = newDigestLog(e.Size)
		return d
	}
	h, from, err := s.cache.resume(st, offset)
	d.log = newDigestLog(e.Size)
	d.older = true
	if err != nil {
		h, from = d.h, 0
	} else {
		// A digest that fails at the receiver drops the entry.
		s.fromCache[index] = st
	}
	if offset-from <= digestStep {
		d.h, d.from = h, from
		return d
	}
	d.whole = startFileDigest(f, h, from, e.Size, d.log)
	d.h = discardHash{}
	return d
}

// streamLog is the log for the stream's hashing: none when the stream
// goes unhashed.
func (d *digestPlan) streamLog() *digestLog {
	if d.whole != nil {
		return nil
	}
	return d.log
}

// finish keeps the states taken, if the source's stamp is the same as
// when it was opened: its bytes did not change while they were hashed.
// Call it once nothing hashes any more.
func (d *digestPlan) finish(f *os.File, c *digestCache) {
	if d.log == nil {
		return
	}
	if fi, err := f.Stat(); err == nil {
		if st, ok := stampOf(fi); ok && st == d.stamp {
			if d.older {
				if old, err := c.load(st); err == nil {
					d.log.keep(old)
				}
			}
			_ = c.save(st, d.log.marks())
		}
	}
}

// sourceStamp returns the stamp of the source f of e, and whether it has
// one that agrees with e's size and mtime.
func sourceStamp(f *os.File, e proto.Entry) (partialStamp, bool) {
	fi, err := f.Stat()
	if err != nil {
		return partialStamp{}, false
	}
	st, ok := stampOf(fi)
	return st, ok && uint64(st.Size) == e.Size && st.MTime == e.MTime.UnixNano()
}

// dropFailedStates drops the kept states of the files that the receipt
// says failed their digest after a resume from such a state: should a
// state have been wrong, the retry sends the file whole (the receiver
// dropped its partial) and nothing uses the state again.
func (s *streamer) dropFailedStates(results []proto.Result) {
	for i, st := range s.fromCache {
		if int(i) < len(results) && results[i].Status == proto.Failed && results[i].Code == proto.CodeDigest {
			s.cache.drop(st)
		}
	}
}

package proto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"hash"
	"testing"
)

func digestOf(b []byte) []byte {
	h := NewDigest()
	h.Write(b)
	return h.Sum(nil)
}

// TestDigestStateResumes: a digest saved after any number of bytes, and
// resumed, hashes the rest to the digest of the whole, whatever the
// sizes of the writes before and after; the state's own digest is that
// of the bytes it covers.
func TestDigestStateResumes(t *testing.T) {
	data := make([]byte, 3<<20+777)
	rand.Read(data)
	for _, at := range []int{0, 1, 63, 64, 1023, 1024, 1025, 4096, 8191, 8192, 8193, 16<<10 + 5, 64 << 10, 1<<20 + 4096, 3 << 20} {
		for _, piece := range []int{1000, 16 << 10, 1 << 20} {
			h := NewDigest()
			for off := 0; off < at; off += piece {
				h.Write(data[off:min(off+piece, at)])
			}
			if at%3 == 0 {
				h.Sum(nil) // a Sum in between changes nothing
			}
			state, err := AppendDigestState(nil, h)
			if err != nil {
				t.Fatal(err)
			}
			r, sum, err := ResumeDigest(state)
			if err != nil {
				t.Fatalf("at %d: %v", at, err)
			}
			if !bytes.Equal(sum[:], digestOf(data[:at])) {
				t.Fatalf("at %d: the state's digest is not that of its bytes", at)
			}
			for off := at; off < len(data); off += piece {
				r.Write(data[off:min(off+piece, len(data))])
			}
			if !bytes.Equal(r.Sum(nil), digestOf(data)) {
				t.Fatalf("at %d, writes of %d: the resumed digest differs", at, piece)
			}
			// The saved hash itself goes on as before.
			h.Write(data[at:])
			if !bytes.Equal(h.Sum(nil), digestOf(data)) {
				t.Fatalf("at %d: saving changed the hash", at)
			}
		}
	}
}

// TestDigestStateDamageRefused: no change of one byte of a saved state
// makes it resume to a wrong digest: each is refused, or (bytes the state
// does not use, such as the unused part of a buffer) resumes right.
func TestDigestStateDamageRefused(t *testing.T) {
	data := make([]byte, 1<<20+5000)
	rand.Read(data)
	at := 1<<20 + 3000
	h := NewDigest()
	h.Write(data[:at])
	state, err := AppendDigestState(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	want := digestOf(data)
	refused := 0
	for i := range state {
		bad := bytes.Clone(state)
		bad[i] ^= 0x5a
		r, _, err := ResumeDigest(bad)
		if err != nil {
			if !errors.Is(err, ErrDigestState) {
				t.Fatalf("byte %d: error %v does not wrap ErrDigestState", i, err)
			}
			refused++
			continue
		}
		r.Write(data[at:])
		if !bytes.Equal(r.Sum(nil), want) {
			t.Fatalf("byte %d changed: the state resumed to a wrong digest", i)
		}
	}
	if refused < 1000 {
		t.Fatalf("only %d of %d damaged states refused", refused, len(state))
	}
	for _, n := range []int{0, 5, len(state) - 1} {
		if _, _, err := ResumeDigest(state[:n]); !errors.Is(err, ErrDigestState) {
			t.Fatalf("a state cut to %d bytes: %v, want ErrDigestState", n, err)
		}
	}
}

// TestDigestStateOnlyOurHash: a hash that is not NewDigest's cannot be
// saved.
func TestDigestStateOnlyOurHash(t *testing.T) {
	var other hash.Hash = fakeHash{}
	if _, err := AppendDigestState(nil, other); !errors.Is(err, ErrDigestState) {
		t.Fatalf("saving another hash: %v, want ErrDigestState", err)
	}
	if !layout().ok {
		t.Fatal("blake3.Hasher changed (pointers, or fields renamed): its state can no longer be saved (see digeststate.go)")
	}
}

type fakeHash struct{ hash.Hash }

func BenchmarkDigestState(b *testing.B) {
	h := NewDigest()
	h.Write(make([]byte, 1<<20+77))
	var buf []byte
	for b.Loop() {
		buf, _ = AppendDigestState(buf[:0], h)
		if _, _, err := ResumeDigest(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "state-bytes")
}

package peer

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanshare/lanshare/proto"
)

// pieceReader hands out data in pieces of random sizes, then err.
type pieceReader struct {
	data []byte
	rng  *rand.Rand
	err  error
}

func (r *pieceReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := min(len(b), len(r.data), 1+r.rng.IntN(100<<10))
	copy(b, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestSinkHashesInOrder checks that a pipelined sink, whose hashing runs
// on a goroutine of its own, hashes and writes a large file's bytes in
// order, whole (a file it can write at offsets, with direct I/O where the
// file system allows, and a plain writer), and, when the stream breaks,
// hashes exactly the bytes up to the last directAlign boundary it
// reached while keeping all it got.
func TestSinkHashesInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3*directMin+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	digestOf := func(b []byte) []byte {
		h := proto.NewDigest()
		h.Write(b)
		return h.Sum(nil)
	}
	for _, cut := range []int{len(data), 2*directMin + 777, sinkFirst + 5} {
		for _, toFile := range []bool{true, false} {
			var f *os.File
			var w io.Writer = &bytes.Buffer{}
			if toFile {
				var err error
				f, err = os.Create(filepath.Join(t.TempDir(), "f"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				w = f
			}
			s := newSink(w, proto.NewDigest(), 0, uint64(len(data)), nil)
			if s.free == nil {
				t.Fatal("the sink of a large file runs no pipeline")
			}
			broken := errors.New("broken")
			err := s.fill(&pieceReader{data: data[:cut], rng: rng, err: broken}, uint64(len(data)))
			if cut == len(data) && err != nil || cut < len(data) && !errors.Is(err, broken) {
				t.Fatalf("cut at %d: fill returned %v", cut, err)
			}
			digest, werr := s.close()
			if werr != nil {
				t.Fatal(werr)
			}
			if s.end() != int64(cut) {
				t.Errorf("cut at %d: the sink handed %d bytes to its writes", cut, s.end())
			}
			want := int64(cut)
			if cut < len(data) {
				want = int64(cut) &^ (directAlign - 1)
			}
			if s.hashed() != want {
				t.Errorf("cut at %d: hashed %d bytes, want %d", cut, s.hashed(), want)
			}
			if !bytes.Equal(digest[:], digestOf(data[:want])) {
				t.Errorf("cut at %d (file %v, direct %v): the digest is not that of the first %d bytes", cut, toFile, s.direct, want)
			}
			var got []byte
			if toFile {
				got, err = os.ReadFile(f.Name())
				if err != nil {
					t.Fatal(err)
				}
			} else {
				got = w.(*bytes.Buffer).Bytes()
			}
			if !bytes.Equal(got, data[:cut]) {
				t.Errorf("cut at %d (file %v): %d bytes written are not the %d sent", cut, toFile, len(got), cut)
			}
		}
	}
}

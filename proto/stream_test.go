package proto

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// streamFrames is a stream entry's wire form, decoded: its chunks' bytes,
// and its end.
type streamFrames struct {
	Chunks [][]byte
	End    StreamEnd
}

func writeStream(w io.Writer, s streamFrames) error {
	for _, c := range s.Chunks {
		if err := WriteChunk(w, c); err != nil {
			return err
		}
	}
	return WriteStreamEnd(w, s.End)
}

// readStream reads chunks up to the stream's end, as a receiver does.
func readStream(r io.Reader) (streamFrames, error) {
	var s streamFrames
	for {
		n, end, err := ReadStreamNext(r)
		if err != nil {
			return s, err
		}
		if end != nil {
			s.End = *end
			return s, nil
		}
		c := make([]byte, n)
		if _, err := io.ReadFull(r, c); err != nil {
			return s, unexpectedEOF(err)
		}
		s.Chunks = append(s.Chunks, c)
	}
}

var streamGoldens = []golden{
	{
		name: "offer of a stream",
		msg:  Offer{Entries: []Entry{{Path: "p.tar", Kind: KindStream, Mode: 0o644}}},
		hex: hx("4c53 01 02 00000020",
			"00000001",
			"04 000001a4 0000000000000000 0000000000000000 0005 702e746172"),
	},
	{
		name: "stream of two chunks",
		msg: streamFrames{Chunks: [][]byte{[]byte("abc"), []byte("d")},
			End: StreamEnd{Index: 2, Status: Sent, Size: 4, Digest: digestAB}},
		hex: hx("4c53 01 08 00000003 616263",
			"4c53 01 08 00000001 64",
			"4c53 01 09 00000031", "00000002 01 0000 0000 0000000000000004", strings.Repeat("ab", 32)),
	},
	{
		name: "empty stream",
		msg:  streamFrames{End: StreamEnd{Index: 0, Status: Sent}},
		hex:  hx("4c53 01 09 00000031", "00000000 01 0000 0000 0000000000000000", strings.Repeat("00", 32)),
	},
	{
		name: "stream aborted",
		msg: streamFrames{Chunks: [][]byte{[]byte("x")},
			End: StreamEnd{Index: 1, Status: Aborted, Code: CodeSourceChanged, Reason: "eio", Size: 1}},
		hex: hx("4c53 01 08 00000001 78",
			"4c53 01 09 00000034", "00000001 02 000c 0003 65696f 0000000000000001", strings.Repeat("00", 32)),
	},
}

func writeStreamGolden(w io.Writer, m any) error {
	if s, ok := m.(streamFrames); ok {
		return writeStream(w, s)
	}
	return writeAny(w, m)
}

func readStreamGolden(r io.Reader, like any) (any, error) {
	if _, ok := like.(streamFrames); ok {
		return readStream(r)
	}
	return readAs(r, like)
}

// TestStreamGoldenBytes pins the byte layout of PROTOCOL.md's stream
// entries, and their round trip.
func TestStreamGoldenBytes(t *testing.T) {
	for _, g := range streamGoldens {
		t.Run(g.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeStreamGolden(&buf, g.msg); err != nil {
				t.Fatalf("write: %v", err)
			}
			if got := hex.EncodeToString(buf.Bytes()); got != g.hex {
				t.Fatalf("encoding differs\n got %s\nwant %s", got, g.hex)
			}
			got, err := readStreamGolden(&buf, g.msg)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !equalMsg(got, g.msg) {
				t.Fatalf("round trip: got %+v, want %+v", got, g.msg)
			}
			if buf.Len() != 0 {
				t.Fatalf("%d bytes left unread", buf.Len())
			}
		})
	}
}

// TestStreamTruncatedAtEveryByte: a stream cut anywhere never reads as
// ended; a cut at a frame boundary is a clean EOF, any other an
// unexpected one.
func TestStreamTruncatedAtEveryByte(t *testing.T) {
	for _, g := range streamGoldens[1:] {
		full, _ := hex.DecodeString(g.hex)
		bounds := map[int]bool{0: true}
		for at := 0; at < len(full); {
			at += HeaderSize + int(binary.BigEndian.Uint32(full[at+headerLenAt:]))
			bounds[at] = true
		}
		for n := 0; n < len(full); n++ {
			_, err := readStream(bytes.NewReader(full[:n]))
			want := io.ErrUnexpectedEOF
			if bounds[n] {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Fatalf("%s cut at %d of %d: got %v, want %v", g.name, n, len(full), err, want)
			}
		}
	}
}

func TestStreamDecodeErrors(t *testing.T) {
	frame := func(typ byte, payload string) []byte {
		p, err := hex.DecodeString(strings.ReplaceAll(payload, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		h := []byte{'L', 'S', 1, typ, byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))}
		return append(h, p...)
	}
	digest := strings.Repeat("00", 32)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty chunk", frame(8, ""), ErrMalformed},
		{"chunk over cap", []byte{'L', 'S', 1, 8, 0, 0x10, 0, 1}, ErrTooLarge},
		{"chunk of 4 GiB", []byte{'L', 'S', 1, 8, 0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
		{"file-end in a stream", frame(4, "00000000 01 0000 0000"+digest), ErrUnexpectedFrame},
		{"done in a stream", frame(5, ""), ErrUnexpectedFrame},
		{"chunk of another major", []byte{'L', 'S', 2, 8, 0, 0, 0, 1, 0}, ErrVersionMismatch},
		{"end with bad status", frame(9, "00000000 03 0000 0000 0000000000000000"+digest), ErrMalformed},
		{"end sent with a code", frame(9, "00000000 01 000c 0000 0000000000000000"+digest), ErrMalformed},
		{"end aborted without a code", frame(9, "00000000 02 0000 0000 0000000000000000"+digest), ErrMalformed},
		{"end over 2^62", frame(9, "00000000 01 0000 0000 4000000000000001"+digest), ErrTooLarge},
		{"end without digest", frame(9, "00000000 01 0000 0000 0000000000000000"), ErrMalformed},
		{"end trailing", frame(9, "00000000 01 0000 0000 0000000000000000"+digest+"00"), ErrMalformed},
		{"end over cap", frame(9, "00000000 02 000c 0400 "+strings.Repeat("78", 1024)+"0000000000000000"+digest), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readStream(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	// A stream entry with a size is malformed: its size comes at its end.
	_, err := ReadOffer(bytes.NewReader(frame(2, "00000001 04 000001a4 0000000000000001 0000000000000000 0001 61")))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("stream entry with a size: %v, want ErrMalformed", err)
	}
}

func TestStreamWriteRefusesInvalid(t *testing.T) {
	var buf bytes.Buffer
	cases := map[string]error{
		"empty chunk":          WriteChunk(&buf, nil),
		"chunk over cap":       WriteChunk(&buf, make([]byte, MaxChunkLen+1)),
		"end sent with a code": WriteStreamEnd(&buf, StreamEnd{Status: Sent, Code: CodeIO}),
		"end over 2^62":        WriteStreamEnd(&buf, StreamEnd{Status: Sent, Size: 1<<62 + 1}),
		"stream with a size":   WriteOffer(&buf, Offer{Entries: []Entry{{Path: "a", Kind: KindStream, Size: 1}}}),
	}
	for name, err := range cases {
		if err == nil {
			t.Errorf("%s: written without error", name)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("invalid frames wrote %d bytes", buf.Len())
	}
	if err := WriteChunk(&buf, make([]byte, MaxChunkLen)); err != nil {
		t.Fatalf("chunk of MaxChunkLen: %v", err)
	}
}

// TestStreamChunkLyingLengthAllocatesNothing: a chunk's declared length
// is the caller's to read into its own buffers; a peer that declares
// 1 MiB chunks and sends nothing makes the codec allocate nothing.
func TestStreamChunkLyingLengthAllocatesNothing(t *testing.T) {
	in := []byte{'L', 'S', 1, 8, 0, 0x10, 0, 0}
	var ms1, ms2 runtimeMem
	ms1.read()
	for range 100 {
		n, end, err := ReadStreamNext(bytes.NewReader(in))
		if n != MaxChunkLen || end != nil || err != nil {
			t.Fatalf("ReadStreamNext = %d, %v, %v", n, end, err)
		}
	}
	ms2.read()
	if grew := ms2.total - ms1.total; grew > 64<<10 {
		t.Fatalf("100 chunk headers allocated %d bytes", grew)
	}
}

// FuzzReadStream feeds arbitrary bytes to a stream reader: it never
// panics, and whatever it accepts re-encodes to bytes that decode alike.
func FuzzReadStream(f *testing.F) {
	for _, g := range streamGoldens[1:] {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := readStream(bytes.NewReader(in))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := writeStream(&buf, s); err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", s, err)
		}
		again, err := readStream(&buf)
		if err != nil {
			t.Fatalf("re-encoded stream does not decode: %v", err)
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip changed %+v into %+v", s, again)
		}
	})
}

// FuzzReadOfferStream is FuzzReadOffer seeded with stream entries.
func FuzzReadOfferStream(f *testing.F) {
	b, _ := hex.DecodeString(streamGoldens[0].hex)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := ReadOffer(bytes.NewReader(in))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteOffer(&buf, o); err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", o, err)
		}
		again, err := ReadOffer(&buf)
		if err != nil || !equalMsg(o, again) {
			t.Fatalf("round trip of %+v: %+v, %v", o, again, err)
		}
	})
}

package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

var mtime = time.Unix(1700000000, 0)

// golden is one message with its exact encoding, written out by hand from
// PROTOCOL.md so that a change in the byte layout cannot go unnoticed.
type golden struct {
	name string
	msg  any
	hex  string
}

func hx(parts ...string) string { return strings.ReplaceAll(strings.Join(parts, ""), " ", "") }

var digestAB = func() (d [DigestSize]byte) {
	for i := range d {
		d[i] = 0xab
	}
	return d
}()

var goldens = []golden{
	{
		name: "hello",
		msg:  Hello{Major: 1, Minor: 0, Name: "bob"},
		hex:  hx("4c53 01 01 00000007", "01 00 0003 626f62"),
	},
	{
		name: "hello from major 2",
		msg:  Hello{Major: 2, Minor: 5, Name: ""},
		hex:  hx("4c53 01 01 00000004", "02 05 0000"),
	},
	{
		name: "offer file and dir",
		msg: Offer{Entries: []Entry{
			{Path: "a.txt", Kind: KindFile, Size: 5, Mode: 0o644, MTime: mtime},
			{Path: "d", Kind: KindDir, Mode: 0o755},
		}},
		hex: hx("4c53 01 02 00000038",
			"00000002",
			"01 000001a4 0000000000000005 17979cfe362a0000 0005 612e747874",
			"02 000001ed 0000000000000000 0000000000000000 0001 64"),
	},
	{
		name: "offer empty",
		msg:  Offer{Entries: []Entry{}},
		hex:  hx("4c53 01 02 00000004", "00000000"),
	},
	{
		name: "answer per entry",
		msg: Answer{Replies: []Reply{
			{Status: Accept, Offset: 0},
			{Status: Refuse, Code: CodeBadName, Reason: "no"},
			{Status: Skip, Code: CodeExists},
		}},
		hex: hx("4c53 01 03 00000031",
			"0000 0000 00000003",
			"01 0000000000000000 0000 0000",
			"02 0000000000000000 0002 0002 6e6f",
			"03 0000000000000000 0008 0000"),
	},
	{
		name: "wait",
		msg:  Wait{Timeout: 2 * time.Minute, Reason: "ok"},
		hex:  hx("4c53 01 07 00000008", "0001d4c0 0002 6f6b"),
	},
	{
		name: "answer batch refusal",
		msg:  Answer{Code: CodeNoSpace, Reason: "full"},
		hex:  hx("4c53 01 03 0000000c", "0003 0004 66756c6c 00000000"),
	},
	{
		name: "file-end sent",
		msg:  FileEnd{Index: 7, Status: Sent, Digest: digestAB},
		hex:  hx("4c53 01 04 00000029", "00000007 01 0000 0000", strings.Repeat("ab", 32)),
	},
	{
		name: "file-end aborted",
		msg:  FileEnd{Index: 1, Status: Aborted, Code: CodeSourceChanged, Reason: "x"},
		hex:  hx("4c53 01 04 0000002a", "00000001 02 000c 0001 78", strings.Repeat("00", 32)),
	},
	{
		name: "done",
		msg:  Done{},
		hex:  hx("4c53 01 05 00000000"),
	},
	{
		name: "receipt",
		msg: Receipt{Results: []Result{
			{Status: Saved, SavedAs: "a (1).txt"},
			{Status: Failed, Code: CodeDigest, Reason: "bad"},
		}, Sender: "abc"},
		hex: hx("4c53 01 06 00000023",
			"00000002",
			"01 0000 0009 6120283129 2e747874 0000",
			"04 000a 0000 0003 626164",
			"0003 616263"),
	},
}

// writeAny and readAs dispatch on the message's type.
func writeAny(w io.Writer, m any) error {
	switch m := m.(type) {
	case Hello:
		return WriteHello(w, m)
	case Offer:
		return WriteOffer(w, m)
	case Answer:
		return WriteAnswer(w, m)
	case FileEnd:
		return WriteFileEnd(w, m)
	case Done:
		return WriteDone(w)
	case Receipt:
		return WriteReceipt(w, m)
	case Wait:
		return WriteWait(w, m)
	}
	panic("unknown message")
}

func readAs(r io.Reader, like any) (any, error) {
	switch like.(type) {
	case Hello:
		return ReadHello(r)
	case Offer:
		return ReadOffer(r)
	case Answer:
		return ReadAnswer(r)
	case FileEnd:
		return ReadFileEnd(r)
	case Done:
		return Done{}, ReadDone(r)
	case Receipt:
		return ReadReceipt(r)
	case Wait:
		return ReadWait(r)
	}
	panic("unknown message")
}

func TestGoldenBytes(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writeAny(&buf, g.msg); err != nil {
				t.Fatalf("write: %v", err)
			}
			if got := hex.EncodeToString(buf.Bytes()); got != g.hex {
				t.Fatalf("encoding differs\n got %s\nwant %s", got, g.hex)
			}
			got, err := readAs(&buf, g.msg)
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

func equalMsg(a, b any) bool {
	if oa, ok := a.(Offer); ok {
		ob := b.(Offer)
		if len(oa.Entries) != len(ob.Entries) {
			return false
		}
		for i := range oa.Entries {
			x, y := oa.Entries[i], ob.Entries[i]
			if !x.MTime.Equal(y.MTime) {
				return false
			}
			x.MTime, y.MTime = time.Time{}, time.Time{}
			if x != y {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestTruncatedAtEveryByte cuts each golden encoding at every length: a
// frame that ends early must never decode.
func TestTruncatedAtEveryByte(t *testing.T) {
	for _, g := range goldens {
		full, _ := hex.DecodeString(g.hex)
		for n := 0; n < len(full); n++ {
			_, err := readAs(bytes.NewReader(full[:n]), g.msg)
			if err == nil {
				t.Fatalf("%s cut at %d of %d bytes decoded without error", g.name, n, len(full))
			}
			want := io.ErrUnexpectedEOF
			if n == 0 {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Fatalf("%s cut at %d: got %v, want %v", g.name, n, err, want)
			}
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	frame := func(typ, version byte, payload string) []byte {
		p, err := hex.DecodeString(strings.ReplaceAll(payload, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		h := []byte{'L', 'S', version, typ, 0, 0, 0, 0}
		h[4], h[5], h[6], h[7] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
		return append(h, p...)
	}
	tests := []struct {
		name string
		in   []byte
		read func(io.Reader) error
		want error
	}{
		{"bad magic", []byte("GET / HTTP/1.1\r\n"), readHello, ErrBadMagic},
		{"wrong type", frame(2, 1, "00000000"), readHello, ErrUnexpectedFrame},
		{"other major offer", frame(2, 2, "00000000"), readOffer, ErrVersionMismatch},
		{"hello too long", append([]byte{'L', 'S', 1, 1, 0, 0, 2, 0}, make([]byte, 512)...), readHello, ErrTooLarge},
		{"frame over cap", []byte{'L', 'S', 1, 2, 0xff, 0xff, 0xff, 0xff}, readOffer, ErrTooLarge},
		{"hello trailing", frame(1, 1, "01 00 0000 ff"), readHello, ErrMalformed},
		{"name not utf8", frame(1, 1, "01 00 0001 ff"), readHello, ErrMalformed},
		{"too many entries", frame(2, 1, "000186a1"), readOffer, ErrTooLarge},
		{"count beyond payload", frame(2, 1, "00000002 01 000001a4 0000000000000000 0000000000000000 0001 61"), readOffer, ErrMalformed},
		{"bad kind", frame(2, 1, "00000001 03 000001a4 0000000000000000 0000000000000000 0001 61"), readOffer, ErrMalformed},
		{"setuid mode", frame(2, 1, "00000001 01 00000de4 0000000000000000 0000000000000000 0001 61"), readOffer, ErrMalformed},
		{"dir with size", frame(2, 1, "00000001 02 000001ed 0000000000000001 0000000000000000 0001 61"), readOffer, ErrMalformed},
		{"empty path", frame(2, 1, "00000001 01 000001a4 0000000000000000 0000000000000000 0000"), readOffer, ErrMalformed},
		{"path over cap", frame(2, 1, "00000001 01 000001a4 0000000000000000 0000000000000000 1001"+strings.Repeat("61", 4097)), readOffer, ErrTooLarge},
		{"component over cap", frame(2, 1, "00000001 01 000001a4 0000000000000000 0000000000000000 0100"+strings.Repeat("61", 256)), readOffer, ErrTooLarge},
		{"too deep", frame(2, 1, "00000001 01 000001a4 0000000000000000 0000000000000000 0101"+strings.Repeat("612f", 128)+"61"), readOffer, ErrTooLarge},
		{"accept with code", frame(3, 1, "0000 0000 00000001 01 0000000000000000 0002 0000"), readAnswer, ErrMalformed},
		{"refuse without code", frame(3, 1, "0000 0000 00000001 02 0000000000000000 0000 0000"), readAnswer, ErrMalformed},
		{"batch refusal with replies", frame(3, 1, "0003 0000 00000001 01 0000000000000000 0000 0000"), readAnswer, ErrMalformed},
		{"file-end bad status", frame(4, 1, "00000000 09 0000 0000"+strings.Repeat("00", 32)), readFileEnd, ErrMalformed},
		{"file-end too long", frame(4, 1, "00000000 01 0000 0400"+strings.Repeat("00", 1024+32)), readFileEnd, ErrTooLarge},
		{"done with payload", frame(5, 1, "00"), readDone, ErrTooLarge},
		{"saved without path", frame(6, 1, "00000001 01 0000 0000 0000"), readReceipt, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.read(bytes.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func readHello(r io.Reader) error   { _, err := ReadHello(r); return err }
func readOffer(r io.Reader) error   { _, err := ReadOffer(r); return err }
func readAnswer(r io.Reader) error  { _, err := ReadAnswer(r); return err }
func readFileEnd(r io.Reader) error { _, err := ReadFileEnd(r); return err }
func readDone(r io.Reader) error    { return ReadDone(r) }
func readReceipt(r io.Reader) error { _, err := ReadReceipt(r); return err }

func TestCheckVersion(t *testing.T) {
	if err := NewHello("a").CheckVersion(); err != nil {
		t.Fatalf("own version refused: %v", err)
	}
	err := Hello{Major: Major + 1}.CheckVersion()
	if !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("other major: got %v", err)
	}
	if !strings.Contains(err.Error(), "peer speaks protocol 2.0") {
		t.Fatalf("error does not say which version: %v", err)
	}
}

func TestWriteRefusesInvalid(t *testing.T) {
	var buf bytes.Buffer
	cases := map[string]error{
		"entry with setuid":  WriteOffer(&buf, Offer{Entries: []Entry{{Path: "a", Kind: KindFile, Mode: 0o4755}}}),
		"long name":          WriteHello(&buf, Hello{Name: strings.Repeat("x", MaxNameLen+1)}),
		"saved without path": WriteReceipt(&buf, Receipt{Results: []Result{{Status: Saved}}}),
		"long reason":        WriteAnswer(&buf, Answer{Code: CodeBusy, Reason: strings.Repeat("x", MaxReasonLen+1)}),
	}
	for name, err := range cases {
		if err == nil {
			t.Errorf("%s: written without error", name)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("invalid messages wrote %d bytes", buf.Len())
	}
}

// TestLyingLengthAllocatesLittle: a peer that declares a 64 MiB offer and
// then stops must not make us allocate 64 MiB.
func TestLyingLengthAllocatesLittle(t *testing.T) {
	in := []byte{'L', 'S', 1, 2, 0x04, 0, 0, 0, 0, 0, 0, 1}
	allocs := testing.AllocsPerRun(10, func() {
		_, _ = ReadOffer(bytes.NewReader(in))
	})
	var ms1, ms2 runtimeMem
	ms1.read()
	for range 10 {
		_, _ = ReadOffer(bytes.NewReader(in))
	}
	ms2.read()
	if grew := ms2.total - ms1.total; grew > 10<<20 {
		t.Fatalf("10 lying offers allocated %d bytes (%v allocs each)", grew, allocs)
	}
}

func TestDigestIsBLAKE3(t *testing.T) {
	h := NewDigest()
	h.Write([]byte("abc"))
	// BLAKE3("abc") from the reference test vectors.
	const want = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("digest of abc = %s, want %s", got, want)
	}
	if h.Size() != DigestSize {
		t.Fatalf("digest size %d", h.Size())
	}
}

// TestReadOfferFuncReservesBeforeAllocating: the reserve callback sees the
// declared length and entry count before the payload is allocated; its
// error ends the read with nothing of that size allocated; and the paths
// of an accepted offer share one allocation instead of one each.
func TestReadOfferFuncReservesBeforeAllocating(t *testing.T) {
	var o Offer
	for i := range 1000 {
		o.Entries = append(o.Entries, Entry{Path: fmt.Sprintf("dir/file-%04d.bin", i), Kind: KindFile, Size: uint64(i), Mode: 0o644})
	}
	var buf bytes.Buffer
	if err := WriteOffer(&buf, o); err != nil {
		t.Fatal(err)
	}
	wire := buf.Bytes()
	var gotLen, gotEntries int
	got, err := ReadOfferFunc(bytes.NewReader(wire), func(n, entries int) error {
		gotLen, gotEntries = n, entries
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if gotLen != len(wire)-HeaderSize || gotEntries != 1000 {
		t.Errorf("reserve saw %d bytes and %d entries, want %d and 1000", gotLen, gotEntries, len(wire)-HeaderSize)
	}
	if !reflect.DeepEqual(got, o) {
		t.Error("offer read with a reserve differs from the one written")
	}
	allocs := testing.AllocsPerRun(10, func() {
		_, _ = ReadOfferFunc(bytes.NewReader(wire), func(int, int) error { return nil })
	})
	if allocs > 10 {
		t.Errorf("reading a 1000-entry offer took %v allocations, want a handful (paths share the payload)", allocs)
	}

	// A 64 MiB declaration refused by reserve allocates nothing of it.
	lying := []byte{'L', 'S', 1, 2, 0x04, 0, 0, 0, 0, 0, 0, 1}
	errFull := errors.New("budget exhausted")
	var ms1, ms2 runtimeMem
	ms1.read()
	for range 10 {
		_, err = ReadOfferFunc(bytes.NewReader(lying), func(int, int) error { return errFull })
		if !errors.Is(err, errFull) {
			t.Fatalf("refused reserve: %v, want it wrapped", err)
		}
	}
	ms2.read()
	if grew := ms2.total - ms1.total; grew > 1<<20 {
		t.Fatalf("10 refused offers allocated %d bytes", grew)
	}
}

// TestReadAnswerWaitingTakesOneWaitThenTheAnswer pins the 1.1 exchange: a
// Wait before the Answer is reported, and the Answer still read; a second
// Wait, or a Wait to a reader of ReadAnswer (a 1.0 sender), is refused.
func TestReadAnswerWaitingTakesOneWaitThenTheAnswer(t *testing.T) {
	var buf bytes.Buffer
	w := Wait{Timeout: 90 * time.Second, Reason: "waiting for the owner"}
	a := Answer{Code: CodeDenied, Reason: "declined by the owner"}
	if err := WriteWait(&buf, w); err != nil {
		t.Fatal(err)
	}
	if err := WriteAnswer(&buf, a); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	n := HeaderSize + 4 + 2 + len(w.Reason) // the wait frame
	var got []Wait
	ans, err := ReadAnswerWaiting(bytes.NewReader(raw), func(w Wait) { got = append(got, w) })
	if err != nil || !reflect.DeepEqual(ans, a) || len(got) != 1 || got[0] != w {
		t.Fatalf("ReadAnswerWaiting = %+v, %v; waits %+v", ans, err, got)
	}
	if ans, err := ReadAnswerWaiting(bytes.NewReader(raw[n:]), nil); err != nil || !reflect.DeepEqual(ans, a) {
		t.Fatalf("answer without a wait: %+v, %v", ans, err)
	}
	twice := append(append([]byte{}, raw[:n]...), raw...)
	if _, err := ReadAnswerWaiting(bytes.NewReader(twice), nil); !errors.Is(err, ErrUnexpectedFrame) {
		t.Fatalf("two waits: %v, want ErrUnexpectedFrame", err)
	}
	if _, err := ReadAnswer(bytes.NewReader(raw)); !errors.Is(err, ErrUnexpectedFrame) {
		t.Fatalf("ReadAnswer on a wait: %v, want ErrUnexpectedFrame", err)
	}
	if err := WriteWait(io.Discard, Wait{Timeout: MaxWait + time.Millisecond}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("WriteWait over MaxWait: %v", err)
	}
}

// TestSmallFrameAllocatesItsSize: a small frame, read once a file, costs
// about its own size, not a read buffer's (a bytes.Buffer's 512-byte
// steps cost two kilobytes a file-end).
func TestSmallFrameAllocatesItsSize(t *testing.T) {
	var buf bytes.Buffer
	const n = 1000
	for i := range n {
		if err := WriteFileEnd(&buf, FileEnd{Index: uint32(i), Status: Sent}); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(buf.Bytes())
	var ms1, ms2 runtimeMem
	ms1.read()
	for i := range n {
		if fe, err := ReadFileEnd(r); err != nil || fe.Index != uint32(i) {
			t.Fatalf("file-end %d: %+v, %v", i, fe, err)
		}
	}
	ms2.read()
	if per := (ms2.total - ms1.total) / n; per > 256 {
		t.Errorf("a file-end read allocated %d bytes", per)
	}
}

// TestOfferWithEmptyPathSaysSo: an offer whose entry has an empty path is
// malformed, and says why (it read "1 entries cannot fit in 23 bytes").
func TestOfferWithEmptyPathSaysSo(t *testing.T) {
	payload := []byte{0, 0, 0, 1, byte(KindFile), 0, 0, 1, 0xa4}
	payload = append(payload, make([]byte, 8+8+2)...) // size, mtime, a path of length 0
	frame := []byte{'L', 'S', Major, byte(TypeOffer), 0, 0, 0, byte(len(payload))}
	_, err := ReadOffer(bytes.NewReader(append(frame, payload...)))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "empty path") {
		t.Fatalf("got %v, want a malformed offer for its empty path", err)
	}
}

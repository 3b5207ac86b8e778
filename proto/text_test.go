package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// textGoldens are the text messages of protocol 1.2, byte by byte from
// PROTOCOL.md.
var textGoldens = []golden{
	{
		name: "offer text",
		msg:  Offer{Entries: []Entry{{Path: "message.txt", Kind: KindText, Size: 20, Mode: 0o644, MTime: mtime}}},
		hex: hx("4c53 01 02 00000026",
			"00000001",
			"03 000001a4 0000000000000014 17979cfe362a0000 000b 6d657373616765 2e747874"),
	},
	{
		name: "offer text and file",
		msg: Offer{Entries: []Entry{
			{Path: "message.txt", Kind: KindText, Size: MaxTextLen, Mode: 0o644},
			{Path: "a.txt", Kind: KindFile, Size: 5, Mode: 0o644, MTime: mtime},
		}},
		hex: hx("4c53 01 02 00000042",
			"00000002",
			"03 000001a4 0000000000010000 0000000000000000 000b 6d657373616765 2e747874",
			"01 000001a4 0000000000000005 17979cfe362a0000 0005 612e747874"),
	},
	{
		name: "receipt delivered",
		msg:  Receipt{Results: []Result{{Status: Delivered}}, Sender: "abc"},
		hex:  hx("4c53 01 06 00000010", "00000001", "05 0000 0000 0000", "0003 616263"),
	},
	{
		name: "receipt delivered and saved",
		msg:  Receipt{Results: []Result{{Status: Delivered, SavedAs: "t.txt"}}},
		hex:  hx("4c53 01 06 00000012", "00000001", "05 0000 0005 742e747874 0000", "0000"),
	},
}

func TestTextGoldenBytes(t *testing.T) {
	for _, g := range textGoldens {
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
			// Cut anywhere, it never decodes.
			full, _ := hex.DecodeString(g.hex)
			for n := 1; n < len(full); n++ {
				if _, err := readAs(bytes.NewReader(full[:n]), g.msg); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("cut at %d of %d: %v, want ErrUnexpectedEOF", n, len(full), err)
				}
			}
		})
	}
}

// TestTextOfferRejects: a text entry is 1 to MaxTextLen bytes and an offer
// holds one at most; the writer refuses to write anything else, and the
// reader refuses it before the offer is used.
func TestTextOfferRejects(t *testing.T) {
	text := func(size uint64) Entry {
		return Entry{Path: "message.txt", Kind: KindText, Size: size, Mode: 0o644}
	}
	tests := []struct {
		name    string
		entries []Entry
		want    error
	}{
		{"empty text", []Entry{text(0)}, ErrMalformed},
		{"text over the cap", []Entry{text(MaxTextLen + 1)}, ErrTooLarge},
		{"two texts", []Entry{text(1), text(2)}, ErrMalformed},
		{"text with setuid", []Entry{{Path: "m", Kind: KindText, Size: 1, Mode: 0o4644}}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteOffer(&buf, Offer{Entries: tt.entries}); !errors.Is(err, tt.want) {
				t.Fatalf("WriteOffer: %v, want %v", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Fatalf("a refused offer wrote %d bytes", buf.Len())
			}
			// The same bytes, encoded by hand, are refused by the reader.
			var e enc
			e.u32(uint32(len(tt.entries)))
			for _, en := range tt.entries {
				e.u8(uint8(en.Kind))
				e.u32(en.Mode)
				e.u64(en.Size)
				e.u64(0)
				e.str(en.Path)
			}
			if err := writeFrame(&buf, TypeOffer, e); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadOffer(&buf); !errors.Is(err, tt.want) {
				t.Fatalf("ReadOffer: %v, want %v", err, tt.want)
			}
		})
	}
	if !HasText([]Entry{{Kind: KindFile}, text(3)}) || HasText([]Entry{{Kind: KindFile}}) {
		t.Error("HasText does not find the text entry")
	}
	if KindText.String() != "text" {
		t.Errorf("KindText prints as %q", KindText)
	}
}

// TestOlderReaderRefusesText pins what a 1.1 receiver does with a text
// offer: its decoder knew kinds 1 and 2 only, and a kind 3 was malformed.
// The 1.2 reader still refuses a kind it does not know the same way.
func TestOlderReaderRefusesText(t *testing.T) {
	var e enc
	e.u32(1)
	e.u8(9) // a kind no version defines
	e.u32(0o644)
	e.u64(1)
	e.u64(0)
	e.str("x")
	var buf bytes.Buffer
	if err := writeFrame(&buf, TypeOffer, e); err != nil {
		t.Fatal(err)
	}
	_, err := ReadOffer(&buf)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "entry kind 9") {
		t.Fatalf("unknown kind: %v, want ErrMalformed naming the kind", err)
	}
	if Minor < MinorText {
		t.Fatalf("this package speaks 1.%d, below MinorText %d", Minor, MinorText)
	}
}

// FuzzReadTextOffer is FuzzReadOffer seeded with the text offers too.
func FuzzReadTextOffer(f *testing.F) {
	for _, g := range textGoldens {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	fuzzDecoder(f, Offer{})
}

// FuzzReadTextReceipt is FuzzReadReceipt seeded with Delivered results.
func FuzzReadTextReceipt(f *testing.F) {
	for _, g := range textGoldens {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	fuzzDecoder(f, Receipt{})
}

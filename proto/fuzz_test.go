package proto

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// fuzzDecoder seeds f with every golden encoding of like's type and checks
// that the decoder never panics and that whatever it accepts re-encodes to
// bytes it decodes to the same message.
func fuzzDecoder(f *testing.F, like any) {
	for _, g := range goldens {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		msg, err := readAs(bytes.NewReader(in), like)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := writeAny(&buf, msg); err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", msg, err)
		}
		again, err := readAs(&buf, like)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", msg, err)
		}
		if !equalMsg(msg, again) {
			t.Fatalf("round trip changed %+v into %+v", msg, again)
		}
	})
}

func FuzzReadHello(f *testing.F)   { fuzzDecoder(f, Hello{}) }
func FuzzReadOffer(f *testing.F)   { fuzzDecoder(f, Offer{}) }
func FuzzReadAnswer(f *testing.F)  { fuzzDecoder(f, Answer{}) }
func FuzzReadFileEnd(f *testing.F) { fuzzDecoder(f, FileEnd{}) }
func FuzzReadDone(f *testing.F)    { fuzzDecoder(f, Done{}) }
func FuzzReadReceipt(f *testing.F) { fuzzDecoder(f, Receipt{}) }
func FuzzReadWait(f *testing.F)    { fuzzDecoder(f, Wait{}) }

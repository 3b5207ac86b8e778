package localsend

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodePrepareUpload checks, from the golden bodies on, that the
// decoder never panics, that it fails only with a sentinel, and that what
// it accepts encodes to a body it decodes to the same request.
func FuzzDecodePrepareUpload(f *testing.F) {
	for _, g := range prepareGoldens {
		f.Add([]byte(g.body))
	}
	f.Add([]byte(body(file("a", `"size":1`) + "," + file("b", `"size":2,"sha256":"`+helloSHA256+`"`))))
	lim := Limits{MaxBytes: 1 << 20, MaxFiles: 64}
	f.Fuzz(func(t *testing.T, in []byte) {
		pu, err := DecodePrepareUpload(bytes.NewReader(in), lim)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := EncodePrepareUpload(&buf, pu); err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", pu, err)
		}
		again, err := DecodePrepareUpload(&buf, Limits{})
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", pu, err)
		}
		if !reflect.DeepEqual(pu, again) {
			t.Fatalf("round trip changed %+v into %+v", pu, again)
		}
	})
}

// FuzzDecodePrepareUploadReply does the same for the sender's side.
func FuzzDecodePrepareUploadReply(f *testing.F) {
	for _, g := range replyGoldens {
		f.Add([]byte(g.body))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := DecodePrepareUploadReply(bytes.NewReader(in), Limits{MaxBytes: 1 << 20, MaxFiles: 64})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := EncodePrepareUploadReply(&buf, rep); err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", rep, err)
		}
		again, err := DecodePrepareUploadReply(&buf, Limits{})
		if err != nil || !reflect.DeepEqual(rep, again) {
			t.Fatalf("round trip changed %+v into %+v (%v)", rep, again, err)
		}
	})
}

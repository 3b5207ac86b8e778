package peer

import (
	"errors"
	"testing"

	"github.com/lanshare/lanshare/proto"
)

// TestReceiptFailuresAreIncompleteNotRefused: a file the receiver
// accepted and then could not save for a reason the same send may mend
// (a failed write, a digest that did not match) makes the send
// incomplete, "could not save"; a limit met on the way (too large), a
// lack of space and a pipe's stop stay refusals.
func TestReceiptFailuresAreIncompleteNotRefused(t *testing.T) {
	for _, c := range []struct {
		kind    proto.Kind
		code    proto.Code
		refused bool
	}{
		{proto.KindFile, proto.CodeIO, false},
		{proto.KindFile, proto.CodeDigest, false},
		{proto.KindFile, proto.CodeAborted, false},
		{proto.KindFile, proto.CodeTooLarge, true},
		{proto.KindFile, proto.CodeNoSpace, true},
		{proto.KindStream, proto.CodeIO, true},
	} {
		r := &Report{Peer: "bob",
			Items:   []Item{{Entry: proto.Entry{Kind: c.kind, Path: "a.bin", Size: 1}}},
			Results: []proto.Result{{Status: proto.Failed, Code: c.code, Reason: "why"}}}
		err := r.check()
		if errors.Is(err, ErrRefused) != c.refused || errors.Is(err, ErrIncomplete) == c.refused {
			t.Errorf("%v of a kind %d: %v: refused %v, incomplete %v; want refused %v", c.code, c.kind, err,
				errors.Is(err, ErrRefused), errors.Is(err, ErrIncomplete), c.refused)
		}
		if want := "bob could not save a.bin: why"; !c.refused && err.Error() != want {
			t.Errorf("%q, want %q", err, want)
		}
	}
}

// TestSenderReasonWithoutReason: an entry its sender gave up without a
// reason is logged and answered with what the code means, not "sender: ".
func TestSenderReasonWithoutReason(t *testing.T) {
	if got, want := senderReason(proto.CodeSourceChanged, ""), "sender: "+proto.CodeSourceChanged.String(); got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got := senderReason(proto.CodeSourceChanged, "gone"); got != "sender: gone" {
		t.Errorf("%q, want the sender's reason", got)
	}
}

package proto

import "fmt"

// Text messages (protocol 1.2).
//
// A text message travels as an offer entry of KindText: Size is the
// length of the message in bytes (UTF-8), Path a name for it (lanshare
// sends "message.txt"; a receiver creates nothing under it), MTime when
// it was written. Its bytes stream after the answer like a file's, then a
// FileEnd with their digest; the receipt's result for it is Delivered.
// An offer holds at most one text entry.
//
// A receiver older than 1.2 reads kind 3 as a malformed offer and refuses
// the batch with CodeProtocol after its Hello: a sender that offered a
// text and gets such a refusal from a peer whose Hello says a minor below
// MinorText tells its user that the peer cannot receive texts.
const (
	// MinorText is the first minor version that takes KindText entries.
	MinorText = 2
	// MaxTextLen caps a text message, in bytes.
	MaxTextLen = 64 << 10
)

// checkTextSize checks a text entry's size: 1 to MaxTextLen bytes.
func checkTextSize(size uint64) error {
	switch {
	case size == 0:
		return fmt.Errorf("%w: empty text message", ErrMalformed)
	case size > MaxTextLen:
		return fmt.Errorf("text message of %d bytes (max %d): %w", size, MaxTextLen, ErrTooLarge)
	}
	return nil
}

// checkTexts checks that entries hold at most one text message.
func checkTexts(entries []Entry) error {
	n := 0
	for _, e := range entries {
		if e.Kind == KindText {
			if n++; n > 1 {
				return fmt.Errorf("%w: more than one text message in an offer", ErrMalformed)
			}
		}
	}
	return nil
}

// HasText reports whether an offer's entries hold a text message.
func HasText(entries []Entry) bool {
	for _, e := range entries {
		if e.Kind == KindText {
			return true
		}
	}
	return false
}

package main

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lanshare/lanshare/peer"
)

// TestDescribeOfferClipsLongNames: a stranger's name and first paths are
// shown clipped, so that an offer's line stays one readable line (a path
// may be 4096 bytes, a name 256: three such paths made a 12 kB line whose
// spaces could push the real sender and counts off the screen).
func TestDescribeOfferClipsLongNames(t *testing.T) {
	long := "report" + strings.Repeat(" ", 3000) + "x.pdf"
	o := peer.PendingOffer{ID: "1", From: strings.Repeat("é", 128), PeerID: "ttj35jp3aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		Files: 3, Bytes: 10, First: []string{long, long, long}}
	s := describeOffer(o)
	if n := utf8.RuneCountInString(s); n > 400 {
		t.Fatalf("offer described in %d characters, want at most 400: %q", n, s)
	}
	if !strings.Contains(s, "offers 3 files") || !strings.Contains(s, "…") {
		t.Fatalf("described as %q, want the counts and a clipped name", s)
	}
	if !utf8.ValidString(s) {
		t.Fatalf("described as %q: not valid UTF-8", s)
	}
}

// TestDescribeOfferQuotesSenderWithPunctuation: a stranger whose name
// imitates the description ("alice (ttj3-5jp3) offers 1 file, 2 kB:
// notes.txt; and") shows quoted, so its fake id is not read as the id.
func TestDescribeOfferQuotesSenderWithPunctuation(t *testing.T) {
	o := peer.PendingOffer{ID: "1", From: "alice (ttj3-5jp3)", PeerID: "zzzzyyyyaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Files: 1, Bytes: 10, First: []string{"x.exe"}}
	if s := describeOffer(o); !strings.HasPrefix(s, `"alice (ttj3-5jp3)" (`) {
		t.Errorf("described as %q, want the name quoted", s)
	}
	o.From = "alice"
	if s := describeOffer(o); !strings.HasPrefix(s, `alice (`) {
		t.Errorf("described as %q, want a plain name as it is", s)
	}
}

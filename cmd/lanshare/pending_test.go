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

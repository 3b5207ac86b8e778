package main

import (
	"strings"
	"testing"

	"github.com/lanshare/lanshare/peer"
)

// TestDescribeOfferStream: an offer with a pipe says that its size is not
// known, rather than counting it as 0 B.
func TestDescribeOfferStream(t *testing.T) {
	got := describeOffer(peer.PendingOffer{From: "alice", PeerID: strings.Repeat("a", 52), Files: 1, Streams: 1, First: []string{"photos.tar"}})
	if !strings.Contains(got, "offers 1 file, 0 B and 1 of a size that comes only at its end (a pipe): photos.tar") {
		t.Fatalf("describeOffer = %q", got)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

// TestServeLogSummarisesRefusals: a transfer of 100,000 refused names
// writes a bounded number of lines to serve's log, text and --json: the
// first few files, then one line counting the rest by reason.
func TestServeLogSummarisesRefusals(t *testing.T) {
	const n = 100_000
	tr := &peer.Transfer{From: "mallory"}
	for i := range n {
		r := proto.Result{Status: proto.Refused, Code: proto.CodeBadName, Reason: "unsafe name: control character U+0001"}
		if i%10_000 == 0 {
			r = proto.Result{Status: proto.Failed, Code: proto.CodeDigest, Reason: "digest mismatch"}
		}
		tr.Entries = append(tr.Entries, peer.Received{Path: fmt.Sprintf("bad\x01%06d", i), Kind: proto.KindFile, Size: 1, Result: r})
	}
	in := peer.Incoming{Remote: &net.TCPAddr{IP: net.IPv4(10, 77, 0, 9), Port: 5000}, PeerID: strings.Repeat("a", 52),
		Transfer: tr, Start: time.Now(), End: time.Now()}
	for _, asJSON := range []bool{false, true} {
		var out bytes.Buffer
		logTransfer(newAgentLog(&out, asJSON), in, true)
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) > notSavedLines+2 {
			t.Errorf("json=%v: %d log lines for one transfer of %d refused names, want at most %d", asJSON, len(lines), n, notSavedLines+2)
		}
		var summary string
		for _, l := range lines {
			if strings.Contains(l, "more not saved") || strings.Contains(l, `"suppressed"`) {
				summary = l
			}
		}
		want := []string{fmt.Sprint(n - notSavedLines), "99990 unsafe name", "10 digest mismatch"}
		for _, w := range want {
			if !strings.Contains(summary, w) {
				t.Errorf("json=%v: summary line %q does not say %q", asJSON, summary, w)
			}
		}
		if asJSON {
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("not JSON: %q", l)
				}
			}
		}
	}
}

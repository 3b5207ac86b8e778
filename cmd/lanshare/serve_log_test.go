package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
		logTransfer(newAgentLog(&out, asJSON), in)
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

// savedTransfer is a transfer of n files of 4 kB from alice, each with
// status.
func savedTransfer(n int, status proto.Status) peer.Incoming {
	tr := &peer.Transfer{From: "alice"}
	for i := range n {
		p := fmt.Sprintf("photos/%05d.jpg", i)
		tr.Entries = append(tr.Entries, peer.Received{Path: p, Kind: proto.KindFile, Size: 4000,
			Result: proto.Result{Status: status, SavedAs: p}, Elapsed: time.Duration(i) * time.Millisecond})
	}
	start := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	return peer.Incoming{Remote: &net.TCPAddr{IP: net.IPv4(10, 77, 0, 2), Port: 40000}, PeerID: "ttj35jp3" + strings.Repeat("a", 44),
		Transfer: tr, Start: start, End: start.Add(4 * time.Second)}
}

// TestServeLogOneLinePerTransfer: a transfer of 5,000 files writes at
// most 12 lines to serve's text log (the first 10 files, a count of the
// rest, and one line with the count, bytes, time and sender), every file
// with --verbose, and every file's event with --json.
func TestServeLogOneLinePerTransfer(t *testing.T) {
	const n = 5000
	in := savedTransfer(n, proto.Saved)
	logLines := func(asJSON, verbose bool) []string {
		var out bytes.Buffer
		l := newAgentLog(&out, asJSON)
		l.verbose = verbose
		logTransfer(l, in)
		return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	}
	lines := logLines(false, false)
	if len(lines) > fileLines+2 {
		t.Errorf("%d log lines for one transfer of %d files, want at most %d:\n%s", len(lines), n, fileLines+2, strings.Join(lines, "\n"))
	}
	if got := len(received(lines)); got != fileLines {
		t.Errorf("%d lines name a received file, want %d", got, fileLines)
	}
	last := lines[len(lines)-1]
	for _, want := range []string{"transfer from alice (10.77.0.2:40000, id ttj3-5jp3) done", "5000 files", "20.0 MB", "4.0 s", "5.0 MB/s"} {
		if !strings.Contains(last, want) {
			t.Errorf("the transfer's line %q does not say %q", last, want)
		}
	}
	if more := lines[len(lines)-2]; !strings.Contains(more, fmt.Sprintf("and %d more files from alice", n-fileLines)) {
		t.Errorf("the line before the transfer's = %q, want it to count the %d files not listed", more, n-fileLines)
	}
	if got := len(received(logLines(false, true))); got != n {
		t.Errorf("--verbose: %d lines name a received file, want %d", got, n)
	}
	saved, done := 0, 0
	for _, l := range logLines(true, false) {
		var ev serveEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		switch ev.Event {
		case "file-saved":
			saved++
		case "transfer-done":
			done++
			if ev.Files != n || ev.Bytes != n*4000 {
				t.Errorf("transfer-done = %+v, want %d files, %d bytes", ev, n, n*4000)
			}
		}
	}
	if saved != n || done != 1 {
		t.Errorf("--json: %d file-saved and %d transfer-done events, want %d and 1", saved, done, n)
	}
}

// TestServeLogFileLinesHaveNoCumulativeTime: a file's line gives no time
// (the time from the transfer's start to the file, which it gave before,
// said "4.0 kB in 4.9 s" for a small file); the transfer's line has the
// time.
func TestServeLogFileLinesHaveNoCumulativeTime(t *testing.T) {
	var out bytes.Buffer
	logTransfer(newAgentLog(&out, false), savedTransfer(5, proto.Saved))
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if strings.Contains(l, " received photos/") && !strings.HasSuffix(l, ", 4.0 kB") {
			t.Errorf("file line %q, want it to end with the size, no time", l)
		}
	}
}

// TestServeLogResendSaysAlreadyThere: a transfer whose files were all
// there already says so in one line, with no rate.
func TestServeLogResendSaysAlreadyThere(t *testing.T) {
	var out bytes.Buffer
	logTransfer(newAgentLog(&out, false), savedTransfer(3, proto.Skipped))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.HasSuffix(lines[0], "transfer from alice (10.77.0.2:40000, id ttj3-5jp3) done: nothing new, 3 files already there") {
		t.Errorf("log of a resend that moved nothing:\n%s", out.String())
	}
	if strings.Contains(out.String(), "B/s") {
		t.Errorf("a transfer that moved nothing gives a rate:\n%s", out.String())
	}
}

// TestFailureReasonSaysWhatIsKept: a cut transfer's line says who cut it,
// in words, and what of the file it was in is kept for a resume.
func TestFailureReasonSaysWhatIsKept(t *testing.T) {
	tr := &peer.Transfer{From: "alice", Entries: []peer.Received{
		{Path: "a.txt", Kind: proto.KindFile, Size: 5, Result: proto.Result{Status: proto.Saved, SavedAs: "a.txt"}},
		{Path: "big.bin", Kind: proto.KindFile, Size: 3e9, Kept: 2e9, Result: proto.Result{Status: proto.Failed, Code: proto.CodeInternal, Reason: "not processed"}},
	}}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("receiving big.bin: %w", io.ErrUnexpectedEOF),
			"receiving big.bin: unexpected EOF (the sender stopped, or the network dropped); kept for a resume (the same send again goes on from there): 2.0 GB of big.bin"},
		{fmt.Errorf("%w: receiving big.bin: read tcp 10.77.0.2:52741->10.77.0.1:59450: %w", peer.ErrClosed, net.ErrClosed),
			"this agent stopped in the middle; kept for a resume (the same send again goes on from there): 2.0 GB of big.bin"},
	} {
		if got := failureReason(peer.Incoming{Transfer: tr, Err: tc.err}); got != tc.want {
			t.Errorf("failureReason(%v) =\n%q, want\n%q", tc.err, got, tc.want)
		}
	}
}

// TestRefusedTransfersShareTheLimit: transfers whose every file is
// refused (a flood of bad names, each offer finished properly) get the
// lines of one per 10 s from an address, and a count of the rest; one
// that saved a file is logged whole, and so is a re-send that found
// everything there.
func TestRefusedTransfersShareTheLimit(t *testing.T) {
	var out bytes.Buffer
	lg, limit := newAgentLog(&out, false), &failureLog{}
	at := time.Now()
	remote := &net.TCPAddr{IP: net.IPv4(10, 77, 0, 9), Port: 5000}
	refused := func(n int) peer.Incoming {
		tr := &peer.Transfer{From: "mallory"}
		for i := range n {
			tr.Entries = append(tr.Entries, peer.Received{Path: fmt.Sprintf("bad\x01%d", i), Kind: proto.KindFile, Size: 1,
				Result: proto.Result{Status: proto.Refused, Code: proto.CodeBadName, Reason: "unsafe name"}})
		}
		return peer.Incoming{Remote: remote, PeerID: strings.Repeat("a", 52), Transfer: tr, Start: at, End: at}
	}
	for range 2000 {
		logLimited(lg, limit, refused(12))
	}
	one := strings.Count(out.String(), "\n")
	if one == 0 || one > 14 {
		t.Fatalf("2000 refused transfers in one instant wrote %d lines, want those of one:\n%s", one, out.String())
	}
	// 10 s on: one more transfer's lines, and the count of those left out.
	in := refused(1)
	in.End = at.Add(11 * time.Second)
	logLimited(lg, limit, in)
	if !strings.Contains(out.String(), "1999 more failed connections from 10.77.0.9 not logged") {
		t.Errorf("no count of the transfers left out:\n%s", out.String())
	}

	// Not limited: a transfer that saved a file, one that found all
	// there.
	for _, status := range []proto.Status{proto.Saved, proto.Skipped} {
		out.Reset()
		tr := savedTransfer(1, status).Transfer
		for range 3 {
			logLimited(lg, limit, peer.Incoming{Remote: remote, Transfer: tr, Start: at, End: at.Add(12 * time.Second)})
		}
		if n := strings.Count(out.String(), "transfer from"); n != 3 {
			t.Errorf("3 transfers (%v) gave %d transfer lines:\n%s", status, n, out.String())
		}
	}

	// Limited: a folder or an empty file accepted beside the bad names,
	// a hang-up after the answer.
	out.Reset()
	for k := range 100 {
		in := refused(12)
		switch k % 3 {
		case 0:
			in.Transfer.Entries = append(in.Transfer.Entries, peer.Received{Path: "x", Kind: proto.KindDir, Result: proto.Result{Status: proto.Saved, SavedAs: "x"}})
		case 1:
			in.Transfer.Entries = append(in.Transfer.Entries, peer.Received{Path: "e", Kind: proto.KindFile, Result: proto.Result{Status: proto.Saved, SavedAs: "e"}})
		case 2:
			in.Transfer.Entries = in.Transfer.Entries[:0]
			in.Err = io.ErrUnexpectedEOF
		}
		in.End = at.Add(30 * time.Second)
		logLimited(lg, limit, in)
	}
	if n := strings.Count(out.String(), "\n"); n > 14 {
		t.Errorf("100 transfers that moved no file bytes wrote %d lines:\n%s", n, out.String())
	}

	// A transfer that saved a file and refused bad names: every one
	// logged, the names of one per 10 s listed.
	out.Reset()
	for range 100 {
		in := refused(12)
		in.Transfer.Entries = append(in.Transfer.Entries, peer.Received{Path: "f", Kind: proto.KindFile, Size: 1, Result: proto.Result{Status: proto.Saved, SavedAs: "f"}})
		in.End = at.Add(50 * time.Second)
		logLimited(lg, limit, in)
	}
	if n, named := strings.Count(out.String(), " done: "), strings.Count(out.String(), "not saved bad"); n != 100 || named > 10 {
		t.Errorf("100 transfers of a file and 12 bad names: %d transfer lines (want 100), %d names listed (want 10 at most)", n, named)
	}
}

package peer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// TestDuplicateEntryAnsweredAtOnce: an offer that names one large file
// twice is answered at once, the file crosses once, and both entries are
// reported: the first saved, the second as that same file.
func TestDuplicateEntryAnsweredAtOnce(t *testing.T) {
	content := randomBytes(t, resumeMin+1<<20)
	src := writeTree(t, map[string]string{"big.iso": content})
	item := collect(t, filepath.Join(src, "big.iso"))[0]
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, senderPolicy)

	start := time.Now()
	rep, err := SendTo(context.Background(), addr, []Item{item, item}, SendOptions{Name: "s", Retries: -1})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("sending one file twice: %v", err)
	}
	if took > claimIdle {
		t.Fatalf("took %v: the duplicate was waited for", took)
	}
	if rep.Sent != uint64(len(content)) {
		t.Fatalf("sent %d bytes, want the file once (%d)", rep.Sent, len(content))
	}
	first, second := rep.Results[0], rep.Results[1]
	if first.Status != proto.Saved || first.SavedAs != "big.iso" {
		t.Fatalf("first entry: %+v, want saved as big.iso", first)
	}
	if second.Status != proto.Skipped || second.SavedAs != "big.iso" || second.Reason != reasonDuplicate {
		t.Fatalf("second entry: %+v, want skipped as the same big.iso", second)
	}
	assertTree(t, in.Dir(), map[string]string{"big.iso": content})
}

// heldKeys makes a transfer that holds the keys of entries and never
// goes idle: it receives them, as far as a claim can tell.
func heldKeys(t testing.TB, in *Inbox, pol Policy, entries []proto.Entry) *transfer {
	t.Helper()
	h := newTransfer(in, pol, proto.Offer{Entries: entries}, time.Now())
	h.active.Store(time.Now().Add(time.Hour).UnixNano())
	for _, e := range entries {
		if !in.claim(fileKey(pol.SenderID, pol.Folder, e), h, time.Now()) {
			t.Fatal("could not claim a free key")
		}
	}
	return h
}

// bigEntries returns n offered files of resumable size.
func bigEntries(n int) []proto.Entry {
	var out []proto.Entry
	for i := range n {
		out = append(out, proto.Entry{Path: string(rune('a'+i)) + ".bin", Kind: proto.KindFile, Size: resumeMin,
			Mode: 0o644, MTime: time.Unix(1700000000, 0)})
	}
	return out
}

// TestClaimWaitBoundedPerOffer: an offer of many large files that another
// live transfer of the sender is receiving waits at most claimWait in all,
// not claimWait per file, and receives them unclaimed.
func TestClaimWaitBoundedPerOffer(t *testing.T) {
	in := newInbox(t, InboxConfig{HandshakeTimeout: time.Minute})
	entries := bigEntries(4)
	heldKeys(t, in, senderPolicy, entries)
	tr := newTransfer(in, senderPolicy, proto.Offer{Entries: entries}, time.Now())
	start := time.Now()
	a, _ := tr.plan()
	if took := time.Since(start); took > claimWait+time.Second {
		t.Fatalf("plan took %v for %d held files, want at most %v in all", took, len(entries), claimWait)
	}
	for i, r := range a.Replies {
		if r.Status != proto.Accept || tr.claimed[i] {
			t.Fatalf("entry %d: %+v (claimed %v), want accepted, not resumable", i, r, tr.claimed[i])
		}
	}
}

// TestClaimStopsWhenTransferAborted: a transfer given up on while it waits
// for keys stops waiting at once.
func TestClaimStopsWhenTransferAborted(t *testing.T) {
	in := newInbox(t, InboxConfig{HandshakeTimeout: time.Minute})
	entries := bigEntries(2)
	heldKeys(t, in, senderPolicy, entries)
	c1, c2 := tcpPair(t)
	defer c1.Close()
	tr := newTransfer(in, senderPolicy, proto.Offer{Entries: entries}, time.Now())
	tr.conn = c2
	c2.Close() // as the agent does when it stops
	start := time.Now()
	tr.plan()
	if took := time.Since(start); took > claimPoll+time.Second/2 {
		t.Fatalf("plan took %v on a closed connection", took)
	}
	tr = newTransfer(in, senderPolicy, proto.Offer{Entries: entries}, time.Now())
	tr.abort()
	start = time.Now()
	tr.plan()
	if took := time.Since(start); took > time.Second/2 {
		t.Fatalf("plan took %v for an aborted transfer", took)
	}
}

package peer

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// longPath returns a path of exactly proto.MaxPathLen bytes whose
// components are comp bytes long but for the last ones, of at least 100.
func longPath(comp int) string {
	p := ""
	add := func(n int) {
		if p != "" {
			p += "/"
		}
		p += strings.Repeat(string(rune('a'+strings.Count(p, "/")%26)), n)
	}
	add(comp)
	for len(p)+1+comp+1+100 <= proto.MaxPathLen {
		add(comp)
	}
	if rest := proto.MaxPathLen - len(p) - 1; rest > proto.MaxComponentLen {
		add(rest - 101)
	}
	add(proto.MaxPathLen - len(p) - 1)
	return p
}

// TestLongSavedAsKeepsReceipt: a per-peer folder or a collision suffix
// that would push a saved-as path over proto.MaxPathLen shortens the new
// name instead; the receipt goes out and names where the file is.
func TestLongSavedAsKeepsReceipt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		folder string
		comp   int
		plant  bool // a file where the first directory is offered
	}{
		{"per-peer folder", "some-peer", 255, false},
		{"collision suffix", "", 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := longPath(tc.comp)
			if len(p) != proto.MaxPathLen || strings.HasSuffix(p, "/") || proto.CheckPath(p) != nil {
				t.Fatalf("test path of %d bytes", len(p))
			}
			in := newInbox(t, InboxConfig{})
			if tc.plant {
				first, _, _ := strings.Cut(p, "/")
				if err := os.WriteFile(in.Dir()+"/"+first, []byte("in the way"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			src := t.TempDir() + "/f"
			mtime := time.Unix(1700000000, 0)
			if err := os.WriteFile(src, []byte("deep"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(src, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			item := Item{Source: src, Entry: proto.Entry{Path: p, Kind: proto.KindFile, Size: 4, Mode: 0o644, MTime: mtime}}
			s, r := tcpPair(t)
			done := make(chan error, 1)
			go func() {
				_, err := in.ReceiveWith(r, Policy{Folder: tc.folder})
				r.Close()
				done <- err
			}()
			rep, err := Send(s, []Item{item}, SendOptions{Name: "s", IdleTimeout: 10 * time.Second})
			s.Close()
			if rerr := <-done; rerr != nil || err != nil {
				t.Fatalf("send: %v; receive: %v", err, rerr)
			}
			saved := rep.Results[0].SavedAs
			if rep.Results[0].Status != proto.Saved || len(saved) > proto.MaxPathLen {
				t.Fatalf("result %+v (saved-as of %d bytes)", rep.Results[0], len(saved))
			}
			if b, err := in.root.ReadFile(saved); err != nil || string(b) != "deep" {
				t.Fatalf("the receipt's saved-as does not name the file: %v", err)
			}
		})
	}
}

// TestReceiptFitsWhateverResults: a result whose saved-as or reason is
// over its limit is fitted rather than failing the whole receipt.
func TestReceiptFitsWhateverResults(t *testing.T) {
	results := []proto.Result{
		{Status: proto.Saved, SavedAs: strings.Repeat("é", proto.MaxPathLen)},
		{Status: proto.Failed, Code: proto.CodeIO, Reason: strings.Repeat("x", 2*proto.MaxReasonLen)},
	}
	fitReceipt(results)
	if err := proto.WriteReceipt(discard{}, proto.Receipt{Results: results}); err != nil {
		t.Fatal(err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

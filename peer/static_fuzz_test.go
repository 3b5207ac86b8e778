package peer

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// FuzzParseStatic: whatever a user writes into static_peers, parsing
// neither panics nor goes over the caps, and what it accepts is written
// back by lanshare in a form that parses to the same list.
func FuzzParseStatic(f *testing.F) {
	id := strings.Repeat("a", IDLen)
	for _, seed := range []string{
		"",
		"# comment\n\n10.0.5.7:52741 " + id + " bob\n",
		"nas.lan - \n[fd00::7]:9 " + id + " the  nas\n",
		"10.0.0.1:1\n",
		"fe80::1%eth0 " + id + " x\n",
		"10.0.0.1 - a\n10.0.0.1:52741 - b\n",
		"h:0 - x\n",
		"evil\x1b[2J - x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		peers, err := parseStatic(bytes.NewReader(b), "static_peers")
		if err != nil {
			return
		}
		if len(peers) > MaxStaticPeers {
			t.Fatalf("parsed %d peers, over the cap", len(peers))
		}
		for i := range peers {
			// lanshare writes names cleaned (see Put).
			peers[i].Name = cleanName(peers[i].Name)
		}
		again, err := parseStatic(bytes.NewReader(formatStatic(peers)), "static_peers")
		if err != nil {
			t.Fatalf("the file lanshare writes for %+v does not parse: %v", peers, err)
		}
		if !slices.Equal(again, peers) {
			t.Fatalf("written and read back:\n%+v\nwas:\n%+v", again, peers)
		}
	})
}

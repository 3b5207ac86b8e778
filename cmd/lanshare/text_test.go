package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/peer"
)

// TestJSONForTerminal: what encoding/json leaves raw in a string (C1
// controls, DEL, bidi and other format characters, also beyond the BMP)
// comes out as \u escapes; the JSON still decodes to the same value, and
// text without them passes untouched.
func TestJSONForTerminal(t *testing.T) {
	in := map[string]string{"text": "a\u009b2J b\x7f c\u202eevil\u202c \u2066x\u2069 \u200b \U000e0001 tag é ✓ 日本"}
	var buf bytes.Buffer
	if err := json.NewEncoder(jsonForTerminal{&buf}).Encode(in); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if bad := rawHidden(strings.TrimSuffix(out, "\n")); len(bad) > 0 {
		t.Errorf("left raw: %q in %s", bad, out)
	}
	for _, want := range []string{`\u009b`, `\u007f`, `\u202e`, `\u2066`, `\u200b`, `\udb40\udc01`, "é ✓ 日本"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s does not hold %s", out, want)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back["text"] != in["text"] {
		t.Errorf("decodes to %q, %v; want %q", back["text"], err, in["text"])
	}
	plain := []byte(`{"a":"plain é"}` + "\n")
	if got := escapeHiddenJSON(plain); &got[0] != &plain[0] {
		t.Error("text without hidden characters was copied")
	}
}

// TestTextInOffersAndHistory: an offer that waits for the owner says it
// is a message; history's table shows a long message's start, escaped,
// and where it was saved.
func TestTextInOffersAndHistory(t *testing.T) {
	o := peer.PendingOffer{From: "alice", PeerID: strings.Repeat("a", 52), Texts: 1, Bytes: 21}
	if s := describeOffer(o); !strings.Contains(s, " offers a text message, 21 B") {
		t.Errorf("describeOffer = %q", s)
	}
	o.Files = 2
	if s := describeOffer(o); !strings.Contains(s, " offers a text message and 2 files, ") {
		t.Errorf("describeOffer = %q", s)
	}
	long := strings.Repeat("é", maxTextCell) + "\u202e tail"
	cell := historyTextCell(peer.Arrival{Time: time.Now(), Text: long, SavedAs: "text-1.txt"})
	if cell != "message: "+strings.Repeat("é", maxTextCell)+"… (saved as text-1.txt)" {
		t.Errorf("cell = %q", cell)
	}
	cell = historyTextCell(peer.Arrival{Text: "two\nlines \x1b[2J"})
	if cell != `message: two⏎"lines \x1b[2J"` {
		t.Errorf("cell = %q", cell)
	}
}

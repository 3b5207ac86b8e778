package peer

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/lanshare/lanshare/proto"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// hostileNames are offered paths that must be refused before the "ok",
// with nothing created in the shared folder, whatever the receiver's name
// rules: they escape the folder or deceive a reader. (Names that only
// some file systems cannot hold are in mappedNames.)
var hostileNames = []struct{ name, path string }{
	{"dotdot", ".."},
	{"dotdot prefix", "../x"},
	{"dotdot inside", "a/../../x"},
	{"dotdot last", "a/.."},
	{"absolute unix", "/etc/passwd"},
	{"absolute root file", "/x"},
	{"drive absolute", `C:\x`},
	{"drive slash", "c:/x"},
	{"unc", `\\srv\s\x`},
	{"nul", "a\x00b"},
	{"only nul", "\x00"},
	{"escape sequence", "\x1b[31mred"},
	{"carriage return", "a\rb"},
	{"newline", "a\nb"},
	{"delete char", "a\x7fb"},
	{"c1 control", "a\u0085b"},
	{"bidi override", "\u202etxt.exe"},
	{"zero width space", "a\u200bb"},
	{"byte order mark", "\ufeffbom"},
	{"invalid utf8", "\xff\xfe"},
	{"truncated utf8", "caf\xc3"},
	{"empty", ""},
	{"dot", "."},
	{"dot component", "a/./b"},
	{"empty component", "a//b"},
	{"trailing slash", "x/"},
	{"spaces only", "   "},
	{"spaces only dir", " /x"},
	{"root relative windows", `\x`},
	{"drive backslash in dir", `C:\x/y`},
	{"component over 255", strings.Repeat("x", 256)},
	{"path over 4096", strings.Repeat(strings.Repeat("p", 200)+"/", 21) + "f"},
	{"deeper than cap", strings.Repeat("d/", proto.MaxDepth) + "f"},
	// Issue 13, finding 13: characters that show as nothing, or as a
	// space, and so hide or fake an extension.
	{"em spaces before extension", "invoice.pdf\u2003\u2003\u2003.exe"},
	{"trailing em space", "invoice.pdf\u2003"},
	{"no-break space before extension", "invoice.pdf\u00a0.exe"},
	{"leading ideographic space", "\u3000a.txt"},
	{"wide space after a space", "a \u2003b"},
	{"wide space after a dot", "invoice.\u2003exe"},
	{"narrow no-break space at the end of a dir", "d\u202f/x"},
	{"spaces before extension", "invoice.pdf      .exe"},
	{"line separator", "a\u2028b"},
	{"paragraph separator", "a\u2029b"},
	{"hangul filler", "invoice.pdf\u3164.exe"},
	{"hangul choseong filler", "a\u115fb"},
	{"hangul jungseong filler", "a\u1160b"},
	{"halfwidth hangul filler", "a\uffa0b"},
	{"braille blank", "invoice.pdf\u2800\u2800.exe"},
	{"combining grapheme joiner", "a\u034fb"},
	{"leading combining mark", "\u0301a.txt"},
	{"lone combining mark", "\u0301"},
	{"leading mark in dir", "d/\u20dd.txt"},
	{"combining mark on space", "invoice.pdf \u0336.exe"},
	{"combining mark on dot", "invoice.\u0338exe"},
	{"leading variation selector", "\ufe0finvoice.txt"},
	{"variation selector on dot", "invoice.pdf.\ufe0fexe"},
	{"stacked variation selectors", "a\U0001f600\ufe0f\ufe0f.png"},
	{"ideographic selector on latin dot", "report.\U000e0100pdf"},
	{"tag characters", "a\U000e0041b"},
}

func TestCheckNameAcceptsOrdinaryNames(t *testing.T) {
	for _, p := range []string{"report.pdf", "photos/2024/IMG_0001.JPG", "café.txt", "cafe\u0301.txt", "日本語/ファイル", ".bashrc", "a b/c-d_e (1).tar.gz", "emoji 🎉.png", strings.Repeat("x", 255), "COM10", "console.log", "x/y/z",
		// Marks on letters, precomposed or not; emoji with their selector
		// and keycaps; an ideographic variation sequence; Korean and
		// Japanese in NFD, as macOS stores them.
		"re\u0301sume\u0301.pdf", "\u2764\ufe0f.png", "1\ufe0f\u20e3 first.txt", "\u845b\U000e0100.txt",
		"\u1112\u1161\u11ab.txt", "\u304b\u3099.txt", "na\u0308i\u0308ve", "Ελληνικά.txt", "हिन्दी.txt", "a  b.txt",
		// A wide space alone between two words: macOS names screenshots
		// with U+202F, Japanese names use U+3000, French U+00A0.
		"Screenshot 2024-01-01 at 10.00.00\u202fAM.png", "会議資料\u30002024.pdf", "prix\u00a0net.txt"} {
		if err := CheckName(p); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", p, err)
		}
	}
}

func TestCheckNameRefusesHostileNames(t *testing.T) {
	for _, h := range hostileNames {
		if err := checkOffered(h.path); !errors.Is(err, ErrNameUnsafe) {
			t.Errorf("%s: checkOffered(%q) = %v, want ErrNameUnsafe", h.name, h.path, err)
		}
		if err := CheckName(h.path); !errors.Is(err, ErrNameUnsafe) {
			t.Errorf("%s: CheckName(%q) = %v, want ErrNameUnsafe", h.name, h.path, err)
		}
	}
}

// TestHostileNamesRefusedAndNothingCreated offers each hostile path
// straight on the wire (bypassing the sender's own checks) and asserts
// that the receiver refuses it in its answer and leaves the shared folder
// empty.
func TestHostileNamesRefusedAndNothingCreated(t *testing.T) {
	if len(hostileNames) < 30 {
		t.Fatalf("only %d hostile names", len(hostileNames))
	}
	for _, h := range hostileNames {
		for _, rules := range []NameRules{NamesPOSIX, NamesWindows} {
			t.Run(h.name+"/"+string(rules), func(t *testing.T) {
				in := newInbox(t, InboxConfig{NameRules: rules})
				s, r := tcpPair(t)
				var wg sync.WaitGroup
				wg.Add(1)
				var recvErr error
				go func() {
					defer wg.Done()
					_, recvErr = in.Receive(r)
					r.Close()
				}()
				answer := rawOffer(t, s, h.path)
				s.Close()
				wg.Wait()
				refused := answer.Code != proto.CodeOK || (len(answer.Replies) == 1 && answer.Replies[0].Status == proto.Refuse)
				if !refused {
					t.Fatalf("offer of %q was accepted: %+v", h.path, answer)
				}
				// We close without streaming, so the receiver's transfer
				// fails; whatever the reason, nothing may be left behind.
				_ = recvErr
				assertEmpty(t, in.Dir())
			})
		}
	}
}

// rawOffer writes a hello and a one-file offer for path, encoded by hand
// so that no sender-side check applies, and returns the receiver's answer.
func rawOffer(t *testing.T, c net.Conn, path string) proto.Answer {
	t.Helper()
	if err := proto.WriteHello(c, proto.NewHello("hostile")); err != nil {
		t.Fatal(err)
	}
	var p []byte
	p = binary.BigEndian.AppendUint32(p, 1)
	p = append(p, byte(proto.KindFile))
	p = binary.BigEndian.AppendUint32(p, 0o644)
	p = binary.BigEndian.AppendUint64(p, 7)
	p = binary.BigEndian.AppendUint64(p, 0)
	p = binary.BigEndian.AppendUint16(p, uint16(len(path)))
	p = append(p, path...)
	hdr := []byte{'L', 'S', proto.Major, byte(proto.TypeOffer)}
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(len(p)))
	if _, err := c.Write(append(hdr, p...)); err != nil {
		t.Fatal(err)
	}
	if _, err := proto.ReadHello(c); err != nil {
		t.Fatalf("reading hello: %v", err)
	}
	a, err := proto.ReadAnswer(c)
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	return a
}

// TestHostileNameThroughSend checks the refusal as a sender sees it: a
// RefusedError naming the file, with the unsafe-name code.
func TestHostileNameThroughSend(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			o := transferOver(t, pair, in, []Item{hostileItem(t, "../escape.txt")}, nil)
			var re *RefusedError
			if !errors.As(o.sendErr, &re) || re.Code != proto.CodeBadName || re.Path != "../escape.txt" {
				t.Fatalf("send error = %v, want a refusal of ../escape.txt for its name", o.sendErr)
			}
			if o.recvErr != nil {
				t.Fatalf("receiver: %v", o.recvErr)
			}
			assertEmpty(t, in.Dir())
		})
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":      "report.pdf",
		"a b/ç":           "a b/ç",
		"\x1b[31mred":     `"\x1b[31mred"`,
		"a\rb":            `"a\rb"`,
		"\u202etxt.exe":   `"\u202etxt.exe"`,
		"zero\u200bwidth": `"zero\u200bwidth"`,
		"\xff":            `"\xff"`,
		// Finding 13: what QuoteToGraphic prints as is.
		"invoice.pdf\u2003\u2003.exe": `"invoice.pdf\u2003\u2003.exe"`,
		"a\u3164b":                    `"a\u3164b"`,
		"a\u2800b":                    `"a\u2800b"`,
		"caf\u00e9 \u2764\ufe0f":      "caf\u00e9 \u2764\ufe0f",
		"10.00.00\u202fAM.png":        "10.00.00\u202fAM.png",
		// Issue 14: a trailing space is saved now; it must show.
		"name ":     `"name "`,
		"   ":       `"   "`,
		" lead.txt": `" lead.txt"`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestFoldKeyASCIIFastPath: an ASCII name's key, made without
// golang.org/x/text, is what case folding and NFC make of it.
func TestFoldKeyASCIIFastPath(t *testing.T) {
	var all []byte
	for c := 1; c < utf8.RuneSelf; c++ {
		all = append(all, byte(c))
	}
	for _, name := range []string{string(all), "README.md", "Photo 2024-01-01 (1).JPG", "a", ""} {
		want := cases.Fold().String(norm.NFC.String(name))
		if got := foldKey(name); got != want {
			t.Errorf("foldKey(%q) = %q, want %q", name, got, want)
		}
	}
	lower := "already lower.txt"
	if n := testing.AllocsPerRun(10, func() { _ = foldKey(lower) }); n != 0 {
		t.Errorf("foldKey of a lower-case ASCII name: %v allocations", n)
	}
}

// componentCorpus is what the ASCII fast path of safeComponent is held to
// the rune-by-rune look on: every ASCII byte alone and inside a name,
// the separators and dots and spaces that path rules turn on, and the
// hostile and mapped names with some non-ASCII next to them.
func componentCorpus() []string {
	var out []string
	for b := range utf8.RuneSelf {
		c := string(rune(b))
		out = append(out, c, "a"+c, c+"a", "a"+c+"b", "name"+c+".txt", c+c, "\u00e9"+c)
	}
	out = append(out, "", ".", "..", "...", " ", "  ", " .", ". ", "a.", "a ", " a", "a  .txt", "a .txt",
		"a  b.txt", "a/b", `a\b`, "a:b", "C:", `C:\`, "c:/", "CON", "con.txt", "nul", "LPT1", "x.", "x..",
		"a\x00", "\x1fa", "a\x7f", "\x80", "\xff", "caf\xc3", "caf\u00e9", "\u00e9", "a\u0301", "\u0301a",
		"a\u200bb", "\u202etxt.exe", "\ufeff", "a\u2003b", "a\u2003", "a\u00a0.exe", "\U0001f600\ufe0f",
		"\ufe0f", "a\u3000b", "a\u2028b", "\u3164", strings.Repeat("a", 255), strings.Repeat("\x01", 3))
	for _, h := range hostileNames {
		out = append(out, h.path)
		out = append(out, strings.Split(h.path, "/")...)
	}
	return out
}

// TestSafeComponentASCIIFastPath: for any component, safeComponent's
// verdict and reason are those of its look at each rune in Unicode's
// tables, ASCII fast path or not.
func TestSafeComponentASCIIFastPath(t *testing.T) {
	corpus := componentCorpus()
	// Random names over the corpus's bytes: controls, separators, dots
	// and spaces next to each other and to letters.
	var alphabet []string
	for b := range utf8.RuneSelf {
		alphabet = append(alphabet, string(rune(b)))
	}
	alphabet = append(alphabet, ".", ".", " ", " ", "/", `\`, ":", "\u00e9", "\u2003", "\u0301", "\xff")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		corpus = append(corpus, b.String())
	}
	fast, slow := 0, 0
	for _, c := range corpus {
		if isASCII(c) {
			fast++
		} else {
			slow++
		}
		checkSafeComponentFastPath(t, c)
	}
	if fast < 10000 || slow < 1000 {
		t.Fatalf("%d names took the fast path, %d the slow one: the corpus misses one", fast, slow)
	}
}

// FuzzSafeComponent holds the fast path to the slow one on any string.
func FuzzSafeComponent(f *testing.F) {
	for _, c := range componentCorpus() {
		f.Add(c)
	}
	f.Fuzz(checkSafeComponentFastPath)
}

func checkSafeComponentFastPath(t *testing.T, c string) {
	t.Helper()
	got, want := safeComponent(c), safeComponentWith(c, false)
	if (got == nil) != (want == nil) || got != nil && (got.Error() != want.Error() || !errors.Is(got, ErrNameUnsafe)) {
		t.Errorf("safeComponent(%q) = %v, the look at each rune says %v", c, got, want)
	}
}

package peer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// mappedNames are names a sender on Linux offers (issue 14: "Vacances été
// 2026" lost four files) that Linux holds as they are, and Windows
// (or a FAT, exFAT, NTFS or SMB folder) does not: saved under their own
// name with the POSIX rules, under the mapped name with the Windows rules,
// never dropped.
var mappedNames = []struct{ name, path, windows string }{
	{"colon", "Vacances été 2026/a:b.txt", "Vacances été 2026/a：b.txt"},
	{"question", "Vacances été 2026/what?.txt", "Vacances été 2026/what？.txt"},
	{"device name", "Vacances été 2026/CON.txt", "Vacances été 2026/CON_.txt"},
	{"trailing dot", "Vacances été 2026/trailing.dot.", "Vacances été 2026/trailing.dot．"},
	{"ordinary", "Vacances été 2026/plage.jpg", "Vacances été 2026/plage.jpg"},
	{"drive relative", "C:x", "C：x"},
	{"backslash", `a\b`, "a＼b"},
	{"less than", "a<b", "a＜b"},
	{"greater than", "a>b", "a＞b"},
	{"quote", `a"b`, "a＂b"},
	{"pipe", "a|b", "a｜b"},
	{"star", "a*b", "a＊b"},
	{"all of them", `<>:"\|?*.txt`, "＜＞：＂＼｜？＊.txt"},
	{"trailing space", "name ", "name␠"},
	{"trailing dots and spaces", "etc. . ", "etc．␠．␠"},
	{"trailing dot dir", "dir./x", "dir．/x"},
	{"nul with extension", "nul.txt", "nul_.txt"},
	{"device name with space", "con .txt", "con_ .txt"},
	{"com1", "COM1", "COM1_"},
	{"com superscript", "COM¹", "COM¹_"},
	{"lpt in dir", "d/lpt9.log", "d/lpt9_.log"},
	{"aux lower", "aux", "aux_"},
	{"device name dir", "prn/x.txt", "prn_/x.txt"},
	{"over-long once mapped", strings.Repeat("a:", 100) + ".txt", strings.Repeat("a：", 62) + "a.txt"},
}

// TestNamesSavedAsTheReceiverCanHold pins issue 14's first finding: with
// the POSIX rules every name above is saved as it is; with the Windows
// rules (chosen by configuration, so that Linux runs them) the ones
// Windows forbids are saved under a readable look-alike, and the receipt
// says so. Nothing is dropped.
func TestNamesSavedAsTheReceiverCanHold(t *testing.T) {
	for _, rules := range []NameRules{NamesPOSIX, NamesWindows} {
		t.Run(string(rules), func(t *testing.T) {
			in := newInbox(t, InboxConfig{NameRules: rules})
			var items []Item
			want := map[string]string{}
			for _, m := range mappedNames {
				items = append(items, namedItem(t, m.path, "payload"))
				saved := m.path
				if rules == NamesWindows {
					saved = m.windows
				}
				want[saved] = "payload"
				for d := filepath.Dir(saved); d != "."; d = filepath.Dir(d) {
					want[d+"/"] = ""
				}
			}
			o := transferOver(t, connTypes["tcp"], in, items, nil)
			if o.sendErr != nil || o.recvErr != nil {
				t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
			}
			for i, m := range mappedNames {
				saved := m.path
				if rules == NamesWindows {
					saved = m.windows
				}
				if r := o.rep.Results[i]; r.Status != proto.Saved || r.SavedAs != saved {
					t.Errorf("%s: %q: result %+v, want saved as %q", m.name, m.path, r, saved)
				}
			}
			assertTree(t, in.Dir(), want)
		})
	}
}

// TestMappedNamesStayUnique: two offered names that map to one name (or
// to names that differ only by case) get the never-overwrite " (1)", as
// files and as folders; nothing is merged or lost.
func TestMappedNamesStayUnique(t *testing.T) {
	in := newInbox(t, InboxConfig{NameRules: NamesWindows})
	var items []Item
	for _, p := range []string{"a:b.txt", "a：b.txt", "A:B.TXT", "x:y/f", "x：y/f", "CON", "CON_"} {
		items = append(items, namedItem(t, p, p))
	}
	o := transferOver(t, connTypes["pipe"], in, items, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
	}
	assertTree(t, in.Dir(), map[string]string{
		"a：b.txt":     "a:b.txt",
		"a：b (1).txt": "a：b.txt",
		"A：B (2).TXT": "A:B.TXT",
		"x：y/":        "",
		"x：y/f":       "x:y/f",
		"x：y (1)/":    "",
		"x：y (1)/f":   "x：y/f",
		"CON_":        "CON",
		"CON_ (1)":    "CON_",
	})
}

// TestNameRulesNative: the default follows the system the agent runs
// on; an unknown value is refused when the inbox opens.
func TestNameRulesNative(t *testing.T) {
	got, err := NameRules("").resolve()
	want := NamesPOSIX
	if filepath.Separator == '\\' {
		want = NamesWindows
	}
	if err != nil || got != want {
		t.Fatalf("native rules = %q, %v; want %q", got, err, want)
	}
	if got, _ := NamesPortable.resolve(); got != NamesWindows {
		t.Errorf("portable rules = %q, want windows", got)
	}
	if _, err := OpenInbox(InboxConfig{Dir: t.TempDir(), NameRules: "dos"}); err == nil {
		t.Fatal("inbox opened with name rules \"dos\"")
	}
}

// namedItem offers content as a file under the path p, whatever p is.
func namedItem(t testing.TB, p, content string) Item {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	mtime := time.Unix(1700000000, 0)
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return Item{Source: src, Entry: proto.Entry{Path: p, Kind: proto.KindFile, Size: uint64(len(content)), Mode: 0o644, MTime: mtime}}
}

// TestNotSavedCountsFiles pins issue 14: "N of M not saved" counts files,
// as the progress line does ("sent 3/3 files"), not the folders offered
// with them; folders count only when no file failed.
func TestNotSavedCountsFiles(t *testing.T) {
	dir := func(p string) Item {
		it := namedItem(t, p, "")
		it.Entry.Kind = proto.KindDir
		return it
	}
	for _, c := range []struct {
		name  string
		items []Item
		want  string
	}{
		{"a file refused", []Item{dir("d"), dir("d/e"), namedItem(t, "d/a", "a"), namedItem(t, "d/e/b", "b"), namedItem(t, "d/\x1b[31mred", "c")},
			"1 of 3 files not saved; first: receiver refused \"d/\\x1b[31mred\""},
		{"a folder refused", []Item{dir("d"), dir("d/\u202eexe"), namedItem(t, "d/a", "a")},
			"1 of 2 folders not created; first: receiver refused \"d/\\u202eexe\""},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			o := transferOver(t, connTypes["pipe"], in, c.items, nil)
			if o.sendErr == nil || !strings.Contains(o.sendErr.Error(), c.want) {
				t.Fatalf("send error %v, want %q", o.sendErr, c.want)
			}
		})
	}
}

// TestFolderThatRefusesNamesGetsWindowsNames: a shared folder on FAT,
// exFAT, NTFS or SMB under a system whose own rules allow a:b.txt refuses
// such names (EINVAL) when they are made; the inbox then saves them under
// the Windows rules' look-alike instead of failing the file, and a folder
// so mapped is merged into on the next send.
func TestFolderThatRefusesNamesGetsWindowsNames(t *testing.T) {
	badName = func(name string) bool { return windowsProblem(name) != nil }
	t.Cleanup(func() { badName = nil })
	in := newInbox(t, InboxConfig{NameRules: NamesPOSIX})
	for i, batch := range [][]string{{"x:y/a?.txt", "CON", "plain.txt"}, {"x:y/b.txt"}} {
		var items []Item
		for _, p := range batch {
			items = append(items, namedItem(t, p, p))
		}
		o := transferOver(t, connTypes["pipe"], in, items, nil)
		if o.sendErr != nil || o.recvErr != nil {
			t.Fatalf("send %d: %v; receive: %v", i, o.sendErr, o.recvErr)
		}
	}
	assertTree(t, in.Dir(), map[string]string{
		"x：y/": "", "x：y/a？.txt": "x:y/a?.txt", "x：y/b.txt": "x:y/b.txt", "CON_": "CON", "plain.txt": "plain.txt",
	})
}

package peer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExcludeMatch(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		path     string
		dir      bool
		want     bool
	}{
		// A name alone matches at any depth.
		{[]string{"*.tmp"}, "a.tmp", false, true},
		{[]string{"*.tmp"}, "proj/src/a.tmp", false, true},
		{[]string{"*.tmp"}, "proj/a.tmp.txt", false, false},
		{[]string{"*.tmp"}, "proj/x.tmp", true, true}, // folders too
		{[]string{"node_modules/"}, "proj/node_modules", true, true},
		{[]string{"node_modules/"}, "node_modules", true, true},
		{[]string{"node_modules/"}, "proj/node_modules", false, false}, // a file of that name stays
		{[]string{"node_modules"}, "proj/node_modules", false, true},
		// "*" and "?" never cross a slash.
		{[]string{"a*"}, "ab/c", true, false},
		{[]string{"a?c"}, "abc", false, true},
		{[]string{"a?c"}, "a/c", false, false},
		// A leading or middle slash anchors at the top of what is offered.
		{[]string{"/build"}, "build", true, true},
		{[]string{"/build"}, "proj/build", true, false},
		{[]string{"proj/build"}, "proj/build", true, true},
		{[]string{"proj/build"}, "x/proj/build", true, false},
		{[]string{"proj/*.o"}, "proj/a.o", false, true},
		{[]string{"proj/*.o"}, "proj/sub/a.o", false, false},
		// "**".
		{[]string{"**/cache"}, "cache", true, true},
		{[]string{"**/cache"}, "a/b/c/cache", true, true},
		{[]string{"**/cache"}, "a/cachex", true, false},
		{[]string{"logs/**"}, "logs/a/b.txt", false, true},
		{[]string{"logs/**"}, "logs", true, false}, // what is inside, not the folder
		{[]string{"a/**/b"}, "a/b", true, true},
		{[]string{"a/**/b"}, "a/x/y/b", true, true},
		{[]string{"a/**/b"}, "x/a/b", true, false},
		{[]string{"/**/b/"}, "q/b", true, true},
		// Classes, fnmatch's [!...] and path.Match's [^...].
		{[]string{"[ab].txt"}, "b.txt", false, true},
		{[]string{"[!ab].txt"}, "b.txt", false, false},
		{[]string{"[!ab].txt"}, "c.txt", false, true},
		{[]string{"[^ab].txt"}, "c.txt", false, true},
		// Escapes.
		{[]string{`\*.txt`}, "*.txt", false, true},
		{[]string{`\*.txt`}, "a.txt", false, false},
		{[]string{`\!keep`}, "!keep", false, true},
		{[]string{`#notes`}, "#notes", false, true}, // no comments on a command line
		// The last matching pattern decides; "!" brings back.
		{[]string{"*.tmp", "!keep.tmp"}, "d/keep.tmp", false, false},
		{[]string{"*.tmp", "!keep.tmp"}, "d/other.tmp", false, true},
		{[]string{"!keep.tmp", "*.tmp"}, "keep.tmp", false, true},
		{[]string{"*.tmp", "!keep.tmp", "/d/keep.tmp"}, "d/keep.tmp", false, true},
		{[]string{"*", "!*/"}, "d", true, false},
		{[]string{"*", "!*/"}, "d/f", false, true},
		// Case-sensitive, spaces kept.
		{[]string{"*.TMP"}, "a.tmp", false, false},
		{[]string{"my file "}, "my file ", false, true},
		{[]string{"my file "}, "my file", false, false},
		{[]string{"a,b"}, "x/a,b", false, true},
	} {
		ex, err := NewExclude(tc.patterns)
		if err != nil {
			t.Errorf("NewExclude(%q): %v", tc.patterns, err)
			continue
		}
		if got := ex.Match(tc.path, tc.dir); got != tc.want {
			t.Errorf("%q Match(%q, dir %v) = %v, want %v", tc.patterns, tc.path, tc.dir, got, tc.want)
		}
	}
}

func TestExcludeBadPatterns(t *testing.T) {
	for _, p := range []string{"", "!", "/", "//", "a//b", "[a-", `a\`, "a/../b", "./a", strings.Repeat("a", maxExcludeLen+1)} {
		_, err := NewExclude([]string{"ok", p})
		if !errors.Is(err, ErrBadPattern) {
			t.Errorf("NewExclude(%q) = %v, want ErrBadPattern", p, err)
			continue
		}
		if len(p) < 100 && !strings.Contains(err.Error(), Escape(p)) {
			t.Errorf("NewExclude(%q): %q does not name the pattern", p, err)
		}
	}
	if _, err := NewExclude(make([]string, MaxExcludePatterns+1)); !errors.Is(err, ErrBadPattern) {
		t.Errorf("%d patterns: %v, want ErrBadPattern", MaxExcludePatterns+1, err)
	}
	ex, err := NewExclude(nil)
	if ex != nil || err != nil || ex.Match("a", false) {
		t.Errorf("no patterns: %v, %v; want nil, which excludes nothing", ex, err)
	}
}

// TestCollectExcluding: excluded files and folders are left out of the
// items, a folder unread (a name in it that would be skipped with a
// warning gives none), and listed once as excluded; named paths whose
// base name is excluded go too.
func TestCollectExcluding(t *testing.T) {
	root := t.TempDir()
	proj := filepath.Join(root, "proj")
	for _, p := range []string{
		"proj/src/main.go", "proj/src/main.tmp", "proj/keep.tmp",
		"proj/node_modules/x/index.js", "proj/build/out.o", "proj/src/build/gen.go",
		"proj/a/b/cache/c.bin", "proj/cache.txt", "top.tmp", "notes.txt",
	} {
		writeTestFile(t, filepath.Join(root, p), p)
	}
	// A name that cannot be sent, in a folder that is excluded: never read.
	writeTestFile(t, filepath.Join(proj, "node_modules", "bad\xff.js"), "x")
	ex, err := NewExclude([]string{"*.tmp", "!keep.tmp", "node_modules/", "/proj/build", "**/cache"})
	if err != nil {
		t.Fatal(err)
	}
	items, skipped, excluded, err := CollectExcluding([]string{proj, filepath.Join(root, "top.tmp"), filepath.Join(root, "notes.txt")}, ex)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 0 {
		t.Errorf("skipped %+v, want nothing: excluded folders are not walked", skipped)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Entry.Path)
	}
	want := []string{"proj", "proj/a", "proj/a/b", "proj/cache.txt", "proj/keep.tmp", "proj/src", "proj/src/build", "proj/src/build/gen.go", "proj/src/main.go", "notes.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("items\n%q\nwant\n%q", got, want)
	}
	for i, p := range excluded {
		excluded[i], _ = filepath.Rel(root, p)
		excluded[i] = filepath.ToSlash(excluded[i])
	}
	slices.Sort(excluded)
	wantEx := []string{"proj/a/b/cache", "proj/build", "proj/node_modules", "proj/src/main.tmp", "top.tmp"}
	if !slices.Equal(excluded, wantEx) {
		t.Errorf("excluded %q, want %q", excluded, wantEx)
	}

	// Everything excluded: nothing to send, and the error says why.
	_, _, _, err = CollectExcluding([]string{filepath.Join(root, "top.tmp")}, ex)
	if !errors.Is(err, ErrNothingToSend) || !strings.Contains(err.Error(), "excluded") {
		t.Errorf("all excluded: %v, want ErrNothingToSend saying it is excluded", err)
	}
	// No patterns: CollectSkipped.
	all, _, none, err := CollectExcluding([]string{proj}, nil)
	plain, _, _ := CollectSkipped([]string{proj})
	if err != nil || len(none) != 0 || len(all) != len(plain) {
		t.Errorf("without patterns: %d items, %d excluded, %v; CollectSkipped has %d", len(all), len(none), err, len(plain))
	}
}

// TestExcludeManyDoubleStars: a pattern of many "**" against a deep path
// that it does not match ends at once (a plain backtracking search tries
// every way to share the segments among the "**"s).
func TestExcludeManyDoubleStars(t *testing.T) {
	ex, err := NewExclude([]string{strings.Repeat("**/a/", 20) + "b"})
	if err != nil {
		t.Fatal(err)
	}
	deep := strings.TrimSuffix(strings.Repeat("a/", 120), "/")
	done := make(chan bool, 1)
	go func() { done <- ex.Match(deep, false) }()
	select {
	case got := <-done:
		if got {
			t.Errorf("matched a path without b")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Match still running after 10s")
	}
	if !ex.Match(deep+"/b", false) {
		t.Errorf("no match for the path ending in b")
	}
}

func writeTestFile(t testing.TB, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cheggaaa/pb/v3"
)

// TestTaggedLines: every JSON line gets "to" first, whole, however the
// writes that make it are cut.
func TestTaggedLines(t *testing.T) {
	var b bytes.Buffer
	tl := newTaggedLines(&multiOut{stdout: &b}, `Smith, "Anna"`)
	for _, part := range []string{`{"event":"of`, `fer","files":2}` + "\n" + `{"event":"error"}`, "\n", "{}\n"} {
		if n, err := tl.Write([]byte(part)); n != len(part) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", part, n, err)
		}
	}
	want := `{"to":"Smith, \"Anna\"","event":"offer","files":2}` + "\n" + `{"to":"Smith, \"Anna\"","event":"error"}` + "\n{}\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	var ev map[string]any
	if err := json.Unmarshal(bytes.SplitN(b.Bytes(), []byte("\n"), 2)[0], &ev); err != nil || ev["to"] != `Smith, "Anna"` {
		t.Errorf("first line decodes to %v, %v", ev, err)
	}
}

func TestPadLabel(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"bob", 6, "bob   "},
		{"Smith, Anna", 11, "Smith, Anna"},
		{"Smith, Anna", 8, "Smith, …"},
		{"日本語の電話", 7, "日本語…"},
	} {
		got := padLabel(tc.in, tc.width)
		if got != tc.want || pb.CellCount(got) != tc.width {
			t.Errorf("padLabel(%q, %d) = %q (%d cells), want %q", tc.in, tc.width, got, pb.CellCount(got), tc.want)
		}
	}
}

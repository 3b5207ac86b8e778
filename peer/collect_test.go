package peer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanshare/lanshare/proto"
)

func paths(items []Item) []string {
	var out []string
	for _, it := range items {
		p := it.Entry.Path
		if it.Entry.Kind == proto.KindDir {
			p += "/"
		}
		out = append(out, p)
	}
	return out
}

// TestCollectOffersEachPathOnce pins the sender's half of issue 13's
// finding 4: the same file reached twice is offered once; directories of
// one relative path merge; two different sources for one relative path
// are refused before anything is sent.
func TestCollectOffersEachPathOnce(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"big.iso":   "iso",
		"d/a.txt":   "a",
		"d/sub/":    "",
		"x/d/b.txt": "b",
		"x/a.txt":   "other a",
		"y/big.iso": "another iso",
		"y/d":       "a file named d",
	})
	in := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	if err := os.Symlink(in("big.iso"), in("x/big.iso")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"big.iso", "big.iso"}, []string{"big.iso"}},
		{[]string{"big.iso", "x/big.iso"}, []string{"big.iso"}}, // a symlink to it
		{[]string{"d", "big.iso", "d"}, []string{"d/", "d/a.txt", "d/sub/", "big.iso"}},
		{[]string{"d", "x/d"}, []string{"d/", "d/a.txt", "d/sub/", "d/b.txt"}},
		{[]string{"d/a.txt", "d"}, []string{"a.txt", "d/", "d/a.txt", "d/sub/"}}, // two places on the receiver
	} {
		var args []string
		for _, a := range c.args {
			args = append(args, in(a))
		}
		items, err := Collect(args, nil)
		if err != nil || !slices.Equal(paths(items), c.want) {
			t.Errorf("Collect(%q) = %q, %v; want %q", c.args, paths(items), err, c.want)
		}
	}
	for _, args := range [][]string{{"big.iso", "y/big.iso"}, {"d/a.txt", "x/a.txt"}, {"d", "y/d"}} {
		_, err := Collect([]string{in(args[0]), in(args[1])}, nil)
		if !errors.Is(err, ErrDuplicatePath) || !strings.Contains(err.Error(), in(args[1])) {
			t.Errorf("Collect(%q) = %v, want ErrDuplicatePath naming both", args, err)
		}
	}
}

// TestSendSamePathTwiceSavesOnce: `lanshare send bob big.iso big.iso`
// saves big.iso once and succeeds (it failed with exit 1).
func TestSendSamePathTwiceSavesOnce(t *testing.T) {
	bob := startAgent(t, nil)
	src := writeTree(t, map[string]string{"big.iso": randomBytes(t, 256<<10)})
	p := filepath.Join(src, "big.iso")
	items, err := Collect([]string{p, p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := testSender(t).Send(t.Context(), bob.target(), items, SendOptions{Name: "alice"})
	if err != nil || rep.Saved() != 1 || len(rep.Results) != 1 {
		t.Fatalf("send big.iso big.iso: %v (report %+v)", err, rep)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, bob.dir, map[string]string{"big.iso": string(b)})
}

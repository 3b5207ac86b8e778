//go:build linux

package peer

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestNonUTF8NameSkippedRestSent pins issue 14's "one bad name never
// blocks the batch": a file and a folder whose names are not valid UTF-8
// (which no offer can carry) are left out with a warning, and the rest of
// the folder arrives. The whole offer failed before, naming no file.
func TestNonUTF8NameSkippedRestSent(t *testing.T) {
	src := writeTree(t, map[string]string{
		"Vacances/plage.jpg":          "sea",
		"Vacances/bad\xff.txt":        "latin-1",
		"Vacances/dir\xfe/inside.txt": "hidden",
		"Vacances/été/ok.txt":         "ok",
	})
	items, skipped, err := CollectSkipped([]string{filepath.Join(src, "Vacances")})
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, s := range skipped {
		if !errors.Is(s.Err, ErrNameNotCarried) {
			t.Errorf("skipped %s: %v, want ErrNameNotCarried", Escape(s.Path), s.Err)
		}
		bad = append(bad, filepath.Base(s.Path))
	}
	slices.Sort(bad)
	if want := []string{"bad\xff.txt", "dir\xfe"}; !slices.Equal(bad, want) {
		t.Fatalf("skipped %q, want %q", bad, want)
	}
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, connTypes["tcp"], in, items, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
	}
	assertTree(t, in.Dir(), map[string]string{
		"Vacances/": "", "Vacances/plage.jpg": "sea", "Vacances/été/": "", "Vacances/été/ok.txt": "ok",
	})
}

// TestPathOverCapsSkipped: a file deeper than proto.MaxDepth is left
// out with a warning instead of failing the whole offer.
func TestPathOverCapsSkipped(t *testing.T) {
	src := writeTree(t, map[string]string{
		"top/shallow.txt": "s",
		"top/" + strings.Repeat("d/", 130) + "deep": "d",
	})
	items, skipped, err := CollectSkipped([]string{filepath.Join(src, "top")})
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || !errors.Is(skipped[0].Err, ErrNameNotCarried) {
		t.Fatalf("skipped %+v, want one path over the caps", skipped)
	}
	for _, it := range items {
		if strings.Count(it.Entry.Path, "/")+1 > 128 {
			t.Errorf("offered %d components", strings.Count(it.Entry.Path, "/")+1)
		}
	}
}

// TestUnreadableSkippedBeforeOffer pins issue 14's "a read error on the
// sender": a file and folders the sender may not read are left out of
// the offer with a warning (ErrUnreadable), so that nothing arrives for
// them, not even an empty folder; the rest is sent. Before, they were
// offered, the folder was created on the receiver, and the file failed
// as "refused ...: sender: permission denied". Collect runs as a user
// without the permissions: root reads everything.
func TestUnreadableSkippedBeforeOffer(t *testing.T) {
	src := t.TempDir()
	must(t, os.Chmod(src, 0o755))
	must(t, os.Chmod(filepath.Dir(src), 0o711))
	for p, content := range map[string]string{
		"share/ok.txt": "ok", "share/secret.txt": "no", "share/locked/in.txt": "no", "share/blind/in.txt": "no",
		"share/open/in.txt": "yes", "alone.txt": "no",
	} {
		full := filepath.Join(src, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(content), 0o644))
	}
	must(t, os.Chmod(filepath.Join(src, "share/secret.txt"), 0o000))
	must(t, os.Chmod(filepath.Join(src, "alone.txt"), 0o000))
	must(t, os.Chmod(filepath.Join(src, "share/locked"), 0o000))
	must(t, os.Chmod(filepath.Join(src, "share/blind"), 0o644)) // listed, not searched
	t.Cleanup(func() {
		// So that a user without root's rights can remove them.
		os.Chmod(filepath.Join(src, "share/locked"), 0o755)
		os.Chmod(filepath.Join(src, "share/blind"), 0o755)
	})
	items, skipped := collectAsUser(t, filepath.Join(src, "share"), filepath.Join(src, "alone.txt"))
	var got []string
	for _, s := range skipped {
		if !errors.Is(s.Err, ErrUnreadable) {
			t.Errorf("skipped %s: %v, want ErrUnreadable", s.Path, s.Err)
		}
		got = append(got, strings.TrimPrefix(s.Path, src+"/"))
	}
	slices.Sort(got)
	if want := []string{"alone.txt", "share/blind", "share/locked", "share/secret.txt"}; !slices.Equal(got, want) {
		t.Fatalf("skipped %q, want %q", got, want)
	}
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, connTypes["pipe"], in, items, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
	}
	assertTree(t, in.Dir(), map[string]string{"share/": "", "share/ok.txt": "ok", "share/open/": "", "share/open/in.txt": "yes"})
}

// collectAsUser runs CollectSkipped(paths) as a user the permission bits
// apply to: this process when it is not root, else a child process of the
// test binary with another uid (see newOtherUser).
func collectAsUser(t *testing.T, paths ...string) ([]Item, []Skipped) {
	t.Helper()
	if os.Geteuid() != 0 {
		items, skipped, err := CollectSkipped(paths)
		if err != nil {
			t.Fatal(err)
		}
		return items, skipped
	}
	out := testAsOtherUser(t, "TestCollectHelperProcess", "LANSHARE_COLLECT="+strings.Join(paths, "\n"))
	var res collected
	if err := json.Unmarshal(out[strings.IndexByte(string(out), '{'):strings.LastIndexByte(string(out), '}')+1], &res); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	var skipped []Skipped
	for i, p := range res.Skipped {
		err := errors.New(res.Reasons[i])
		if res.Unreadable[i] {
			err = unreadable(err)
		}
		skipped = append(skipped, Skipped{Path: p, Err: err})
	}
	return res.Items, skipped
}

// testAsOtherUser runs the test named test of a copy of this test binary,
// with env added to the environment, as a user the permission bits apply
// to (see newOtherUser), and returns its output. The child failing fails t.
func testAsOtherUser(t *testing.T, test string, env ...string) []byte {
	t.Helper()
	u := newOtherUser(t)
	bin := filepath.Join(t.TempDir(), "peer.test")
	must(t, os.Chmod(filepath.Dir(bin), 0o755))
	must(t, os.Chmod(filepath.Dir(filepath.Dir(bin)), 0o711))
	copyExecutable(t, os.Args[0], bin)
	cmd := exec.Command(bin, "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, NoSetGroups: true}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s as uid %d: %v\n%s", test, u.uid, err, out)
	}
	return out
}

// collected is what TestCollectHelperProcess reports.
type collected struct {
	Items      []Item
	Skipped    []string
	Reasons    []string
	Unreadable []bool
}

// TestCollectHelperProcess is the child of collectAsUser, not a test.
func TestCollectHelperProcess(t *testing.T) {
	paths := os.Getenv("LANSHARE_COLLECT")
	if paths == "" {
		t.Skip("the child process of collectAsUser")
	}
	items, skipped, err := CollectSkipped(strings.Split(paths, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	res := collected{Items: items}
	for _, s := range skipped {
		res.Skipped = append(res.Skipped, s.Path)
		res.Reasons = append(res.Reasons, s.Err.Error())
		res.Unreadable = append(res.Unreadable, errors.Is(s.Err, ErrUnreadable))
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		t.Fatal(err)
	}
}

func copyExecutable(t testing.TB, from, to string) {
	t.Helper()
	r, err := os.Open(from)
	must(t, err)
	defer r.Close()
	w, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	must(t, err)
	_, err = io.Copy(w, r)
	must(t, errors.Join(err, w.Close()))
}

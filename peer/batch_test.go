package peer

import (
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

func fileEntry(p, content string) proto.Entry {
	return proto.Entry{Path: p, Kind: proto.KindFile, Size: uint64(len(content)), Mode: 0o644, MTime: time.Unix(1700000000, 0)}
}

func sumOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestBatchReceivesFilesInAnyOrderAtOnce: the files of a batch arrive as
// parallel streams in any order, keep their folders, and are saved only
// verified.
func TestBatchReceivesFilesInAnyOrderAtOnce(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	files := map[string]string{
		"a.txt":             "alpha",
		"dir/sub/b.txt":     strings.Repeat("b", 3<<20),
		"dir/c.bin":         randomBytes(t, 1<<20),
		"dir/sub/empty.txt": "",
	}
	var entries []proto.Entry
	var contents []string
	for _, p := range []string{"a.txt", "dir/sub/b.txt", "dir/c.bin", "dir/sub/empty.txt"} {
		entries = append(entries, fileEntry(p, files[p]))
		contents = append(contents, files[p])
	}
	b, err := in.OpenBatch("phone", entries, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Accepted(); len(got) != 4 {
		t.Fatalf("accepted %v, want all four", got)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(entries))
	for _, i := range []int{3, 1, 0, 2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Receive(i, strings.NewReader(contents[i]), sumOf(contents[i]))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
	}
	if !b.Finished() {
		t.Error("batch not finished after every file arrived")
	}
	tr := b.Close()
	for _, r := range tr.Entries {
		if r.Result.Status != proto.Saved {
			t.Errorf("%s: %+v", r.Path, r.Result)
		}
	}
	want := map[string]string{"dir/": "", "dir/sub/": ""}
	for p, c := range files {
		want[p] = c
	}
	assertTree(t, in.Dir(), want)
}

// TestBatchWrongDigestIsRetriedThenFails: a file whose bytes do not match
// the announced SHA-256 is never saved; it may be sent again, three times
// in all.
func TestBatchWrongDigestIsRetriedThenFails(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	good := "the real content"
	b, err := in.OpenBatch("phone", []proto.Entry{fileEntry("x.txt", good), fileEntry("y.txt", good)}, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := "the fake content"
	if err := b.Receive(0, strings.NewReader(bad), sumOf(good)); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong bytes: %v, want ErrDigestMismatch", err)
	}
	assertNoTemps(t, in.Dir())
	if err := b.Receive(0, strings.NewReader(good), sumOf(good)); err != nil {
		t.Fatalf("second try: %v", err)
	}
	for try := 1; try <= BatchTries; try++ {
		err := b.Receive(1, strings.NewReader(bad), sumOf(good))
		if try < BatchTries && !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("try %d: %v", try, err)
		}
	}
	if err := b.Receive(1, strings.NewReader(good), sumOf(good)); !errors.Is(err, ErrNotPending) {
		t.Fatalf("after %d wrong tries: %v, want ErrNotPending", BatchTries, err)
	}
	tr := b.Close()
	if r := tr.Entries[1].Result; r.Status != proto.Failed || r.Code != proto.CodeDigest {
		t.Errorf("y.txt: %+v, want failed with a digest code", r)
	}
	assertTree(t, in.Dir(), map[string]string{"x.txt": good})
}

// TestBatchStreamOfTheWrongLengthLeavesNothing: a stream shorter or longer
// than the offered size, or one that breaks, leaves nothing under a final
// name.
func TestBatchStreamOfTheWrongLengthLeavesNothing(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	b, err := in.OpenBatch("phone", []proto.Entry{fileEntry("short", "12345"), fileEntry("long", "12345"), fileEntry("broken", "12345")}, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Receive(0, strings.NewReader("123"), nil); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("short: %v", err)
	}
	if err := b.Receive(1, strings.NewReader("1234567"), nil); !errors.Is(err, ErrSizeMismatch) {
		t.Errorf("long: %v", err)
	}
	broke := errors.New("connection reset")
	if err := b.Receive(2, io.MultiReader(strings.NewReader("12"), errReader{broke}), nil); !errors.Is(err, broke) {
		t.Errorf("broken: %v", err)
	}
	tr := b.Close()
	for _, r := range tr.Entries {
		if r.Result.Status != proto.Failed {
			t.Errorf("%s: %+v, want failed", r.Path, r.Result)
		}
	}
	assertEmpty(t, in.Dir())
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestBatchHostileNamesAreRefusedOrMapped: names that climb out, are
// absolute or hold controls are refused entry by entry; nothing is
// written outside the folder, and an existing file is never overwritten.
func TestBatchHostileNamesAreRefusedOrMapped(t *testing.T) {
	dir := t.TempDir()
	in := newInbox(t, InboxConfig{Dir: dir})
	if err := os.WriteFile(filepath.Join(dir, "taken.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries := []proto.Entry{
		fileEntry("../escape.txt", "x"),
		fileEntry("/etc/passwd", "x"),
		fileEntry("a/../../b.txt", "x"),
		fileEntry("bell\a.txt", "x"),
		fileEntry("rtl\u202etxt.exe", "x"),
		fileEntry("taken.txt", "theirs"),
	}
	b, err := in.OpenBatch("phone", entries, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Accepted(); len(got) != 1 || got[0] != 5 {
		t.Fatalf("accepted %v, want only taken.txt (entry 5)", got)
	}
	if err := b.Receive(0, strings.NewReader("x"), nil); !errors.Is(err, ErrNotPending) {
		t.Errorf("a refused entry's bytes: %v, want ErrNotPending", err)
	}
	if err := b.Receive(5, strings.NewReader("theirs"), nil); err != nil {
		t.Fatal(err)
	}
	tr := b.Close()
	if got := tr.Entries[5].Result.SavedAs; got != "taken (1).txt" {
		t.Errorf("taken.txt saved as %q, want %q", got, "taken (1).txt")
	}
	for _, r := range tr.Entries[:5] {
		if r.Result.Status != proto.Refused {
			t.Errorf("%q: %+v, want refused", r.Path, r.Result)
		}
	}
	assertTree(t, dir, map[string]string{"taken.txt": "mine", "taken (1).txt": "theirs"})
}

// TestBatchRefusedWholeCreatesNothing: a batch over the size cap, or one
// that consent refuses, is refused whole with its code.
func TestBatchRefusedWholeCreatesNothing(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	entries := []proto.Entry{fileEntry("d/big.bin", strings.Repeat("x", 100))}
	_, err := in.OpenBatch("phone", entries, Policy{MaxSize: 10}, nil)
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeTooLarge {
		t.Fatalf("over the cap: %v, want CodeTooLarge", err)
	}
	_, err = in.OpenBatch("phone", entries, Policy{Consent: func(OfferSummary, func(time.Duration) (<-chan struct{}, error)) error {
		return &RefusedError{Code: proto.CodeDenied, Reason: "declined"}
	}}, nil)
	if !errors.As(err, &re) || re.Code != proto.CodeDenied {
		t.Fatalf("declined: %v, want CodeDenied", err)
	}
	assertEmpty(t, in.Dir())
}

// TestBatchClosedEarlyRemovesWhatItCreated: a sender that stops after
// some files keeps those; the rest are reported, and no temporary file
// stays.
func TestBatchClosedEarlyRemovesWhatItCreated(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	b, err := in.OpenBatch("phone", []proto.Entry{fileEntry("keep/a.txt", "a"), fileEntry("gone/b.txt", "b")}, Policy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Receive(0, strings.NewReader("a"), sumOf("a")); err != nil {
		t.Fatal(err)
	}
	tr := b.Close()
	if r := tr.Entries[1].Result; r.Status != proto.Failed {
		t.Errorf("never sent: %+v", r)
	}
	if err := b.Receive(1, strings.NewReader("b"), nil); !errors.Is(err, ErrBatchClosed) {
		t.Errorf("after close: %v, want ErrBatchClosed", err)
	}
	assertTree(t, in.Dir(), map[string]string{"keep/": "", "keep/a.txt": "a"})
}

package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistoryAppendReadRotate(t *testing.T) {
	dir := t.TempDir()
	h := OpenHistory(dir)
	h.segmentBytes, h.segments = 4<<10, 4
	if got, err := h.Read(); err != nil || len(got) != 0 {
		t.Fatalf("empty history: %v, %v", got, err)
	}
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	// Enough lines (about 130 bytes each) to fill every segment three
	// times over.
	n := 0
	for n < 3*int(h.segmentBytes)*h.segments/130 {
		a := Arrival{Time: t0.Add(time.Duration(n) * time.Second), From: "alice", ID: "aaaa", Remote: "10.0.0.1:1",
			Path: fmt.Sprintf("f%06d.txt", n), SavedAs: fmt.Sprintf("f%06d.txt", n), Size: uint64(n)}
		if err := h.Append(a); err != nil {
			t.Fatal(err)
		}
		n++
	}
	// A line cut by a crash is skipped.
	f, err := os.OpenFile(filepath.Join(dir, historyFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2026-`)
	f.Close()
	got, err := h.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || len(got) >= n {
		t.Fatalf("read %d arrivals of %d appended; want the recent ones only (rotated)", len(got), n)
	}
	last := got[len(got)-1]
	if last.Path != fmt.Sprintf("f%06d.txt", n-1) || last.SavedAs != last.Path || last.Size != uint64(n-1) || last.From != "alice" {
		t.Errorf("last arrival %+v, want the last appended", last)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].Time.After(got[i-1].Time) {
			t.Fatalf("arrivals out of order at %d", i)
		}
	}
	if total := historySize(t, dir); total > int64(h.segments)*(h.segmentBytes+200) {
		t.Errorf("history takes %d bytes, want at most about %d", total, int64(h.segments)*h.segmentBytes)
	}
	fi, _ := os.Stat(filepath.Join(dir, historyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v, want 0600", fi.Mode().Perm())
	}
}

// historySize is the bytes the history's files take.
func historySize(t testing.TB, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "history.") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// photoTransfer is n arrivals of one transfer from, with paths as a photo
// library names them (about 40 bytes), numbered from first.
func photoTransfer(from string, at time.Time, first, n int) []Arrival {
	out := make([]Arrival, n)
	for i := range out {
		p := fmt.Sprintf("Pictures/2026/Vacances été/IMG_%07d.jpg", first+i)
		out[i] = Arrival{Time: at, From: from, ID: strings.Repeat("a", IDLen), Remote: "10.77.0.2:40000", Path: p, SavedAs: p, Size: 3_000_000}
	}
	return out
}

// TestHistoryKeepsFiveThousandFileTransferAcrossRotation: a transfer of
// 5,000 files (which filled the 1 MiB history whole, so the next rotation
// dropped it) is all there after the history rotated twice.
func TestHistoryKeepsFiveThousandFileTransferAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	h := OpenHistory(dir)
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if err := h.Append(photoTransfer("alice", t0, 0, 5000)...); err != nil {
		t.Fatal(err)
	}
	for i := 1; ; i++ {
		if _, err := os.Stat(filepath.Join(dir, segment(2))); err == nil {
			break // rotated twice
		}
		if err := h.Append(photoTransfer("carol", t0.Add(time.Duration(i)*time.Minute), i*1000, 1000)...); err != nil {
			t.Fatal(err)
		}
	}
	got, err := h.Read()
	if err != nil {
		t.Fatal(err)
	}
	alice := 0
	for _, a := range got {
		if a.From == "alice" {
			alice++
		}
	}
	if alice != 5000 {
		t.Errorf("after two rotations the history holds %d of alice's 5000 files", alice)
	}
}

// TestHistoryKeepsTheLast100000FilesBounded: after 600,000 files in
// transfers of 5,000, the history holds (at least) the last 100,000, in
// order, and takes no more than HistoryMaxBytes and a line per segment.
func TestHistoryKeepsTheLast100000FilesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 48 MB of history")
	}
	dir := t.TempDir()
	h := OpenHistory(dir)
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	const per, transfers = 5000, 120
	for i := range transfers {
		if err := h.Append(photoTransfer("alice", t0.Add(time.Duration(i)*time.Minute), i*per, per)...); err != nil {
			t.Fatal(err)
		}
	}
	got, err := h.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 100_000 || len(got) >= per*transfers {
		t.Fatalf("history holds %d files of %d, want at least the last 100000 and not all (bounded)", len(got), per*transfers)
	}
	first := per*transfers - len(got)
	for i, a := range got {
		if want := fmt.Sprintf("Pictures/2026/Vacances été/IMG_%07d.jpg", first+i); a.Path != want {
			t.Fatalf("arrival %d is %q, want %q: not the last %d files in order", i, a.Path, want, len(got))
		}
	}
	if total, max := historySize(t, dir), int64(HistoryMaxBytes+HistorySegments*historyLineBytes); total > max {
		t.Errorf("history takes %d bytes, want at most %d", total, max)
	}
	t.Logf("%d files in %d bytes", len(got), historySize(t, dir))
}

// TestHistoryReadsTheOlderFormat: lines written before segments (one file
// a line) read as before, beside the new records.
func TestHistoryReadsTheOlderFormat(t *testing.T) {
	dir := t.TempDir()
	old := `{"time":"2026-11-20T10:00:00Z","from":"bob","id":"bbbb","remote":"10.0.0.2:1","path":"a.txt","saved_as":"a (1).txt","size":3}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "history.1.jsonl"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	h := OpenHistory(dir)
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if err := h.Append(Arrival{Time: t0, From: "alice", ID: "aaaa", Remote: "10.0.0.1:1", Path: "b.txt", SavedAs: "b (1).txt", Size: 5}); err != nil {
		t.Fatal(err)
	}
	got, err := h.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := []Arrival{
		{Time: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), From: "bob", ID: "bbbb", Remote: "10.0.0.2:1", Path: "a.txt", SavedAs: "a (1).txt", Size: 3},
		{Time: t0, From: "alice", ID: "aaaa", Remote: "10.0.0.1:1", Path: "b.txt", SavedAs: "b (1).txt", Size: 5},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("read %+v, want %+v", got, want)
	}
}

// TestHistoryReadSkipsCorruptLongLinesAndBoundsSegments: a segment with
// a line far longer than any record (garbage, a file cut and joined)
// loses that line alone, not the whole history; and a segment grown far
// past its size (another program appending) is read only up to a bound.
func TestHistoryReadSkipsCorruptLongLinesAndBoundsSegments(t *testing.T) {
	dir := t.TempDir()
	rec := func(name string) string {
		return `{"time":"2026-11-20T10:00:00Z","from":"bob","id":"bbbb","remote":"10.0.0.2:1","files":[{"p":"` + name + `","n":3}]}` + "\n"
	}
	corrupt := rec("a.txt") + strings.Repeat("x", 600<<10) + "\n" + rec("b.txt")
	if err := os.WriteFile(filepath.Join(dir, "history.1.jsonl"), []byte(corrupt), 0o600); err != nil {
		t.Fatal(err)
	}
	h := OpenHistory(dir)
	h.segmentBytes = 64 << 10
	huge := strings.Repeat(rec("c.txt"), int(16*h.segmentBytes)/len(rec("c.txt")))
	if err := os.WriteFile(filepath.Join(dir, historyFile), []byte(huge), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := h.Read()
	if err != nil {
		t.Fatalf("history with a corrupt segment: %v", err)
	}
	if len(got) < 2 || got[0].Path != "a.txt" || got[1].Path != "b.txt" {
		t.Fatalf("read %d arrivals, want a.txt and b.txt first", len(got))
	}
	if n, limit := len(got)-2, (2*int(h.segmentBytes)+2*historyLineBytes)/len(rec("c.txt"))+1; n > limit {
		t.Errorf("read %d records of a segment of %d bytes, want at most %d (the bound)", n, len(huge), limit)
	}
}

// TestHistoryKeepsTextMessages: a text message is a history entry of its
// own, read back as sent (cut to HistoryTextMax), between files.
func TestHistoryKeepsTextMessages(t *testing.T) {
	h := OpenHistory(t.TempDir())
	now := time.Unix(1700000000, 0).UTC()
	long := strings.Repeat("x", HistoryTextMax+10)
	in := []Arrival{
		{Time: now, From: "Pixel 9", ID: "ls-" + strings.Repeat("ab", 32), Path: "a.txt", SavedAs: "a.txt", Size: 1},
		{Time: now, From: "Pixel 9", Text: "door \x1b[31m4711"},
		{Time: now, From: "Pixel 9", Text: long},
	}
	if err := h.Append(in...); err != nil {
		t.Fatal(err)
	}
	got, err := h.Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Path != "a.txt" || got[1].Text != "door \x1b[31m4711" || got[1].Path != "" || got[2].Text != long[:HistoryTextMax] ||
		got[1].Size != 14 || got[2].Size != uint64(len(long)) {
		t.Fatalf("read back %+v", got)
	}
}

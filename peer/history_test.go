package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHistoryAppendReadRotate(t *testing.T) {
	dir := t.TempDir()
	h := OpenHistory(dir)
	if got, err := h.Read(); err != nil || len(got) != 0 {
		t.Fatalf("empty history: %v, %v", got, err)
	}
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	// Enough lines (about 140 bytes each) to fill the file twice over.
	n := 0
	for n < 3*HistoryMaxBytes/140 {
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
	if last.Path != fmt.Sprintf("f%06d.txt", n-1) || last.Size != uint64(n-1) {
		t.Errorf("last arrival %+v, want the last appended", last)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].Time.After(got[i-1].Time) {
			t.Fatalf("arrivals out of order at %d", i)
		}
	}
	if total := historySize(t, dir); total > 2*HistoryMaxBytes+1024 {
		t.Errorf("history takes %d bytes, want at most about %d", total, 2*HistoryMaxBytes)
	}
	fi, _ := os.Stat(filepath.Join(dir, historyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v, want 0600", fi.Mode().Perm())
	}
}

// historySize is the bytes both history files take.
func historySize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, name := range []string{historyFile, historyOldFile} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

package peer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCollectSmallTree measures Collect alone, the sender's walk
// before the first byte goes out, on 10,000 files of 4 KiB in 100 folders
// (BenchmarkSmallFiles's tree), from a warm cache: the tree was just
// written and is walked once before the timing starts.
//
//	go test -run '^$' -bench '^BenchmarkCollect' -count 6 ./peer/
func BenchmarkCollectSmallTree(b *testing.B) {
	benchCollect(b, smallTree(b), smallFiles+smallFiles/100+1)
}

// BenchmarkCollectFewFiles is Collect on a small tree, 12 files in 3
// folders, which should not pay for the walk's goroutines.
func BenchmarkCollectFewFiles(b *testing.B) {
	root := filepath.Join(b.TempDir(), "few")
	for i := range 12 {
		p := filepath.Join(root, fmt.Sprintf("d%d", i/4), fmt.Sprintf("f%02d.txt", i))
		must(b, os.MkdirAll(filepath.Dir(p), 0o755))
		must(b, os.WriteFile(p, []byte(p), 0o644))
	}
	benchCollect(b, root, 12+3+1)
}

func benchCollect(b *testing.B, root string, want int) {
	if items := collect(b, root); len(items) != want {
		b.Fatalf("collected %d items, want %d", len(items), want)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Collect([]string{root}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

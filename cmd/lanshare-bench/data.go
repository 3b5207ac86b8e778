//go:build linux

package main

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/lanshare/lanshare/proto"
)

// sizes are the sizes of the data sets: full, or -quick's.
type sizes struct {
	bigFile    int64        // scenarios 1 and 4
	smallFiles int          // scenarios 2, 4 and 5
	smallSize  int64        // each small file's size
	mixed      []sizeClass  // scenario 3
	offers     []offerShape // scenario 7
}

// offerShape is the offer every stranger of scenario 7 sends in one part
// of it: entries files, in a frame payload of payload bytes.
type offerShape struct {
	what             string
	entries, payload int
}

// sizeClass is count files of about size bytes (each within ±25%, at
// least 1 KiB and at most the largest class's size).
type sizeClass struct {
	size  int64
	count int
}

var fullSizes = sizes{
	bigFile:    1 << 30,
	smallFiles: 10000,
	smallSize:  4 << 10,
	// 2,000 files, about 830 MB: a few large ones hold most of the bytes,
	// many small ones most of the count, as in a home folder.
	mixed: []sizeClass{
		{64 << 20, 4}, {16 << 20, 12}, {4 << 20, 40}, {1 << 20, 100}, {256 << 10, 200},
		{64 << 10, 400}, {16 << 10, 500}, {4 << 10, 400}, {1 << 10, 344},
	},
	// The largest offer there is (the budget holds one at a time), and
	// offers of the shortest paths, which cost the agent the most per
	// byte of offer: 100,000 entries (5 at a time), and 20,000 (26 at a
	// time, the most memory of the shapes tried).
	offers: []offerShape{
		{"largest offers", proto.MaxEntries, proto.MaxFrameLen},
		{"short paths", proto.MaxEntries, 4 + proto.MaxEntries*32},
		{"small offers of short paths", 20_000, 4 + 20_000*32},
	},
}

var quickSizes = sizes{
	bigFile:    64 << 20,
	smallFiles: 1000,
	smallSize:  4 << 10,
	// 200 files, about 47 MB.
	mixed: []sizeClass{
		{4 << 20, 4}, {1 << 20, 12}, {256 << 10, 40}, {64 << 10, 100},
		{16 << 10, 20}, {4 << 10, 10}, {1 << 10, 14},
	},
	// Offers that fill the budget 14 at a time.
	offers: []offerShape{{"mid-size offers", 10_000, 8 << 20}},
}

// dataset is something a scenario sends: a file, or a folder sent whole.
type dataset struct {
	path  string
	files int
	bytes int64
}

// randomWriter fills files with pseudo-random bytes (nothing on the path
// compresses, but a file of zeros might be stored sparse or deduplicated).
type randomWriter struct {
	rng *rand.ChaCha8
	buf []byte
}

func newRandomWriter(seed byte) *randomWriter {
	var s [32]byte
	s[0] = seed
	return &randomWriter{rng: rand.NewChaCha8(s), buf: make([]byte, 1<<20)}
}

// writeFile creates path (and its folder) with size random bytes.
func (w *randomWriter) writeFile(path string, size int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	for left := size; left > 0 && err == nil; {
		n := min(left, int64(len(w.buf)))
		_, _ = w.rng.Read(w.buf[:n])
		_, err = f.Write(w.buf[:n])
		left -= n
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// makeBigFile makes one file of size bytes.
func makeBigFile(path string, size int64) (dataset, error) {
	err := newRandomWriter(1).writeFile(path, size)
	return dataset{path: path, files: 1, bytes: size}, err
}

// makeSmallTree makes n files of size bytes in folder root, 100 to a
// folder, ten such folders to a parent: root/d00/e3/f00321.bin.
func makeSmallTree(root string, n int, size int64) (dataset, error) {
	w := newRandomWriter(2)
	for i := range n {
		leaf := i / 100
		p := filepath.Join(root, fmt.Sprintf("d%02d", leaf/10), fmt.Sprintf("e%d", leaf%10), fmt.Sprintf("f%05d.bin", i))
		if err := w.writeFile(p, size); err != nil {
			return dataset{}, err
		}
	}
	return dataset{path: root, files: n, bytes: int64(n) * size}, nil
}

// makeMixedTree makes the files of classes, in random order, spread over
// 40 folders in two levels under root.
func makeMixedTree(root string, classes []sizeClass) (dataset, error) {
	w := newRandomWriter(3)
	pick := rand.New(rand.NewPCG(3, 3))
	var sizes []int64
	largest := int64(0)
	for _, c := range classes {
		largest = max(largest, c.size)
		for range c.count {
			s := c.size * int64(750+pick.IntN(500)) / 1000
			sizes = append(sizes, min(max(s, 1<<10), largest))
		}
	}
	pick.Shuffle(len(sizes), func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
	ds := dataset{path: root}
	for i, s := range sizes {
		p := filepath.Join(root, fmt.Sprintf("d%d", pick.IntN(8)), fmt.Sprintf("e%d", pick.IntN(5)), fmt.Sprintf("f%04d.bin", i))
		if err := w.writeFile(p, s); err != nil {
			return dataset{}, err
		}
		ds.files++
		ds.bytes += s
	}
	return ds, nil
}

// measureTree counts the regular files under path (or path itself) and
// their bytes.
func measureTree(path string) (files int, bytes int64, err error) {
	err = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files++
		bytes += info.Size()
		return nil
	})
	return files, bytes, err
}

// checkOutput fails unless out holds as many files and bytes as ds.
func checkOutput(out string, ds dataset) error {
	files, bytes, err := measureTree(out)
	if err != nil {
		return fmt.Errorf("checking the output: %w", err)
	}
	if files != ds.files || bytes != ds.bytes {
		return fmt.Errorf("output %s has %d files, %d bytes; want %d files, %d bytes", out, files, bytes, ds.files, ds.bytes)
	}
	return nil
}

package peer

// Benchmarks of a whole transfer over loopback TCP, each next to a
// baseline measured in the same run, interleaved (lanshare, baseline,
// lanshare, ...) because these machines are shared and noisy:
//
//	go test -run '^$' -bench . -benchtime 5x ./peer/
//
// BenchmarkLargeFile sends one 1 GiB file; its baseline is a plain io.Copy
// of the same file over loopback TCP into a file. BenchmarkSmallFiles sends
// 10,000 files of 4 KiB in 100 folders; its baseline is a tar stream of the
// same tree over one TCP connection, unpacked into files. Each reports
// lanshare's rate (MB/s, and files/s), the baseline's, and
// ratio = lanshare / baseline. B/op shows memory stays flat in file size.

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkLargeFile(b *testing.B) {
	const size = 1 << 30
	src := filepath.Join(b.TempDir(), "large.bin")
	writeRandomFile(b, src, size)
	items := collect(b, src)
	runPair(b, size, 1, items, func(dst string) { baselineCopy(b, src, dst) })
}

func BenchmarkSmallFiles(b *testing.B) {
	const files, size = 10_000, 4 << 10
	root := filepath.Join(b.TempDir(), "small")
	buf := make([]byte, size)
	for i := range files {
		p := filepath.Join(root, fmt.Sprintf("d%02d", i/100), fmt.Sprintf("f%04d.bin", i))
		if i%100 == 0 {
			must(b, os.MkdirAll(filepath.Dir(p), 0o755))
		}
		buf[0], buf[1] = byte(i), byte(i>>8)
		must(b, os.WriteFile(p, buf, 0o644))
	}
	items := collect(b, root)
	runPair(b, files*size, files, items, func(dst string) { baselineTar(b, root, dst) })
}

// runPair times b.N lanshare transfers of items and b.N baseline runs,
// alternating, each into a fresh directory removed outside the timings.
func runPair(b *testing.B, bytes int64, files int, items []Item, baseline func(dst string)) {
	work := b.TempDir()
	agent, err := New(Config{
		Dir: filepath.Join(work, "inbox"), ConfigDir: filepath.Join(work, "config"), Name: "bench",
		Listen: "127.0.0.1:0", SpaceMargin: 0, HandshakeTimeout: 10 * time.Second,
		IdleTimeout: time.Minute, ShutdownGrace: time.Second, MaxConns: 4, MaxConnsPerHost: 4,
	})
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- agent.Serve(ctx) }()
	defer func() { cancel(); <-served; agent.Close() }()

	var ours, base time.Duration
	b.SetBytes(bytes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := SendTo(ctx, agent.Addr().String(), items, SendOptions{Name: "bench"}); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		b.StopTimer()
		clearDir(b, agent.inbox.Dir())
		dst := filepath.Join(work, "baseline")
		must(b, os.MkdirAll(dst, 0o755))
		start = time.Now()
		baseline(dst)
		base += time.Since(start)
		must(b, os.RemoveAll(dst))
		b.StartTimer()
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(bytes) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(ours), "lanshare-MB/s")
	b.ReportMetric(mbps(base), "baseline-MB/s")
	b.ReportMetric(base.Seconds()/ours.Seconds(), "ratio")
	if files > 1 {
		b.ReportMetric(float64(files*b.N)/ours.Seconds(), "lanshare-files/s")
		b.ReportMetric(float64(files*b.N)/base.Seconds(), "baseline-files/s")
	}
}

func clearDir(b *testing.B, dir string) {
	entries, err := os.ReadDir(dir)
	must(b, err)
	for _, e := range entries {
		must(b, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
}

func writeRandomFile(b *testing.B, p string, size int64) {
	f, err := os.Create(p)
	must(b, err)
	chunk := []byte(randomBytes(b, 1<<20))
	for n := int64(0); n < size; n += int64(len(chunk)) {
		_, err := f.Write(chunk)
		must(b, err)
	}
	must(b, f.Close())
}

// loopbackPair runs receive on an accepted loopback connection while send
// writes into a dialled one, and waits for both.
func loopbackPair(b *testing.B, send func(net.Conn), receive func(net.Conn)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		receive(c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	must(b, err)
	send(c)
	c.Close()
	<-done
}

// baselineCopy is the plainest way to move a file over TCP: io.Copy from
// the file (sendfile) into the socket, io.Copy from the socket into a
// file (splice), then fsync like lanshare does.
func baselineCopy(b *testing.B, src, dstDir string) {
	loopbackPair(b, func(c net.Conn) {
		f, err := os.Open(src)
		must(b, err)
		defer f.Close()
		_, err = io.Copy(c, f)
		must(b, err)
	}, func(c net.Conn) {
		f, err := os.Create(filepath.Join(dstDir, "large.bin"))
		must(b, err)
		_, err = io.Copy(f, c)
		must(b, err)
		must(b, f.Sync())
		must(b, f.Close())
	})
}

// baselineTar streams the tree as tar over one connection and unpacks it.
func baselineTar(b *testing.B, root, dstDir string) {
	loopbackPair(b, func(c net.Conn) {
		tw := tar.NewWriter(c)
		must(b, tw.AddFS(os.DirFS(root)))
		must(b, tw.Close())
	}, func(c net.Conn) {
		tr := tar.NewReader(c)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return
			}
			must(b, err)
			p := filepath.Join(dstDir, filepath.FromSlash(h.Name))
			if h.Typeflag == tar.TypeDir {
				must(b, os.MkdirAll(p, 0o755))
				continue
			}
			must(b, os.MkdirAll(filepath.Dir(p), 0o755))
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			must(b, err)
			_, err = io.Copy(f, tr)
			must(b, err)
			must(b, f.Close())
		}
	})
}

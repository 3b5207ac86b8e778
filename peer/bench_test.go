package peer

// Benchmarks of whole transfers over loopback, each next to baselines
// measured in the same run and interleaved (lanshare, baseline, lanshare,
// baseline, ...), because these machines are shared and noisy.
//
// Each reports every way's rate as <way>-MB/s (and <way>-files/s for many
// files), and lanshare's rate over a baseline's as ratio-<baseline>: 1.0
// means as fast. <way>-cpu-s/GiB is the CPU time (user and system, both
// ends) a way spends per GiB moved, which other load on the machine
// disturbs less than the rates. ns/op, MB/s, B/op and allocs/op are lanshare's alone,
// sender and receiver together (both run in this process); B/op should not
// grow with the file size. Every way ends with the data durable (fsync) on
// the receiving side, except the tar baselines, which do not sync.
//
// Sources are read from the page cache (they were just written). Run with
// -count to see the spread, and never next to a fuzzer.

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkLargeFile measures the transfer layer alone on one 1 GiB file:
// Send over a plain loopback TCP connection into Inbox.Receive, against
// io.Copy of the file into the socket (sendfile) and from the socket into a
// file (splice), then fsync.
//
//	go test -run '^$' -bench '^BenchmarkLargeFile$' -benchtime 5x -count 5 ./peer/
func BenchmarkLargeFile(b *testing.B) {
	const size = 1 << 30
	src := largeSource(b, size)
	items := collect(b, src)
	in := newInbox(b, InboxConfig{})
	ln := listenLoopback(b)
	compare(b, size, 1,
		way{name: "lanshare", dst: in.Dir(), run: func(string) error { return sendPlain(ln, in, items) }},
		way{name: "tcp", run: func(dst string) error { return copyFile(ln, nil, src, dst) }})
}

// BenchmarkSmallFiles measures the transfer layer alone on 10,000 files of
// 4 KiB in 100 folders: Send over a plain loopback TCP connection into
// Inbox.Receive, against a tar stream of the same tree over one TCP
// connection, unpacked into files (not synced; lanshare syncs every file).
//
//	go test -run '^$' -bench '^BenchmarkSmallFiles$' -benchtime 5x -count 5 ./peer/
func BenchmarkSmallFiles(b *testing.B) {
	root := smallTree(b)
	items := collect(b, root)
	in := newInbox(b, InboxConfig{})
	ln := listenLoopback(b)
	compare(b, smallFiles*smallSize, smallFiles,
		way{name: "lanshare", dst: in.Dir(), run: func(string) error { return sendPlain(ln, in, items) }},
		way{name: "tar", run: func(dst string) error { return copyTree(ln, nil, root, dst) }})
}

// BenchmarkLargeFileTLS measures the real path on one file: a Sender
// dialling an Agent (no discovery, accepting everyone), TLS 1.3 with
// certificates on both sides, against a bare Go TLS 1.3 copy of the file
// (the same TLS configurations; io.Copy into the tls.Conn, io.Copy from it
// into a file, fsync) and a raw TCP copy (sendfile, splice, fsync). The
// target is ratio-tls; ratio-tcp shows what encryption costs. It runs at
// two sizes so that B/op can be seen not to grow with the file.
//
//	go test -run '^$' -bench '^BenchmarkLargeFileTLS$' -benchtime 5x -count 5 ./peer/
func BenchmarkLargeFileTLS(b *testing.B) {
	for _, size := range []int64{128 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			src := largeSource(b, size)
			items := collect(b, src)
			agent, sender := startBenchAgent(b)
			server, client := benchTLS(b)
			ln := listenLoopback(b)
			compare(b, size, 1,
				way{name: "lanshare", dst: agent.inbox.Dir(), run: func(string) error { return sendTLS(sender, agent, items) }},
				way{name: "tls", run: func(dst string) error { return copyFile(ln, &tlsPair{server, client}, src, dst) }},
				way{name: "tcp", run: func(dst string) error { return copyFile(ln, nil, src, dst) }})
		})
	}
}

// BenchmarkSmallFilesTLS measures the real path on 10,000 files of 4 KiB
// in 100 folders, against a tar stream of the tree over one TLS 1.3
// connection with the same configurations, unpacked into files (not
// synced; lanshare syncs every file).
//
//	go test -run '^$' -bench '^BenchmarkSmallFilesTLS$' -benchtime 5x -count 5 ./peer/
func BenchmarkSmallFilesTLS(b *testing.B) {
	root := smallTree(b)
	items := collect(b, root)
	agent, sender := startBenchAgent(b)
	server, client := benchTLS(b)
	ln := listenLoopback(b)
	compare(b, smallFiles*smallSize, smallFiles,
		way{name: "lanshare", dst: agent.inbox.Dir(), run: func(string) error { return sendTLS(sender, agent, items) }},
		way{name: "tar-tls", run: func(dst string) error { return copyTree(ln, &tlsPair{server, client}, root, dst) }})
}

// way is one way of moving the benchmark's data into the directory dst.
type way struct {
	name string
	// dst is where run puts the data; empty means a fresh directory for
	// each run. It is emptied after each run, outside the timings.
	dst  string
	run  func(dst string) error
	took time.Duration // wall time of all runs
	cpu  time.Duration // CPU time of all runs
}

// compare runs each way b.N times, interleaved, the first (lanshare's)
// under the benchmark's timer, and reports rates and ratios.
func compare(b *testing.B, bytes int64, files int, ways ...way) {
	work := b.TempDir()
	b.SetBytes(bytes)
	b.ReportAllocs()
	b.StopTimer()
	b.ResetTimer()
	for range b.N {
		for i := range ways {
			w := &ways[i]
			dst := w.dst
			if dst == "" {
				dst = filepath.Join(work, w.name)
				must(b, os.Mkdir(dst, 0o755))
			}
			if i == 0 {
				b.StartTimer()
			}
			start, cpu := time.Now(), processCPU()
			err := w.run(dst)
			w.took += time.Since(start)
			w.cpu += processCPU() - cpu
			if i == 0 {
				b.StopTimer()
			}
			if err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			if w.dst == "" {
				must(b, os.RemoveAll(dst))
			} else {
				clearDir(b, dst)
			}
		}
	}
	for i, w := range ways {
		b.ReportMetric(float64(bytes)*float64(b.N)/w.took.Seconds()/1e6, w.name+"-MB/s")
		if w.cpu > 0 {
			b.ReportMetric(w.cpu.Seconds()/(float64(bytes)*float64(b.N)/(1<<30)), w.name+"-cpu-s/GiB")
		}
		if files > 1 {
			b.ReportMetric(float64(files*b.N)/w.took.Seconds(), w.name+"-files/s")
		}
		if i > 0 {
			b.ReportMetric(w.took.Seconds()/ways[0].took.Seconds(), "ratio-"+w.name)
		}
	}
}

const smallFiles, smallSize = 10_000, 4 << 10

// smallTree writes smallFiles files of smallSize bytes in 100 folders.
func smallTree(b *testing.B) string {
	root := filepath.Join(b.TempDir(), "small")
	buf := []byte(randomBytes(b, smallSize))
	for i := range smallFiles {
		p := filepath.Join(root, fmt.Sprintf("d%02d", i/100), fmt.Sprintf("f%04d.bin", i))
		if i%100 == 0 {
			must(b, os.MkdirAll(filepath.Dir(p), 0o755))
		}
		buf[0], buf[1] = byte(i), byte(i>>8)
		must(b, os.WriteFile(p, buf, 0o644))
	}
	return root
}

// largeSource writes a file of size random bytes (a random MiB repeated).
func largeSource(b *testing.B, size int64) string {
	p := filepath.Join(b.TempDir(), "large.bin")
	f, err := os.Create(p)
	must(b, err)
	chunk := []byte(randomBytes(b, 1<<20))
	for n := int64(0); n < size; n += int64(len(chunk)) {
		_, err := f.Write(chunk[:min(int64(len(chunk)), size-n)])
		must(b, err)
	}
	must(b, f.Close())
	return p
}

func clearDir(b *testing.B, dir string) {
	entries, err := os.ReadDir(dir)
	must(b, err)
	for _, e := range entries {
		must(b, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
}

func listenLoopback(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	b.Cleanup(func() { ln.Close() })
	return ln
}

// startBenchAgent runs an agent on loopback, without discovery, accepting
// everyone, and returns it with a sender of another identity.
func startBenchAgent(b *testing.B) (*Agent, *Sender) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = b.TempDir(), b.TempDir(), "bench", "127.0.0.1:0"
	cfg.SpaceMargin, cfg.Accept, cfg.Discover = 0, AcceptEveryone, false
	cfg.LocalSend = false // no listener on every interface of this namespace
	agent, err := New(cfg)
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- agent.Serve(ctx) }()
	b.Cleanup(func() { cancel(); <-served; agent.Close() })
	id, err := LoadIdentity(b.TempDir())
	must(b, err)
	return agent, &Sender{Identity: id}
}

// benchTLS returns the TLS configurations of a receiver and of a sender
// that expects it, as agents use them.
func benchTLS(b *testing.B) (server, client *tls.Config) {
	recv, err := LoadIdentity(b.TempDir())
	must(b, err)
	send, err := LoadIdentity(b.TempDir())
	must(b, err)
	return recv.ServerTLS(), send.ClientTLS(recv.ID)
}

// tlsPair makes the two ends of a loopback connection TLS ones.
type tlsPair struct{ server, client *tls.Config }

// sendPlain runs one transfer of items into in over a loopback connection
// accepted on ln.
func sendPlain(ln net.Listener, in *Inbox, items []Item) error {
	return overLoopback(ln, nil, func(c net.Conn) error {
		_, err := Send(c, items, SendOptions{Name: "bench"})
		return err
	}, func(c net.Conn) error {
		_, err := in.Receive(c)
		return err
	})
}

// sendTLS runs one transfer of items from sender to agent, as `lanshare
// send` does.
func sendTLS(sender *Sender, agent *Agent, items []Item) error {
	t := Target{Name: "bench", ID: agent.ID(), Addrs: []string{agent.Addr().String()}}
	_, err := sender.Send(context.Background(), t, items, SendOptions{Name: "bench"})
	return err
}

// overLoopback runs receive on a connection accepted on ln while send
// writes into one dialled to it, each wrapped in TLS if tp is set, and
// waits for both. Each function's connection is closed after it returns.
func overLoopback(ln net.Listener, tp *tlsPair, send, receive func(net.Conn) error) error {
	received := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- err
			return
		}
		if tp != nil {
			c = tls.Server(c, tp.server)
		}
		err = receive(c)
		c.Close()
		received <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return errors.Join(err, <-received)
	}
	if tp != nil {
		c = tls.Client(c, tp.client)
	}
	err = send(c)
	c.Close()
	return errors.Join(err, <-received)
}

// copyFile is the plainest way to move a file over a connection: io.Copy
// from the file into the connection (sendfile on TCP), io.Copy from the
// connection into a file (splice on TCP), then fsync.
func copyFile(ln net.Listener, tp *tlsPair, src, dstDir string) error {
	return overLoopback(ln, tp, func(c net.Conn) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(c, f)
		return err
	}, func(c net.Conn) error {
		f, err := os.Create(filepath.Join(dstDir, "large.bin"))
		if err != nil {
			return err
		}
		_, err = io.Copy(f, c)
		if err == nil {
			err = f.Sync()
		}
		return errors.Join(err, f.Close())
	})
}

// copyTree streams the tree at root as tar over one connection and
// unpacks it into dstDir.
func copyTree(ln net.Listener, tp *tlsPair, root, dstDir string) error {
	return overLoopback(ln, tp, func(c net.Conn) error {
		tw := tar.NewWriter(c)
		if err := tw.AddFS(os.DirFS(root)); err != nil {
			return err
		}
		return tw.Close()
	}, func(c net.Conn) error {
		tr := tar.NewReader(c)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			p := filepath.Join(dstDir, filepath.FromSlash(h.Name))
			if h.Typeflag == tar.TypeDir {
				if err := os.MkdirAll(p, 0o755); err != nil {
					return err
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if err := errors.Join(err, f.Close()); err != nil {
				return err
			}
		}
	})
}

// BenchmarkResume measures a resume over the real path (TLS, Agent): a
// file whose transfer was cut at about 90% is sent again. The cut is a
// real one (a connection cut by the sender's side while it streams), so
// the receiver holds its partial file as a cut leaves it: written with
// direct I/O, not in the page cache, with its record. Each round then
// times the resumed send and, in the same round, a fresh send of a file
// holding only the missing bytes. It reports:
//
//	first-byte-ms   from the start of the resumed send to the receiver's
//	                first write of a new block (target: 50 ms)
//	resume-s        the resumed send's total time
//	fresh-missing-s the fresh send of the missing bytes
//	ratio-missing   resume-s over fresh-missing-s (target: at most 1.1)
//	sent-fraction   the fraction of the file's bytes that crossed
//
// The 10 GiB case runs only where the disk has room for it.
//
//	go test -run '^$' -bench '^BenchmarkResume$/1GiB' -benchtime 5x ./peer/
//	go test -run '^$' -bench '^BenchmarkResume$/10GiB' -benchtime 1x ./peer/
func BenchmarkResume(b *testing.B) {
	for _, size := range []int64{1 << 30, 10 << 30} {
		b.Run(fmt.Sprintf("%dGiB", size>>30), func(b *testing.B) {
			if free, _ := freeSpace(b.TempDir()); free < uint64(size)*5/2 {
				b.Skipf("needs %s free for a %s resume, %s free", FormatBytes(uint64(size)*5/2), FormatBytes(uint64(size)), FormatBytes(free))
			}
			benchResume(b, size)
		})
	}
}

func benchResume(b *testing.B, size int64) {
	have := size / 10 * 9
	src := largeSource(b, size)
	items := collect(b, src)
	agent, sender := startBenchAgent(b)
	// The cut send goes plainly into the agent's inbox, as from sender.
	plain, ended := serveInbox(b, agent.inbox, Policy{SenderID: sender.Identity.ID})
	t := Target{Name: "bench", ID: agent.ID(), Addrs: []string{agent.Addr().String()}}
	var firstStore atomic.Int64 // when the receiver first wrote a block
	storeHook = func() { firstStore.CompareAndSwap(0, time.Now().UnixNano()) }
	b.Cleanup(func() { storeHook = nil })
	missingDir := b.TempDir()
	// The sender's config folder, where it keeps its digest cache, as
	// "lanshare send" does.
	cfg := b.TempDir()

	var firstByte, resumed, fresh time.Duration
	var sent uint64
	b.ResetTimer()
	for round := range b.N {
		b.StopTimer()
		clearDir(b, agent.inbox.Dir())
		_, err := SendTo(context.Background(), plain, items, SendOptions{Name: "bench", Retries: -1, ConfigDir: cfg,
			Dial: cutDialer(map[int]int{1: int(have)})})
		if err == nil {
			b.Fatal("the cut send reported success")
		}
		waitFor(b, func() bool { return ended.Load() == int64(round+1) })

		firstStore.Store(0)
		start := time.Now()
		b.StartTimer()
		rep, err := sender.Send(context.Background(), t, items, SendOptions{Name: "bench", ConfigDir: cfg})
		b.StopTimer()
		must(b, err)
		resumed += time.Since(start)
		firstByte += time.Duration(firstStore.Load() - start.UnixNano())
		sent += rep.Sent
		if rep.Resumed == 0 || rep.Saved() != 1 {
			b.Fatalf("resumed at %d, %d saved: not a resume", rep.Resumed, rep.Saved())
		}

		// The missing bytes alone, fresh.
		clearDir(b, agent.inbox.Dir())
		missing := filepath.Join(missingDir, "missing.bin")
		must(b, copyRange(src, missing, int64(rep.Resumed)))
		start = time.Now()
		rep, err = sender.Send(context.Background(), t, collect(b, missing), SendOptions{Name: "bench", ConfigDir: cfg})
		must(b, err)
		fresh += time.Since(start)
		if rep.Saved() != 1 {
			b.Fatal("the fresh send of the missing bytes failed")
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(sent)/n/float64(size), "sent-fraction")
	b.ReportMetric(float64(firstByte.Microseconds())/n/1000, "first-byte-ms")
	b.ReportMetric(resumed.Seconds()/n, "resume-s")
	b.ReportMetric(fresh.Seconds()/n, "fresh-missing-s")
	b.ReportMetric(resumed.Seconds()/fresh.Seconds(), "ratio-missing")
}

// copyRange writes the bytes of src from off on into a new file dst.
func copyRange(src, dst string, off int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.NewSectionReader(in, off, 1<<62))
	return errors.Join(err, out.Close())
}

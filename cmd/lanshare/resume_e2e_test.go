package main

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cutProxy relays TCP connections to target and drops the n-th one (from
// 1) after it has carried cuts[n] bytes from the client, closing both
// sides: the network failing, not a process.
type cutProxy struct {
	ln     net.Listener
	target string
	cuts   map[int]int64

	mu    sync.Mutex
	conns int
	wg    sync.WaitGroup
}

func startCutProxy(t testing.TB, target string, cuts map[int]int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, cuts: cuts}
	p.wg.Add(1)
	go p.run()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) run() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		limit, cut := p.cuts[p.conns]
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer s.Close()
			done := make(chan struct{}, 2)
			go func() {
				var src io.Reader = c
				if cut {
					src = io.LimitReader(c, limit)
				}
				_, _ = io.Copy(s, src)
				if cut {
					// The cut: both sides lose the connection at once.
					c.Close()
					s.Close()
				} else if tc, ok := s.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				done <- struct{}{}
			}()
			go func() {
				_, _ = io.Copy(c, s)
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				done <- struct{}{}
			}()
			<-done
			<-done
		}()
	}
}

// TestNetworkCutResumes: connections dropped by the network in the middle
// of a large file and in the middle of a tree: send reconnects by itself,
// says so, resumes, and exits 0 with every file in place; the bytes sent
// are about the tree's size, not a multiple of it.
func TestNetworkCutResumes(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src", "tree")
	rng := rand.New(rand.NewPCG(1, 2))
	total := writeMixedTree(t, src, rng)
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--listen", "127.0.0.1:0")
	// Cut the first connection a third of the way into the tree, the
	// second in the middle of what is left.
	proxy := startCutProxy(t, srv.addr, map[int]int64{1: int64(total / 3), 2: int64(total / 3)})

	r := runLanshare(t, tmp, nil, "send", "--config", filepath.Join(tmp, "scfg"), proxy.addr(), src)
	if r.code != 0 {
		t.Fatalf("send: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stdout, "connection lost"); n != 2 {
		t.Errorf("send said %d times that it retries, want 2:\n%s", n, r.stdout)
	}
	if !strings.Contains(r.stdout, "after 2 retries") {
		t.Errorf("send's summary does not mention the retries:\n%s", r.stdout)
	}
	want := readTree(t, filepath.Dir(src))
	got := readTree(t, share)
	for p, w := range want {
		if got[p] != w {
			t.Fatalf("%s differs after the resumed send", p)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries arrived, want %d", len(got), len(want))
	}
	checkNoTemps(t, share)

	// Again with --json, counting the bytes: a second tree, one cut.
	src2 := filepath.Join(tmp, "src2", "tree")
	total2 := writeMixedTree(t, src2, rng)
	proxy2 := startCutProxy(t, srv.addr, map[int]int64{1: int64(total2 / 2)})
	r = runLanshare(t, tmp, nil, "send", "--json", "--config", filepath.Join(tmp, "scfg"), proxy2.addr(), src2)
	if r.code != 0 {
		t.Fatalf("send --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var retries int
	for _, l := range lines(r.stdout) {
		var ev struct{ Event string }
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "retry" {
			retries++
		}
	}
	sent := transferDoneSent(t, r.stdout)
	// What a cut loses is what was in flight: socket buffers, and the
	// few MiB a resume starts below the cut.
	if retries != 1 || sent > total2+16<<20 {
		t.Fatalf("%d retry events, %d bytes sent for %d: want 1 retry and about the tree's size", retries, sent, total2)
	}
	t.Logf("tree of %d bytes cut at half: sent %d (%.2fx)", total2, sent, float64(sent)/float64(total2))
}

// TestResendArrivedFolder: sending a folder that arrived already moves no
// file bytes; every file is reported already there, by send and serve.
func TestResendArrivedFolder(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src", "tree")
	writeMixedTree(t, src, rand.New(rand.NewPCG(3, 4)))
	share := filepath.Join(tmp, "share")
	srv := startServe(t, tmp, nil, "--dir", share, "--config", filepath.Join(tmp, "rcfg"), "--listen", "127.0.0.1:0")
	scfg := filepath.Join(tmp, "scfg")
	sendOK(t, tmp, "--quiet", "--config", scfg, srv.addr, src)

	r := sendOK(t, tmp, "--json", "--config", scfg, srv.addr, src)
	files, skipped := 0, 0
	for _, l := range lines(r.stdout) {
		var ev struct{ Event, Reason string }
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		switch ev.Event {
		case "file-skipped":
			skipped++
		case "file-saved":
			files++
		}
	}
	if sent := transferDoneSent(t, r.stdout); sent != 0 {
		t.Fatalf("re-send moved %d file bytes, want 0", sent)
	}
	// 153 files and the directories, which exist and are merged into.
	if skipped != 153 {
		t.Fatalf("%d files reported already there, want 153; %d saved:\n%s", skipped, files, r.stdout)
	}
	r = sendOK(t, tmp, "--config", scfg, srv.addr, src)
	if !strings.Contains(r.stdout, "nothing to send: 153 files already there") || strings.Contains(r.stdout, "B/s") {
		t.Errorf("send's summary does not say the files were there, or gives a rate of nothing:\n%s", r.stdout)
	}
	// Its lines per file (into a pipe) say so too: none says "sent".
	for _, l := range lines(r.stdout) {
		if strings.HasPrefix(l, "sent ") || strings.HasPrefix(l, "skipped ") && !strings.HasSuffix(l, ", already there") {
			t.Errorf("a file already there is reported as %q", l)
		}
	}
	srv.out.waitFor(t, "serve's line: nothing new", func(ls []string) bool {
		for _, l := range ls {
			if strings.Contains(l, " done: nothing new, 153 files already there") {
				return true
			}
		}
		return false
	})
}

// TestStopDuringTransferKeepsPartial: SIGTERM while a large file streams
// in (its sender stalled) makes serve exit 0 within 5 s, keeping the
// partial file; the next send, to the restarted agent, resumes it.
func TestStopDuringTransferKeepsPartial(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	big := filepath.Join(tmp, "src", "big.bin")
	writeFile(t, big, []byte(strings.Repeat("lanshare", 4<<20)), 0o644, time.Now()) // 32 MiB
	share, rcfg, scfg := filepath.Join(tmp, "share"), filepath.Join(tmp, "rcfg"), filepath.Join(tmp, "scfg")
	addr := freeAddr(t)
	args := []string{"--dir", share, "--config", rcfg, "--listen", addr}
	srv := startServe(t, tmp, nil, args...)
	release := make(chan struct{})
	defer close(release)
	proxy := pauseProxy(t, addr, 20<<20, release)
	sent := make(chan runResult, 1)
	go func() { sent <- runLanshare(t, tmp, nil, "send", "--retries", "0", "--config", scfg, proxy, big) }()
	waitFor(t, "the file to start arriving", func() bool { return dirBytes(share) >= 16<<20 })

	start := time.Now()
	srv.stopClean(t)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("serve took %v to stop, want at most 5s", took)
	}
	if r := result(t, sent); r.code != exitIncomplete {
		t.Fatalf("send cut by the receiver's stop: exit %d, want %d\n%s", r.code, exitIncomplete, r.stderr)
	}
	if n, bytes := partialFiles(t, share); n != 1 || bytes < 16<<20 {
		t.Fatalf("%d partial files (%d bytes) kept after the stop, want 1 of at least 16 MiB", n, bytes)
	}
	startServe(t, tmp, nil, args...)
	r := sendOK(t, tmp, "--json", "--config", scfg, addr, big)
	if s := transferDoneSent(t, r.stdout); s > 16<<20 {
		t.Fatalf("the send after the restart sent %d bytes, want the rest (under 16 MiB)", s)
	}
	if got := readTree(t, share); len(got["big.bin"].data) != 32<<20 {
		t.Fatal("big.bin did not arrive whole")
	}
	checkNoTemps(t, share)
}

// pauseProxy relays one TCP connection to target, stopping after `after`
// bytes from the client until release is closed.
func pauseProxy(t testing.TB, target string, after int64, release <-chan struct{}) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer s.Close()
		back := make(chan struct{})
		go func() {
			_, _ = io.Copy(c, s)
			// The receiver closed: the sender learns it at once, even
			// while its writes wait behind the pause, as it would on a
			// real network.
			_ = c.Close()
			close(back)
		}()
		_, _ = io.CopyN(s, c, after)
		select {
		case <-release:
		case <-stop: // the test ended early
			return
		}
		_, _ = io.Copy(s, c)
		_ = s.(*net.TCPConn).CloseWrite()
		<-back
	}()
	t.Cleanup(func() { close(stop); ln.Close(); <-done })
	return ln.Addr().String()
}

// result waits for a runLanshare started on another goroutine.
func result(t testing.TB, c <-chan runResult) runResult {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(failAfter + 5*time.Second):
		t.Fatal("lanshare did not finish")
		return runResult{}
	}
}

// waitFor polls cond until it holds, failing the test after failAfter.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", failAfter, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

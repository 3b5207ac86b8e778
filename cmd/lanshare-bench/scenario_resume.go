//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The resume scenario: "lanshare send" of the big file into a fresh
// agent, through a proxy that cuts the connection once 90% of the file's
// bytes went through (the send gives up: --retries 0), leaves the agent a
// partial file as a cut leaves it (written with direct I/O, not in the
// page cache). Then, timed: "lanshare send" of the same file again,
// straight to the agent, which resumes it. Against it, in the same rounds,
// a fresh "lanshare send" of a file holding only the missing 10%: the
// target is a resumed send's time at most 1.1 times that. The first new
// byte is when the partial file first grows past what the cut left
// (polled every millisecond; a block is 1 MiB), counted from the SYN of
// the resumed send's connection (a packet socket on loopback): the target
// is 50 ms. The agent's figures (CPU, RSS) include the cut send.
//
// The same rounds resume once more with the sender's digest cache
// emptied after the cut (as when the cut send was killed, or its entry
// aged out): the sender then hashes the file from its start alongside
// the stream, as every resume did before the cache. Its ratio, the
// resume with the cache over the one without, is the cache's gain.
//
// A 10 GiB file is resumed too, in up to 3 rounds (one round's ratio
// swung from 0.88 to 1.19 between runs), where the disk has room for it
// (25 GB free) and the run is not -quick.

// resumeCut is the fraction of the file that crosses before the cut.
const resumeCut = 0.9

// Scenario 9.
func (b *bench) resume(ctx context.Context) ([]row, error) {
	ds, err := b.dataset("big")
	if err != nil {
		return nil, err
	}
	rows, err := b.resumeRows(ctx, ds, b.cfg.runs)
	if err != nil || b.cfg.quick {
		return rows, err
	}
	free, err := freeSpace(b.work)
	if err != nil || free < 25e9 {
		b.note("9: the 10 GiB resume did not run: %s free in %s, it needs 25 GB (%v)", formatBytes(int64(free)), b.work, err)
		return rows, nil
	}
	t := time.Now()
	huge, err := makeBigFile(filepath.Join(b.work, "src", "huge.bin"), 10<<30)
	if err == nil {
		err = syncFS(b.work)
	}
	if err != nil {
		return rows, fmt.Errorf("making the 10 GiB file: %w", err)
	}
	b.logf("made huge: 10 GiB in %.1fs", time.Since(t).Seconds())
	defer os.Remove(huge.path)
	more, err := b.resumeRows(ctx, huge, min(b.cfg.runs, 3))
	return append(rows, more...), err
}

// resumeRows runs the resume of ds against a fresh send of its missing
// bytes for runs rounds.
func (b *bench) resumeRows(ctx context.Context, ds dataset, runs int) ([]row, error) {
	missingBytes := ds.bytes - int64(float64(ds.bytes)*resumeCut)
	missing, err := makeBigFile(strings.TrimSuffix(ds.path, ".bin")+"-missing.bin", missingBytes)
	if err == nil {
		err = syncFS(b.work)
	}
	if err != nil {
		return nil, fmt.Errorf("making the missing part: %w", err)
	}
	defer os.Remove(missing.path)
	var firstNew, firstCold, sentFrac []float64 // per round, in round order
	resumed := func(cold bool, first *[]float64) func(ctx context.Context, out string) (sample, error) {
		return func(ctx context.Context, out string) (sample, error) {
			x, at, resumedAt, err := b.runResume(ctx, ds, out, cold)
			if err == nil {
				*first = append(*first, at.Seconds()*1e3)
				sentFrac = append(sentFrac, 1-float64(resumedAt)/float64(ds.bytes))
			}
			return x, err
		}
	}
	s, err := b.runRounds(ctx, runs, []way{
		{name: "lanshare, resumed", run: resumed(false, &firstNew)},
		b.lanshareWay("lanshare, fresh send of the missing part", b.loopback, b.loopback, missing),
		{name: "lanshare, resumed, digest cache emptied", run: resumed(true, &firstCold)},
	})
	if err != nil {
		return nil, err
	}
	title := fmt.Sprintf("9 resume of a %s file cut at %.0f%%, loopback", formatBytes(ds.bytes), resumeCut*100)
	first := row{way: "first new byte after the SYN", m: firstByte, values: firstNew,
		target: &target{v: 50, atMost: true, unit: "ms"}, sndCPU: -1, rcvCPU: -1}
	coldFirst := row{way: "first new byte, cache emptied", m: firstByte, values: firstCold,
		target: &target{v: 50, atMost: true, unit: "ms"}, sndCPU: -1, rcvCPU: -1}
	b.note("9 (%s): the resumed sends moved %s of the file (what the cut left in flight is sent again)",
		formatBytes(ds.bytes), formatSpread(sentFrac, ""))
	return []row{
		subjectRow(title, "lanshare, resumed", wallTime, s[0], missingBytes),
		baselineRow("fresh send of the missing bytes", wallTime, s[1], s[0], missingBytes, &target{v: 1.1, atMost: true}),
		baselineRow("resumed, sender's digest cache emptied", wallTime, s[2], s[0], missingBytes, nil),
		first,
		coldFirst,
	}, nil
}

// runResume makes a partial file of ds in a fresh agent receiving into
// out, by a cut send, then times the send that resumes it. It returns
// that send's sample, the time from its connection's SYN to the first new
// byte in the partial file, and the offset it resumed from. With cold, the
// sender's digest cache is emptied before the resume.
func (b *bench) runResume(ctx context.Context, ds dataset, out string, cold bool) (_ sample, first time.Duration, resumedAt int64, err error) {
	serve, addr, err := b.startServe(ctx, b.loopback, out)
	if err != nil {
		return sample{}, 0, 0, err
	}
	defer serve.stop()
	part, err := b.cutSend(ctx, addr, out, ds)
	if err != nil {
		return sample{}, 0, 0, err
	}
	fi, err := os.Stat(part)
	if err != nil {
		return sample{}, 0, 0, err
	}
	resumedAt = fi.Size()
	if cold {
		if err := os.RemoveAll(filepath.Join(b.sendCfg, "digests")); err != nil {
			return sample{}, 0, 0, err
		}
	}

	_, port, _ := net.SplitHostPort(addr)
	portNum, _ := strconv.Atoi(port)
	sn, err := sniff(portNum)
	if err != nil {
		return sample{}, 0, 0, err
	}
	grew := make(chan time.Time, 1)
	stop := make(chan struct{})
	var poller sync.WaitGroup
	poller.Add(1)
	go func() {
		defer poller.Done()
		watchGrowth(part, resumedAt, grew, stop)
	}()
	send, err := b.runSend(ctx, b.loopback, addr, ds.path)
	close(stop)
	poller.Wait()
	syn, _, serr := sn.close()
	if err == nil {
		err = serr
	}
	if err == nil {
		err = serve.terminate()
	}
	if err == nil {
		err = checkOutput(filepath.Join(out, filepath.Base(ds.path)), ds)
	}
	if err != nil {
		return sample{}, 0, 0, err
	}
	select {
	case at := <-grew:
		first = at.Sub(syn)
	default:
		return sample{}, 0, 0, errors.New("the resumed send wrote no new byte into the partial file")
	}
	return sample{seconds: send.elapsed().Seconds(), snd: send.usage(), rcv: serve.usage()}, first, resumedAt, nil
}

// watchGrowth sends on grew the time the file at path is first seen
// larger than size, looking every millisecond until stop is closed.
func watchGrowth(path string, size int64, grew chan<- time.Time, stop <-chan struct{}) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > size {
			grew <- time.Now()
			return
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// cutSend sends ds to the agent at addr through a proxy that cuts the
// connection once resumeCut of ds's bytes went through, waits until the
// agent has recorded the partial file, and returns its path.
func (b *bench) cutSend(ctx context.Context, addr, out string, ds dataset) (string, error) {
	proxy, err := startCutProxy(addr, int64(float64(ds.bytes)*resumeCut))
	if err != nil {
		return "", err
	}
	defer proxy.close()
	send, err := startChild("lanshare send", b.loopback.command(ctx, b.lanshare,
		"send", "--quiet", "--retries", "0", "--config", b.sendCfg, proxy.addr(), ds.path))
	if err != nil {
		return "", err
	}
	err = send.wait()
	send.stop()
	if err == nil {
		return "", errors.New("the send through the cutting proxy succeeded")
	}
	// The agent records what it has once its side of the connection ends.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		recs, _ := filepath.Glob(filepath.Join(out, ".lanshare", "*.rec"))
		if len(recs) == 1 {
			if rec, err := os.ReadFile(recs[0]); err == nil && strings.Contains(string(rec), `"written"`) {
				return strings.TrimSuffix(recs[0], ".rec") + ".part", nil
			}
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return "", errors.New("the agent recorded no partial file after the cut")
}

// cutProxy forwards the connections it accepts to a target, and cuts each
// (closes both ends) once n bytes went towards the target.
type cutProxy struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startCutProxy(target string, n int64) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cutProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.forward(c, target, n)
			}()
		}
	}()
	return p, nil
}

func (p *cutProxy) forward(c net.Conn, target string, n int64) {
	defer c.Close()
	u, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer u.Close()
	var back sync.WaitGroup
	back.Add(1)
	go func() {
		defer back.Done()
		_, _ = io.Copy(c, u)
		c.Close()
	}()
	_, _ = io.CopyN(u, c, n)
	// Reset rather than close: the agent sees the connection fail, as
	// when a network drops it.
	if tc, ok := u.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	u.Close()
	c.Close()
	back.Wait()
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// close stops accepting and waits for the connections to end.
func (p *cutProxy) close() {
	p.ln.Close()
	p.wg.Wait()
}

// freeSpace returns the bytes available in the file system holding dir.
func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

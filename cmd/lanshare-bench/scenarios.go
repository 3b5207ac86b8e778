//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

// scenario is one numbered scenario of issue 6.
type scenario struct {
	title string
	run   func(b *bench, ctx context.Context) ([]row, error)
}

var scenarios = []scenario{
	{"one large file over loopback", (*bench).largeFile},
	{"many small files over loopback", (*bench).smallFiles},
	{"a mixed tree over loopback", (*bench).mixedTree},
	{"an emulated gigabit LAN", (*bench).gigabitLAN},
	{"small files across a 2 ms round trip", (*bench).longRTT},
	{"start-up to the first byte on the wire", (*bench).startUp},
	{"strangers holding the memory budget", (*bench).strangers},
	{"LocalSend next to the lanshare protocol", (*bench).localSend},
	{"resume of a file cut at 90%", (*bench).resume},
	{"a browser's upload to the drop page", (*bench).browserUpload},
	{"a share link's download next to a bare HTTPS server", (*bench).shareDownload},
}

// The emulated LAN of scenarios 4 and 5.
const (
	linkBits      = 1_000_000_000
	linkMBps      = linkBits / 8 / 1e6
	lanDelay      = 250 * time.Microsecond // each way: 0.5 ms round trip
	longRTTDelay  = time.Millisecond       // each way: 2 ms round trip
	startUpRounds = 2                      // scenario 6 runs this many times -runs rounds: each is short
)

// Scenario 1.
func (b *bench) largeFile(ctx context.Context) ([]row, error) {
	ds, err := b.dataset("big")
	if err != nil {
		return nil, err
	}
	lo := b.loopback
	s, err := b.runRounds(ctx, b.cfg.runs, []way{
		b.lanshareWay("lanshare", lo, lo, ds),
		b.baselineWay("bare TLS 1.3 copy", "tls", lo, lo, ds),
		b.baselineWay("bare TCP copy", "tcp", lo, lo, ds),
	})
	if err != nil {
		return nil, err
	}
	m := rate(ds.bytes)
	title := fmt.Sprintf("1 one %s file, loopback", formatBytes(ds.bytes))
	return []row{
		subjectRow(title, "lanshare", m, s[0], ds.bytes),
		baselineRow("bare TLS 1.3 copy", m, s[1], s[0], ds.bytes, &target{v: 0.9}),
		baselineRow("bare TCP copy (sendfile)", m, s[2], s[0], ds.bytes, nil),
	}, nil
}

// Scenario 2.
func (b *bench) smallFiles(ctx context.Context) ([]row, error) {
	return b.treeVsTar(ctx, "small", &target{v: 1.0}, func(ds dataset) (metric, string) {
		return filesRate(ds.files), fmt.Sprintf("2 %d files of %s, loopback", ds.files, formatBytes(b.sizes.smallSize))
	})
}

// Scenario 3.
func (b *bench) mixedTree(ctx context.Context) ([]row, error) {
	return b.treeVsTar(ctx, "mixed", &target{v: 0.8}, func(ds dataset) (metric, string) {
		return rate(ds.bytes), fmt.Sprintf("3 mixed tree, %d files, %s, loopback", ds.files, formatBytes(ds.bytes))
	})
}

// tarWays are the tar baselines for a tree: GNU tar on both ends of the
// socket, and, where socat is installed, the same through socat -b
// 262144 on both ends (tar c | socat | socat | tar x), the strongest
// simple pipe. Each receiver makes the tree durable with one syncfs. The
// target, if any, is the strongest's: socat's where there is socat.
func (b *bench) tarWays(snd, rcv place, ds dataset) (ways []way, labels []string) {
	ways = append(ways, b.baselineWay("tar | TCP | tar", "tar", snd, rcv, ds))
	labels = append(labels, "tar c | TCP | tar x")
	if _, err := exec.LookPath("socat"); err == nil {
		ways = append(ways, b.baselineWay("tar | socat | tar", "tar-socat", snd, rcv, ds))
		labels = append(labels, "tar c | socat -b 262144 | tar x")
	} else {
		b.note("no socat installed: the tar baseline is tar on the socket alone, without socat -b 262144")
	}
	return ways, labels
}

// tarRows are the rows of the baselines tarWays gave, measured in s
// against lanshare's samples, with tg on the last.
func tarRows(labels []string, m metric, s [][]sample, bytes int64, tg *target) []row {
	var rows []row
	for k, label := range labels {
		var t *target
		if k == len(labels)-1 {
			t = tg
		}
		rows = append(rows, baselineRow(label+"; syncfs", m, s[k+1], s[0], bytes, t))
	}
	return rows
}

// treeVsTar runs a tree over loopback, lanshare against tar streams (see
// tarWays), reported in the metric and under the title that show gives,
// with tg the target against the strongest.
func (b *bench) treeVsTar(ctx context.Context, name string, tg *target, show func(dataset) (metric, string)) ([]row, error) {
	ds, err := b.dataset(name)
	if err != nil {
		return nil, err
	}
	lo := b.loopback
	tars, labels := b.tarWays(lo, lo, ds)
	s, err := b.runRounds(ctx, b.cfg.runs, append([]way{b.lanshareWay("lanshare", lo, lo, ds)}, tars...))
	if err != nil {
		return nil, err
	}
	m, title := show(ds)
	return append([]row{subjectRow(title, "lanshare", m, s[0], ds.bytes)}, tarRows(labels, m, s, ds.bytes, tg)...), nil
}

// Scenario 4.
func (b *bench) gigabitLAN(ctx context.Context) (rows []row, err error) {
	big, err := b.dataset("big")
	if err != nil {
		return nil, err
	}
	small, err := b.dataset("small")
	if err != nil {
		return nil, err
	}
	snd, rcv, closeLab, err := b.link(4, lanDelay)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeLab()) }()
	s, err := b.runRounds(ctx, b.cfg.runs, []way{
		b.lanshareWay("lanshare, 1 file across the link", snd, rcv, big),
		b.baselineWay("bare TCP copy across the link", "tcp", snd, rcv, big),
	})
	if err != nil {
		return nil, err
	}
	m := rate(big.bytes)
	title := fmt.Sprintf("4 one %s file, 1 Gbit/s, RTT 0.5 ms", formatBytes(big.bytes))
	rows = append(rows,
		subjectRow(title, "lanshare", m, s[0], big.bytes),
		fixedRow("link rate (1 Gbit/s)", m, linkMBps, s[0], &target{v: 0.95}),
		baselineRow("bare TCP copy", m, s[1], s[0], big.bytes, nil))
	b.noteShaping(s[1], big.bytes)
	tars, labels := b.tarWays(snd, rcv, small)
	s, err = b.runRounds(ctx, b.cfg.runs, append([]way{b.lanshareWay("lanshare, small files across the link", snd, rcv, small)}, tars...))
	if err != nil {
		return rows, err
	}
	fm := filesRate(small.files)
	title = fmt.Sprintf("4 %d files of %s, 1 Gbit/s, RTT 0.5 ms", small.files, formatBytes(b.sizes.smallSize))
	rows = append(rows, subjectRow(title, "lanshare", fm, s[0], small.bytes))
	rows = append(rows, tarRows(labels, fm, s, small.bytes, &target{v: 1.0})...)
	return rows, nil
}

// Scenario 5.
func (b *bench) longRTT(ctx context.Context) (rows []row, err error) {
	small, err := b.dataset("small")
	if err != nil {
		return nil, err
	}
	snd, rcv, closeLab, err := b.link(5, longRTTDelay)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeLab()) }()
	s, err := b.runRounds(ctx, b.cfg.runs, []way{
		b.lanshareWay("lanshare, across the 2 ms link", snd, rcv, small),
		b.lanshareWay("lanshare, loopback", b.loopback, b.loopback, small),
	})
	if err != nil {
		return nil, err
	}
	title := fmt.Sprintf("5 %d files of %s, 1 Gbit/s, RTT 2 ms", small.files, formatBytes(b.sizes.smallSize))
	return []row{
		subjectRow(title, "lanshare", wallTime, s[0], small.bytes),
		baselineRow("lanshare on loopback (as 2)", wallTime, s[1], s[0], small.bytes, &target{v: 1.2, atMost: true}),
	}, nil
}

// link builds a lab of two hosts, sender and receiver, joined by a link
// shaped to linkBits per second each way with oneWay of delay each way,
// and measures its round trip. closeLab removes it.
func (b *bench) link(scenario int, oneWay time.Duration) (snd, rcv place, closeLab func() error, err error) {
	u := &labUser{}
	var lab *netlab.Lab
	var line *netlab.DelayLine
	err = u.do(func() {
		lab = netlab.New(u, 2)
		for _, h := range lab.Hosts() {
			h.LimitRate("eth0", linkBits)
		}
		line = lab.Delay(lab.Host(1), "eth0", oneWay)
	})
	if err == nil {
		err = b.calibrate(scenario, lab, line, oneWay)
	}
	if err != nil {
		return place{}, place{}, nil, errors.Join(fmt.Errorf("building the lab: %w", err), u.close())
	}
	b.logf("lab: %s (sender, %s) and %s (receiver, %s)", lab.Host(0).NS, lab.Host(0).Addr(), lab.Host(1).NS, lab.Host(1).Addr())
	snd = place{host: lab.Host(0), addr: lab.Host(0).Addr().String()}
	rcv = place{host: lab.Host(1), addr: lab.Host(1).Addr().String()}
	return snd, rcv, u.close, nil
}

// calibrate makes the round trip across the lab's link twice oneWay, as
// measured by TCP handshakes: the delay line is late by its own wake-ups
// (some tens of microseconds a crossing, more on a busy machine), so its
// delay is shortened by what the measures show on top, up to three times.
func (b *bench) calibrate(scenario int, lab *netlab.Lab, line *netlab.DelayLine, oneWay time.Duration) error {
	want := 2 * oneWay
	first, err := roundTrip(lab.Host(0), lab.Host(1))
	if err != nil {
		return err
	}
	rtt := first
	for range 3 {
		off := rtt - want
		if off.Abs() < want/20 {
			break
		}
		line.Set(min(line.Get()-off/2, oneWay))
		if rtt, err = roundTrip(lab.Host(0), lab.Host(1)); err != nil {
			return err
		}
	}
	b.note("link of scenario %d: %d Mbit/s each way; round trip (TCP handshake, median of %d) %.3f ms with %v of delay "+
		"each way, %.3f ms with %v (making up for the delay line's own lateness)", scenario, linkBits/1_000_000,
		handshakes, first.Seconds()*1e3, oneWay, rtt.Seconds()*1e3, line.Get().Round(time.Microsecond))
	return nil
}

// handshakes is how many TCP handshakes roundTrip times.
const handshakes = 51

// roundTrip returns the median time of TCP handshakes from one host to
// the other, with sockets of this process made in their namespaces.
func roundTrip(from, to *netlab.Host) (time.Duration, error) {
	var ln net.Listener
	err := to.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(to.Addr().String(), "0"))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("listening in %s: %w", to.NS, err)
	}
	defer closeAll(ln)()
	return from.Handshake(ln.Addr().String(), handshakes)
}

// closeAll accepts connections on ln and closes each at once, until the
// function it returns closes ln and waits for it.
func closeAll(ln net.Listener) (stop func()) {
	var accepter sync.WaitGroup
	accepter.Add(1)
	go func() {
		defer accepter.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return func() {
		ln.Close()
		accepter.Wait()
	}
}

// noteShaping records the rate a bare TCP copy reached across a lab's
// link while receiving, before its fsync: the check that the link is
// shaped as it should.
func (b *bench) noteShaping(s []sample, bytes int64) {
	var rates []float64
	for _, x := range s {
		rates = append(rates, float64(bytes)/1e6/x.network)
	}
	b.note("shaping check: a bare TCP stream carried %s MB/s of payload across the link = %.3f of %.0f MB/s "+
		"(at most 1448 payload bytes of a 1514-byte frame: %.3f)",
		formatSpread(rates, "MB/s"), median(rates)/linkMBps, float64(linkMBps), 1448.0/1514)
}

// Scenario 6.
func (b *bench) startUp(ctx context.Context) (rows []row, err error) {
	tiny, err := b.dataset("tiny")
	if err != nil {
		return nil, err
	}
	// One agent for the whole scenario, as a known peer's has been running
	// for a while. It listens on every address, as users run it, so that
	// what it announces is what it listens on.
	serve, addr, err := b.startServe(ctx, place{}, filepath.Join(b.work, "out", "startup"))
	if err != nil {
		return nil, err
	}
	defer serve.stop()
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("lanshare serve's address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("lanshare serve's address %q: %w", addr, err)
	}
	// A starting agent announces itself at 0, 1 and 3 s, and holds back
	// its answers to queries for a while (one sent within 250 ms of its
	// start finds it by id only after about 250 ms); a known peer has
	// been running for longer than that.
	select {
	case <-time.After(agentSettle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	hostPort := net.JoinHostPort("127.0.0.1", portStr)
	s, err := b.runRounds(ctx, b.cfg.runs*startUpRounds, []way{
		b.startUpWay("lanshare send HOST:PORT", hostPort, port, tiny),
		b.startUpWay("lanshare send ID", b.recvID, port, tiny),
		b.dialWay("Go program: dial, write a byte"),
	})
	if err != nil {
		return nil, err
	}
	if err := serve.terminate(); err != nil {
		return nil, err
	}
	for i, name := range []string{"HOST:PORT", "whole id"} {
		var syn, data []float64
		for _, x := range s[i] {
			syn = append(syn, x.syn*1e3)
			data = append(data, x.seconds*1e3)
		}
		b.note("start-up by %s: SYN at %s ms, first data at %s ms after starting send", name,
			formatSpread(syn, "ms"), formatSpread(data, "ms"))
	}
	rows = []row{
		subjectRow("6 start-up by HOST:PORT (ms to 1st byte)", "lanshare", firstByte, s[0], 0),
		baselineRow("minimal Go program", firstByte, s[2], s[0], 0, nil),
		subjectRow("6 start-up by whole id, mDNS (ms to 1st byte)", "lanshare", firstByte, s[1], 0),
		baselineRow("minimal Go program", firstByte, s[2], s[1], 0, nil),
	}
	// The receiver is the one agent of the scenario.
	rows[0].rcvRSS, rows[2].rcvRSS = serve.usage().maxRSS, serve.usage().maxRSS
	return rows, nil
}

const (
	// agentSettle is how long scenario 6 lets its agent run before the
	// first send: past its announcements at 0, 1 and 3 s.
	agentSettle = 3500 * time.Millisecond
	// answerGap is how long scenario 6 leaves between lookups by id: more
	// than the 250 ms an agent leaves between its answers.
	answerGap = 300 * time.Millisecond
)

// startUpWay runs send with one small file to the agent listening on
// port, named by target, and times it to its first byte on the wire.
func (b *bench) startUpWay(name, target string, port int, ds dataset) way {
	return way{name: name, run: func(ctx context.Context, _ string) (sample, error) {
		if target == b.recvID {
			// An agent answers queries at most every 250 ms (it holds
			// back the others until then), and a user's send by id
			// rarely follows another within that time: each lookup
			// starts with the agent free to answer.
			select {
			case <-time.After(time.Until(b.lastLookup.Add(answerGap))):
			case <-ctx.Done():
				return sample{}, ctx.Err()
			}
			defer func() { b.lastLookup = time.Now() }()
		}
		sn, err := sniff(port)
		if err != nil {
			return sample{}, err
		}
		send, err := b.runSend(ctx, b.loopback, target, ds.path)
		syn, data, serr := sn.close()
		if err == nil {
			err = serr
		}
		if err != nil {
			return sample{}, err
		}
		return sample{seconds: data.Sub(send.start).Seconds(), syn: syn.Sub(send.start).Seconds(), snd: send.usage()}, nil
	}}
}

// dialWay runs a helper that dials a listener in the benchmark's namespace
// and writes one byte, and times it to that byte on the wire.
func (b *bench) dialWay(name string) way {
	return way{name: name, run: func(ctx context.Context, _ string) (sample, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return sample{}, err
		}
		defer closeAll(ln)()
		port := ln.Addr().(*net.TCPAddr).Port
		sn, err := sniff(port)
		if err != nil {
			return sample{}, err
		}
		c, err := startChild("dial helper", b.loopback.command(ctx, b.self, "-to", "127.0.0.1:"+strconv.Itoa(port)), envHelper+"=dial")
		if err != nil {
			_, _, _ = sn.close()
			return sample{}, err
		}
		err = c.wait()
		syn, data, serr := sn.close()
		if err == nil {
			err = serr
		}
		return sample{seconds: data.Sub(c.start).Seconds(), syn: syn.Sub(c.start).Seconds(), snd: c.usage()}, err
	}}
}

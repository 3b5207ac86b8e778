//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// Scenario 7: strangers holding the memory budget. A fresh "lanshare
// serve" (default settings) listening on 127.0.0.1 gets, at once,
// strangerConns TLS connections from strangerAddrs loopback source
// addresses (127.0.0.2 and up: each is a remote address of its own to the
// agent), each with a client certificate of its own kind (a stranger's),
// a hello and the same largest offer, built once. Each connection then
// reads the answer and holds on without sending a byte of data, until
// the agent drops it. The agent's peak RSS is the figure, against
// memTarget.
const (
	strangerAddrs        = 8
	strangerConnsPerAddr = 9 // the agent takes 8 per address: one over
	strangerConns        = strangerAddrs * strangerConnsPerAddr
	memTarget            = 512 << 20
	// strangerHold bounds the whole attack: connections the agent has not
	// dropped by then are counted as still held.
	strangerHold = 5 * time.Minute
	// rssEvery is how often the agent's VmRSS is sampled.
	rssEvery = 50 * time.Millisecond
)

// outcome is what became of one stranger's connection.
type outcome int

const (
	notAdmitted  outcome = iota // closed before or in the TLS handshake (over a cap)
	heldOffer                   // answered OK: the offer was taken
	refusedBusy                 // answered CodeBusy
	refusedOther                // answered with another code
	droppedEarly                // closed after the handshake without an answer (evicted, deadline)
	outcomes
)

func (o outcome) String() string {
	return [...]string{"not admitted", "held", "refused busy", "refused otherwise", "dropped before the answer"}[o]
}

// strangerResult is what one connection saw, as the strangers helper
// prints it; times are seconds from the attack's start.
type strangerResult struct {
	Outcome outcome    `json:"outcome"`
	Code    proto.Code `json:"code"`
	Answer  float64    `json:"answer_s"` // held, refused
	End     float64    `json:"end_s"`    // the agent's close
	StillUp bool       `json:"still_up"` // not dropped within strangerHold
	Err     string     `json:"err,omitempty"`
}

// attackLine is the strangers helper's first line, printed once its offer
// is built and its connections about to start.
const attackLine = "attacking"

// runStrangers is the strangers helper: it builds the offer, attacks the
// agent at to, and prints the results as one JSON line last. It runs as
// a process of its own so that its memory (the offer, the TLS buffers) is
// not counted in the agent's: a child forked by a large process inherits
// that process's peak RSS into its rusage Maxrss.
func runStrangers(to string, entries, payload int) error {
	offer, err := hostileOffer(entries, payload)
	if err != nil {
		return err
	}
	tlsCfg, err := tlsConfig()
	if err != nil {
		return err
	}
	tlsCfg.InsecureSkipVerify = true // a stranger takes any key
	fmt.Println(attackLine)
	res := attack(context.Background(), to, offer, tlsCfg, time.Now())
	return json.NewEncoder(os.Stdout).Encode(res)
}

// hostileOffer returns the bytes a stranger writes: a hello and one offer
// of entries files of 1 byte, whose frame payload is payload bytes (at
// most proto.MaxFrameLen), with distinct and safe paths of equal length.
func hostileOffer(entries, payload int) ([]byte, error) {
	const entryHead = 1 + 4 + 8 + 8 + 2 // kind, mode, size, mtime, path length
	if entries < 1 {
		return nil, fmt.Errorf("offer of %d entries", entries)
	}
	pathLen := (payload-4)/entries - entryHead
	if pathLen < 8 {
		return nil, fmt.Errorf("offer of %d entries in %d bytes: paths would be too short", entries, payload)
	}
	o := proto.Offer{Entries: make([]proto.Entry, entries)}
	mtime := time.Unix(1_700_000_000, 0)
	for i := range o.Entries {
		o.Entries[i] = proto.Entry{Path: fillerPath(i, pathLen), Kind: proto.KindFile, Size: 1, Mode: 0o644, MTime: mtime}
	}
	var buf bytes.Buffer
	if err := proto.WriteHello(&buf, proto.NewHello("stranger")); err != nil {
		return nil, err
	}
	if err := proto.WriteOffer(&buf, o); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fillerPath is entry i's path of exactly n bytes (n at least 8): a folder
// s000000 and components of at most 200 letters.
func fillerPath(i, n int) string {
	var sb strings.Builder
	sb.Grow(n)
	fmt.Fprintf(&sb, "s%06d", i)
	for sb.Len() < n {
		left := n - sb.Len() - 1 // after the slash
		if left < 1 {
			sb.WriteByte('x')
			continue
		}
		sb.WriteByte('/')
		sb.WriteString(strings.Repeat("x", min(left, 200)))
	}
	return sb.String()
}

// Scenario 7.
func (b *bench) strangers(ctx context.Context) ([]row, error) {
	var rows []row
	for _, shape := range b.sizes.offers {
		var rounds []strangerRound
		for r := range b.cfg.runs {
			sr, err := b.strangerRound(ctx, shape, r)
			if err != nil {
				return rows, fmt.Errorf("%s, round %d: %w", shape.what, r+1, err)
			}
			b.logf("  %s, round %d/%d: peak RSS %s MiB (VmHWM %s, Maxrss %s); held %d, busy %d, not admitted %d, "+
				"dropped early %d, other %d; all dropped after %.1fs", shape.what, r+1, b.cfg.runs, formatMiB(sr.peak()),
				formatMiB(sr.hwm), formatMiB(sr.maxRSS), sr.count[heldOffer], sr.count[refusedBusy], sr.count[notAdmitted],
				sr.count[droppedEarly], sr.count[refusedOther], sr.allDropped)
			rounds = append(rounds, sr)
		}
		rows = append(rows, b.strangerRows(shape, rounds)...)
	}
	return rows, nil
}

// strangerRound is what one round of scenario 7 measured.
type strangerRound struct {
	maxRSS, hwm int64   // rusage Maxrss and /proc VmHWM, bytes
	peakAt      float64 // seconds into the attack that VmRSS peaked
	count       [outcomes]int
	codes       map[proto.Code]int // of refusedOther
	lastAnswer  float64            // of the held offers: the latest answer
	lastHeldEnd float64            // of the held offers: the latest close
	allDropped  float64            // the latest close of any connection
	stillUp     int
	gc          gcStats
	errs        []string // a few connection errors, for the notes
}

func (s strangerRound) peak() int64 { return max(s.maxRSS, s.hwm) }

// strangerRound starts an agent, runs the strangers helper on it until
// every connection is dropped, stops the agent and returns the measures.
func (b *bench) strangerRound(ctx context.Context, shape offerShape, r int) (strangerRound, error) {
	var sr strangerRound
	out := filepath.Join(b.work, "out", "strangers"+strconv.Itoa(r))
	var gcMu sync.Mutex
	var gc gcStats
	watch := func(line string) {
		gcMu.Lock()
		defer gcMu.Unlock()
		gc.add(line)
	}
	serve, addr, err := b.startServeWatching(ctx, b.loopback, out, watch, "GODEBUG=gctrace=1")
	if err != nil {
		return sr, err
	}
	defer serve.stop()
	helper, err := startChild("strangers helper", b.loopback.command(ctx, b.self, "-to", addr,
		"-entries", strconv.Itoa(shape.entries), "-payload", strconv.Itoa(shape.payload)), envHelper+"=strangers")
	if err != nil {
		return sr, err
	}
	defer helper.stop()
	if line, err := helper.firstLine(ctx, time.Minute); err != nil {
		return sr, err
	} else if line != attackLine {
		return sr, fmt.Errorf("strangers helper printed %q first, want %q", line, attackLine)
	}
	start := time.Now()
	pid := serve.cmd.Process.Pid
	samplerDone, stopSampler := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(rssEvery)
		defer tick.Stop()
		for {
			if rss, ok := procStatus(pid, "VmRSS"); ok && rss > sr.hwm {
				sr.hwm, sr.peakAt = rss, time.Since(start).Seconds()
			}
			select {
			case <-tick.C:
			case <-stopSampler:
				return
			}
		}
	}()
	err = helper.wait()
	close(stopSampler)
	<-samplerDone
	if err != nil {
		return sr, err
	}
	var results []strangerResult
	if err := json.Unmarshal([]byte(helper.out.lastLine()), &results); err != nil {
		return sr, fmt.Errorf("strangers helper's result %q: %w", helper.out.lastLine(), err)
	}
	if hwm, ok := procStatus(pid, "VmHWM"); ok && hwm > sr.hwm {
		sr.hwm = hwm
	}
	if err := serve.terminate(); err != nil {
		return sr, err
	}
	sr.maxRSS = serve.usage().maxRSS
	gcMu.Lock()
	sr.gc = gc
	gcMu.Unlock()
	sr.codes = map[proto.Code]int{}
	for _, res := range results {
		sr.count[res.Outcome]++
		switch res.Outcome {
		case refusedOther:
			sr.codes[res.Code]++
		case heldOffer:
			sr.lastAnswer = max(sr.lastAnswer, res.Answer)
			sr.lastHeldEnd = max(sr.lastHeldEnd, res.End)
		}
		if res.StillUp {
			sr.stillUp++
		}
		sr.allDropped = max(sr.allDropped, res.End)
		if res.Err != "" && len(sr.errs) < 3 {
			sr.errs = append(sr.errs, res.Outcome.String()+": "+res.Err)
		}
	}
	return sr, os.RemoveAll(out)
}

// attack opens strangerConns connections to addr at once, from
// strangerAddrs source addresses in turn, and returns what each saw.
func attack(ctx context.Context, addr string, offer []byte, tlsCfg *tls.Config, start time.Time) []strangerResult {
	ctx, cancel := context.WithTimeout(ctx, strangerHold)
	defer cancel()
	results := make([]strangerResult, strangerConns)
	var wg sync.WaitGroup
	for i := range strangerConns {
		src := net.IPv4(127, 0, 0, byte(2+i%strangerAddrs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = stranger(ctx, addr, src, offer, tlsCfg, start)
			results[i].End = time.Since(start).Seconds()
		}()
	}
	wg.Wait()
	return results
}

// stranger is one connection of the attack: from src, a TLS handshake, the
// offer, the answer, then nothing until the agent closes the connection
// (or ctx ends: still up).
func stranger(ctx context.Context, addr string, src net.IP, offer []byte, tlsCfg *tls.Config, start time.Time) strangerResult {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return strangerResult{Outcome: notAdmitted, Err: fmt.Sprintf("dialing from %v: %v", src, err)}
	}
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	tc := tls.Client(raw, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return strangerResult{Outcome: notAdmitted}
	}
	// The agent reads the rest of a refused offer before it closes: the
	// answer comes after the whole write.
	_, werr := tc.Write(offer)
	br := bufio.NewReader(tc)
	_, err = proto.ReadHello(br)
	var a proto.Answer
	if err == nil {
		a, err = proto.ReadAnswer(br)
	}
	if err != nil {
		if ctx.Err() != nil {
			return strangerResult{Outcome: droppedEarly, StillUp: true}
		}
		return strangerResult{Outcome: droppedEarly, Err: errors.Join(werr, err).Error()}
	}
	res := strangerResult{Outcome: heldOffer, Code: a.Code, Answer: time.Since(start).Seconds()}
	switch a.Code {
	case proto.CodeOK:
	case proto.CodeBusy:
		res.Outcome = refusedBusy
	default:
		res.Outcome = refusedOther
	}
	// Hold on: read until the agent closes.
	_, _ = io.Copy(io.Discard, br)
	res.StillUp = ctx.Err() != nil
	return res
}

// procStatus returns a "kB" field of /proc/PID/status in bytes.
func procStatus(pid int, field string) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}

// gcStats is what the agent's gctrace lines show: the largest heap at a
// collection's start, the largest heap live after one, the largest goal.
type gcStats struct {
	n                 int
	atStart, live, gl int64 // gctrace's MB, which are MiB
}

var gcLine = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

func (g *gcStats) add(line string) {
	m := gcLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	v := make([]int64, 4)
	for i := range v {
		v[i], _ = strconv.ParseInt(m[i+1], 10, 64)
	}
	g.n++
	g.atStart = max(g.atStart, v[0], v[1])
	g.live = max(g.live, v[2])
	g.gl = max(g.gl, v[3])
}

// strangerRows makes the rows of one shape of scenario 7, and its notes.
func (b *bench) strangerRows(shape offerShape, rounds []strangerRound) []row {
	var peak, held, busy, other, early, notIn, ends []float64
	var maxRSS int64
	for _, s := range rounds {
		peak = append(peak, float64(s.peak())/(1<<20))
		maxRSS = max(maxRSS, s.peak())
		held = append(held, float64(s.count[heldOffer]))
		busy = append(busy, float64(s.count[refusedBusy]))
		other = append(other, float64(s.count[refusedOther]))
		early = append(early, float64(s.count[droppedEarly]))
		notIn = append(notIn, float64(s.count[notAdmitted]))
		ends = append(ends, s.allDropped)
	}
	mib := metric{unit: "MiB", time: true}
	conns := metric{unit: "conns"}
	secs := metric{unit: "s", time: true}
	title := fmt.Sprintf("7 %d strangers from %d addresses, %s: %s entries, %s", strangerConns, strangerAddrs, shape.what,
		formatCount(shape.entries), offerSize(shape.payload))
	rows := []row{
		{scenario: title, way: "lanshare serve, peak RSS", m: mib, values: peak, rcvRSS: maxRSS, sndCPU: -1,
			target: &target{v: memTarget >> 20, atMost: true, unit: "MiB"}},
		{way: "offers held (answered OK)", m: conns, values: held, sndCPU: -1},
		{way: "offers refused busy (memory budget)", m: conns, values: busy, sndCPU: -1},
		{way: "offers refused otherwise", m: conns, values: other, sndCPU: -1},
		{way: "dropped before an answer", m: conns, values: early, sndCPU: -1},
		{way: "not admitted (over 8 per address)", m: conns, values: notIn, sndCPU: -1},
		{way: "until every connection was dropped", m: secs, values: ends, sndCPU: -1},
	}
	for i, s := range rounds {
		held := "no offer held"
		if s.count[heldOffer] > 0 {
			held = fmt.Sprintf("held offers answered by %.1fs, dropped by %.1fs", s.lastAnswer, s.lastHeldEnd)
		}
		b.note("7 %s, round %d: peak RSS %s MiB (VmHWM %s, rusage Maxrss %s), VmRSS at its highest %.1fs into the attack; "+
			"Go heap (gctrace, %d collections): at most %d MiB when a collection started, %d MiB live after one, goal at most %d MiB; "+
			"%s; %d connections still up after %v",
			shape.what, i+1, formatMiB(s.peak()), formatMiB(s.hwm), formatMiB(s.maxRSS), s.peakAt, s.gc.n, s.gc.atStart, s.gc.live,
			s.gc.gl, held, s.stillUp, strangerHold)
		for code, n := range s.codes {
			b.note("7 %s, round %d: %d offers refused with code %v", shape.what, i+1, n, code)
		}
		for _, e := range s.errs {
			b.note("7 %s, round %d: %s", shape.what, i+1, e)
		}
	}
	return rows
}

// offerSize is an offer's payload size as the title shows it.
func offerSize(n int) string {
	if n%(1<<20) == 0 {
		return formatBytes(int64(n))
	}
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}

// formatCount writes n with thousands separated by commas.
func formatCount(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

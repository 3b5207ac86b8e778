//go:build linux

// Command lanshare-bench measures lanshare as users run it, the real
// binaries ("lanshare serve" receiving, "lanshare send" sending, TLS 1.3
// with certificates on both sides), against bare baselines measured in the
// same run, and prints a table: per scenario and way, the median figure of
// the runs with their minimum and maximum, lanshare's ratio to each
// baseline (taken run by run, then the median), the target of issue 6,
// the peak resident memory of the sending and receiving processes, and
// their CPU time (user and system) per GB moved.
//
// From the repository root, as root (or as a user allowed to make user
// namespaces), with ip and tc (iproute2), unshare (util-linux) and GNU tar
// installed and the module's dependencies in the module cache (go mod
// download):
//
//	go run ./cmd/lanshare-bench                # every scenario, 3 rounds: a few minutes on 2 cores
//	go run ./cmd/lanshare-bench -quick         # small sizes: well under a minute
//	go run ./cmd/lanshare-bench -only 1,4 -runs 5
//
// The scenarios (sizes in parentheses are -quick's):
//
//  1. One 1 GiB file (64 MiB) over loopback, against a bare Go TLS 1.3
//     copy into a file and a bare TCP copy (sendfile, splice).
//  2. 10,000 files of 4 KiB (1,000) in nested folders over loopback,
//     against the strongest simple pipes: GNU tar on both ends of the
//     socket, and tar c | socat -b 262144 | tar x (where socat is
//     installed), each receiver making the tree durable with one syncfs.
//  3. A mixed tree of 2,000 files (200) from 1 KiB to 64 MiB (4 MiB),
//     about 830 MB (50 MB), over loopback, against the same tar stream.
//  4. Two hosts joined by a 1 Gbit/s link with a 0.5 ms round trip: the
//     file of scenario 1 and the tree of scenario 2 across it, against the
//     link rate (125 MB/s; TCP over 1500-byte frames carries at most 0.956
//     of it) and a bare TCP copy (or the tar pipes) across the same link.
//  5. The tree of scenario 2 across the same link with a 2 ms round trip,
//     against lanshare's own time for it on loopback, measured in the
//     same rounds.
//  6. Start-up: from starting "lanshare send" with one small file to the
//     first byte it puts on the wire to an agent that has been running for
//     a few seconds, named by HOST:PORT and by whole id (found by mDNS),
//     against a minimal Go program that dials and writes one byte.
//  7. Strangers holding the memory budget: a fresh agent with default
//     settings gets, at once, 72 TLS connections from 8 loopback source
//     addresses (127.0.0.2 to 127.0.0.9: 8 per address fill the 64 slots,
//     the 9th of each is over the per-address cap), each sending the same
//     offer and then holding on (no data) until the agent drops it. The
//     offers: the largest there is (100,000 entries in a 64 MiB frame),
//     and 100,000 and 20,000 entries of 9-byte paths (-quick: 10,000
//     entries in 8 MiB). The figure is the agent's peak RSS against 512
//     MiB, with what became of the connections (answered and held,
//     refused busy, dropped before an answer, not admitted) and the time
//     until the agent had dropped them all; the notes give its Go heap
//     from GODEBUG=gctrace=1. Each round lasts until the agent has
//     dropped every connection (about 35 s: the handshake deadline, then
//     the minimum rate's window), so this scenario takes about 5 minutes
//     (-quick: under 2).
//  8. LocalSend's protocol next to the lanshare protocol
//     (scenario_localsend.go).
//  9. Resume of a file cut at 90% (scenario_resume.go).
//  10. The file of scenario 1 uploaded from a real browser (headless
//     chromium, driven with chromedp, picking it with the drop page's
//     file input) to the drop page of "lanshare serve", against "lanshare
//     send" of the same file over the lanshare protocol.
//  11. The same file downloaded through a share link ("lanshare share"),
//     against a bare Go HTTPS file server, by the same clients: a Go
//     client and chromium's download manager (scenario_web.go).
//
// Scenarios 8 to 11 run only when -only names them; 10 and 11 need
// chromium (apt-get install chromium).
//
// How it measures. Each way runs as child processes, so that their
// rusage gives the peak RSS (Maxrss) and CPU time: lanshare's sender is
// the send process, its receiver a serve started afresh for each run and
// stopped with SIGTERM after it (in scenario 6, one serve for the whole
// scenario); in scenario 7, the agent's VmRSS is also sampled every 50 ms
// and its VmHWM read before it is stopped, and the attacker is this
// program in a helper role, so that its memory is not the agent's (a
// child's Maxrss starts from that of the process that forked it); a
// baseline's sender and receiver are this
// program started again in a helper role (with tar as their child). A
// run's time is from starting the sender to its exit, which both lanshare
// and the baselines reach only once the receiver has every file durable:
// lanshare's receiver makes each file durable before naming it (small
// files a group at a time, with one syncfs) and syncs the folders it
// touched before its receipt, and every baseline receiver makes what it wrote durable
// before its acknowledgment (a file: fsync of it and its folder; a tree:
// one syncfs of its file system, cheaper than a fsync per file). The ways alternate within a
// round, and the order turns each round (A B, B A, ...). Every run writes
// into a folder of its own, and the outputs are kept until the scenario's
// last round (but for files of 1 MiB or more, deleted after their round),
// then deleted and the file system synced; the next scenario's rounds
// start at least 32 s after that: ext4 without a journal scans past the
// inodes freed in the last 30 s for every file it creates, which made
// each round's files slower to create than the last's. Sources are made
// once, synced, and read from the page cache.
//
// Start-up (scenario 6) is timed with a packet socket on loopback, which
// takes the kernel's timestamp of the first TCP segment carrying data
// (the TLS ClientHello) towards the agent's port: the time from starting
// the process to its first byte on the wire, including the process's own
// start, the lookup (by id) and the TCP handshake. Sends by id are at
// least 300 ms apart: an agent answers queries at most every 250 ms.
//
// Isolation. It runs entirely in network namespaces it makes: it first
// starts itself again inside a new one (netlab.MainIsolated) with only
// loopback, where scenarios 1, 2, 3 and 6 run; scenarios 4 and 5 build a
// lab of two more (netlab.New), whose link is shaped by tc (htb, on both
// hosts) and delayed by netlab's delay line (netem is not built into
// every kernel, this machine's included). The delay line is itself late
// by some tens of microseconds a crossing, so its delay is set from
// measured TCP handshakes until the round trip is the one asked (within
// 5%); the notes under the table give the measures. Nothing is sent on
// the machine's own network. Ctrl-C stops the children, removes the
// namespaces and the work directory, and prints what was measured.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

func main() {
	if role := os.Getenv(envHelper); role != "" {
		os.Exit(runHelper(role, os.Args[1:]))
	}
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lanshare-bench:", err)
		os.Exit(2)
	}
	os.Exit(netlab.MainIsolated(func() int { return run(cfg) }))
}

// config is what the flags ask for.
type config struct {
	only  []int // scenarios to run, in order
	runs  int
	quick bool
	dir   string // parent of the work directory
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("lanshare-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "1,2,3,4,5,6,7", "scenarios to run, comma-separated")
	runs := fs.Int("runs", 3, "rounds per scenario (scenario 6 runs twice as many)")
	quick := fs.Bool("quick", false, "small sizes, for a check that takes well under a minute")
	dir := fs.String("dir", os.TempDir(), "where to make the work directory (sources and outputs)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: lanshare-bench [-only 1,2,...] [-runs N] [-quick] [-dir DIR]\n\n"+
			"Runs lanshare's benchmark scenarios against their baselines, inside network\n"+
			"namespaces of its own, and prints a table. Needs root or user namespaces.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := config{runs: *runs, quick: *quick, dir: *dir}
	if cfg.runs < 1 {
		return config{}, fmt.Errorf("-runs %d: want at least 1", cfg.runs)
	}
	for _, f := range strings.Split(*only, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > len(scenarios) {
			return config{}, fmt.Errorf("-only %q: want scenario numbers from 1 to %d", *only, len(scenarios))
		}
		if !slices.Contains(cfg.only, n) {
			cfg.only = append(cfg.only, n)
		}
	}
	slices.Sort(cfg.only)
	return cfg, nil
}

// run runs the benchmark inside the namespace MainIsolated made, and
// returns the exit code.
func run(cfg config) int {
	if err := netlab.IsolationError(); err != nil {
		fmt.Fprintf(os.Stderr, "lanshare-bench: refusing to run outside a network namespace of its own: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	start := time.Now()
	b, err := newBench(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "lanshare-bench:", err)
		return 1
	}
	defer b.close()
	var rows []row
	for _, n := range cfg.only {
		sc := scenarios[n-1]
		b.logf("scenario %d: %s", n, sc.title)
		got, err := sc.run(b, ctx)
		rows = append(rows, got...)
		if err != nil {
			b.logf("scenario %d failed: %v", n, err)
			printReport(os.Stdout, b, rows, time.Since(start))
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "lanshare-bench: interrupted")
				return 130
			}
			fmt.Fprintf(os.Stderr, "lanshare-bench: scenario %d: %v\n", n, err)
			return 1
		}
	}
	printReport(os.Stdout, b, rows, time.Since(start))
	return 0
}

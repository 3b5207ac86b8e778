//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// Scenario 8: what an agent receives over LocalSend's protocol (issue
// 15), next to the same data over the lanshare protocol in the same
// rounds. The receiver is "lanshare serve" (its LocalSend HTTPS server on
// a free port), the sender "lanshare send --localsend 127.0.0.1:PORT", as
// a user would send to another agent's LocalSend side; both run in the
// benchmark's namespace, over loopback, as scenarios 1 and 2 do. The ratio
// is LocalSend's figure over the lanshare protocol's, against issue 15's
// target of 0.8 for the large file.
func (b *bench) localSend(ctx context.Context) ([]row, error) {
	big, err := b.dataset("big")
	if err != nil {
		return nil, err
	}
	small, err := b.dataset("small")
	if err != nil {
		return nil, err
	}
	if err := b.warmLocalSend(ctx); err != nil {
		return nil, err
	}
	lo := b.loopback
	var rows []row
	s, err := b.runRounds(ctx, b.cfg.runs, []way{
		b.localSendWay("LocalSend, 1 file", lo, lo, big),
		b.lanshareWay("lanshare protocol, 1 file", lo, lo, big),
	})
	if err != nil {
		return nil, err
	}
	m := rate(big.bytes)
	rows = append(rows,
		subjectRow(fmt.Sprintf("8 one %s file over LocalSend, loopback", formatBytes(big.bytes)), "lanshare serve ← send --localsend", m, s[0], big.bytes),
		baselineRow("lanshare protocol", m, s[1], s[0], big.bytes, &target{v: 0.8}))
	// What the receiver itself spends: from the offer's arrival, after
	// the sender's SHA-256 pass that LocalSend puts before it, against
	// the whole lanshare send (which has no such pass).
	recv := receivedSamples(s[0])
	rows = append(rows,
		subjectRow(fmt.Sprintf("8 one %s file over LocalSend, receive path", formatBytes(big.bytes)), "serve's own time (its log)", m, recv, big.bytes),
		baselineRow("lanshare protocol, whole send", m, s[1], recv, big.bytes, &target{v: 0.8}))
	s, err = b.runRounds(ctx, b.cfg.runs, []way{
		b.localSendWay("LocalSend, small files", lo, lo, small),
		b.lanshareWay("lanshare protocol, small files", lo, lo, small),
	})
	if err != nil {
		return rows, err
	}
	fm := filesRate(small.files)
	rows = append(rows,
		subjectRow(fmt.Sprintf("8 %d files of %s over LocalSend, loopback", small.files, formatBytes(b.sizes.smallSize)), "lanshare serve ← send --localsend", fm, s[0], small.bytes),
		baselineRow("lanshare protocol", fm, s[1], s[0], small.bytes, nil))
	b.note("scenario 8: RATIO is LocalSend's figure over the lanshare protocol's (lanshare serve receiving, lanshare send sending, in both); the receive-path rows take the receiver's own time from its log line, which starts when the offer arrives, after the sender's SHA-256 pass over the file")
	return rows, nil
}

// warmLocalSend sends a small file over LocalSend once, untimed: the
// sender's LocalSend identity (an RSA key) is made, and the receiver's
// certificate pinned, before the first timed run, as for a user's
// second send.
func (b *bench) warmLocalSend(ctx context.Context) error {
	tiny, err := b.dataset("tiny")
	if err != nil {
		return err
	}
	_, err = b.runLocalSend(ctx, b.loopback, b.loopback, filepath.Join(b.work, "out", "localsend-warm"), tiny.path)
	if err != nil {
		return fmt.Errorf("warming up LocalSend: %w", err)
	}
	return nil
}

// localSendWay sends ds from snd to a fresh agent at rcv over LocalSend.
func (b *bench) localSendWay(name string, snd, rcv place, ds dataset) way {
	return way{name: name, run: func(ctx context.Context, out string) (sample, error) {
		s, err := b.runLocalSend(ctx, snd, rcv, out, ds.path)
		if err == nil {
			err = checkOutput(filepath.Join(out, filepath.Base(ds.path)), ds)
		}
		return s, err
	}}
}

// runLocalSend starts "lanshare serve" at rcv receiving into out, runs
// "lanshare send --localsend" at snd with paths to its LocalSend server,
// stops the agent with SIGTERM, and returns the measures.
func (b *bench) runLocalSend(ctx context.Context, snd, rcv place, out string, paths ...string) (sample, error) {
	serve, addr, err := b.startLocalSendServe(ctx, rcv, out)
	if err != nil {
		return sample{}, err
	}
	defer serve.stop()
	args := append([]string{"send", "--quiet", "--localsend", "--config", b.sendCfg, addr}, paths...)
	send, err := startChild("lanshare send --localsend", snd.command(ctx, b.lanshare, args...))
	if err != nil {
		return sample{}, err
	}
	defer send.stop()
	if err := send.wait(); err != nil {
		return sample{}, err
	}
	if err := serve.terminate(); err != nil {
		return sample{}, err
	}
	recv, err := receivedSeconds(serve.out.String())
	if err != nil {
		return sample{}, err
	}
	return sample{seconds: send.elapsed().Seconds(), snd: send.usage(), rcv: serve.usage(), received: recv}, nil
}

// receivedSamples is samples with the receiver's own time as their time.
func receivedSamples(samples []sample) []sample {
	out := make([]sample, len(samples))
	for i, x := range samples {
		out[i] = x
		out[i].seconds = x.received
	}
	return out
}

// receivedSeconds reads the receiver's time from serve's transfer line,
// "transfer from … done: received 1 file, 1.1 GB in 3.2 s, …" (or "in
// 850 ms").
func receivedSeconds(log string) (float64, error) {
	for _, line := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(line, " done: received ")
		if !ok {
			continue
		}
		_, rest, ok = strings.Cut(rest, " in ")
		if !ok {
			continue
		}
		var v float64
		var unit string
		if _, err := fmt.Sscanf(rest, "%g %s", &v, &unit); err == nil {
			switch strings.TrimRight(unit, ",") {
			case "s":
				return v, nil
			case "ms":
				return v / 1000, nil
			}
		}
	}
	return 0, fmt.Errorf("no transfer line in lanshare serve's output: %.300s", log)
}

// lsServeLine starts the line in which "lanshare serve" gives its
// LocalSend server's address.
const lsServeLine = "LocalSend apps can send here: https://"

// startLocalSendServe starts "lanshare serve" at rcv receiving into out,
// its LocalSend server on a free port, and returns it once that server
// listens, with its address. The caller must stop it.
func (b *bench) startLocalSendServe(ctx context.Context, rcv place, out string) (*child, string, error) {
	got := make(chan string, 1)
	watch := func(line string) {
		// Off a terminal, the line starts with a timestamp.
		if _, rest, ok := strings.Cut(line, lsServeLine); ok {
			addr, _, _ := strings.Cut(rest, ",")
			select {
			case got <- addr:
			default:
			}
		}
	}
	serve, err := startChildWatching("lanshare serve", rcv.command(ctx, b.lanshare, "serve", "--dir", out, "--config", b.recvCfg,
		"--listen", net.JoinHostPort(rcv.addr, "0"), "--name", "bench-receiver", "--stranger-budget", "off",
		"--localsend", "--localsend-port", "0"), watch)
	if err != nil {
		return nil, "", err
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case addr := <-got:
		return serve, addr, nil
	case <-serve.done:
		err = fmt.Errorf("lanshare serve exited (%v) before its LocalSend server listened: %s", serve.err, serve.out)
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("lanshare serve gave no LocalSend address within 30s: %s", serve.out)
	}
	serve.stop()
	return nil, "", err
}

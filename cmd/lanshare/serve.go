package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

func serve(ctx context.Context, cfg peer.Config, stdout io.Writer) error {
	// Catch signals before anything is printed, so that a stop right after
	// the address appears is a clean shutdown, not a kill.
	ctx, stop := signalContext(ctx)
	defer stop()
	lg := newAgentLog(stdout)
	limit := &failureLog{}
	cfg.OnTransfer = func(in peer.Incoming) {
		if in.Err != nil {
			ok, left := limit.allow(hostOf(in.Remote), in.End)
			if !ok {
				return
			}
			if left > 0 {
				lg.warnf(in.End, "%d more failed connections from %s not logged", left, hostOf(in.Remote))
			}
		}
		logTransfer(lg, in)
	}
	cfg.OnPeer = func(ev discovery.Event) {
		if ev.Kind != discovery.PeerUpdate {
			lg.infof(time.Now(), "%s", describeEvent(ev, ""))
		}
	}
	cfg.Logf = func(format string, args ...any) {
		lg.warnf(time.Now(), "%s", peer.Escape(fmt.Sprintf(format, args...)))
	}
	agent, err := peer.New(cfg)
	if err != nil {
		return err
	}
	defer agent.Close()
	fmt.Fprintf(stdout, "listening on %s\n", agent.Addr())
	for _, name := range missingIfaces(cfg.Ifaces) {
		lg.warnf(time.Now(), "warning: no network interface named %s yet; it is used once it appears", peer.Escape(name))
	}
	lg.infof(time.Now(), "sharing %s as %s, id %s", peer.Escape(cfg.Dir),
		peer.Escape(agent.Instance()), peer.GroupID(agent.ID()))
	if cfg.Accept == peer.AcceptTrusted {
		lg.infof(time.Now(), "accepting transfers only from trusted peers (lanshare trusted)")
	} else {
		lg.infof(time.Now(), "accepting transfers from everyone on the network")
	}
	if err := agent.Serve(ctx); err != nil {
		return err
	}
	for host, left := range limit.flush() {
		lg.warnf(time.Now(), "%d more failed connections from %s not logged", left, host)
	}
	lg.infof(time.Now(), "stopped")
	return nil
}

func stamp(t time.Time) string { return t.Format(time.RFC3339) }

// agentLog writes serve's log: one line per event, on stdout. On a
// terminal or into a file each line starts with its time; under systemd
// (JOURNAL_STREAM set: stdout is the journal) the journal adds the time,
// so lines start instead with their syslog priority, "<6>" for news and
// "<4>" for failures, which journald files as the entry's priority.
type agentLog struct {
	l       *log.Logger
	journal bool
}

func newAgentLog(w io.Writer) agentLog {
	return agentLog{l: log.New(w, "", 0), journal: os.Getenv("JOURNAL_STREAM") != ""}
}

// Syslog priorities used in journal mode.
const (
	prioWarning = 4
	prioInfo    = 6
)

func (g agentLog) infof(t time.Time, format string, args ...any) {
	g.printf(prioInfo, t, format, args...)
}

func (g agentLog) warnf(t time.Time, format string, args ...any) {
	g.printf(prioWarning, t, format, args...)
}

func (g agentLog) printf(prio int, t time.Time, format string, args ...any) {
	if g.journal {
		g.l.Printf("<%d>%s", prio, fmt.Sprintf(format, args...))
		return
	}
	g.l.Printf("%s %s", stamp(t), fmt.Sprintf(format, args...))
}

// logTransfer writes one line per received file, and one for a transfer
// that failed.
func logTransfer(l agentLog, in peer.Incoming) {
	from := "?"
	if in.Transfer != nil && in.Transfer.From != "" {
		from = peer.Escape(in.Transfer.From)
	}
	if in.PeerID != "" {
		from = fmt.Sprintf("%s (%s, id %s)", from, in.Remote, peer.ShortID(in.PeerID))
	} else {
		from = fmt.Sprintf("%s (%s)", from, in.Remote)
	}
	if in.Transfer != nil {
		for _, e := range in.Transfer.Entries {
			if e.Kind != proto.KindFile || e.Result.Status != proto.Saved {
				continue
			}
			l.infof(in.End, "received %s from %s: saved as %s, %s in %s", peer.Escape(e.Path), from,
				peer.Escape(e.Result.SavedAs), peer.FormatBytes(e.Size), formatDuration(e.Elapsed))
		}
	}
	var re *peer.RefusedError
	if errors.As(in.Err, &re) && re.Path == "" {
		l.warnf(in.End, "refused transfer from %s: %s", from, peer.Escape(re.Reason))
	} else if in.Err != nil {
		l.warnf(in.End, "transfer from %s failed: %s", from, oneLine(in.Err))
	} else if in.Transfer != nil {
		failed := 0
		for _, e := range in.Transfer.Entries {
			if e.Result.Status == proto.Failed || e.Result.Status == proto.Refused {
				failed++
				l.warnf(in.End, "not saved %s from %s: %s", peer.Escape(e.Path), from, peer.Escape(e.Result.Reason))
			}
		}
	}
}

// failureLog lets through one line about a failed connection per remote
// host and interval, so that a port scan, garbage or a stranger retrying
// cannot flood the log; the next line that gets through says how many were
// left out. It tracks at most failureLogHosts hosts.
type failureLog struct {
	mu    sync.Mutex
	hosts map[string]*hostFailures
}

type hostFailures struct {
	last       time.Time
	suppressed int
}

const (
	failureLogEvery = 10 * time.Second
	failureLogHosts = 1024
)

// allow reports whether to log a failure from host at now, and how many
// were left out since the last one logged.
func (f *failureLog) allow(host string, now time.Time) (ok bool, left int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hosts == nil || len(f.hosts) >= failureLogHosts {
		f.hosts = map[string]*hostFailures{}
	}
	h := f.hosts[host]
	if h == nil {
		h = &hostFailures{}
		f.hosts[host] = h
	}
	if !h.last.IsZero() && now.Sub(h.last) < failureLogEvery {
		h.suppressed++
		return false, 0
	}
	h.last, left, h.suppressed = now, h.suppressed, 0
	return true, left
}

// flush returns, per host, the failures left out and not yet reported.
func (f *failureLog) flush() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for host, h := range f.hosts {
		if h.suppressed > 0 {
			out[host] = h.suppressed
			h.suppressed = 0
		}
	}
	return out
}

// hostOf is the address part of a remote address.
func hostOf(a net.Addr) string {
	if a == nil {
		return "?"
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
)

// sendLater hands a send to the queue of the agent that runs with the
// config directory (send --later): the agent delivers it when the peer is
// online. It returns once the job is queued.
func sendLater(ctx context.Context, a sendArgs) error {
	if meant := swappedSend(a.target, a.paths); meant != "" {
		return swappedError(a.target, a.paths[len(a.paths)-1], strings.Replace(meant, "lanshare send ", "lanshare send --later ", 1))
	}
	rep, err := peer.EnqueueWith(ctx, a.configDir, a.target, a.paths)
	var left error
	if rep != nil {
		for _, s := range rep.Skipped {
			// The agent escaped the path (it need not be UTF-8).
			fmt.Fprintf(a.stderr, "lanshare: warning: %s: %s\n", s.Path, peer.Escape(s.Reason))
		}
		if n := len(rep.Skipped); n > 0 {
			left = reworded{err: peer.ErrSourceUnreadable,
				msg: fmt.Sprintf("%s could not be queued (see the warnings above); everything else was", plural(n, "path"))}
		}
	}
	switch {
	case errors.Is(err, peer.ErrNoAgent):
		return reworded{err: err, msg: fmt.Sprintf("--later hands the job to the agent that runs here, and none runs with config directory %s: start it (lanshare serve, or the service), then queue again",
			peer.Escape(a.configDir))}
	case errors.Is(err, peer.ErrDuplicatePath), errors.Is(err, peer.ErrNotQueueable):
		return usageError{msg: err.Error()}
	case errors.Is(err, peer.ErrNothingToSend) && left != nil:
		return left
	case err != nil:
		return err
	}
	j := *rep.Job
	switch {
	case a.json:
		_ = json.NewEncoder(a.stdout).Encode(queuedEvent{Event: "queued", Job: j.ID, Peer: j.Instance(), ID: j.PeerID, Files: j.Files, Bytes: j.Bytes})
	case !a.quiet:
		fmt.Fprintf(a.stdout, "queued job %s for %s: %s; the agent delivers it when %s is online (lanshare queue lists it)\n",
			j.ID, peer.Escape(j.Instance()), describeJobFiles(j), peer.Escape(j.Instance()))
	}
	return left
}

// queuedEvent is what `send --later --json` prints: one line. Field names
// are stable, and those it shares with send's events mean the same.
type queuedEvent struct {
	Event string `json:"event"` // queued
	Job   string `json:"job"`
	Peer  string `json:"peer"`
	ID    string `json:"id"`
	Files int    `json:"files"`
	Bytes uint64 `json:"bytes"`
}

// sendLaterCommand is send's action with --later: the flags that steer a
// send in progress do not apply.
func sendLaterCommand(c *cli.Context, targets, paths []string, stdout, stderr io.Writer) error {
	for _, f := range []string{"localsend", "retries", "wait"} {
		if c.IsSet(f) {
			return usageError{msg: fmt.Sprintf("--%s does not apply to --later: the agent finds the peer and retries until the job is delivered or cancelled", f)}
		}
	}
	if isPipe(paths) {
		return usageError{msg: "- (standard input) cannot be queued: the agent reads the files when the peer comes, and a pipe is gone by then"}
	}
	// One job per target; the first failure decides the exit status.
	var first error
	for _, t := range targets {
		err := sendLater(c.Context, sendArgs{target: t, paths: paths, quiet: c.Bool("quiet"), json: c.Bool("json"),
			stdout: stdout, stderr: stderr, configDir: expandHome(c.String("config"))})
		if err != nil && len(targets) > 1 {
			fmt.Fprintf(stderr, "lanshare: %s: %s\n", peer.Escape(t), oneLine(err))
		}
		if first == nil {
			first = err
		}
	}
	return first
}

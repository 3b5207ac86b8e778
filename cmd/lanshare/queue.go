package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

// queueCommand is `lanshare queue` (list), `lanshare queue cancel ID` and
// `lanshare queue retry ID`: the jobs of send --later, through the agent's
// control socket.
func queueCommand(configFlag cli.Flag, stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "queue",
		Usage: "list the jobs of send --later that wait for their peer",
		Description: `Lists the jobs that "lanshare send --later" handed to the local agent, in
the order they were queued: the job id, the peer, what it sends, when it
was queued, and its state: waiting for the peer (with the tries made and
the last error), delivering now, failed (the peer refused it, or the name is
pinned to another key now: not tried again), or source changed (a file
changed or vanished since it was queued: not sent). A delivered job leaves
the queue. Drop a job with "lanshare queue cancel ID"; send a failed or
source-changed one back to waiting with "lanshare queue retry ID".

Examples:
   lanshare queue
   lanshare queue --json
   lanshare queue cancel 3f2a9c
   lanshare queue retry 3f2a9c`,
		Flags: []cli.Flag{configFlag,
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per job: id, target, peer, peer_id, queued, files, dirs, bytes, first, state, attempts, last_attempt, last_error"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{msg: fmt.Sprintf("queue takes no arguments, and has no command %s (its commands: cancel, retry)", peer.Escape(c.Args().First()))}
			}
			return listQueue(c.Context, expandHome(c.String("config")), c.Bool("json"), stdout)
		},
		Subcommands: []*cli.Command{{
			Name:      "cancel",
			Usage:     "drop a job of the queue: it is never delivered",
			ArgsUsage: "ID",
			Description: `Drops the job ID (see "lanshare queue") from the queue. A job being
delivered is stopped: the files that arrived before stay with the receiver.

Example:
   lanshare queue cancel 3f2a9c`,
			Flags: []cli.Flag{configFlag,
				&cli.BoolFlag{Name: "json", Usage: "print the job dropped as one JSON object, with was_delivering"}},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 || c.Args().First() == "" {
					return usageError{msg: "queue cancel takes one job id (see lanshare queue)"}
				}
				return cancelQueued(c.Context, expandHome(c.String("config")), c.Args().First(), c.Bool("json"), stdout)
			},
		}, retryCommand(configFlag, stdout)},
	}
}

func listQueue(ctx context.Context, dir string, asJSON bool, w io.Writer) error {
	jobs, err := peer.ListQueue(ctx, dir)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for _, j := range jobs {
			if err := enc.Encode(j); err != nil {
				return err
			}
		}
		return nil
	}
	if len(jobs) == 0 {
		fmt.Fprintln(w, "no job in the queue (lanshare send --later TARGET PATH... queues one)")
		return nil
	}
	now := time.Now()
	for _, j := range jobs {
		fmt.Fprintf(w, "%s  to %s  %s  queued %s ago  %s\n", j.ID, peer.Escape(j.Instance()), describeJobFiles(j),
			ago(now.Sub(j.Queued)), jobState(j, now))
	}
	fmt.Fprintln(w, "drop one with: lanshare queue cancel ID")
	if slices.ContainsFunc(jobs, func(j peer.QueueJob) bool { return j.State == peer.JobFailed || j.State == peer.JobSourceChanged }) {
		fmt.Fprintln(w, "send a failed or source-changed one back to waiting with: lanshare queue retry ID")
	}
	return nil
}

func cancelQueued(ctx context.Context, dir, id string, asJSON bool, w io.Writer) error {
	rep, err := peer.CancelQueued(ctx, dir, id)
	if err != nil {
		return err
	}
	j := *rep.Job
	if asJSON {
		return json.NewEncoder(w).Encode(struct {
			peer.QueueJob
			WasDelivering bool `json:"was_delivering,omitempty"`
		}{j, rep.WasDelivering})
	}
	fmt.Fprintf(w, "cancelled job %s for %s: %s", j.ID, peer.Escape(j.Instance()), describeJobFiles(j))
	if rep.WasDelivering {
		fmt.Fprint(w, "; it was being delivered: the files that arrived before stay there")
	}
	fmt.Fprintln(w)
	return nil
}

// describeJobFiles says what a job sends: `2 files, 5.2 MB: "report.pdf",
// "notes.txt"`.
func describeJobFiles(j peer.QueueJob) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s", plural(j.Files, "file"), peer.FormatBytes(j.Bytes))
	if j.Dirs > 0 {
		fmt.Fprintf(&b, " in %s", plural(j.Dirs, "folder"))
	}
	for i, f := range j.First {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(clipShown(f, maxShownPath-maxShownPathEnd, maxShownPathEnd))
	}
	if j.Files+j.Dirs > len(j.First) {
		b.WriteString(", ...")
	}
	return b.String()
}

// jobState says where a job stands, for `lanshare queue`.
func jobState(j peer.QueueJob, now time.Time) string {
	last := ""
	if j.Attempts > 0 {
		last = fmt.Sprintf("%s, the last %s ago: %s", plural(j.Attempts, "try"), ago(now.Sub(j.LastAttempt)), peer.Escape(j.LastError))
	}
	switch j.State {
	case peer.JobDelivering:
		return "delivering now"
	case peer.JobFailed:
		return "FAILED, not tried again: " + peer.Escape(j.LastError)
	case peer.JobSourceChanged:
		return "SOURCE CHANGED, not sent: " + peer.Escape(j.LastError)
	case peer.JobWaiting:
		if last == "" {
			return "waiting for it to be online"
		}
		return "waiting; " + last
	}
	return peer.Escape(j.State)
}

// ago is a rough duration for people: "12 s", "3 min", "5 h", "2 days".
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// logQueue logs a step of a queued job in serve's log.
func logQueue(lg agentLog, ev peer.QueueEvent) {
	j := ev.Job
	to := peer.Escape(j.Instance())
	if ev.Peer != "" {
		to = peer.Escape(ev.Peer)
	}
	base := serveEvent{Event: ev.Kind, Job: j.ID, Peer: j.Instance(), Name: j.Peer, PeerID: j.PeerID, Files: j.Files, Bytes: j.Bytes}
	if ev.Err != nil {
		base.Reason = oneLine(ev.Err)
	}
	now := time.Now()
	what := describeJobFiles(j)
	switch ev.Kind {
	case peer.QueueQueued:
		lg.event(now, prioInfo, base, "queued job %s for %s: %s; it is delivered when %s is online", j.ID, to, what, to)
	case peer.QueueDelivering:
		lg.event(now, prioInfo, base, "delivering job %s to %s: %s", j.ID, to, what)
	case peer.QueueDelivered:
		note := ""
		if rep := ev.Report; rep != nil {
			skipped := 0
			for i, r := range rep.Results {
				if r.Status == proto.Skipped && rep.Items[i].Entry.Kind == proto.KindFile {
					skipped++
				}
			}
			base.Skipped, base.Resumed = skipped, rep.Resumed
			var notes []string
			if skipped > 0 {
				notes = append(notes, plural(skipped, "file")+" already there")
			}
			if rep.Resumed > 0 {
				notes = append(notes, "resumed "+peer.FormatBytes(rep.Resumed))
			}
			if len(notes) > 0 {
				note = " (" + strings.Join(notes, ", ") + ")"
			}
		}
		lg.event(now, prioInfo, base, "delivered job %s to %s: %s%s", j.ID, to, what, note)
	case peer.QueueRetry:
		base.Wait = ev.Wait.Seconds()
		lg.event(now, prioWarning, base, "job %s to %s not delivered: %s; trying again in %s while it is online",
			j.ID, to, base.Reason, formatDuration(ev.Wait.Round(time.Second)))
	case peer.QueueFailed:
		lg.event(now, prioWarning, base, "job %s to %s failed, not tried again: %s; lanshare queue retry %s tries it again, lanshare queue cancel %s drops it",
			j.ID, to, base.Reason, j.ID, j.ID)
	case peer.QueueSourceChanged:
		lg.event(now, prioWarning, base, "job %s to %s not sent: %s; lanshare queue retry %s sends the files as they are now, lanshare queue cancel %s drops it",
			j.ID, to, base.Reason, j.ID, j.ID)
	case peer.QueueRetried:
		lg.event(now, prioInfo, base, "job %s for %s waits again (lanshare queue retry): %s", j.ID, to, what)
	case peer.QueueCancelled:
		note := ""
		if ev.WasDelivering {
			note = " during its delivery: the files that arrived before stay there"
		}
		lg.event(now, prioInfo, base, "cancelled job %s for %s%s", j.ID, to, note)
	}
}

// queueLine is status's line about the queue.
func queueLine(waiting, held int) string {
	s := plural(waiting, "job") + " of send --later waiting for their peer"
	if held > 0 {
		s += fmt.Sprintf(", %d held (failed or source changed)", held)
	}
	return s + " (lanshare queue)"
}

// retryCommand is `lanshare queue retry ID`.
func retryCommand(configFlag cli.Flag, stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "retry",
		Usage:     "send a failed or source-changed job back to waiting",
		ArgsUsage: "ID",
		Description: `Sends the job ID (see "lanshare queue"), held as failed or source
changed, back to waiting: the agent tries it as soon as its peer is online,
its tries and last error cleared. For a source-changed job this is your
consent to the files as they are now: their size, modification time and
identity are recorded afresh, and they are sent as they are then (a file
that is gone keeps the job held: cancel it and queue what is there). A job
that waits or is being delivered already is an error.

Example:
   lanshare queue retry 3f2a9c`,
		Flags: []cli.Flag{configFlag,
			&cli.BoolFlag{Name: "json", Usage: "print the job as it waits now, as one JSON object"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 || c.Args().First() == "" {
				return usageError{msg: "queue retry takes one job id (see lanshare queue)"}
			}
			return retryQueued(c.Context, expandHome(c.String("config")), c.Args().First(), c.Bool("json"), stdout)
		},
	}
}

func retryQueued(ctx context.Context, dir, id string, asJSON bool, w io.Writer) error {
	rep, err := peer.RetryQueued(ctx, dir, id)
	if err != nil {
		return err
	}
	j := *rep.Job
	if asJSON {
		return json.NewEncoder(w).Encode(j)
	}
	fmt.Fprintf(w, "job %s for %s waits again: %s; the agent delivers it when %s is online\n", j.ID, peer.Escape(j.Instance()), describeJobFiles(j), peer.Escape(j.Instance()))
	return nil
}

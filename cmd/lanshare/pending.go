package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
)

// consentCommands are pending, accept and decline: the owner's answers to
// offers that wait under `serve --accept ask`, through the agent's
// control socket.
func consentCommands(configFlag cli.Flag, stdout io.Writer) []*cli.Command {
	return []*cli.Command{
		{
			Name:  "pending",
			Usage: "list the offers that wait for your answer (serve --accept ask)",
			Description: `Lists the offers of peers that are not trusted that wait for your answer
when the agent runs with --accept ask, oldest first: the id to answer with,
the sender, what it offers, and how long it still waits. Answer with
"lanshare accept ID" or "lanshare decline ID".

Examples:
   lanshare pending
   lanshare pending --json`,
			Flags: []cli.Flag{configFlag,
				&cli.BoolFlag{Name: "json", Usage: "print one JSON object per offer: id, from, peer_id, remote, files, dirs, bytes, first, since, expires"}},
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return usageError{msg: "pending takes no arguments"}
				}
				return listPending(c.Context, expandHome(c.String("config")), c.Bool("json"), stdout)
			},
		},
		{
			Name:      "accept",
			Usage:     "let a pending offer through (serve --accept ask)",
			ArgsUsage: "ID",
			Description: `Lets the offer ID (see "lanshare pending") through: its files arrive in
the shared folder. With --trust the sender's key is also trusted, as
"lanshare trust" would: its later sends go straight through.

Examples:
   lanshare accept 3
   lanshare accept --trust 3`,
			Flags: []cli.Flag{configFlag,
				&cli.BoolFlag{Name: "trust", Usage: "also trust the sender's key (known_peers)"}},
			Action: func(c *cli.Context) error {
				id, err := offerID(c)
				if err != nil {
					return err
				}
				return decide(c.Context, expandHome(c.String("config")), peer.ControlRequest{Op: peer.OpAccept, ID: id, Trust: c.Bool("trust")}, stdout)
			},
		},
		{
			Name:      "decline",
			Usage:     "refuse a pending offer (serve --accept ask)",
			ArgsUsage: "ID",
			Description: `Refuses the offer ID (see "lanshare pending"): nothing of it is written,
and the sender is told "declined by the receiver's owner", with --reason
if given.

Examples:
   lanshare decline 3
   lanshare decline --reason "not now, send it tonight" 3`,
			Flags: []cli.Flag{configFlag,
				&cli.StringFlag{Name: "reason", Usage: "a word for the sender"}},
			Action: func(c *cli.Context) error {
				id, err := offerID(c)
				if err != nil {
					return err
				}
				return decide(c.Context, expandHome(c.String("config")), peer.ControlRequest{Op: peer.OpDecline, ID: id, Reason: c.String("reason")}, stdout)
			},
		},
	}
}

func offerID(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usageError{msg: c.Command.Name + " takes one offer id (see lanshare pending)"}
	}
	id := strings.TrimSpace(c.Args().First())
	if n, err := strconv.Atoi(id); err != nil || n < 1 {
		return "", usageError{msg: fmt.Sprintf("%q is not an offer id: lanshare pending lists them", peer.Escape(id))}
	}
	return id, nil
}

func listPending(ctx context.Context, dir string, asJSON bool, w io.Writer) error {
	rep, err := peer.AskAgent(ctx, dir, peer.ControlRequest{Op: peer.OpPending})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for _, p := range rep.Pending {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
		return nil
	}
	if len(rep.Pending) == 0 {
		fmt.Fprintln(w, "no offer waits for your answer")
		return nil
	}
	for _, p := range rep.Pending {
		fmt.Fprintf(w, "%s  %s, %s left\n", p.ID, describeOffer(p), time.Until(p.Expires).Round(time.Second))
	}
	fmt.Fprintln(w, "answer with: lanshare accept ID [--trust], or lanshare decline ID [--reason ...]")
	return nil
}

func decide(ctx context.Context, dir string, req peer.ControlRequest, w io.Writer) error {
	rep, err := peer.AskAgent(ctx, dir, req)
	if err != nil {
		return err
	}
	verb, also := "declined", ""
	switch {
	case req.Op == peer.OpAccept && req.Trust:
		verb, also = "accepted", " (and trusted its sender)"
	case req.Op == peer.OpAccept:
		verb = "accepted"
	}
	fmt.Fprintf(w, "%s offer %s%s: %s\n", verb, rep.Offer.ID, also, describeOffer(*rep.Offer))
	return nil
}

// describeOffer says who offers what: `alice (ttj3) offers 3 files,
// 1.2 MB: "a.txt", "b.txt", ...`.
func describeOffer(p peer.PendingOffer) string {
	var b strings.Builder
	what := plural(p.Files, "file")
	if p.Texts > 0 {
		what = offeredText(p.Files)
	}
	fmt.Fprintf(&b, "%s (%s) offers %s, %s", shownSender(p.From), senderTag(p.PeerID), what, peer.FormatBytes(p.Bytes))
	if p.Streams > 0 {
		fmt.Fprintf(&b, " and %d of a size that comes only at its end (a pipe)", p.Streams)
	}
	if p.Dirs > 0 {
		fmt.Fprintf(&b, " in %s", plural(p.Dirs, "folder"))
	}
	for i, f := range p.First {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(clipShown(f, maxShownPath-maxShownPathEnd, maxShownPathEnd))
	}
	if n := p.Files + p.Dirs; n > len(p.First) {
		b.WriteString(", ...")
	}
	return b.String()
}

// How much of a stranger's name and of each first path an offer's
// description shows, in characters: the rest is "…". A path keeps its
// end (the extension says what the file is).
const (
	maxShownName    = 40
	maxShownPath    = 60
	maxShownPathEnd = 20
)

// clipShown returns s escaped, with only its first head and last tail
// characters when it has more than head+tail, joined by "…".
func clipShown(s string, head, tail int) string {
	r := []rune(s)
	if len(r) <= head+tail {
		return peer.Escape(s)
	}
	return peer.Escape(string(r[:head])) + "…" + peer.Escape(string(r[len(r)-tail:]))
}

// shownSender is a sender's name as an offer's description shows it:
// clipped, and quoted when it holds the punctuation of the description
// itself, so that a name such as "alice (ttj3-5jp3) offers 1 file" cannot
// pass for another sender's id and offer.
func shownSender(name string) string {
	s := clipShown(name, maxShownName, 0)
	if strings.ContainsAny(name, "():,;") && !strings.HasPrefix(s, `"`) {
		s = `"` + s + `"`
	}
	return s
}

// parseStrangerBudget reads --stranger-budget: a size per day (2G), a
// percentage of the free space (10%), or 0 or "off" for no limit.
func parseStrangerBudget(s string) (peer.StrangerBudget, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "off" || t == "0" || t == "none" {
		return peer.StrangerBudget{}, nil
	}
	if num, ok := strings.CutSuffix(t, "%"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil || n < 1 || n > 100 {
			return peer.StrangerBudget{}, fmt.Errorf("%q: want a percentage from 1%% to 100%%, a size such as 2G, or off", s)
		}
		return peer.StrangerBudget{Percent: n}, nil
	}
	n, err := parseSize(t)
	if err != nil {
		return peer.StrangerBudget{}, fmt.Errorf("%q: want a size such as 2G, a percentage such as 10%%, or off", s)
	}
	return peer.StrangerBudget{Bytes: n}, nil
}

// senderTag is how a sender's id is shown after its name: its short id,
// or what stands in for one that presented no key (an old LocalSend app).
func senderTag(id string) string {
	if id == "" {
		return "no id: presented no certificate"
	}
	return peer.ShortID(id)
}

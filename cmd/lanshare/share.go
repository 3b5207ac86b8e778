package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"
	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
)

// shareCommand is `lanshare share`: it asks the running agent to publish
// files and folders on its drop page's server, prints the link, and ends
// the share at Ctrl-C or when --for has passed.
func shareCommand(configFlag cli.Flag, stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "share",
		Usage:     "publish files and folders for download by any browser, until Ctrl-C or --for",
		ArgsUsage: "PATH...",
		Description: `Asks the running agent (lanshare serve) to publish every PATH on its drop
page's HTTPS server and prints the link: whoever has it can download a file
(browsers can resume) or a folder as one zip, made as it downloads. The
share ends at Ctrl-C or when --for has passed. --list shows the shares,
--stop ID ends one. --pin guards the link with a PIN of 6 random digits,
printed with it (--pin-code sets one): five wrong PINs from an address
lock it out for a minute, doubling up to an hour.

Examples:
   lanshare share report.pdf
   lanshare share --for 24h --pin photos/
   lanshare share --list
   lanshare share --stop ID`,
		Flags: []cli.Flag{configFlag,
			&cli.DurationFlag{Name: "for", Usage: "how long the link works", Value: time.Hour},
			&cli.BoolFlag{Name: "pin", Usage: "guard the link with a PIN of 6 random digits, printed with it"},
			&cli.StringFlag{Name: "pin-code", Usage: "guard the link with this PIN (4 to 64 characters)"},
			&cli.BoolFlag{Name: "list", Usage: "list the shares of the running agent"},
			&cli.StringFlag{Name: "stop", Usage: "end the share ID"},
		},
		Action: func(c *cli.Context) error {
			dir := expandHome(c.String("config"))
			switch {
			case c.Bool("list"):
				return listShares(c.Context, dir, stdout)
			case c.IsSet("stop"):
				if _, err := peer.AskAgent(c.Context, dir, peer.ControlRequest{Op: peer.OpUnshare, ID: c.String("stop")}); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "share %s ended\n", c.String("stop"))
				return nil
			case c.NArg() == 0:
				return usageError{msg: "share takes the paths to share (or --list, --stop ID)"}
			case c.Duration("for") <= 0:
				return usageError{msg: "--for must be positive"}
			}
			pin := c.String("pin-code")
			switch {
			case c.IsSet("pin-code") && (len(pin) < 4 || len(pin) > 64):
				return usageError{msg: "--pin-code: want 4 to 64 characters"}
			case pin == "" && c.Bool("pin"):
				pin = randomPIN(webPINDigits)
			}
			var paths []string
			for _, p := range c.Args().Slice() {
				abs, err := filepath.Abs(p)
				if err != nil {
					return err
				}
				paths = append(paths, abs)
			}
			return share(c.Context, dir, paths, c.Duration("for"), pin, stdout)
		},
	}
}

// share publishes paths for d, with pin ("" for none), and blocks until
// Ctrl-C or d has passed, then ends the share.
func share(ctx context.Context, dir string, paths []string, d time.Duration, pin string, w io.Writer) error {
	ctx, stop := signalContext(ctx)
	defer stop()
	until := time.Now().Add(d)
	rep, err := peer.AskAgent(ctx, dir, peer.ControlRequest{Op: peer.OpShare, Paths: paths, Until: until, PIN: pin})
	if err != nil {
		return err
	}
	st, err := peer.QueryAgent(ctx, dir)
	if err != nil {
		return err
	}
	link := shareURL(st.LocalSendListen, rep.Share.Path)
	withPIN := ""
	if pin != "" {
		withPIN = "  PIN " + pin
	}
	fmt.Fprintf(w, "share %s  %s%s  until %s (Ctrl-C ends it)\n", rep.Share.ID, link, withPIN, until.Format("15:04"))
	if st.WebHTTPListen != "" {
		fmt.Fprintf(w, "also over plain HTTP, not private: %s\n", "http"+strings.TrimPrefix(shareURL(st.WebHTTPListen, rep.Share.Path), "https"))
	}
	if isTerminal(w) {
		if q, err := qrcode.New(link, qrcode.Low); err == nil {
			fmt.Fprint(w, q.ToSmallString(false))
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	// The agent forgets an expired share by itself; this ends it at once.
	// It fails only when the share is gone already (--stop, the agent
	// stopped): ended either way.
	end, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _ = peer.AskAgent(end, dir, peer.ControlRequest{Op: peer.OpUnshare, ID: rep.Share.ID})
	fmt.Fprintf(w, "share %s ended\n", rep.Share.ID)
	return nil
}

// shareURL is the link to path on the drop page's server at listen.
func shareURL(listen, path string) string {
	base := "https://" + listen
	if tcp, err := net.ResolveTCPAddr("tcp", listen); err == nil {
		base = dropPageURL(tcp)
	}
	return base[:len(base)-1] + path
}

func listShares(ctx context.Context, dir string, w io.Writer) error {
	rep, err := peer.AskAgent(ctx, dir, peer.ControlRequest{Op: peer.OpShares})
	if err != nil {
		return err
	}
	if len(rep.Shares) == 0 {
		fmt.Fprintln(w, "nothing is shared")
		return nil
	}
	st, err := peer.QueryAgent(ctx, dir)
	if err != nil {
		return err
	}
	for _, l := range rep.Shares {
		var names []string
		for _, it := range l.Items {
			names = append(names, it.Name)
		}
		guard := ""
		if l.PIN {
			guard = "  with a PIN"
		}
		fmt.Fprintf(w, "%s  %s  until %s%s  %q\n", l.ID, shareURL(st.LocalSendListen, l.Path), l.Until.Format("15:04"), guard, names)
	}
	return nil
}

// logDownload logs one download of a share link: "download of report.pdf
// by 192.168.1.31: 3.1 MB", or where it was cut.
func logDownload(lg agentLog, d peer.Download) {
	remote := "?"
	if d.Remote != nil {
		remote = hostPort(d.Remote.String())
	}
	ev := serveEvent{Event: "download", Remote: remote, Path: d.Name, Share: d.Share, Bytes: uint64(d.Bytes), Seconds: time.Since(d.Start).Seconds()}
	if d.Err != nil {
		ev.Reason = d.Err.Error()
		if d.Bytes == 0 {
			lg.event(time.Now(), prioWarning, ev, "download of %s by %s failed: %s", peer.Escape(d.Name), remote, peer.Escape(oneLine(d.Err)))
			return
		}
		lg.event(time.Now(), prioWarning, ev, "download of %s by %s cut after %s: %s", peer.Escape(d.Name), remote, peer.FormatBytes(uint64(d.Bytes)), peer.Escape(oneLine(d.Err)))
		return
	}
	lg.event(time.Now(), prioInfo, ev, "download of %s by %s: %s", peer.Escape(d.Name), remote, peer.FormatBytes(uint64(d.Bytes)))
}

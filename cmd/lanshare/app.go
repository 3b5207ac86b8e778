package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1 // anything else
	exitUsage       = 2 // bad command line
	exitRefused     = 3 // the receiver refused the batch or some files
	exitUnreachable = 4 // could not connect
	exitIncomplete  = 5 // the transfer broke off or some files failed
)

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	var ne *net.OpError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, peer.ErrRefused):
		return exitRefused
	case errors.Is(err, peer.ErrIncomplete):
		return exitIncomplete
	case errors.As(err, &ne) && ne.Op == "dial":
		return exitUnreachable
	case strings.HasPrefix(err.Error(), "flag provided but not defined"),
		strings.HasPrefix(err.Error(), "Required flag"):
		return exitUsage
	}
	return exitFailure
}

// oneLine keeps an error message to one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}

func newApp(stdout, stderr io.Writer) *cli.App {
	def := peer.DefaultConfig()
	return &cli.App{
		Name:      "lanshare",
		Usage:     "share files with peers on the local network",
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:  "serve",
				Usage: "run the agent: receive files into the shared folder",
				Description: `Listens for transfers and accepts them into the shared folder.
The first line of output is the address the agent listens on.

Examples:
   lanshare serve
   lanshare serve --dir ~/Inbox --listen :0`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dir", Usage: "shared folder (created if missing)", Value: def.Dir, EnvVars: []string{"LANSHARE_DIR"}},
					&cli.StringFlag{Name: "name", Usage: "display name", Value: def.Name, EnvVars: []string{"LANSHARE_NAME"}},
					&cli.StringFlag{Name: "listen", Usage: "TCP address to listen on (:0 picks a free port)", Value: def.Listen, EnvVars: []string{"LANSHARE_LISTEN"}},
					&cli.StringFlag{Name: "config", Usage: "directory for the agent's own state", Value: def.ConfigDir, EnvVars: []string{"LANSHARE_CONFIG"}},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{"serve takes no arguments"}
					}
					cfg := def
					cfg.Dir = expandHome(c.String("dir"))
					cfg.Name = c.String("name")
					cfg.Listen = c.String("listen")
					cfg.ConfigDir = expandHome(c.String("config"))
					return serve(c.Context, cfg, stdout)
				},
			},
			{
				Name:      "send",
				Usage:     "send files and folders to an agent",
				ArgsUsage: "HOST:PORT PATH...",
				Description: `Sends every PATH (files, and folders with everything in them) in one batch.
Exits 0 only when the receiver confirms that every file was saved.

Examples:
   lanshare send 192.168.1.20:52741 report.pdf
   lanshare send 192.168.1.20:52741 photos/ notes.txt`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "display name to announce", Value: def.Name, EnvVars: []string{"LANSHARE_NAME"}},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() < 2 {
						return usageError{"send needs a target and at least one path: lanshare send HOST:PORT PATH..."}
					}
					target := c.Args().First()
					if _, _, err := net.SplitHostPort(target); err != nil {
						return usageError{fmt.Sprintf("target %q is not HOST:PORT", target)}
					}
					return send(c.Context, sendArgs{
						target: target, paths: c.Args().Slice()[1:], name: c.String("name"),
						quiet: c.Bool("quiet"), stdout: stdout, stderr: stderr,
					})
				},
			},
		},
	}
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return home + p[1:]
		}
	}
	return p
}

// signalContext is ctx, cancelled on SIGINT or SIGTERM.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
)

// exitStatuses are the exit codes lanshare(1) documents, in order: keep
// them in step with exitCode (TestManPageSections checks them against the
// README's table and the exit constants).
var exitStatuses = []struct {
	code    int
	meaning string
}{
	{exitOK, "Success; for send: the receiver confirmed that every file was saved."},
	{exitFailure, "Another failure (e.g. a path to send does not exist; status: no agent runs)."},
	{exitUsage, "Usage error, or a name that several peers share."},
	{exitRefused, "The receiver refused the batch or some files (the message says why)."},
	{exitUnreachable, "The receiver could not be reached, or no peer of that name was found."},
	{exitIncomplete, "The transfer broke off, files failed on the receiver, or the receiver stopped during the send; sending the same paths again resumes."},
	{exitUntrusted, "The receiver's key is not the one expected (an impostor, or a changed key)."},
	{exitUnreadable, "A file or folder to send could not be read, or its name cannot be sent: it was skipped (stderr names it) and the rest was sent; or standard input (-) failed while it was read, and nothing was saved of it."},
	{exitInUse, "serve: the port is taken, or an agent already runs with this config directory."},
	{128 + 2, "send was interrupted (Ctrl-C, SIGINT): what arrived is kept, and the same command again resumes. (serve stops cleanly on a signal and exits 0.)"},
	{128 + 15, "send was stopped by SIGTERM; as for 130."},
}

// manPage prints lanshare(1), generated from the command definitions, with
// sections on exit status, environment and files. Defaults that depend on
// the machine (home directory, host name) are printed as the rule that
// makes them, so a page built on one machine is right on every other; this
// changes the flags' DefaultText, so app is for printing the page only.
func manPage(app *cli.App, w io.Writer) error {
	portableDefaults(app)
	s, err := app.ToManWithSection(1)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(s, "\n"))
	b.WriteString("\n\n.SH EXIT STATUS\n")
	for _, e := range exitStatuses {
		fmt.Fprintf(&b, ".TP\n.B %d\n%s\n", e.code, roff(e.meaning))
	}
	b.WriteString("\n.SH ENVIRONMENT\n")
	b.WriteString(".PP\nA flag wins over its environment variable, which wins over the config file.\n")
	for _, e := range environment(app) {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", e[0], roff(e[1]))
	}
	b.WriteString("\n.SH FILES\n")
	for _, f := range manFiles {
		fmt.Fprintf(&b, ".TP\n.I %s\n%s\n", roff(f[0]), roff(f[1]))
	}
	b.WriteString("\n.SH SEE ALSO\n.BR systemctl (1),\n.BR journalctl (1)\n")
	_, err = io.WriteString(w, b.String())
	return err
}

// Machine-independent spellings of the defaults that depend on the user
// and the machine (peer.DefaultConfig).
const (
	defaultDirText    = "~/LANShare"
	defaultConfigText = "$XDG_CONFIG_HOME/lanshare, else ~/.config/lanshare (macOS: ~/Library/Application Support/lanshare, Windows: %AppData%\\lanshare)"
	defaultNameText   = "the host name"
)

// manFiles are lanshare(1)'s FILES: path and what it holds.
var manFiles = [][2]string{
	{"~/LANShare", "The shared folder: files received land here (--dir). Its .lanshare folder holds transfers in progress and partial files kept for a resume."},
	{"$XDG_CONFIG_HOME/lanshare", "The config directory (--config; ~/.config/lanshare when XDG_CONFIG_HOME is unset)."},
	{"$XDG_CONFIG_HOME/lanshare/config", "Optional settings for serve, one flag = value per line (# comments, lists comma-separated)."},
	{"$XDG_CONFIG_HOME/lanshare/key.pem, cert.pem", "This device's identity: an Ed25519 key and self-signed certificate, created on first use, owner-only. The id is the SHA-256 of the public key."},
	{"$XDG_CONFIG_HOME/lanshare/known_peers", "Trusted peers and names pinned to keys, one per line (lanshare trust, untrust, trusted)."},
	{"$XDG_CONFIG_HOME/lanshare/static_peers", "Static peers, named by address where discovery does not reach, one per line: HOST:PORT ID NAME (lanshare peers add, remove, static; the running agent checks them)."},
	{"$XDG_CONFIG_HOME/lanshare/history.jsonl", "What arrived (lanshare history)."},
	{"$XDG_CONFIG_HOME/lanshare/queue.json", "The jobs of send --later that the agent delivers when their peer is online (lanshare queue)."},
	{"$XDG_CONFIG_HOME/lanshare/agent.sock", "The running agent's owner-only control socket (lanshare status, and completion of peer names)."},
	{"/usr/lib/systemd/user/lanshare.service", "The systemd user unit that runs lanshare serve from login: systemctl --user enable --now lanshare."},
}

// portableDefaults replaces, in every command's flags, the default values
// that name this machine or user by the rule that makes them.
func portableDefaults(app *cli.App) {
	def := peer.DefaultConfig()
	text := map[string]string{}
	for v, t := range map[string]string{def.Dir: defaultDirText, def.ConfigDir: defaultConfigText, def.Name: defaultNameText} {
		if v != "" {
			text[v] = t
		}
	}
	for _, c := range withSubcommands(app.Commands) {
		for _, f := range c.Flags {
			if sf, ok := f.(*cli.StringFlag); ok && text[sf.Value] != "" {
				sf.DefaultText = text[sf.Value]
			}
		}
	}
}

// withSubcommands returns commands followed, each, by its subcommands
// (peers add, remove, static), which name the parent in their Name.
func withSubcommands(commands []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range commands {
		out = append(out, c)
		for _, sub := range c.Subcommands {
			named := *sub
			named.Name = c.Name + " " + sub.Name
			out = append(out, &named)
		}
	}
	return out
}

// environment lists the variables lanshare reads: each flag's, with the
// flag's usage and the commands that have it, then the ones read directly.
func environment(app *cli.App) [][2]string {
	type envFlag struct {
		flag, usage string
		commands    []string
	}
	vars := map[string]*envFlag{}
	for _, c := range withSubcommands(app.Commands) {
		for _, f := range c.Flags {
			df, ok := f.(cli.DocGenerationFlag)
			if !ok {
				continue
			}
			for _, e := range df.GetEnvVars() {
				if vars[e] == nil {
					vars[e] = &envFlag{flag: "--" + f.Names()[0], usage: df.GetUsage()}
				}
				vars[e].commands = append(vars[e].commands, c.Name)
			}
		}
	}
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	var out [][2]string
	for _, n := range names {
		v := vars[n]
		out = append(out, [2]string{n, fmt.Sprintf("As %s (%s): %s.", v.flag, strings.Join(v.commands, ", "), v.usage)})
	}
	return append(out,
		[2]string{"HOME", "Where the default shared folder (~/LANShare) and config directory live."},
		[2]string{"XDG_CONFIG_HOME", "The default config directory is $XDG_CONFIG_HOME/lanshare (~/.config/lanshare when unset)."},
		[2]string{"JOURNAL_STREAM", "Set by systemd: serve's log lines then carry a syslog priority (<6>, <4>) instead of a time stamp."},
		[2]string{"GOMEMLIMIT", "The agent's soft memory limit (serve sets one of its own when this is unset)."},
	)
}

// roff escapes text for a roff paragraph: backslashes, the dashes of
// options (so that they copy as ASCII), and a dot or quote that would
// start a request at the beginning of a line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "--", `\-\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1 // anything else
	exitUsage       = 2 // bad command line
	exitRefused     = 3 // the receiver refused the batch or some files
	exitUnreachable = 4 // could not connect
	exitIncomplete  = 5 // the transfer broke off or some files failed
	exitUntrusted   = 6 // the receiver's key is not the one expected
	exitUnreadable  = 7 // a path to send could not be read or named (skipped, or cut while sending); the rest was sent
	exitInUse       = 8 // serve: the port is taken, or an agent already runs with this config directory
)

// usageError is a command line that cannot work; usage, filled in by
// newApp, is the command's synopsis, printed with it.
type usageError struct{ msg, usage string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	var ie interruptedError
	var ne *net.OpError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ie):
		return 128 + int(ie.sig)
	case errors.Is(err, errInUse):
		return exitInUse
	case errors.Is(err, peer.ErrSourceUnreadable):
		return exitUnreadable
	case errors.As(err, &ue), errors.Is(err, peer.ErrAmbiguousPeer):
		return exitUsage
	case errors.Is(err, peer.ErrRefused):
		return exitRefused
	case errors.Is(err, peer.ErrIncomplete):
		return exitIncomplete
	case errors.As(err, &ne) && ne.Op == "dial",
		errors.Is(err, peer.ErrUnknownPeer), errors.Is(err, peer.ErrNotSendable),
		errors.Is(err, peer.ErrHandshake), errors.Is(err, peer.ErrTurnedAway):
		return exitUnreachable
	case errors.Is(err, peer.ErrWrongKey), errors.Is(err, peer.ErrKeyChanged):
		return exitUntrusted
	case strings.HasPrefix(err.Error(), "flag provided but not defined"),
		strings.HasPrefix(err.Error(), "Required flag"):
		return exitUsage
	}
	return exitFailure
}

// agentName is the default shown for the name of a command other than
// serve: the running agent's (see applySharedConfig), else name.
func agentName(name string) string {
	return fmt.Sprintf("the running agent's, else %q", name)
}

// flagError rewords the flag package's parse errors: "flag provided but
// not defined: -bogus" says "unknown option --bogus".
func flagError(err error) string {
	msg := err.Error()
	dashes := func(name string) string { return "--" + strings.TrimLeft(name, "-") }
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return "unknown option " + dashes(name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return "option " + dashes(name) + " needs a value"
	}
	// invalid value "xyz" for flag -wait: parse error
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if v, after, ok := strings.Cut(rest, " for flag "); ok {
			if name, why, ok := strings.Cut(after, ": "); ok {
				return fmt.Sprintf("%s: invalid value %s (%s)", dashes(name), v, why)
			}
		}
	}
	return msg
}

// oneLine keeps an error message to one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}

func newApp(stdout, stderr io.Writer) *cli.App {
	def := peer.DefaultConfig()
	ifaceFlag := &cli.StringSliceFlag{Name: "iface", Usage: "use only this network interface for discovery (repeatable)", EnvVars: []string{"LANSHARE_IFACE"}}
	waitFlag := &cli.DurationFlag{Name: "wait", Usage: "how long to look for peers", Value: discovery.DefaultBrowseWait}
	configFlag := &cli.StringFlag{Name: "config", Usage: "directory for the agent's own state", Value: def.ConfigDir, EnvVars: []string{"LANSHARE_CONFIG"}}
	app := &cli.App{
		Name:                 "lanshare",
		Usage:                "share files with peers on the local network",
		Version:              buildVersion(),
		EnableBashCompletion: true,
		Writer:               stdout,
		ErrWriter:            stderr,
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			{
				Name:  "serve",
				Usage: "run the agent: receive files into the shared folder",
				Description: `Listens for transfers and accepts them into the shared folder, and
announces itself on the local network (mDNS/DNS-SD, _lanshare._tcp) so that
peers can send to it by name. The first line of output is the address the
agent listens on. It also checks its static peers (lanshare peers add)
about every 30 s, less often while one is down, and logs when one comes up,
goes down, or answers with another key.

Examples:
   lanshare serve
   lanshare serve --dir ~/Inbox --listen :0
   lanshare serve --name bob --iface eth0`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dir", Usage: "shared folder (created if missing)", Value: def.Dir, EnvVars: []string{"LANSHARE_DIR"}},
					&cli.StringFlag{Name: "name", Usage: "display name", Value: def.Name, EnvVars: []string{"LANSHARE_NAME"}},
					&cli.StringFlag{Name: "listen", Usage: "TCP address to listen on (:0 picks a free port)", Value: def.Listen, EnvVars: []string{"LANSHARE_LISTEN"}},
					configFlag,
					ifaceFlag,
					&cli.StringFlag{Name: "accept", Usage: "who may send: everyone (strangers within --stranger-budget), ask (strangers' offers wait for your answer: lanshare pending), or trusted (see lanshare trust)", Value: peer.AcceptEveryone, EnvVars: []string{"LANSHARE_ACCEPT"}},
					&cli.StringFlag{Name: "stranger-budget", Usage: "what peers that are not trusted may send together per rolling day under --accept everyone: a size (2G), a share of the free space (10%), or off", Value: "10%", EnvVars: []string{"LANSHARE_STRANGER_BUDGET"}},
					&cli.DurationFlag{Name: "ask-timeout", Usage: "how long an offer waits for your answer under --accept ask", Value: peer.DefaultAskTimeout, EnvVars: []string{"LANSHARE_ASK_TIMEOUT"}},
					&cli.StringFlag{Name: "max-size", Usage: "largest transfer accepted from a peer that is not trusted, e.g. 2G (0: only free space limits it)", Value: "0", EnvVars: []string{"LANSHARE_MAX_SIZE"}},
					&cli.StringFlag{Name: "trusted-max-size", Usage: "largest transfer accepted from a trusted peer (0: only free space limits it)", Value: "0", EnvVars: []string{"LANSHARE_TRUSTED_MAX_SIZE"}},
					&cli.BoolFlag{Name: "trusted-exec", Usage: "keep the executable bit on files from trusted peers", EnvVars: []string{"LANSHARE_TRUSTED_EXEC"}},
					&cli.BoolFlag{Name: "per-peer-folders", Usage: "put each sender's files in a folder named after it", EnvVars: []string{"LANSHARE_PER_PEER_FOLDERS"}},
					&cli.BoolFlag{Name: "save-texts", DisableDefaultText: true, Usage: "also save each text message received as a file, text-YYYYMMDD-HHMMSS.txt (default: log and history only)", EnvVars: []string{"LANSHARE_SAVE_TEXTS"}},
					&cli.StringFlag{Name: "names", Usage: "names the shared folder can hold: native (this system's), posix, or windows (also for FAT, exFAT, NTFS, SMB folders); other names are saved under a look-alike", Value: string(peer.NamesNative), EnvVars: []string{"LANSHARE_NAMES"}},
					&cli.BoolFlag{Name: "localsend", Usage: "also speak LocalSend's protocol, so LocalSend apps can send here (--localsend=false turns it off)", Value: true, EnvVars: []string{"LANSHARE_LOCALSEND"}},
					&cli.IntFlag{Name: "localsend-port", Usage: "TCP port of the LocalSend HTTPS server (LocalSend's own is 53317)", Value: localsend.DefaultPort, EnvVars: []string{"LANSHARE_LOCALSEND_PORT"}},
					&cli.StringFlag{Name: "pin", Usage: "PIN that LocalSend senders that are not trusted must give, as LocalSend's own PIN (empty: none)", EnvVars: []string{"LANSHARE_PIN"}},
					&cli.BoolFlag{Name: "web", Usage: "serve the drop page on the LocalSend port: any browser with the PIN can send here (--web=false turns it off; off under --accept trusted)", Value: true, EnvVars: []string{"LANSHARE_WEB"}},
					&cli.StringFlag{Name: "web-pin", Usage: "PIN the drop page asks for (default: 6 random digits at each start; \"\" for none)", EnvVars: []string{"LANSHARE_WEB_PIN"}},
					&cli.IntFlag{Name: "web-insecure-http", Usage: "also serve the drop page and share links over plain HTTP on this port (0: a free one), for devices that refuse the agent's certificate: the PIN and the files then cross the network unencrypted", EnvVars: []string{"LANSHARE_WEB_INSECURE_HTTP"}},
					&cli.BoolFlag{Name: "json", Usage: "log one JSON object per line (events listening, sharing, peer-up, peer-down, file-saved, error, transfer-done, ...)"},
					&cli.BoolFlag{Name: "verbose", DisableDefaultText: true, Usage: "log a line for every file received (default: the first 10 of a transfer, then a count)", EnvVars: []string{"LANSHARE_VERBOSE"}},
					&cli.BoolFlag{Name: "print-config", Usage: "print every setting, its value and where it comes from (flag, environment, config file, default), and exit"},
					&cli.DurationFlag{Name: "ttl", Usage: "TTL of the agent's mDNS records (how long peers keep it after a crash)", Value: discovery.DefaultTTL},
					&cli.DurationFlag{Name: "keep-partials", Usage: "how long an interrupted transfer's partial file is kept for a resume", Value: peer.DefaultPartialMaxAge, EnvVars: []string{"LANSHARE_KEEP_PARTIALS"}},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{msg: "serve takes no arguments"}
					}
					source, err := applyConfigFile(c, expandHome(c.String("config")))
					if err != nil {
						return err
					}
					if c.Bool("print-config") {
						return printConfig(c, source, stdout)
					}
					cfg := def
					cfg.Dir = expandHome(c.String("dir"))
					cfg.Name = c.String("name")
					cfg.Listen = c.String("listen")
					// Only the default port gives way: a port the user chose
					// is one they rely on.
					cfg.ListenAnyIfTaken = source["listen"] == "default"
					cfg.ConfigDir = expandHome(c.String("config"))
					cfg.Discover = true
					cfg.Ifaces = ifaces(c)
					cfg.DiscoveryTTL = c.Duration("ttl")
					if cfg.PartialMaxAge = c.Duration("keep-partials"); cfg.PartialMaxAge <= 0 {
						return usageError{msg: "--keep-partials must be positive"}
					}
					if cfg.MaxSize, err = parseSize(c.String("max-size")); err != nil {
						return usageError{msg: "--max-size: " + err.Error()}
					}
					if cfg.TrustedMaxSize, err = parseSize(c.String("trusted-max-size")); err != nil {
						return usageError{msg: "--trusted-max-size: " + err.Error()}
					}
					cfg.TrustedExec = c.Bool("trusted-exec")
					cfg.PerPeerFolders = c.Bool("per-peer-folders")
					cfg.SaveTexts = c.Bool("save-texts")
					cfg.LocalSend = c.Bool("localsend")
					if p := c.Int("localsend-port"); p < 0 || p > 65535 {
						return usageError{msg: fmt.Sprintf("--localsend-port %d: want 0 to 65535", p)}
					}
					cfg.LocalSendListen = localSendListen(cfg.Listen, c.Int("localsend-port"))
					cfg.LocalSendPIN = c.String("pin")
					cfg.NameRules = peer.NameRules(c.String("names"))
					if err := cfg.Validate(); errors.Is(err, peer.ErrNameRules) {
						return usageError{msg: "--names: " + err.Error()}
					}
					cfg.Accept = c.String("accept")
					if cfg.Accept != peer.AcceptEveryone && cfg.Accept != peer.AcceptAsk && cfg.Accept != peer.AcceptTrusted {
						return usageError{msg: fmt.Sprintf("--accept %q: want everyone, ask or trusted", peer.Escape(cfg.Accept))}
					}
					if cfg.Web, cfg.WebPIN, err = webSettings(c, cfg); err != nil {
						return err
					}
					if cfg.WebInsecureHTTP, err = webInsecureHTTP(c, cfg); err != nil {
						return err
					}
					if cfg.StrangerBudget, err = parseStrangerBudget(c.String("stranger-budget")); err != nil {
						return usageError{msg: "--stranger-budget " + err.Error()}
					}
					if cfg.AskTimeout = c.Duration("ask-timeout"); cfg.AskTimeout <= 0 || cfg.AskTimeout > proto.MaxWait {
						return usageError{msg: fmt.Sprintf("--ask-timeout %v: want more than 0 and at most %v", cfg.AskTimeout, proto.MaxWait)}
					}
					return serve(c.Context, cfg, c.Bool("json"), c.Bool("verbose"), stdout)
				},
			},
			{
				Name:      "send",
				Usage:     "send files and folders to a peer",
				ArgsUsage: "TARGET PATH... | --to TARGET... PATH...",
				Description: `Sends every PATH (files, and folders with everything in them) in one batch.
TARGET is a peer's display name, its instance name as "lanshare peers" shows
it, its id or an id prefix (at least 4 characters), or HOST:PORT. Names
come from the running local agent's live table, else from a look on the LAN
(--wait bounds it); a name that several peers share fails and lists them.
A record whose instance label is not the one its own name and id make
("lanshare peers" marks it suspicious) is never found by that label. A name,
instance name or id prefix pinned to a key in known_peers reaches that key
whatever other records claim, or stops with exit 6. Every address of the
peer is tried; one that answers with another key is skipped. Static peers
(lanshare peers add) are found by name, id or address without discovery,
and reach only the key they were added with (else exit 6).
Each relative path is sent once: a file named twice goes once, and two
different files that would arrive under one name are a usage error.
Exits 0 only when the receiver confirms that every file was saved.
Files the receiver already has from us are skipped; when the connection
drops, send tries again (--retries, with growing pauses) and the receiver
resumes a large file where it was cut. Sending the same paths again later
resumes the same way.
LocalSend devices (phones and computers running the LocalSend app) are
targets too, by alias, id (ls-...) or IP:PORT with --localsend: a name no
lanshare peer has is looked up among them. Their certificate is pinned on
first use like a lanshare key. LocalSend has no resume: a send that
started uploading is never repeated, and empty folders cannot be sent.
With --to TARGET (repeatable) in place of TARGET, every argument is a path
and the same batch goes to every target at once (names may hold spaces
and commas): each its own connection and retries, progress bar (into a
pipe: lines that start "TARGET: ") and summary line. The paths are
collected once. It exits 0 only when every target confirmed every file;
else with the exit code of the first --to, in the order given, that
failed, after a line per failure. A LocalSend device among them that asks
for a PIN gets --pin; it is not asked for on the terminal.
--exclude PATTERN (repeatable) leaves out what a gitignore-style pattern
matches, in the paths as they arrive: "*.tmp" and "node_modules/" (a
folder) at any depth, "/build" or "photos/raw" (a leading or inner slash)
from the top, "**/cache", "logs/**", and "!keep.tmp" to bring back what an
earlier pattern left out. An excluded folder is not read at all; the
summary counts what was excluded.
With --text MESSAGE, send sends a text message (at most 64 KiB of UTF-8)
instead of files: the receiving agent logs it and keeps it in its history,
a LocalSend device shows it. --text - reads it from standard input (a last
newline is left out). A message is never sent twice: it is not retried.
With "-" and --as NAME, send sends standard input, whatever its size, as
one file named NAME (a pipe, alone: not with other paths, and not to a
LocalSend device, which needs a file's size first). The receiver checks
its digest before it gets its name. A pipe cannot be read again: a send
of it that breaks off is not retried or resumed, and the receiver keeps
nothing of it.
With --later the send goes to the queue of the agent running here, which
delivers it once the peer is online, to the key the name is known by now
(lanshare queue lists and cancels jobs); LocalSend devices cannot be queued.

Examples:
   lanshare send bob report.pdf
   lanshare send bob --text "the door code is 4711"
   git log -1 | lanshare send bob --text -
   tar c photos | lanshare send bob --as photos.tar -
   lanshare send --later bob report.pdf
   lanshare send "Pixel 9" photo.jpg
   lanshare send "bob (3fa2)" photos/ notes.txt
   lanshare send 192.168.1.20:52741 report.pdf
   lanshare send --to bob --to "Pixel 9" --to "Smith, Anna" report.pdf
   lanshare send bob project/ --exclude node_modules/ --exclude '*.tmp'`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "display name to announce", Value: def.Name, DefaultText: agentName(def.Name), EnvVars: []string{"LANSHARE_NAME"}},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
					&cli.BoolFlag{Name: "verbose", DisableDefaultText: true, Usage: "when not on a terminal, print a line for every file sent (default: the first 10, then the summary)"},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line: offer, retry, file-saved, file-skipped, error, transfer-done"},
					&cli.IntFlag{Name: "retries", Usage: "how many times in a row to reconnect after the connection drops without progress (0: never)", Value: peer.DefaultRetries},
					&cli.BoolFlag{Name: "localsend", Usage: "the target is a LocalSend device (its alias, id or IP:PORT); without it, a name no lanshare peer has is looked up among LocalSend devices"},
					&cli.StringFlag{Name: "pin", Usage: "PIN to give a LocalSend device that asks for one (on a terminal you are asked)", EnvVars: []string{"LANSHARE_SEND_PIN"}},
					&cli.GenericFlag{Name: "to", Value: &listFlag{}, Usage: "a peer to send to (repeatable: every one gets the same files, at once); the arguments are then all paths"},
					&cli.GenericFlag{Name: "exclude", Value: &listFlag{}, Usage: "leave out what this gitignore-style pattern matches (repeatable): *.tmp, node_modules/, /photos/raw, **/cache, !keep.tmp"},
					&cli.StringFlag{Name: "text", Usage: "send this text message instead of files (\"-\": read it from standard input); at most 64 KiB"},
					&cli.StringFlag{Name: "as", Usage: "the name standard input (given as the path -) arrives under"},
					&cli.BoolFlag{Name: "later", Usage: "hand the send to the local agent, which delivers it when the peer is online (lanshare queue lists it)"},
					waitFlag,
					ifaceFlag,
					configFlag,
				},
				Action: func(c *cli.Context) error {
					if c.Bool("later") {
						for _, f := range []string{"text", "as", "exclude"} {
							if c.IsSet(f) {
								return usageError{msg: fmt.Sprintf("--%s does not go with --later: the agent queues files and folders, whole", f)}
							}
						}
					}
					text, err := textArg(c, os.Stdin, stderr)
					if err != nil {
						return err
					}
					targets, paths, exclude, err := sendCommand(c, text != nil)
					if err != nil {
						return err
					}
					ifs, err := lookupIfaces(c)
					if err != nil {
						return err
					}
					if c.Int("retries") < 0 {
						return usageError{msg: "--retries must be 0 or more"}
					}
					if c.Bool("later") {
						return sendLaterCommand(c, targets, paths, stdout, stderr)
					}
					a := sendArgs{text: text,
						target: targets[0], paths: paths, name: c.String("name"), retries: c.Int("retries"),
						quiet: c.Bool("quiet"), json: c.Bool("json"), verbose: c.Bool("verbose"), stdout: stdout, stderr: stderr,
						configDir: expandHome(c.String("config")),
						resolve:   peer.ResolveOptions{Ifaces: ifs, Wait: c.Duration("wait")},
						localsend: c.Bool("localsend"), pin: c.String("pin"), exclude: exclude,
						as: c.String("as"), stdin: stdinFile,
					}
					if len(targets) > 1 {
						return sendMulti(c.Context, a, targets)
					}
					return send(c.Context, a)
				},
			},
			{
				Name:  "id",
				Usage: "print this device's name and id",
				Description: `Prints the display name, the instance name peers see, and the id: the
fingerprint of this device's key, in groups of four. Compare it with what a
peer's "lanshare trusted" shows before you trust each other. Creates the
identity on first use.

Example:
   lanshare id`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "display name", Value: def.Name, DefaultText: agentName(def.Name), EnvVars: []string{"LANSHARE_NAME"}},
					configFlag,
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{msg: "id takes no arguments"}
					}
					return showID(expandHome(c.String("config")), c.String("name"), stdout)
				},
			},
			{
				Name:      "trust",
				Usage:     "trust a peer: it may send to an agent run with --accept trusted",
				ArgsUsage: "NAME|ID",
				Description: `Marks a peer trusted, by its full id (needs no network) or by a name, an
instance name or an id prefix looked up on the LAN as send does.

Trusting never forgets another key: when the peer's name is pinned to
another id, the id is trusted without the name, and sends by that name
still reach only the pinned key. To accept a peer's new key in place of its
old one (after checking the new id with its owner: lanshare id), give the
whole id with --replace: the id takes the name, and every other id pinned
or trusted under it is forgotten.

Examples:
   lanshare trust bob
   lanshare trust 3fa2-mvqc-...
   lanshare trust --replace 3fa2-mvqc-...`,
				Flags: []cli.Flag{waitFlag, ifaceFlag, configFlag,
					&cli.BoolFlag{Name: "replace", Usage: "accept this whole id as the new key of its name: forget the other ids pinned or trusted under that name"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 || c.Args().First() == "" {
						return usageError{msg: "trust needs one peer: lanshare trust NAME|ID"}
					}
					ifs, err := lookupIfaces(c)
					if err != nil {
						return err
					}
					return trust(c.Context, expandHome(c.String("config")), c.Args().First(), c.Bool("replace"),
						peer.ResolveOptions{Ifaces: ifs, Wait: c.Duration("wait")}, stdout)
				},
			},
			{
				Name:      "untrust",
				Usage:     "stop trusting a peer (its name stays pinned to its key unless --forget)",
				ArgsUsage: "NAME|ID",
				Description: `Takes the trust away from the known peers with that name, id or id prefix.
Each keeps its name pinned to its id, as a send pins it, so a device that
takes the name later is still caught. With --forget, removes the entries,
pin and all.

Examples:
   lanshare untrust bob
   lanshare untrust --forget bob`,
				Flags: []cli.Flag{configFlag,
					&cli.BoolFlag{Name: "forget", Usage: "forget the peer altogether: its trust and its pinned key"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 || c.Args().First() == "" {
						return usageError{msg: "untrust needs one peer: lanshare untrust NAME|ID"}
					}
					return untrust(expandHome(c.String("config")), c.Args().First(), c.Bool("forget"), stdout)
				},
			},
			{
				Name:  "trusted",
				Usage: "list the peers you trusted, then the names a send pinned to keys",
				Description: `Lists the peers trusted with lanshare trust (name, level and id), then,
in a section of their own, the peers only pinned: names bound to keys on the
first send (level seen), which are not trusted. With --all, lists the whole
known-peers file of the config directory (known_peers, one peer per line,
editable) in one table.

Examples:
   lanshare trusted
   lanshare trusted --all`,
				Flags: []cli.Flag{configFlag,
					&cli.BoolFlag{Name: "all", Usage: "list every known peer in one table, in file order"}},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{msg: "trusted takes no arguments"}
					}
					return listTrusted(expandHome(c.String("config")), c.Bool("all"), stdout)
				},
			},
			{
				Name:  "status",
				Usage: "show whether the local agent runs, and what it sees",
				Description: `Asks the agent that runs with this config directory, over its owner-only
control socket, for its name, id, listen address, shared folder, accept
policy and the peers it currently sees. Exits 1 when no agent runs.

Examples:
   lanshare status
   lanshare status --json`,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print the status as one JSON object"},
					configFlag,
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{msg: "status takes no arguments"}
					}
					return status(c.Context, expandHome(c.String("config")), c.Bool("json"), stdout)
				},
			},
			{
				Name:  "history",
				Usage: "list what arrived: when, from whom (name and id), saved as what",
				Description: `Reads the history the agent keeps in its config directory (history.jsonl
and up to 15 older segments, history.1.jsonl to history.15.jsonl, 32 MiB in
all: the oldest segment is dropped when the newest fills; that keeps the
last 100,000 files, and some 500,000 of ordinary names), oldest first.
Text messages show in the table as "message: ..." on one line; --text lists
only them, each in full.

Examples:
   lanshare history
   lanshare history --text
   lanshare history --json | jq 'select(.from == "bob")'`,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line: time, from, id, remote, path, saved_as, size, text"},
					&cli.BoolFlag{Name: "text", Usage: "list only text messages, each in full, a line of the message per line"},
					configFlag,
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{msg: "history takes no arguments"}
					}
					if c.Bool("text") {
						return showTexts(expandHome(c.String("config")), c.Bool("json"), stdout)
					}
					return showHistory(expandHome(c.String("config")), c.Bool("json"), stdout)
				},
			},
			{
				Name:  "peers",
				Usage: "list the agents on the local network",
				Description: `Looks for lanshare agents for --wait and lists each once: display name,
short id, addresses and protocol version. This device's own agent is marked.
Needs no running agent. With --watch it keeps listing peers as they come and
go until interrupted.

Static peers, named by address where discovery does not reach (see
"lanshare peers add"), are listed too, marked static with their state: up,
down, or key changed (never sent to). The running agent's last check gives
the state; without one they are checked now. --watch lists only what
discovery finds.

Examples:
   lanshare peers
   lanshare peers --json
   lanshare peers --watch --iface wlan0
   lanshare peers add 10.0.5.7
   lanshare peers static`,
				Flags: []cli.Flag{
					waitFlag,
					&cli.BoolFlag{Name: "json", Usage: "print JSON (an array; with --watch, one event object per line)"},
					&cli.BoolFlag{Name: "watch", Usage: "keep watching: print peers as they join and leave"},
					&cli.BoolFlag{Name: "scan", Usage: "also ask every address of the local /24 for a LocalSend device on port 53317 (for networks where multicast does not pass; takes a few seconds)"},
					ifaceFlag,
					configFlag,
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{msg: fmt.Sprintf("peers takes no arguments, and has no command %s (its commands: add, remove, static)", peer.Escape(c.Args().First()))}
					}
					if c.Duration("wait") <= 0 {
						return usageError{msg: "--wait must be positive"}
					}
					ifs, err := lookupIfaces(c)
					if err != nil {
						return err
					}
					return peers(c.Context, peersArgs{
						wait: c.Duration("wait"), json: c.Bool("json"), watch: c.Bool("watch"),
						ifaces: ifs, configDir: expandHome(c.String("config")), stdout: stdout, stderr: stderr, name: def.Name, scan: c.Bool("scan"),
					})
				},
				Subcommands: staticCommands(configFlag, stdout),
			},
		},
	}
	app.Commands = append(app.Commands, consentCommands(configFlag, stdout)...)
	app.Commands = append(app.Commands, shareCommand(configFlag, stdout))
	app.Commands = append(app.Commands, queueCommand(configFlag, stdout))
	app.Commands = append(app.Commands,
		&cli.Command{
			Name:      "completion",
			Usage:     "print a shell completion script (bash, zsh or fish)",
			ArgsUsage: "bash|zsh|fish",
			Description: `Prints a script that completes lanshare's commands and flags.

Examples:
   eval "$(lanshare completion bash)"      # in ~/.bashrc
   source <(lanshare completion zsh)       # in ~/.zshrc
   lanshare completion fish > ~/.config/fish/completions/lanshare.fish`,
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageError{msg: "completion needs one shell: bash, zsh or fish"}
				}
				return completion(app, c.Args().First(), stdout)
			},
		},
		&cli.Command{
			Name:  "man",
			Usage: "print the manual page, lanshare(1), in roff",
			Description: `Example:
   lanshare man > ~/.local/share/man/man1/lanshare.1`,
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return usageError{msg: "man takes no arguments"}
				}
				return manPage(app, stdout)
			},
		})
	addCompletion(app)
	// "lanshare bogus": urfave/cli would look for a help topic.
	app.Action = func(c *cli.Context) error {
		if c.Args().Present() {
			return usageError{msg: fmt.Sprintf("no command %s (lanshare --help lists them)", peer.Escape(c.Args().First()))}
		}
		return cli.ShowAppHelp(c)
	}
	app.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
		return usageError{msg: flagError(err) + " (lanshare --help lists the options)"}
	}
	var commands []*cli.Command // with the subcommands, and the prefix of their synopsis
	var prefixes []string
	for _, c := range app.Commands {
		commands, prefixes = append(commands, c), append(prefixes, "lanshare ")
		for _, sub := range c.Subcommands {
			commands, prefixes = append(commands, sub), append(prefixes, "lanshare "+c.Name+" ")
		}
	}
	for i, c := range commands {
		// No command needs a "help" subcommand (help is --help), and
		// completion must not offer it in place of file names.
		c.HideHelpCommand = true
		action, synopsis := c.Action, strings.TrimSpace(prefixes[i]+c.Name+" [options] "+c.ArgsUsage)
		// A flag it does not know, or one without its value: one line
		// and the synopsis, as for the other usage errors, not the
		// whole help.
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return usageError{msg: flagError(err), usage: synopsis}
		}
		c.Action = func(ctx *cli.Context) error {
			err := error(nil)
			if c.Name != "serve" { // serve reads the whole file itself
				err = applySharedConfig(ctx)
			}
			if err == nil {
				err = action(ctx)
			}
			var ue usageError
			if errors.As(err, &ue) && ue.usage == "" {
				ue.usage = synopsis
				return ue
			}
			return err
		}
	}
	return app
}

// missingIfaces returns the names in names that no network interface has.
func missingIfaces(names []string) []string {
	var missing []string
	for _, n := range names {
		if _, err := net.InterfaceByName(n); err != nil {
			missing = append(missing, n)
		}
	}
	return missing
}

// lookupIfaces is ifaces for the commands that browse once: an interface
// that does not exist is a usage error, not an empty result.
func lookupIfaces(c *cli.Context) ([]string, error) {
	names := ifaces(c)
	if missing := missingIfaces(names); len(missing) > 0 {
		var have []string
		if all, err := net.Interfaces(); err == nil {
			for _, ifi := range all {
				have = append(have, ifi.Name)
			}
		}
		return nil, usageError{msg: fmt.Sprintf("no network interface named %s (there are: %s)",
			peer.Escape(missing[0]), strings.Join(have, ", "))}
	}
	return names, nil
}

// ifaces is the --iface list; each value may also be a comma-separated
// list, as LANSHARE_IFACE is.
func ifaces(c *cli.Context) []string {
	var out []string
	for _, v := range c.StringSlice("iface") {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// parseSize reads a byte count: a number with an optional unit k, M, G
// or T (powers of 1000, as FormatBytes prints; "B" and "iB" forms are
// accepted too: 4G, 4GB, 4GiB, 1.5T, 500000).
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r > '9' || r < '0' && r != '.' })
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "kib": 1 << 10,
		"m": 1e6, "mb": 1e6, "mib": 1 << 20,
		"g": 1e9, "gb": 1e9, "gib": 1 << 30,
		"t": 1e12, "tb": 1e12, "tib": 1 << 40,
	}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || f < 0 || f*mult >= 1<<63 {
		return 0, fmt.Errorf("%q is not a size (e.g. 500M, 4G)", s)
	}
	return uint64(f * mult), nil
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return home + p[1:]
		}
	}
	return p
}

// signalContext is ctx, cancelled on SIGINT or SIGTERM with an
// interruptedError cause (see interruption). The CancelFunc stops the
// signal handling and waits for it.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case s := <-c:
			sig, _ := s.(syscall.Signal)
			cancel(interruptedError{sig: sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(c)
		cancel(nil)
		<-done
	}
}

// interruptedError ends a command stopped by a signal; it exits 128 plus
// the signal's number (130 for SIGINT, 143 for SIGTERM), as shells do.
type interruptedError struct {
	sig  syscall.Signal
	what string // what was done when it came, for the message
}

func (e interruptedError) Error() string {
	if e.what == "" {
		return "interrupted"
	}
	return "interrupted: " + e.what
}

// interruption returns the signal that cancelled a signalContext, if one
// did.
func interruption(ctx context.Context) (syscall.Signal, bool) {
	var ie interruptedError
	if errors.As(context.Cause(ctx), &ie) {
		return ie.sig, true
	}
	return 0, false
}

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// localSendListen is the address of the LocalSend server: the host the
// agent listens on, and port.
func localSendListen(listen string, port int) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
)

// Shell completion scripts. Each asks lanshare itself for the words that
// fit (urfave/cli's --generate-bash-completion, extended by completeArgs),
// so they follow the commands and flags as they change; where lanshare
// offers nothing (a path), they fall back to file names. Peer names come
// from the running agent's control socket; nothing here sends a packet.
const bashCompletion = `# bash completion for lanshare; load with: eval "$(lanshare completion bash)"
_lanshare() {
	local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\n' i
	local -a args=("${COMP_WORDS[@]:1:COMP_CWORD-1}")
	[[ $cur == -* ]] && args+=("$cur")
	COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${args[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
	if [[ ${#COMPREPLY[@]} -eq 0 ]]; then
		compopt -o default
	fi
	# A peer name may hold spaces: quote what is inserted.
	for i in "${!COMPREPLY[@]}"; do
		COMPREPLY[i]=$(printf '%q' "${COMPREPLY[i]}")
	done
}
complete -F _lanshare lanshare
`

const zshCompletion = `#compdef lanshare
# zsh completion for lanshare; load with: source <(lanshare completion zsh),
# or install as _lanshare in a directory of $fpath.
_lanshare() {
	local -a args opts
	args=(${words[2,CURRENT-1]})
	[[ ${words[CURRENT]} == -* ]] && args+=(${words[CURRENT]})
	opts=("${(@f)$(_LANSHARE_COMPLETE=zsh ${words[1]} ${args[@]} --generate-bash-completion 2>/dev/null)}")
	if [[ -n ${opts[1]} ]]; then
		_describe 'lanshare' opts
	else
		_files
	fi
}
if [[ ${funcstack[1]} == _lanshare ]]; then
	# Autoloaded from $fpath: this file is the body of _lanshare.
	_lanshare "$@"
else
	compdef _lanshare lanshare
fi
`

// fishCompletion is added to urfave/cli's fish script (which completes
// commands and flag names): peer names and flag values, asked of lanshare
// as the bash script does.
const fishCompletion = `
function __lanshare_complete --description 'Ask lanshare for the words that fit here'
    set -l args (commandline -opc)
    $args[1] $args[2..-1] --generate-bash-completion 2>/dev/null
end
complete -c lanshare -n '__fish_seen_subcommand_from send trust' -a '(__lanshare_complete)'
`

// completion prints the completion script for shell.
func completion(app *cli.App, shell string, w io.Writer) error {
	switch shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(w, zshCompletion)
		return err
	case "fish":
		s, err := app.ToFishCompletion()
		if err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString(s)
		b.WriteString(fishCompletion)
		for _, c := range app.Commands {
			for _, f := range c.Flags {
				if flagValues[f.Names()[0]] != nil || peerFlags[f.Names()[0]] {
					fmt.Fprintf(&b, "complete -c lanshare -n '__fish_seen_subcommand_from %s' -l %s -x -a '(__lanshare_complete)'\n", c.Name, f.Names()[0])
				}
			}
		}
		_, err = io.WriteString(w, b.String())
		return err
	}
	return usageError{msg: fmt.Sprintf("no completion for shell %q: want bash, zsh or fish", shell)}
}

// completionWait bounds how long completion asks the agent for peer names:
// a shell must not hang on a stuck agent.
const completionWait = 300 * time.Millisecond

// flagValues are the values completion offers after a flag, by flag name.
var flagValues = map[string]func() []string{
	"accept": func() []string { return []string{peer.AcceptEveryone, peer.AcceptTrusted, peer.AcceptAsk} },
	"iface":  interfaceNames,
}

// interfaceNames lists the machine's network interfaces that are up.
func interfaceNames() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var names []string
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp != 0 {
			names = append(names, ifi.Name)
		}
	}
	return names
}

// addCompletion makes every command of app complete flag values, and send
// and trust complete their first argument with the names of the peers the
// running agent sees.
func addCompletion(app *cli.App) {
	for _, c := range app.Commands {
		c.BashComplete = completeArgs(c, c.Name == "send" || c.Name == "trust")
	}
}

// completeArgs is c's completion: after a flag that takes a value, the
// values flagValues knows (else nothing, so the shell offers file names);
// while a flag name is being typed, the flags (urfave/cli's completion);
// for the first argument, c's subcommands, and when peerArg is set, the
// peers the local agent sees. Like urfave/cli's own completion it reads the word before
// --generate-bash-completion from os.Args: after a flag that lacks its
// value, the parsed context cannot tell.
func completeArgs(c *cli.Command, peerArg bool) cli.BashCompleteFunc {
	flags := cli.DefaultCompleteWithFlags(c)
	return func(ctx *cli.Context) {
		w := ctx.App.Writer
		var last string
		if n := len(os.Args); n > 2 {
			last = os.Args[n-2]
		}
		if strings.HasPrefix(last, "-") {
			f := flagNamed(c, last)
			if f == nil {
				flags(ctx)
				return
			}
			if df, ok := f.(cli.DocGenerationFlag); ok && df.TakesValue() {
				if peerArg && peerFlags[f.Names()[0]] {
					printPeerNames(ctx)
					return
				}
				if values := flagValues[f.Names()[0]]; values != nil {
					for _, v := range values() {
						fmt.Fprintln(w, v)
					}
				}
				return
			}
		}
		if ctx.NArg() == 0 {
			// peers add, remove, static.
			for _, sub := range c.Subcommands {
				if !sub.Hidden {
					fmt.Fprintln(w, sub.Name)
				}
			}
		}
		if peerArg && ctx.NArg() == 0 && !sentWithTo(ctx) {
			printPeerNames(ctx)
		}
	}
}

// peerFlags are the flags whose value is a peer name: completion offers
// the peers the local agent sees after them.
var peerFlags = map[string]bool{"to": true}

// sentWithTo reports whether the command line has send's --to: its
// arguments are then all paths.
func sentWithTo(ctx *cli.Context) bool {
	return len(listValues(ctx, "to")) > 0
}

// printPeerNames prints the names of the peers the agent running with
// ctx's config directory sees (with their instance names, for zsh).
func printPeerNames(ctx *cli.Context) {
	w := ctx.App.Writer
	qctx, cancel := context.WithTimeout(context.Background(), completionWait)
	defer cancel()
	for _, p := range agentPeerNames(qctx, expandHome(ctx.String("config"))) {
		if os.Getenv("_LANSHARE_COMPLETE") == "zsh" {
			fmt.Fprintf(w, "%s:%s\n", strings.ReplaceAll(p[0], ":", `\:`), p[1])
		} else {
			fmt.Fprintln(w, p[0])
		}
	}
}

// flagNamed returns c's flag that arg (-x, --name) names in full, or nil.
func flagNamed(c *cli.Command, arg string) cli.Flag {
	name := strings.TrimLeft(arg, "-")
	for _, f := range c.Flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// agentPeerNames asks the agent that runs with config directory dir for
// the peers it sees and its static peers, and returns for each the word to type (its display
// name; its instance name when several peers share the name; its short id
// when the name is not plain printable text) and a description. It never
// browses: without an agent, or when the agent does not answer before
// ctx is done, it returns nothing.
func agentPeerNames(ctx context.Context, dir string) [][2]string {
	st, err := peer.QueryAgent(ctx, dir)
	if err != nil {
		return nil
	}
	peers := st.Peers
	for _, s := range st.Static {
		// Static peers that discovery does not find too.
		if s.ID != "" && !slices.ContainsFunc(peers, func(p discovery.Peer) bool { return p.ID == s.ID }) {
			peers = append(peers, discovery.Peer{Instance: s.Peer().Instance(), Name: s.Name, ID: s.ID})
		}
	}
	count := map[string]int{}
	for _, p := range peers {
		count[p.Name]++
	}
	var out [][2]string
	for _, p := range peers {
		if p.Instance == st.Instance || p.Name == "" {
			continue
		}
		word := p.Name
		if count[p.Name] > 1 {
			word = p.Instance
		}
		if peer.Escape(word) != word || strings.HasPrefix(word, "-") {
			if len(p.ID) < 8 {
				continue
			}
			word = peer.ShortID(p.ID)
		}
		out = append(out, [2]string{word, p.Instance})
	}
	return out
}

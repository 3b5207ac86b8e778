package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst reorders a command line so that a command's flags may follow
// its arguments, as people type them ("lanshare send bob report.pdf
// --quiet"): urfave/cli, like Go's flag package, stops at the first
// argument. For a command with subcommands (peers add), the subcommand
// named after the command's own flags is the command whose flags move.
// Every flag of the command found before "--" moves in front of
// the arguments, with its value when it takes one (--wait 2s); the
// arguments keep their order, behind a "--" so that none is read as a
// flag. A lone "-" is an argument. Everything after a "--" the user typed
// stays an argument. A command line with no command, an unknown command,
// a last flag whose value is missing, or a completion request is returned
// as it is.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	ci := 1
	for ci < len(args) && strings.HasPrefix(args[ci], "-") && args[ci] != "-" && args[ci] != "--" {
		ci++
	}
	if ci >= len(args) {
		return args
	}
	cmd := app.Command(args[ci])
	if cmd == nil {
		return args
	}
	prefix, rest := args[:ci+1], args[ci+1:]
	if sub, n := subcommand(cmd, rest); sub != nil {
		// "peers add HOST --unverified": the subcommand's flags move;
		// the command's own, before the subcommand's name, stay.
		prefix, rest, cmd = args[:ci+1+n], args[ci+1+n:], sub
	}
	var flags, plain []string
	dashes, moved := false, false
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			plain = append(plain, rest[i+1:]...)
			dashes = true
			i = len(rest)
		case a == "-" || !strings.HasPrefix(a, "-"):
			plain = append(plain, a)
		default:
			moved = moved || len(plain) > 0
			flags = append(flags, a)
			if takesValue(cmd, a) {
				if i+1 == len(rest) {
					// Its value is missing: cli says so, given the flag
					// alone (after a path it would take it for one).
					return append(append([]string{}, prefix...), a)
				}
				i++
				flags = append(flags, rest[i])
			}
		}
	}
	if !dashes && !moved {
		return args // nothing to move
	}
	out := append([]string{}, prefix...)
	out = append(out, flags...)
	if len(plain) > 0 {
		out = append(out, "--")
	}
	return append(out, plain...)
}

// subcommand returns the subcommand of cmd that rest names after cmd's
// own flags, and how many tokens of rest it takes up to its name; nil if
// rest names none.
func subcommand(cmd *cli.Command, rest []string) (*cli.Command, int) {
	if len(cmd.Subcommands) == 0 {
		return nil, 0
	}
	i := 0
	for i < len(rest) && strings.HasPrefix(rest[i], "-") && rest[i] != "-" && rest[i] != "--" {
		if takesValue(cmd, rest[i]) {
			i++
		}
		i++
	}
	if i >= len(rest) {
		return nil, 0
	}
	if sub := cmd.Command(rest[i]); sub != nil {
		return sub, i + 1
	}
	return nil, 0
}

// takesValue reports whether the flag token a ("--wait", "-q") of cmd
// takes the next token as its value: a known flag that is not boolean and
// has no "=value" of its own. An unknown flag takes nothing: cli reports
// it.
func takesValue(cmd *cli.Command, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range append(cmd.Flags, cli.HelpFlag) {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, ok := f.(*cli.BoolFlag); ok {
				return false
			}
			return true
		}
	}
	return false
}

// swappedSend returns the command line the user probably meant when send's
// target is an existing file and its last path does not exist ("lanshare
// send report.pdf bob"), or "" when the arguments look right.
func swappedSend(target string, paths []string) string {
	if len(paths) == 0 || strings.Contains(target, ":") {
		return ""
	}
	last := paths[len(paths)-1]
	if _, err := os.Lstat(target); err != nil {
		return ""
	}
	if _, err := os.Lstat(last); err == nil || last == "" {
		return ""
	}
	words := []string{"lanshare", "send", shellQuote(last), shellQuote(target)}
	for _, p := range paths[:len(paths)-1] {
		words = append(words, shellQuote(p))
	}
	return strings.Join(words, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/+=:,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// swappedError is the usage error for a send whose target and paths seem
// swapped.
func swappedError(target, last, meant string) error {
	return usageError{msg: fmt.Sprintf("%s is not a file here and %s is: did you mean: %s?", shellQuote(last), shellQuote(target), meant)}
}

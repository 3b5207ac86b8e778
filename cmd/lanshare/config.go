package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
)

// configFile is the optional file in the config directory that gives
// serve's settings below flags and the environment: one "flag = value" per
// line, "#" comments, list values comma-separated.
const configFile = "config"

// sharedSettings are the settings of serve that the other commands take
// from the config file too, when they have the flag: the name the agent
// presents and the interfaces it looks on are one for every command.
var sharedSettings = []string{"name", "iface"}

// applyConfigFile sets each of c's flags that neither the command line nor
// the environment set from the config file in dir. It returns where every
// flag's value came from, for --print-config.
func applyConfigFile(c *cli.Context, dir string) (map[string]string, error) {
	return applyConfig(c, dir, nil)
}

// applySharedConfig gives a command other than serve the shared settings
// it has from the same chain as serve: flags, then the environment, then
// the config file. The name then comes, when neither a flag nor the
// environment gave it, from the agent running with this config directory
// (what it announces, whatever set it), else the config file, else the
// default. Lines of the config file for serve's other settings are left
// to serve; lines that are no setting of serve fail as they do for serve.
func applySharedConfig(c *cli.Context) error {
	if !hasFlag(c.Command, "config") {
		return nil
	}
	dir := expandHome(c.String("config"))
	var only []string
	for _, name := range sharedSettings {
		if hasFlag(c.Command, name) {
			only = append(only, name)
		}
	}
	allowed := func(string) bool { return false }
	if serve := c.App.Command("serve"); serve != nil {
		allowed = func(name string) bool { return hasFlag(serve, name) }
	}
	source, err := applyConfig(c, dir, &sharedOnly{names: only, serves: allowed})
	if err != nil {
		return err
	}
	if !hasFlag(c.Command, "name") {
		return nil
	}
	if src := source["name"]; src != "default" && src != filepath.Join(dir, configFile) {
		return nil // the command line or the environment
	}
	if st, err := peer.QueryAgent(c.Context, dir); err == nil && st.Name != "" {
		return c.Set("name", st.Name)
	}
	return nil
}

// sharedOnly narrows applyConfig to names, for a command other than serve;
// serves reports whether a name is one of serve's settings.
type sharedOnly struct {
	names  []string
	serves func(string) bool
}

func hasFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// applyConfig is applyConfigFile; with shared, only the shared settings
// are set.
func applyConfig(c *cli.Context, dir string, shared *sharedOnly) (map[string]string, error) {
	source := map[string]string{}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		switch {
		case !c.IsSet(name):
			source[name] = "default"
		case fromEnv(f) != "" && !onCommandLine(f):
			source[name] = "environment " + fromEnv(f)
		default:
			source[name] = "command line"
		}
	}
	path := filepath.Join(dir, configFile)
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return source, nil
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		bad := func(why string) error {
			return usageError{msg: fmt.Sprintf("%s line %d: %s", path, n, why)}
		}
		src, known := source[name]
		if shared != nil {
			known = shared.serves(name)
		}
		switch {
		case !ok:
			return nil, bad(`want "flag = value"`)
		case !known || name == "config" || name == "print-config" || name == "help":
			return nil, bad(fmt.Sprintf("%q is not a setting of serve", name))
		case shared != nil && !slices.Contains(shared.names, name):
			continue // serve's alone
		case src != "default":
			continue // the command line or the environment wins
		}
		for _, v := range splitList(c, name, value) {
			if err := c.Set(name, v); err != nil {
				return nil, bad(fmt.Sprintf("%s: %v", name, err))
			}
		}
		source[name] = path
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return source, nil
}

// splitList splits a list flag's value at commas; other values stay whole.
func splitList(c *cli.Context, name, value string) []string {
	for _, f := range c.Command.Flags {
		if _, ok := f.(*cli.StringSliceFlag); ok && slices.Contains(f.Names(), name) {
			var out []string
			for _, v := range strings.Split(value, ",") {
				if v = strings.TrimSpace(v); v != "" {
					out = append(out, v)
				}
			}
			return out
		}
	}
	return []string{value}
}

// fromEnv names the environment variable that sets f, or "".
func fromEnv(f cli.Flag) string {
	ef, ok := f.(interface{ GetEnvVars() []string })
	if !ok {
		return ""
	}
	for _, e := range ef.GetEnvVars() {
		if _, ok := os.LookupEnv(e); ok {
			return e
		}
	}
	return ""
}

// onCommandLine reports whether f was given on the command line.
func onCommandLine(f cli.Flag) bool {
	for _, a := range os.Args[1:] {
		if a == "--" {
			break
		}
		for _, n := range f.Names() {
			for _, p := range []string{"-" + n, "--" + n} {
				if a == p || strings.HasPrefix(a, p+"=") {
					return true
				}
			}
		}
	}
	return false
}

// unsetMeans says what serve does with a setting that is not set, where
// its zero value, given, means something else.
var unsetMeans = map[string]string{
	"web-insecure-http": "no plain-HTTP port (0 would pick a free one)",
	"web-pin":           `6 random digits at each start ("" would be no PIN)`,
}

// printConfig prints every serve setting, its effective value and where
// it came from.
func printConfig(c *cli.Context, source map[string]string, w io.Writer) error {
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if name == "print-config" || name == "help" {
			continue
		}
		if what, ok := unsetMeans[name]; ok && !c.IsSet(name) {
			// Its zero value would mean something else if given: shown
			// as a comment, which a config file may hold as it is.
			fmt.Fprintf(w, "# %s is not set: %s  # default\n", name, what)
			continue
		}
		var v string
		switch f.(type) {
		case *cli.StringSliceFlag:
			v = strings.Join(c.StringSlice(name), ", ")
		default:
			v = fmt.Sprint(c.Value(name))
		}
		fmt.Fprintf(w, "%s = %s  # %s\n", name, peer.Escape(v), source[name])
	}
	return nil
}

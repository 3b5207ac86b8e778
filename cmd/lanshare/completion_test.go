package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

// complete runs the binary as a completion script would, with HOME and
// the config home in a new temporary directory.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	return completeOn(t, local, args...)
}

// completeOn is complete with the process made by run.
func completeOn(t testing.TB, run commandFunc, args ...string) []string {
	t.Helper()
	netlab.SkipUnlessIsolated(t)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	cmd := run(ctx, lanshareBin, append(args, "--generate-bash-completion")...)
	cmd.Env = baseEnv(t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lanshare %q --generate-bash-completion: %v", args, err)
	}
	return lines(string(out))
}

// bashComplete loads the bash completion script into bash, made by run,
// completes words (the last one is the word under the cursor) and returns
// what bash would offer; it skips the test when there is no bash.
func bashComplete(t testing.TB, run commandFunc, words ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	script := bashCompletion + `
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
_lanshare
printf '%s\n' "${COMPREPLY[@]}"
`
	cmd := run(ctx, "bash", append([]string{"-c", script, "bash", lanshareBin}, words...)...)
	cmd.Env = baseEnv(t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash completion of %q: %v", words, err)
	}
	return lines(string(out))
}

func TestCompletionWords(t *testing.T) {
	t.Parallel()
	top := complete(t)
	for _, want := range []string{"serve", "send", "peers", "id", "trust", "untrust", "trusted", "completion", "man"} {
		if !strings.Contains(strings.Join(top, " "), want) {
			t.Errorf("top-level completion %q lacks %s", top, want)
		}
	}
	if got := complete(t, "send"); len(got) != 0 {
		t.Errorf("completion after send = %q, want nothing (file names come from the shell)", got)
	}
	flags := strings.Join(complete(t, "send", "-"), " ")
	for _, want := range []string{"--wait", "--iface", "--quiet", "--config"} {
		if !strings.Contains(flags, want) {
			t.Errorf("send's flag completion %q lacks %s", flags, want)
		}
	}
}

func TestCompletionScriptsAndManPage(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for shell, want := range map[string]string{"bash": "complete -F _lanshare lanshare", "zsh": "compdef _lanshare lanshare", "fish": "complete -c lanshare"} {
		r := runLanshare(t, tmp, nil, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("completion %s: exit %d, output lacks %q:\n%s", shell, r.code, want, r.stdout)
		}
	}
	if r := runLanshare(t, tmp, nil, "completion", "tcsh"); r.code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", r.code)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		r := runLanshare(t, tmp, nil, "completion", "bash")
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(r.stdout)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("bash -n on the bash completion: %v: %s", err, stderr.String())
		}
	}
	r := runLanshare(t, tmp, nil, "man")
	for _, want := range []string{".TH lanshare 1", "serve", "send", "--accept"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("man: exit %d, page lacks %q", r.code, want)
		}
	}
}

// fishComplete loads the fish completion script into fish, made by run,
// and returns what fish offers for the command line line (the cursor at
// its end), in an empty directory; it skips the test when there is no fish.
func fishComplete(t testing.TB, run commandFunc, line string) []string {
	t.Helper()
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish not found")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(lanshareBin, filepath.Join(bin, "lanshare")); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(tmp, "lanshare.fish")
	r := runLanshare(t, tmp, nil, "completion", "fish")
	if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	cmd := run(ctx, "fish", "--no-config", "-c", "source $argv[1]; complete -C$argv[2]", script, line)
	cmd.Env = append(baseEnv(tmp), "PATH="+bin+":"+os.Getenv("PATH"))
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fish completion of %q: %v", line, err)
	}
	var words []string
	for _, l := range lines(string(out)) {
		w, _, _ := strings.Cut(l, "\t") // the description
		words = append(words, w)
	}
	return words
}

// TestCompletionZshScript: the zsh script completes --accept's values
// both when sourced (it registers itself with compdef) and when
// autoloaded from $fpath as the package installs it (the file is then
// the body of _lanshare and must complete on its first call). zsh's
// completion builtins are stubs that print what they are given.
func TestCompletionZshScript(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("zsh"); err != nil {
		t.Skip("zsh not found")
	}
	tmp := t.TempDir()
	fpath := filepath.Join(tmp, "fpath")
	if err := os.Mkdir(fpath, 0o755); err != nil {
		t.Fatal(err)
	}
	r := runLanshare(t, tmp, nil, "completion", "zsh")
	if err := os.WriteFile(filepath.Join(fpath, "_lanshare"), []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	const stubs = `_describe() { print -rl -- "${(@P)2}" }; _files() { print _files }; compdef() { print compdef "$@" }
words=("$2" serve --accept ''); CURRENT=4
`
	for how, tc := range map[string]struct{ script, want string }{
		"autoloaded": {stubs + `fpath=("$1" $fpath); autoload -U _lanshare; _lanshare`, "everyone\ntrusted\nask"},
		"sourced":    {stubs + `source "$1/_lanshare"; _lanshare`, "compdef _lanshare lanshare\neveryone\ntrusted\nask"},
	} {
		cmd := exec.Command("zsh", "-f", "-c", tc.script, "zsh", fpath, lanshareBin)
		cmd.Env = baseEnv(tmp)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("zsh completion %s: %v: %q, want %q", how, err, out, tc.want)
		}
	}
}

// TestCompletionFlagValues: after --accept completion offers the policies,
// after --iface the machine's interfaces that are up, and after a flag
// whose values it cannot know, nothing (the shell offers file names).
func TestCompletionFlagValues(t *testing.T) {
	t.Parallel()
	if got := complete(t, "serve", "--accept"); !slices.Equal(got, []string{"everyone", "trusted", "ask"}) {
		t.Errorf("serve --accept completes to %q, want everyone, trusted, ask", got)
	}
	for _, cmd := range []string{"serve", "send", "trust", "peers"} {
		if got := complete(t, cmd, "--iface"); !slices.Contains(got, "lo") {
			t.Errorf("%s --iface completes to %q, want the interfaces (lo)", cmd, got)
		}
	}
	for _, args := range [][]string{{"send", "--wait"}, {"serve", "--dir"}, {"send", "--config"}} {
		if got := complete(t, args...); len(got) != 0 {
			t.Errorf("%q completes to %q, want nothing", args, got)
		}
	}
	if got := bashComplete(t, local, "serve", "--accept", "tr"); !slices.Equal(got, []string{"trusted"}) {
		t.Errorf("bash: serve --accept tr<TAB> = %q, want trusted", got)
	}
	if got := fishComplete(t, local, "lanshare serve --accept "); !slices.Equal(got, []string{"ask", "everyone", "trusted"}) {
		t.Errorf("fish: serve --accept <TAB> = %q, want ask, everyone, trusted", got)
	}
}

// TestCompletionPeerNamesFromAgent: with an agent running on the host
// (same config directory), send's and trust's first argument completes to
// the names of the peers the agent sees (not its own), in bash too; later
// arguments (paths) and other commands get no peer names.
func TestCompletionPeerNamesFromAgent(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	here, there := launchAgent(t, lab.Host(0), "here"), launchAgent(t, lab.Host(1), "there")
	here.ready(t)
	there.ready(t)
	waitPeerUp(t, here, there)
	run := lab.Host(0).CommandContext
	for _, args := range [][]string{{"send", "--config", here.config}, {"trust", "--config", here.config}, {"send", "--quiet", "--config", here.config},
		{"send", "--config", here.config, "--to"}, {"send", "--config", here.config, "--to", "there", "--to"}} {
		if got := completeOn(t, run, args...); !slices.Equal(got, []string{"there"}) {
			t.Errorf("%q completes to %q, want the peer there", args, got)
		}
	}
	// With --to, the arguments are paths.
	for _, args := range [][]string{{"send", "--config", here.config, "there"}, {"peers", "--config", here.config, "static"}, {"send"},
		{"send", "--config", here.config, "--to", "there"}} {
		if got := completeOn(t, run, args...); len(got) != 0 {
			t.Errorf("%q completes to %q, want nothing", args, got)
		}
	}
	if got := bashComplete(t, run, "send", "--config", here.config, "th"); !slices.Equal(got, []string{"there"}) {
		t.Errorf("bash: send th<TAB> = %q, want there", got)
	}
	if got := fishComplete(t, run, "lanshare send --config "+here.config+" th"); !slices.Equal(got, []string{"there"}) {
		t.Errorf("fish: send th<TAB> = %q, want there", got)
	}
	if got := fishComplete(t, run, "lanshare send --config "+here.config+" --to th"); !slices.Equal(got, []string{"there"}) {
		t.Errorf("fish: send --to th<TAB> = %q, want there", got)
	}
}

// TestCompletionPeerNamesNeverWait: without an agent, or with an agent
// that does not answer, completing a peer name prints nothing and returns
// well within the control socket's own 2 s timeout.
func TestCompletionPeerNamesNeverWait(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "config")
	if got := complete(t, "send", "--config", cfg); len(got) != 0 {
		t.Errorf("send completes to %q without an agent, want nothing", got)
	}
	// A stuck agent: its socket accepts and never answers.
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(cfg, "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	start := time.Now()
	got := complete(t, "send", "--config", cfg)
	if took := time.Since(start); took > 1500*time.Millisecond || len(got) != 0 {
		t.Errorf("send completion with a stuck agent: %q after %v, want nothing within 1.5 s", got, took)
	}
}

package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// complete runs the binary as a completion script would.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command(lanshareBin, append(args, "--generate-bash-completion")...).Output()
	if err != nil {
		t.Fatalf("lanshare %q --generate-bash-completion: %v", args, err)
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

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lanshare/lanshare/internal/netlab"
)

// tourLines returns the command lines of the README's tour, each with the
// machine it runs on ("bob" or "alice", from the comment above it).
func tourLines(t *testing.T) (lines [][2]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- tour -->")
	tour, _, ok2 := strings.Cut(rest, "<!-- /tour -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no <!-- tour --> ... <!-- /tour --> block")
	}
	machine := ""
	for _, l := range strings.Split(tour, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "# "):
			for _, m := range []string{"bob", "alice"} {
				if strings.Contains(l, m+"'s machine") {
					machine = m
				}
			}
		case strings.HasPrefix(l, "lanshare "):
			if machine == "" {
				t.Fatalf("tour line %q: no machine named above it", l)
			}
			lines = append(lines, [2]string{machine, l})
		}
	}
	if len(lines) < 5 {
		t.Fatalf("tour has %d command lines", len(lines))
	}
	return lines
}

// TestReadmeTour runs the README's tour, line by line, on two hosts of a
// lab, with each host's defaults (its own home directory), and checks
// that the file arrives and that each command says what the tour says.
func TestReadmeTour(t *testing.T) {
	t.Parallel()
	lines := tourLines(t)
	lab := netlab.New(t, 2)
	homes := map[string]string{"bob": t.TempDir(), "alice": t.TempDir()}
	hosts := map[string]*netlab.Host{"bob": lab.Host(0), "alice": lab.Host(1)}
	report := bytes.Repeat([]byte("quarterly report\n"), 1000)
	if err := os.WriteFile(filepath.Join(homes["alice"], "report.pdf"), report, 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, ml := range lines {
		machine, line := ml[0], ml[1]
		h, home := hosts[machine], homes[machine]
		run := func(ctx context.Context, name string, args ...string) *exec.Cmd {
			c := h.CommandContext(ctx, name, args...)
			c.Dir = home
			return c
		}
		args := strings.Fields(line)[1:]
		if args[0] == "serve" {
			srv := startServeOn(t, run, home, nil, args[1:]...)
			t.Cleanup(func() { srv.stopClean(t) })
			continue
		}
		r := runLanshareOn(t, run, home, nil, args...)
		if r.code != 0 {
			t.Fatalf("%s: %s: exit %d; stderr:\n%s", machine, line, r.code, r.stderr)
		}
		out.WriteString(line + "\n" + r.stdout)
		switch args[0] {
		case "peers":
			if !strings.Contains(r.stdout, "bob (") {
				t.Errorf("%s: %s lists no bob:\n%s", machine, line, r.stdout)
			}
		case "trusted":
			if !strings.Contains(r.stdout, "bob") || !strings.Contains(r.stdout, "seen") {
				t.Errorf("%s: %s does not list bob as seen:\n%s", machine, line, r.stdout)
			}
		case "history":
			if !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "report.pdf") {
				t.Errorf("%s: %s does not list alice's report.pdf:\n%s", machine, line, r.stdout)
			}
		case "status":
			if !strings.Contains(r.stdout, "name:      bob") {
				t.Errorf("%s: %s:\n%s", machine, line, r.stdout)
			}
		}
	}
	got, err := os.ReadFile(filepath.Join(homes["bob"], "home", "LANShare", "report.pdf"))
	if err != nil || !bytes.Equal(got, report) {
		t.Errorf("bob's ~/LANShare/report.pdf: %d bytes, %v; want the %d alice sent", len(got), err, len(report))
	}
	t.Logf("the tour's output:\n%s", out.String())
}

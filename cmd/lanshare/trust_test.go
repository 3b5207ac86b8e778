package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var groupedID = regexp.MustCompile(`^id: ([a-z2-7]{4}(?:-[a-z2-7]{4}){12})$`)

// idOf runs `lanshare id` with config dir cfg and returns the grouped id.
func idOf(t *testing.T, tmp, cfg string) string {
	t.Helper()
	r := runLanshare(t, tmp, nil, "id", "--config", cfg, "--name", "alice")
	if r.code != 0 {
		t.Fatalf("lanshare id: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	ls := lines(r.stdout)
	if len(ls) != 3 || ls[0] != "name: alice" || !strings.HasPrefix(ls[1], "instance: alice (") {
		t.Fatalf("lanshare id printed:\n%s", r.stdout)
	}
	m := groupedID.FindStringSubmatch(ls[2])
	if m == nil {
		t.Fatalf("lanshare id: third line %q is not \"id: xxxx-xxxx-...\"", ls[2])
	}
	return m[1]
}

func TestIDStableAndOwnerOnly(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "cfg")
	first := idOf(t, tmp, cfg)
	if again := idOf(t, tmp, cfg); again != first {
		t.Errorf("id changed between runs: %s then %s", first, again)
	}
	for _, f := range []string{"key.pem", "cert.pem"} {
		fi, err := os.Stat(filepath.Join(cfg, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if other := idOf(t, tmp, filepath.Join(tmp, "other")); other == first {
		t.Error("two config dirs got the same id")
	}
}

func TestTrustUntrustByID(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "cfg")
	bob := idOf(t, tmp, filepath.Join(tmp, "bob"))

	r := runLanshare(t, tmp, nil, "trusted", "--config", cfg)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "no known peers" {
		t.Fatalf("trusted on a fresh config: exit %d, %q", r.code, r.stdout)
	}
	r = runLanshare(t, tmp, nil, "trust", "--config", cfg, strings.ToUpper(bob))
	if r.code != 0 || !strings.Contains(r.stdout, bob) {
		t.Fatalf("trust ID: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runLanshare(t, tmp, nil, "trusted", "--config", cfg)
	if ls := lines(r.stdout); len(ls) != 2 || !strings.Contains(ls[1], "trusted") || !strings.Contains(ls[1], bob) {
		t.Fatalf("trusted after trust:\n%s", r.stdout)
	}
	r = runLanshare(t, tmp, nil, "untrust", "--config", cfg, bob[:9])
	if r.code != 0 || !strings.Contains(r.stdout, "forgot") {
		t.Fatalf("untrust PREFIX: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runLanshare(t, tmp, nil, "untrust", "--config", cfg, bob[:9])
	if r.code != 1 {
		t.Errorf("untrust of an unknown peer: exit %d, want 1", r.code)
	}
	checkErrorLine(t, r.stderr, "not a known peer")
	for _, args := range [][]string{{"trust"}, {"trust", "a", "b"}, {"untrust"}, {"trusted", "x"}, {"id", "x"}} {
		if r := runLanshare(t, tmp, nil, append(args, "--config", cfg)...); r.code != 2 {
			t.Errorf("lanshare %q: exit %d, want 2", args, r.code)
		}
	}
}

// TestUnknownInterfaceIsUsageError: a one-shot browse on an interface that
// does not exist fails at once instead of finding nobody.
func TestUnknownInterfaceIsUsageError(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for _, args := range [][]string{
		{"peers", "--iface", "nosuch0"},
		{"send", "--iface", "lo,nosuch0", "bob", tmp},
		{"trust", "--iface", "nosuch0", "bob"},
	} {
		r := runLanshare(t, tmp, nil, args...)
		if r.code != 2 {
			t.Errorf("lanshare %q: exit %d, want 2", args, r.code)
		}
		checkErrorLine(t, r.stderr, "no network interface named nosuch0")
	}
}

// TestHostileFileNamePrintedEscaped: a local file whose name holds ESC
// sequences, a carriage return and a bidi override is refused by the
// receiver, and the sender prints the name escaped, never raw.
func TestHostileFileNamePrintedEscaped(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	srv := startServe(t, tmp, nil, "--dir", filepath.Join(tmp, "share"), "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0")
	name := "evil\x1b[31mred\r\u202etxt.exe"
	src := filepath.Join(tmp, "src", name)
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runLanshare(t, tmp, nil, "send", srv.addr, src)
	if r.code != 3 {
		t.Fatalf("exit %d, want 3 (refused); stderr:\n%q", r.code, r.stderr)
	}
	for _, out := range []string{r.stdout, r.stderr, srv.out.String()} {
		if strings.ContainsAny(out, "\x1b\r\u202e") {
			t.Errorf("output holds a raw control or bidi character: %q", out)
		}
	}
	if !strings.Contains(r.stderr, `\x1b[31mred\r\u202etxt.exe`) {
		t.Errorf("stderr does not show the name escaped: %q", r.stderr)
	}
}

// TestUsageErrorShowsUsage: a usage error is one line on stderr and the
// command's synopsis on stdout.
func TestUsageErrorShowsUsage(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for args, synopsis := range map[string]string{
		"send":       "usage: lanshare send [options] TARGET PATH... | --to TARGET... PATH...",
		"trust a b":  "usage: lanshare trust [options] NAME|ID",
		"peers x":    "usage: lanshare peers [options]",
		"completion": "usage: lanshare completion [options] bash|zsh|fish",
		// Flags the command does not know, or without their value: the
		// same one line, not the whole help.
		"send --bogus bob x": "usage: lanshare send [options] TARGET PATH... | --to TARGET... PATH...",
		"send --retries":     "usage: lanshare send [options] TARGET PATH... | --to TARGET... PATH...",
		"peers --wait xyz":   "usage: lanshare peers [options]",
	} {
		r := runLanshare(t, tmp, nil, strings.Fields(args)...)
		if r.code != 2 {
			t.Errorf("lanshare %s: exit %d, want 2", args, r.code)
		}
		checkErrorLine(t, r.stderr)
		if !strings.HasPrefix(r.stdout, synopsis+"\n") {
			t.Errorf("lanshare %s: stdout %q, want it to start with %q", args, r.stdout, synopsis)
		}
	}
}

// TestUnknownCommandAndOption: a command or an option lanshare does not
// have is a usage error of one line (exit 2), not a help topic or the
// whole help.
func TestUnknownCommandAndOption(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for args, want := range map[string]string{
		"bogus":              "lanshare: no command bogus (lanshare --help lists them)\n",
		"--bogus":            "lanshare: unknown option --bogus (lanshare --help lists the options)\n",
		"send --bogus b x":   "lanshare: unknown option --bogus\n",
		"peers --wait xyz":   "lanshare: --wait: invalid value \"xyz\" (parse error)\n",
		"send b x --retries": "lanshare: option --retries needs a value\n",
	} {
		r := runLanshare(t, tmp, nil, strings.Fields(args)...)
		if r.code != 2 || r.stderr != want {
			t.Errorf("lanshare %s: exit %d, stderr %q; want exit 2, %q", args, r.code, r.stderr, want)
		}
	}
}

// TestTrustedListsOnlyTrustedAndUntrustKeepsThePin: `trusted` lists the
// peers the user trusted, and the ones a send only pinned in a section of
// their own (--all: one table); `untrust` takes the trust and keeps the
// pin, `untrust --forget` removes both.
func TestTrustedListsOnlyTrustedAndUntrustKeepsThePin(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "cfg")
	bob := idOf(t, tmp, filepath.Join(tmp, "bob"))
	carol := idOf(t, tmp, filepath.Join(tmp, "carol"))
	plain := func(id string) string { return strings.ReplaceAll(id, "-", "") }
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		t.Fatal(err)
	}
	file := plain(bob) + " trusted bob\n" + plain(carol) + " seen carol\n"
	if err := os.WriteFile(filepath.Join(cfg, "known_peers"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	list := func(args ...string) []string {
		t.Helper()
		r := runLanshare(t, tmp, nil, append([]string{"trusted", "--config", cfg}, args...)...)
		if r.code != 0 {
			t.Fatalf("trusted %q: exit %d; stderr:\n%s", args, r.code, r.stderr)
		}
		var rows []string
		for _, l := range lines(r.stdout) {
			rows = append(rows, strings.Join(strings.Fields(l), " "))
		}
		return rows
	}
	want := []string{"NAME LEVEL ID", "bob trusted " + bob, "pinned by a send, not trusted (lanshare trust NAME trusts one):", "NAME LEVEL ID", "carol seen " + carol}
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("trusted:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = []string{"NAME LEVEL ID", "bob trusted " + bob, "carol seen " + carol}
	if got := list("--all"); !slices.Equal(got, want) {
		t.Errorf("trusted --all:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r := runLanshare(t, tmp, nil, "untrust", "--config", cfg, "bob")
	if r.code != 0 || !strings.Contains(r.stdout, "no longer trusted: bob id "+bob+"; the name stays pinned") {
		t.Fatalf("untrust bob: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	want = []string{"no trusted peers", "pinned by a send, not trusted (lanshare trust NAME trusts one):", "NAME LEVEL ID", "bob seen " + bob, "carol seen " + carol}
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("trusted after untrust bob:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = []string{"NAME LEVEL ID", "bob seen " + bob, "carol seen " + carol}
	if got := list("--all"); !slices.Equal(got, want) {
		t.Errorf("trusted --all after untrust bob (the pin stays):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r = runLanshare(t, tmp, nil, "untrust", "--config", cfg, "carol")
	if r.code != 0 || !strings.Contains(r.stdout, "not trusted: carol id "+carol+" is only pinned") {
		t.Errorf("untrust of a peer only pinned: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runLanshare(t, tmp, nil, "untrust", "--forget", "--config", cfg, "bob")
	if r.code != 0 || !strings.Contains(r.stdout, "forgot bob id "+bob) {
		t.Fatalf("untrust --forget bob: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	want = []string{"NAME LEVEL ID", "carol seen " + carol}
	if got := list("--all"); !slices.Equal(got, want) {
		t.Errorf("trusted --all after untrust --forget bob:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

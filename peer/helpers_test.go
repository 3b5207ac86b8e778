package peer

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// connPair returns two connected ends: a sender's and a receiver's.
type connPair func(t testing.TB) (send, recv net.Conn)

// connTypes runs transfers over a synchronous in-memory pipe and over real
// loopback TCP, which buffer and close differently.
var connTypes = map[string]connPair{
	"pipe": func(t testing.TB) (net.Conn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	},
	"tcp": tcpPair,
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	s, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-accepted
	if r == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { s.Close(); r.Close() })
	return s, r
}

func newInbox(t testing.TB, cfg InboxConfig) *Inbox {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Name == "" {
		cfg.Name = "receiver"
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	in, err := OpenInbox(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

type outcome struct {
	rep     *Report
	sendErr error
	tr      *Transfer
	recvErr error
}

// transferOver runs one transfer of items from a sender to in over the
// given connection type and waits for both sides.
func transferOver(t testing.TB, pair connPair, in *Inbox, items []Item, wrap func(net.Conn) net.Conn) outcome {
	t.Helper()
	s, r := pair(t)
	if wrap != nil {
		s = wrap(s)
	}
	var o outcome
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.tr, o.recvErr = in.Receive(r)
		r.Close()
	}()
	o.rep, o.sendErr = Send(s, items, SendOptions{Name: "sender", IdleTimeout: 10 * time.Second})
	s.Close()
	wg.Wait()
	return o
}

// writeTree creates files (path → content; a trailing slash makes an empty
// directory) under a new temporary directory and returns it.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func randomBytes(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return string(b)
}

// collect is Collect that fails the test on error.
func collect(t testing.TB, paths ...string) []Item {
	t.Helper()
	items, err := Collect(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// tree lists everything under dir: slash path → content, "/" suffix for
// directories, "->" for symlinks.
func tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if p == filepath.Join(dir, stagingDir) {
			return fs.SkipDir // see staged
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			got[rel+"/"] = ""
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			got[rel] = "->" + target
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[rel] = string(b)
		default:
			got[rel] = "special"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// staged lists the staging folder's temporary and partial files.
func staged(t testing.TB, dir string) []string {
	t.Helper()
	names, err := os.ReadDir(filepath.Join(dir, stagingDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if n.Name() != "arrived" {
			out = append(out, n.Name())
		}
	}
	return out
}

// assertNoTemps fails unless the staging folder holds no temporary or
// partial file.
func assertNoTemps(t testing.TB, dir string) {
	t.Helper()
	if s := staged(t, dir); len(s) != 0 {
		t.Fatalf("staging folder should hold no temporary files, has %q", s)
	}
}

func assertEmpty(t testing.TB, dir string) {
	t.Helper()
	assertNoTemps(t, dir)
	if got := tree(t, dir); len(got) != 0 {
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		t.Fatalf("shared folder should be empty, has %q", names)
	}
}

func assertTree(t testing.TB, dir string, want map[string]string) {
	t.Helper()
	assertNoTemps(t, dir)
	got := tree(t, dir)
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("missing %s", p)
		} else if g != w {
			t.Errorf("%s: content differs (%d bytes, want %d)", p, len(g), len(w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s", p)
		}
	}
}

// hostileItem offers a file under an arbitrary path.
func hostileItem(t testing.TB, p string) Item {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	return Item{Source: src, Entry: proto.Entry{Path: p, Kind: proto.KindFile, Size: 7, Mode: 0o644, MTime: time.Unix(1700000000, 0)}}
}

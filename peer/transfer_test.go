package peer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lanshare/lanshare/proto"
)

func TestTransfer(t *testing.T) {
	many := map[string]string{}
	for i := range 500 {
		many[fmt.Sprintf("many/f%03d.txt", i)] = fmt.Sprintf("file %d", i)
	}
	cases := []struct {
		name  string
		files map[string]string
	}{
		{"single file", map[string]string{"one.bin": "hello, world"}},
		{"empty file", map[string]string{"empty": ""}},
		{"large file", map[string]string{"large.bin": "x" + "y"}},
		{"many files", many},
		{"nested with empty dirs", map[string]string{
			"tree/a.txt": "a", "tree/b/c.txt": "c", "tree/b/d/e/f.txt": "f",
			"tree/empty/": "", "tree/b/also-empty/": "", "tree/b/d/zero": "",
		}},
	}
	cases[2].files["large.bin"] = randomBytes(t, 3<<20+12345)
	for connName, pair := range connTypes {
		for _, tc := range cases {
			t.Run(connName+"/"+tc.name, func(t *testing.T) {
				src := writeTree(t, tc.files)
				var paths []string
				entries, _ := os.ReadDir(src)
				for _, e := range entries {
					paths = append(paths, filepath.Join(src, e.Name()))
				}
				in := newInbox(t, InboxConfig{})
				o := transferOver(t, pair, in, collect(t, paths...), nil)
				if o.sendErr != nil || o.recvErr != nil {
					t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
				}
				want := map[string]string{}
				for p, c := range tc.files {
					want[p] = c
					for d := filepath.ToSlash(filepath.Dir(strings.TrimSuffix(p, "/"))); d != "."; d = filepath.ToSlash(filepath.Dir(d)) {
						want[d+"/"] = ""
					}
				}
				assertTree(t, in.Dir(), want)
				if got := o.rep.Saved(); got != len(o.rep.Items) {
					t.Fatalf("receipt confirms %d of %d", got, len(o.rep.Items))
				}
			})
		}
	}
}

func TestOfferLargerThanFreeSpaceRefusedBeforeAnyByte(t *testing.T) {
	for connName, pair := range connTypes {
		t.Run(connName, func(t *testing.T) {
			in := newInbox(t, InboxConfig{
				SpaceMargin: 1 << 20,
				freeSpace:   func(string) (uint64, error) { return 3 << 20, nil },
			})
			src := writeTree(t, map[string]string{"small.txt": "s", "big.bin": randomBytes(t, 2<<20+1)})
			var wrote countingConn
			o := transferOver(t, pair, in, collect(t, filepath.Join(src, "small.txt"), filepath.Join(src, "big.bin")),
				func(c net.Conn) net.Conn { wrote.Conn = c; return &wrote })
			var re *RefusedError
			if !errors.As(o.sendErr, &re) || re.Code != proto.CodeNoSpace {
				t.Fatalf("send error %v, want a no-space refusal", o.sendErr)
			}
			if !strings.Contains(o.sendErr.Error(), "not enough space (need 2.1 MB, 2.1 MB free beyond the 1 MiB kept free)") {
				t.Errorf("refusal does not say what is needed and free: %v", o.sendErr)
			}
			if wrote.n.Load() > 4096 {
				t.Errorf("sender wrote %d bytes after a refusal before ok", wrote.n.Load())
			}
			assertEmpty(t, in.Dir())
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConnectionCutAtManyOffsets cuts the sender's side of the connection
// after n bytes, for n across the whole exchange: before the offer ends,
// inside file bytes, between files, inside a file-end, before done. No
// final file may ever appear, nothing may be left behind, and the sender
// must report failure.
func TestConnectionCutAtManyOffsets(t *testing.T) {
	src := writeTree(t, map[string]string{
		"d/a.txt": "aaaa", "d/b.bin": randomBytes(t, 300<<10), "d/empty/": "", "d/c.txt": "c",
	})
	items := collect(t, filepath.Join(src, "d"))
	full := tree(t, src)
	// Measure the full length of what the sender writes.
	var wrote countingConn
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, tcpPair, in, items, func(c net.Conn) net.Conn { wrote.Conn = c; return &wrote })
	if o.sendErr != nil {
		t.Fatal(o.sendErr)
	}
	total := int(wrote.n.Load())
	var offsets []int
	for n := 0; n < 200; n++ {
		offsets = append(offsets, n)
	}
	for n := 200; n < total; n += total / 97 {
		offsets = append(offsets, n)
	}
	for n := total - 120; n < total; n++ {
		offsets = append(offsets, n)
	}
	for connName, pair := range connTypes {
		t.Run(connName, func(t *testing.T) {
			for _, n := range offsets {
				in := newInbox(t, InboxConfig{})
				o := transferOver(t, pair, in, items, func(c net.Conn) net.Conn { return &cutConn{Conn: c, left: n} })
				if o.sendErr == nil {
					t.Fatalf("cut at %d of %d: sender reported success", n, total)
				}
				if o.recvErr == nil {
					t.Fatalf("cut at %d of %d: receiver reported success", n, total)
				}
				// Files verified before the cut keep their final names;
				// nothing else may be there.
				assertNoTemps(t, in.Dir())
				for p, content := range tree(t, in.Dir()) {
					if want, ok := full[p]; !ok || content != want {
						t.Fatalf("cut at %d of %d: %s is not a complete file of the source (%d bytes)", n, total, p, len(content))
					}
				}
			}
		})
	}
}

// cutConn closes the connection once left bytes have been written.
type cutConn struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *cutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) <= c.left {
		c.left -= len(p)
		return c.Conn.Write(p)
	}
	n, _ := c.Conn.Write(p[:c.left])
	c.left = 0
	c.Conn.Close()
	return n, net.ErrClosed
}

// CloseWrite keeps the half-close from reaching the receiver when the cut
// already happened.
func (c *cutConn) CloseWrite() error { return nil }

type countingConn struct {
	net.Conn
	n atomic.Uint64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(uint64(n))
	return n, err
}

func (c *countingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rawSender speaks the sender's side by hand, for peers that misbehave.
type rawSender struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func startRaw(t *testing.T, pair connPair, in *Inbox, hello proto.Hello, offer proto.Offer) (*rawSender, <-chan error) {
	t.Helper()
	s, r := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := in.Receive(r)
		r.Close()
		done <- err
	}()
	// Write in the background: on a pipe, the receiver may answer (a
	// version refusal) before it reads the offer.
	wrote := make(chan error, 1)
	go func() {
		err := proto.WriteHello(s, hello)
		if err == nil {
			err = proto.WriteOffer(s, offer)
		}
		wrote <- err
	}()
	rs := &rawSender{t: t, c: s, br: bufio.NewReader(s)}
	t.Cleanup(func() { s.Close(); <-wrote })
	return rs, done
}

func TestMoreBytesThanDeclared(t *testing.T) {
	for connName, pair := range connTypes {
		t.Run(connName, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			offer := proto.Offer{Entries: []proto.Entry{{Path: "f", Kind: proto.KindFile, Size: 4, Mode: 0o644}}}
			rs, done := startRaw(t, pair, in, proto.NewHello("liar"), offer)
			if _, err := proto.ReadHello(rs.br); err != nil {
				t.Fatal(err)
			}
			if _, err := proto.ReadAnswer(rs.br); err != nil {
				t.Fatal(err)
			}
			h := proto.NewDigest()
			h.Write([]byte("abcd"))
			fe := proto.FileEnd{Index: 0, Status: proto.Sent}
			copy(fe.Digest[:], h.Sum(nil))
			go func() {
				_, _ = rs.c.Write([]byte("abcdEXTRA BYTES"))
				_ = proto.WriteFileEnd(rs.c, fe)
				_ = proto.WriteDone(rs.c)
			}()
			err := <-done
			if !errors.Is(err, proto.ErrBadMagic) {
				t.Fatalf("receiver error %v, want ErrBadMagic", err)
			}
			assertEmpty(t, in.Dir())
		})
	}
}

func TestWrongDigest(t *testing.T) {
	for connName, pair := range connTypes {
		t.Run(connName, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			offer := proto.Offer{Entries: []proto.Entry{
				{Path: "bad", Kind: proto.KindFile, Size: 4, Mode: 0o644},
				{Path: "good", Kind: proto.KindFile, Size: 4, Mode: 0o644},
			}}
			rs, done := startRaw(t, pair, in, proto.NewHello("corrupt"), offer)
			if _, err := proto.ReadHello(rs.br); err != nil {
				t.Fatal(err)
			}
			if _, err := proto.ReadAnswer(rs.br); err != nil {
				t.Fatal(err)
			}
			go func() {
				_, _ = rs.c.Write([]byte("abcd"))
				_ = proto.WriteFileEnd(rs.c, proto.FileEnd{Index: 0, Status: proto.Sent}) // zero digest
				_, _ = rs.c.Write([]byte("efgh"))
				h := proto.NewDigest()
				h.Write([]byte("efgh"))
				fe := proto.FileEnd{Index: 1, Status: proto.Sent}
				copy(fe.Digest[:], h.Sum(nil))
				_ = proto.WriteFileEnd(rs.c, fe)
				_ = proto.WriteDone(rs.c)
			}()
			rc, err := proto.ReadReceipt(rs.br)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("receiver: %v", err)
			}
			if r := rc.Results[0]; r.Status != proto.Failed || r.Code != proto.CodeDigest {
				t.Fatalf("corrupt file: %+v, want failed with digest mismatch", r)
			}
			if r := rc.Results[1]; r.Status != proto.Saved || r.SavedAs != "good" {
				t.Fatalf("good file: %+v", r)
			}
			assertTree(t, in.Dir(), map[string]string{"good": "efgh"})
		})
	}
}

func TestPeerWithOtherProtocolVersion(t *testing.T) {
	for connName, pair := range connTypes {
		t.Run(connName+"/receiver refuses", func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			rs, done := startRaw(t, pair, in, proto.Hello{Major: 2, Minor: 0, Name: "future"}, proto.Offer{})
			h, err := proto.ReadHello(rs.br)
			if err != nil {
				t.Fatalf("no hello back: %v", err)
			}
			if h.Major != proto.Major {
				t.Fatalf("hello major %d", h.Major)
			}
			rs.c.Close()
			if err := <-done; !errors.Is(err, proto.ErrVersionMismatch) {
				t.Fatalf("receiver error %v, want ErrVersionMismatch", err)
			}
			assertEmpty(t, in.Dir())
		})
		t.Run(connName+"/sender refuses", func(t *testing.T) {
			s, r := pair(t)
			go func() {
				br := bufio.NewReader(r)
				_, _ = proto.ReadHello(br)
				_ = proto.WriteHello(r, proto.Hello{Major: 9, Minor: 1, Name: "future"})
				_, _ = io.Copy(io.Discard, br)
			}()
			src := writeTree(t, map[string]string{"f": "x"})
			_, err := Send(s, collect(t, filepath.Join(src, "f")), SendOptions{Name: "me"})
			if !errors.Is(err, proto.ErrVersionMismatch) || !strings.Contains(err.Error(), "9.1") {
				t.Fatalf("send error %v, want a version mismatch naming 9.1", err)
			}
		})
	}
}

// TestSourceShrinksWhileSending: a file that is shorter than offered is
// padded and marked aborted; the receiver discards it, saves the rest,
// and the sender reports it.
func TestSourceShrinksWhileSending(t *testing.T) {
	src := writeTree(t, map[string]string{"a": "0123456789", "b": "bbb"})
	items := collect(t, filepath.Join(src, "a"), filepath.Join(src, "b"))
	must(t, os.WriteFile(filepath.Join(src, "a"), []byte("01234"), 0o644))
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, tcpPair, in, items, nil)
	var re *RefusedError
	if !errors.Is(o.sendErr, ErrIncomplete) || !errors.As(o.sendErr, &re) || re.Code != proto.CodeSourceChanged {
		t.Fatalf("send error %v, want incomplete with source changed", o.sendErr)
	}
	assertTree(t, in.Dir(), map[string]string{"b": "bbb"})
}

func TestConcurrentSenders(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		src := writeTree(t, map[string]string{fmt.Sprintf("s%d/data.bin", i): randomBytes(t, 200<<10), "shared.txt": fmt.Sprint(i)})
		items := collect(t, filepath.Join(src, fmt.Sprintf("s%d", i)), filepath.Join(src, "shared.txt"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := transferOver(t, tcpPair, in, items, nil)
			if o.sendErr != nil || o.recvErr != nil {
				errs <- fmt.Errorf("sender %d: %v / %v", i, o.sendErr, o.recvErr)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := tree(t, in.Dir())
	shared := 0
	for p := range got {
		if strings.HasPrefix(p, "shared") {
			shared++
		}
	}
	if shared != 8 {
		t.Fatalf("%d shared*.txt files, want 8 distinct names: %v", shared, got)
	}
}

// TestNoSpaceReasonNamesReserve: a refusal for space names the margin the
// receiver keeps free and the space held by transfers in progress, so that
// its numbers add up to what df shows.
func TestNoSpaceReasonNamesReserve(t *testing.T) {
	for _, c := range []struct {
		need, avail, margin, held uint64
		want                      string
	}{
		{63e6, 37.7e6, 64 << 20, 0, "not enough space (need 63.0 MB, 37.7 MB free beyond the 64 MiB kept free)"},
		{63e6, 0, 1 << 30, 5e6, "not enough space (need 63.0 MB, 0 B free beyond the 1 GiB kept free and 5.0 MB held for transfers in progress)"},
		{2e6, 1e6, 0, 0, "not enough space (need 2.0 MB, 1.0 MB free)"},
		{2e6, 1e6, 1500, 0, "not enough space (need 2.0 MB, 1.0 MB free beyond the 1.5 kB kept free)"},
	} {
		if got := spaceReason(c.need, c.avail, c.margin, c.held); got != c.want {
			t.Errorf("spaceReason(%d, %d, %d, %d) = %q\nwant %q", c.need, c.avail, c.margin, c.held, got, c.want)
		}
	}
}

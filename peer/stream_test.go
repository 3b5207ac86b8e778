package peer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// streamSource is n bytes of seeded noise, read at most max bytes a
// call (0: as asked), as a pipe gives them; it fails with err, if set,
// once it has given failAt bytes.
type streamSource struct {
	rng    *rand.ChaCha8
	left   int64
	max    int
	failAt int64
	err    error
	given  int64
	h      io.Writer // every byte given, hashed
}

func newStreamSource(seed byte, n int64, max int) (*streamSource, func() [proto.DigestSize]byte) {
	var s [32]byte
	s[0] = seed
	h := proto.NewDigest()
	src := &streamSource{rng: rand.NewChaCha8(s), left: n, max: max, h: h}
	return src, func() (d [proto.DigestSize]byte) {
		copy(d[:], h.Sum(nil))
		return d
	}
}

func (s *streamSource) Read(p []byte) (int, error) {
	if s.err != nil && s.given >= s.failAt {
		return 0, s.err
	}
	if s.left == 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if s.max > 0 {
		n = min(n, int64(s.max))
	}
	n = min(n, s.left)
	if s.err != nil {
		n = min(n, s.failAt-s.given)
	}
	_, _ = s.rng.Read(p[:n])
	s.h.Write(p[:n])
	s.left -= n
	s.given += n
	return int(n), nil
}

func digestOf(t testing.TB, path string) [proto.DigestSize]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := proto.NewDigest()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var d [proto.DigestSize]byte
	copy(d[:], h.Sum(nil))
	return d
}

func streamItem(t testing.TB, name string, r io.Reader) Item {
	t.Helper()
	it, err := StreamItem(name, r)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// TestStreamArrivesVerified: a stream of unknown size, between two files
// of one batch, arrives whole under its name, in a folder the name asks
// for, and the receiver reports it as the file it became.
func TestStreamArrivesVerified(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			src := writeTree(t, map[string]string{"a.txt": "alpha", "z.txt": "zulu"})
			const size = 9<<20 + 12345
			data, digest := newStreamSource(1, size, 7777)
			items := []Item{collect(t, filepath.Join(src, "a.txt"))[0], streamItem(t, "backup/data.bin", data), collect(t, filepath.Join(src, "z.txt"))[0]}
			o := transferOver(t, pair, in, items, nil)
			if o.sendErr != nil || o.recvErr != nil {
				t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
			}
			if got := digestOf(t, filepath.Join(in.Dir(), "backup", "data.bin")); got != digest() {
				t.Fatal("the stream arrived with another digest")
			}
			if fi, _ := os.Stat(filepath.Join(in.Dir(), "backup", "data.bin")); fi.Size() != size || fi.Mode().Perm() != 0o644 {
				t.Fatalf("stream saved as %v, %d bytes; want 0644, %d", fi.Mode(), fi.Size(), size)
			}
			if got := tree(t, in.Dir()); got["a.txt"] != "alpha" || got["z.txt"] != "zulu" || len(got) != 4 {
				t.Fatalf("shared folder holds %d entries", len(got))
			}
			assertNoTemps(t, in.Dir())
			r := o.tr.Entries[1]
			if r.Kind != proto.KindFile || r.Size != size || r.Result.Status != proto.Saved || r.Result.SavedAs != "backup/data.bin" {
				t.Fatalf("received %+v", r)
			}
			if res := o.rep.Results[1]; res.Status != proto.Saved || res.SavedAs != "backup/data.bin" {
				t.Fatalf("receipt for the stream: %+v", res)
			}
			if o.rep.Sent != size+5+4 {
				t.Fatalf("report: %d bytes sent, want %d", o.rep.Sent, size+9)
			}
		})
	}
}

func TestStreamEmptyArrives(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, tcpPair, in, []Item{streamItem(t, "empty.log", strings.NewReader(""))}, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v; receive: %v", o.sendErr, o.recvErr)
	}
	assertTree(t, in.Dir(), map[string]string{"empty.log": ""})
}

// TestStreamNameTakenGetsAnother: a stream never replaces a file.
func TestStreamNameTakenGetsAnother(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	if err := os.WriteFile(filepath.Join(in.Dir(), "p.tar"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := transferOver(t, tcpPair, in, []Item{streamItem(t, "p.tar", strings.NewReader("theirs"))}, nil)
	if o.sendErr != nil || o.rep.Results[0].SavedAs != "p (1).tar" {
		t.Fatalf("send: %v, %+v", o.sendErr, o.rep)
	}
	assertTree(t, in.Dir(), map[string]string{"p.tar": "mine", "p (1).tar": "theirs"})
}

// TestStreamSourceFailsNothingSaved: a source that fails half-way (a
// read error, not its end) is not saved, and the rest of the batch is.
func TestStreamSourceFailsNothingSaved(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			data, _ := newStreamSource(2, 8<<20, 0)
			data.failAt, data.err = 3<<20+5, errors.New("input/output error")
			src := writeTree(t, map[string]string{"after.txt": "still here"})
			items := []Item{streamItem(t, "half.bin", data), collect(t, filepath.Join(src, "after.txt"))[0]}
			o := transferOver(t, pair, in, items, nil)
			if o.recvErr != nil {
				t.Fatalf("receive: %v", o.recvErr)
			}
			var se *SourceError
			if !errors.As(o.sendErr, &se) || !errors.Is(o.sendErr, ErrSourceUnreadable) || se.Path != StreamSource {
				t.Fatalf("send error %v, want a SourceError for %s", o.sendErr, StreamSource)
			}
			if !strings.Contains(o.sendErr.Error(), "input/output error") {
				t.Errorf("send error %q does not say why", o.sendErr)
			}
			if r := o.tr.Entries[0].Result; r.Status != proto.Failed || r.Code != proto.CodeSourceChanged {
				t.Errorf("stream's result %+v, want failed with code 12", r)
			}
			assertTree(t, in.Dir(), map[string]string{"after.txt": "still here"})
		})
	}
}

// streamCutConn fails every write once n bytes went through it, and closes the
// connection: a sender that dies half-way.
type streamCutConn struct {
	net.Conn
	left atomic.Int64
}

func (c *streamCutConn) Write(p []byte) (int, error) {
	if c.left.Add(-int64(len(p))) < 0 {
		c.Conn.Close()
		return 0, errors.New("cut by the test")
	}
	return c.Conn.Write(p)
}

// listenStreamInbox receives every connection to a loopback listener into in,
// and returns the listener's address and a channel of the transfers'
// errors.
func listenStreamInbox(t testing.TB, in *Inbox, pol Policy) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := in.ReceiveWith(c, pol)
				c.Close()
				errs <- err
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), errs
}

// TestStreamCutLeavesNothingAndIsNotRetried: a connection cut half-way
// through a stream leaves nothing on the receiver, under a final name or
// in its staging folder, and the sender, which cannot read the stream
// again, says so instead of retrying.
func TestStreamCutLeavesNothingAndIsNotRetried(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	addr, errs := listenStreamInbox(t, in, Policy{})
	data, _ := newStreamSource(3, 64<<20, 0)
	dials := 0
	opt := SendOptions{Name: "s", Retries: 3, retryBase: time.Millisecond,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			dials++
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			cc := &streamCutConn{Conn: c}
			cc.left.Store(20 << 20)
			return cc, nil
		}}
	_, err := SendTo(context.Background(), addr, []Item{streamItem(t, "cut.bin", data)}, opt)
	var ce *StreamCutError
	if !errors.As(err, &ce) || !errors.Is(err, ErrIncomplete) || ce.Whole {
		t.Fatalf("send error %v, want a StreamCutError", err)
	}
	if dials != 1 {
		t.Errorf("%d connections, want 1: a stream cannot be sent again", dials)
	}
	if !strings.Contains(err.Error(), "nothing was saved") || ce.Sent < 16<<20 || ce.Sent > 24<<20 {
		t.Errorf("error %q after %d bytes", err, ce.Sent)
	}
	if rerr := <-errs; rerr == nil {
		t.Fatal("the receiver took a cut stream for a whole one")
	}
	assertEmpty(t, in.Dir())
}

// streamRawSender is a hostile sender that writes frames by hand.
type streamRawSender struct {
	c  net.Conn
	bw *bufio.Writer
	br *bufio.Reader
}

func newStreamRawSender(t testing.TB, c net.Conn, entries ...proto.Entry) (*streamRawSender, proto.Answer) {
	t.Helper()
	s := &streamRawSender{c: c, bw: bufio.NewWriter(c), br: bufio.NewReader(c)}
	if err := proto.WriteHello(s.bw, proto.NewHello("mallory")); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteOffer(s.bw, proto.Offer{Entries: entries}); err != nil {
		t.Fatal(err)
	}
	if err := s.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := proto.ReadHello(s.br); err != nil {
		t.Fatal(err)
	}
	a, err := proto.ReadAnswer(s.br)
	if err != nil {
		t.Fatal(err)
	}
	return s, a
}

// streamCountConn counts the bytes read through it.
type streamCountConn struct {
	net.Conn
	read atomic.Int64
}

func (c *streamCountConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// TestStreamOverMaxSizeStopped: a stream that grows past the receiver's
// size cap is stopped before the bytes over it are read, whatever the
// sender goes on writing; nothing of it stays; our own sender learns why
// from the receipt the receiver sends as it stops.
func TestStreamOverMaxSizeStopped(t *testing.T) {
	const limit = 8<<20 + 100
	t.Run("hostile", func(t *testing.T) {
		in := newInbox(t, InboxConfig{})
		s, r := tcpPair(t)
		rc := &streamCountConn{Conn: r}
		got := make(chan error, 1)
		go func() {
			_, err := in.ReceiveWith(rc, Policy{MaxSize: limit})
			r.Close()
			got <- err
		}()
		raw, a := newStreamRawSender(t, s, proto.Entry{Path: "huge.bin", Kind: proto.KindStream, Mode: 0o644})
		if a.Code != proto.CodeOK {
			t.Fatalf("answer %+v", a)
		}
		chunk := bytes.Repeat([]byte{'x'}, proto.MaxChunkLen)
		written := 0
		for ; written < 256; written++ { // 256 MiB, if it were all taken
			if proto.WriteChunk(raw.bw, chunk) != nil {
				break
			}
		}
		err := <-got
		if !errors.Is(err, errStreamStopped) {
			t.Fatalf("receive: %v, want the stream stopped", err)
		}
		if n := rc.read.Load(); n > limit+2*proto.MaxChunkLen+64<<10 {
			t.Errorf("the receiver read %d bytes of a stream capped at %d", n, limit)
		}
		if written == 256 {
			t.Error("the sender wrote 256 MiB: the receiver did not stop reading")
		}
		// It said why before it closed.
		rc2, err := proto.ReadReceipt(raw.br)
		if err != nil || rc2.Results[0].Code != proto.CodeTooLarge {
			t.Fatalf("early receipt %+v, %v", rc2, err)
		}
		assertEmpty(t, in.Dir())
	})
	t.Run("our sender", func(t *testing.T) {
		in := newInbox(t, InboxConfig{})
		addr, errs := listenStreamInbox(t, in, Policy{MaxSize: limit})
		data, _ := newStreamSource(4, 40<<20, 0)
		_, err := SendTo(context.Background(), addr, []Item{streamItem(t, "big.tar", data)}, SendOptions{Name: "s"})
		re := refusal(t, err)
		if re.Code != proto.CodeTooLarge || !strings.Contains(re.Reason, "limit of 8.4 MB") || re.Path != "big.tar" {
			t.Fatalf("refusal %+v", re)
		}
		if !errors.Is(<-errs, errStreamStopped) {
			t.Fatal("the receiver did not stop the stream")
		}
		assertEmpty(t, in.Dir())
	})
	t.Run("files first", func(t *testing.T) {
		// The files of the batch count against the cap first.
		in := newInbox(t, InboxConfig{})
		addr, errs := listenStreamInbox(t, in, Policy{MaxSize: 1 << 20})
		src := writeTree(t, map[string]string{"f.bin": randomBytes(t, 1<<20-10)})
		items := append(collect(t, filepath.Join(src, "f.bin")), streamItem(t, "s.bin", strings.NewReader("0123456789x")))
		rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
		if re := refusal(t, err); re.Code != proto.CodeTooLarge || re.Path != "s.bin" {
			t.Fatalf("refusal %+v", re)
		}
		if rep.Results[0].Status != proto.Saved {
			t.Fatalf("the file before the stream: %+v", rep.Results[0])
		}
		<-errs
		assertNoTemps(t, in.Dir())
	})
}

// streamDirBytes sums the sizes of the regular files under dir.
func streamDirBytes(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}

// TestStreamOverFreeSpaceStopped: a stream is held to the free space
// beyond the margin as it grows, and what it held is given back.
func TestStreamOverFreeSpaceStopped(t *testing.T) {
	dir := t.TempDir()
	const disk = 100 << 20 // a disk of 100 MiB, 64 MiB kept free
	var written atomic.Uint64
	in := newInbox(t, InboxConfig{Dir: dir, SpaceMargin: 64 << 20, freeSpace: func(string) (uint64, error) {
		used := streamDirBytes(dir)
		written.Store(max(written.Load(), used))
		return disk - min(used, disk), nil
	}})
	addr, errs := listenStreamInbox(t, in, Policy{})
	data, _ := newStreamSource(5, 200<<20, 0)
	_, err := SendTo(context.Background(), addr, []Item{streamItem(t, "fill.bin", data)}, SendOptions{Name: "s"})
	if re := refusal(t, err); re.Code != proto.CodeNoSpace || !strings.Contains(re.Reason, "kept free") {
		t.Fatalf("refusal %+v", re)
	}
	if !errors.Is(<-errs, errStreamStopped) {
		t.Fatal("the receiver did not stop the stream")
	}
	if w := written.Load(); w > disk-64<<20 {
		t.Errorf("the stream took %d bytes of the 36 MiB beyond the margin", w)
	}
	assertEmpty(t, in.Dir())
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.reserved != 0 {
		t.Fatalf("%d bytes still held after the stream", in.reserved)
	}
}

// TestStreamStrangersBudget: a stranger's stream is charged to the
// strangers' budget as it comes, and stopped where the budget ends; a
// trusted peer's is not.
func TestStreamStrangersBudget(t *testing.T) {
	const budget = 40 << 20
	bob := startAgent(t, func(c *Config) { c.StrangerBudget = StrangerBudget{Bytes: budget} })
	stranger, friend := testSender(t), testSender(t)
	trustIn(t, bob, friend, "friend")
	data, _ := newStreamSource(6, 100<<20, 0)
	_, err := stranger.Send(context.Background(), bob.target(), []Item{streamItem(t, "flood.bin", data)}, SendOptions{Name: "x"})
	re := refusal(t, err)
	if re.Code != proto.CodeTooLarge || !strings.Contains(re.Reason, "does not trust") {
		t.Fatalf("refusal %+v", re)
	}
	bob.next(t)
	// Charged 16 MiB at a time: two steps went, the third did not fit;
	// what did not cross went back.
	left, _, _ := bob.StrangersLeft()
	if left < budget-32<<20-entryCost || left > budget-31<<20 {
		t.Errorf("%d bytes of the budget left after a stream stopped at it", left)
	}
	if _, err := os.Stat(filepath.Join(bob.dir, "flood.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stopped stream is in the shared folder: %v", err)
	}
	ok, _ := newStreamSource(7, 60<<20, 0)
	if _, err := friend.Send(context.Background(), bob.target(), []Item{streamItem(t, "big.bin", ok)}, SendOptions{Name: "f"}); err != nil {
		t.Fatalf("a trusted peer's stream past the strangers' budget: %v", err)
	}
	bob.next(t)
}

// TestStreamToOldReceiverSaysUpdate: a receiver of protocol 1.1 refuses
// the offer of a stream as malformed; the sender says which version it
// runs and what to do.
func TestStreamToOldReceiverSaysUpdate(t *testing.T) {
	s, r := tcpPair(t)
	go func() {
		// What a 1.1 receiver does with an entry kind it does not know.
		br := bufio.NewReader(r)
		if _, err := proto.ReadHello(br); err != nil {
			return
		}
		_, _ = proto.ReadOffer(br)
		_ = proto.WriteHello(r, proto.Hello{Major: 1, Minor: 1, Name: "bob"})
		_ = proto.WriteAnswer(r, proto.Answer{Code: proto.CodeProtocol, Reason: "bad offer: reading offer: entry 0: malformed frame: entry kind 4"})
	}()
	data, _ := newStreamSource(8, 1<<20, 0)
	_, err := Send(s, []Item{streamItem(t, "p.tar", data)}, SendOptions{Name: "alice"})
	var ue *StreamUnsupportedError
	if !errors.As(err, &ue) || !errors.Is(err, ErrNotSendable) {
		t.Fatalf("got %v, want a StreamUnsupportedError", err)
	}
	if want := "bob runs protocol 1.1, which cannot take a pipe; update it"; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q, want it to start %q", err, want)
	}
	if data.given != 0 {
		t.Fatalf("%d bytes of the stream read for a receiver that cannot take it", data.given)
	}
}

// TestStreamToOldReceiverIsNotRetried: that a receiver cannot take a
// pipe does not change by asking again; SendTo gives up at the first
// answer, and says why (it had retried six times, as for a lost
// connection).
func TestStreamToOldReceiverIsNotRetried(t *testing.T) {
	var dials atomic.Int32
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		dials.Add(1)
		s, r := tcpPair(t)
		go func() {
			br := bufio.NewReader(r)
			if _, err := proto.ReadHello(br); err != nil {
				return
			}
			_, _ = proto.ReadOffer(br)
			_ = proto.WriteHello(r, proto.Hello{Major: 1, Minor: 1, Name: "bob"})
			_ = proto.WriteAnswer(r, proto.Answer{Code: proto.CodeProtocol, Reason: "bad offer: reading offer: entry 0: malformed frame: entry kind 4"})
		}()
		return s, nil
	}
	data, _ := newStreamSource(8, 1<<20, 0)
	_, err := SendTo(context.Background(), "old.example:1", []Item{streamItem(t, "p.tar", data)},
		SendOptions{Name: "alice", Dial: dial, retryBase: time.Millisecond})
	var ue *StreamUnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want a StreamUnsupportedError", err)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d connections to a receiver that cannot take a pipe, want 1", n)
	}
}

// TestStreamHostileEnds: a stream's end is checked before the stream gets
// its name: its size, its digest, its index; a sender that gives up on
// its stream (aborted) gets nothing saved.
func TestStreamHostileEnds(t *testing.T) {
	body := []byte("some bytes of a stream")
	var good [proto.DigestSize]byte
	h := proto.NewDigest()
	h.Write(body)
	copy(good[:], h.Sum(nil))
	tests := []struct {
		name     string
		end      proto.StreamEnd
		wantCode proto.Code // 0: the stream is out of step, the transfer fails
	}{
		{"size", proto.StreamEnd{Status: proto.Sent, Size: uint64(len(body)) + 1, Digest: good}, proto.CodeSize},
		{"digest", proto.StreamEnd{Status: proto.Sent, Size: uint64(len(body))}, proto.CodeDigest},
		{"aborted", proto.StreamEnd{Status: proto.Aborted, Code: proto.CodeSourceChanged, Reason: "gone", Size: 3}, proto.CodeSourceChanged},
		{"index", proto.StreamEnd{Index: 1, Status: proto.Sent, Size: uint64(len(body)), Digest: good}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			s, r := tcpPair(t)
			got := make(chan *Transfer, 1)
			var rerr error
			go func() {
				var tr *Transfer
				tr, rerr = in.Receive(r)
				r.Close()
				got <- tr
			}()
			raw, _ := newStreamRawSender(t, s, proto.Entry{Path: "s.bin", Kind: proto.KindStream, Mode: 0o644},
				proto.Entry{Path: "d", Kind: proto.KindDir, Mode: 0o755})
			_ = proto.WriteChunk(raw.bw, body[:5])
			_ = proto.WriteChunk(raw.bw, body[5:])
			_ = proto.WriteStreamEnd(raw.bw, tt.end)
			_ = proto.WriteDone(raw.bw)
			_ = raw.bw.Flush()
			tr := <-got
			if tt.wantCode == 0 {
				if rerr == nil || !errors.Is(rerr, proto.ErrMalformed) {
					t.Fatalf("receive: %v, want a malformed stream", rerr)
				}
				assertEmpty(t, in.Dir())
				return
			}
			if rerr != nil {
				t.Fatalf("receive: %v", rerr)
			}
			if res := tr.Entries[0].Result; res.Status != proto.Failed || res.Code != tt.wantCode {
				t.Fatalf("result %+v, want failed with %v", res, tt.wantCode)
			}
			assertTree(t, in.Dir(), map[string]string{"d/": ""})
		})
	}
}

// TestStreamItemRefusesUnsafeNames: a name the receiver would refuse is
// an error before anything is read.
func TestStreamItemRefusesUnsafeNames(t *testing.T) {
	for _, name := range []string{"", "../x", "/etc/passwd", "a/../../b", "bad\x1bname", "x\u202egnp.exe"} {
		if _, err := StreamItem(name, strings.NewReader("x")); !errors.Is(err, ErrNameUnsafe) {
			t.Errorf("StreamItem(%q) = %v, want ErrNameUnsafe", name, err)
		}
	}
	if _, err := StreamItem("photos/2024.tar", strings.NewReader("x")); err != nil {
		t.Errorf("a safe path: %v", err)
	}
}

// TestStreamSlowSourceFlushes: what a slow source gives leaves at once,
// in a chunk of its own, not once a chunk is full.
func TestStreamSlowSourceFlushes(t *testing.T) {
	s, r := tcpPair(t)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	done := make(chan error, 1)
	go func() {
		_, err := Send(s, []Item{streamItem(t, "log.txt", pr)}, SendOptions{Name: "s", IdleTimeout: 10 * time.Second})
		done <- err
	}()
	br := bufio.NewReader(r)
	if _, err := proto.ReadHello(br); err != nil {
		t.Fatal(err)
	}
	if _, err := proto.ReadOffer(br); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteHello(r, proto.NewHello("bob")); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteAnswer(r, proto.Answer{Replies: []proto.Reply{{Status: proto.Accept}}}); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"first line\n", "second line\n"} {
		go func() { _, _ = pw.Write([]byte(line)) }()
		// The source has nothing more until this line is read here.
		n, end, err := proto.ReadStreamNext(br)
		if err != nil || end != nil || n != len(line) {
			t.Fatalf("after %q: chunk of %d, end %v, %v", line, n, end, err)
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(br, got); err != nil || string(got) != line {
			t.Fatalf("chunk %q, %v", got, err)
		}
	}
	pw.Close()
	_, end, err := proto.ReadStreamNext(br)
	if err != nil || end == nil || end.Size != uint64(len("first line\nsecond line\n")) {
		t.Fatalf("end %+v, %v", end, err)
	}
	r.Close()
	<-done
}

// TestStreamConsentSummary: the owner asked about an offer learns that a
// file of it is a stream, whose size the offer does not hold.
func TestStreamConsentSummary(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	s, r := tcpPair(t)
	seen := make(chan OfferSummary, 1)
	go func() {
		_, _ = in.ReceiveWith(r, Policy{Consent: func(o OfferSummary, _ func(time.Duration) (<-chan struct{}, error)) error {
			seen <- o
			return &RefusedError{Code: proto.CodeDenied, Reason: "no"}
		}})
		r.Close()
	}()
	src := writeTree(t, map[string]string{"a.txt": "abc"})
	_, err := Send(s, []Item{collect(t, filepath.Join(src, "a.txt"))[0], streamItem(t, "p.tar", strings.NewReader("x"))}, SendOptions{Name: "s"})
	if re := refusal(t, err); re.Code != proto.CodeDenied {
		t.Fatalf("refusal %+v", re)
	}
	if o := <-seen; o.Files != 2 || o.Streams != 1 || o.Bytes != 3 || o.Dirs != 0 {
		t.Fatalf("summary %+v, want 2 files, 1 of them a stream, 3 bytes", o)
	}
}

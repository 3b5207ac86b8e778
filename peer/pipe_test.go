package peer

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// largeSize is big enough for every large-file path: the sender's
// read-ahead (and sendfile on TCP), the receiver's pipelined, direct-I/O
// sink, and a tail that is not a whole block.
const largeSize = directMin + pipeChunk + 12345

func TestLargeFileEachPath(t *testing.T) {
	data := randomBytes(t, largeSize)
	src := writeTree(t, map[string]string{"big.bin": data, "small.txt": "after"})
	items := collect(t, filepath.Join(src, "big.bin"), filepath.Join(src, "small.txt"))
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			o := transferOver(t, pair, in, items, nil)
			if o.sendErr != nil || o.recvErr != nil {
				t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
			}
			if o.rep.Sent != largeSize+5 {
				t.Fatalf("sent %d bytes, want %d", o.rep.Sent, largeSize+5)
			}
			assertTree(t, in.Dir(), map[string]string{"big.bin": data, "small.txt": "after"})
		})
	}
}

// TestLargeSourceShrinksWhileSending: a large file cut short after it was
// offered is padded and aborted, and the next file still arrives.
func TestLargeSourceShrinksWhileSending(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			src := writeTree(t, map[string]string{"big.bin": randomBytes(t, largeSize), "b": "bbb"})
			items := collect(t, filepath.Join(src, "big.bin"), filepath.Join(src, "b"))
			must(t, os.Truncate(filepath.Join(src, "big.bin"), 3*pipeChunk+100))
			in := newInbox(t, InboxConfig{})
			o := transferOver(t, pair, in, items, nil)
			var re *RefusedError
			if !errors.Is(o.sendErr, ErrIncomplete) || !errors.As(o.sendErr, &re) || re.Code != proto.CodeSourceChanged {
				t.Fatalf("send error %v, want incomplete with source changed", o.sendErr)
			}
			assertTree(t, in.Dir(), map[string]string{"b": "bbb"})
		})
	}
}

// TestLargeFileCutByReceiver cuts the connection on the receiver's side,
// so that the sender's own connection stays one sendfile can write to,
// at offsets inside and around a large file's bytes.
func TestLargeFileCutByReceiver(t *testing.T) {
	src := writeTree(t, map[string]string{"big.bin": randomBytes(t, largeSize), "c.txt": "c"})
	items := collect(t, filepath.Join(src, "big.bin"), filepath.Join(src, "c.txt"))
	for _, n := range []int{100, 300, pipeChunk, directMin, largeSize - 1, largeSize + 60} {
		s, r := tcpPair(t)
		in := newInbox(t, InboxConfig{})
		var o outcome
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.tr, o.recvErr = in.Receive(&cutReadConn{Conn: r, left: n})
			r.Close()
		}()
		o.rep, o.sendErr = Send(s, items, SendOptions{Name: "sender", IdleTimeout: 10e9})
		s.Close()
		wg.Wait()
		if o.sendErr == nil || o.recvErr == nil {
			t.Fatalf("cut at %d: send error %v, receive error %v; want both", n, o.sendErr, o.recvErr)
		}
		assertEmpty(t, in.Dir())
	}
}

// cutReadConn closes the connection once left bytes have been read.
type cutReadConn struct {
	net.Conn
	left int
}

func (c *cutReadConn) Read(p []byte) (int, error) {
	if c.left == 0 {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

// TestSinkSpillsWhenDiskStalls holds every direct write of a large file
// up, as a stalled disk does: the sink must still take the whole stream,
// writing what the held writers cannot take through the page cache, and
// once they are let go the file must be whole and its digest right.
func TestSinkSpillsWhenDiskStalls(t *testing.T) {
	data := []byte(randomBytes(t, 4*directMin+12345))
	f, err := os.Create(filepath.Join(t.TempDir(), "big.part"))
	must(t, err)
	defer f.Close()
	if !setDirect(f, true) || !setDirect(f, false) {
		t.Skip("the test's file system has no direct I/O (O_DIRECT)")
	}
	if g, err := reopenCached(f); err != nil {
		t.Skipf("cannot open a file again by its descriptor: %v", err)
	} else {
		g.Close()
	}
	release := make(chan struct{})
	storeHook = func() { <-release }
	defer func() { storeHook = nil }()

	h := proto.NewDigest()
	s := newSink(f, h, 0, uint64(len(data)), nil)
	if !s.direct {
		t.Fatal("the sink did not turn direct I/O on")
	}
	// With every writer held, fill returns only if the sink spilled.
	filled := make(chan error, 1)
	go func() { filled <- s.fill(bytes.NewReader(data), uint64(len(data))) }()
	select {
	case err := <-filled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		close(release)
		t.Fatal("the sink waited for the stalled writers")
	}
	if s.cached == nil {
		t.Fatal("the sink took the file without spilling any of it")
	}
	close(release)
	digest, err := s.close()
	if err != nil {
		t.Fatal(err)
	}
	want := proto.NewDigest()
	want.Write(data)
	if string(digest[:]) != string(want.Sum(nil)) {
		t.Fatal("digest differs from the data's")
	}
	got, err := os.ReadFile(f.Name())
	must(t, err)
	if string(got) != string(data) {
		t.Fatalf("the file differs from the data (%d bytes, want %d)", len(got), len(data))
	}
}

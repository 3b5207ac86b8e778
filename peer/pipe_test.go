package peer

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

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

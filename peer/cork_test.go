package peer

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// writeCounter counts the writes to the connection it wraps, and the
// largest.
type writeCounter struct {
	net.Conn
	mu      sync.Mutex
	writes  int
	largest int
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.largest = max(c.largest, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *writeCounter) counts() (writes, largest int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.largest
}

// TestCorkConnGathersRecords: corked, the writes wait and go out in
// order in one write at uncork (or when the buffer fills); uncorked, each
// goes through.
func TestCorkConnGathersRecords(t *testing.T) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	wc := &writeCounter{Conn: a}
	cc := &corkConn{Conn: wc}
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		buf := make([]byte, 4096)
		for {
			n, err := b.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				got <- all
				return
			}
		}
	}()
	var want []byte
	write := func(s string) {
		t.Helper()
		if n, err := cc.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("write %q: %d, %v", s, n, err)
		}
		want = append(want, s...)
	}
	write("through")
	cc.cork(make([]byte, 0, 10))
	write("ab")
	write("cde")
	if w, _ := wc.counts(); w != 1 {
		t.Fatalf("corked writes reached the connection: %d writes, want 1", w)
	}
	write("fghijk")        // does not fit: "abcde" goes out, "fghijk" waits
	write("0123456789ABC") // larger than the buffer: through, after "fghijk"
	must(t, cc.uncork())
	write("end")
	a.Close()
	if w, _ := wc.counts(); w != 5 {
		t.Fatalf("%d writes reached the connection, want 5", w)
	}
	if all := <-got; string(all) != string(want) {
		t.Fatalf("the connection got %q, want %q", all, want)
	}
}

// TestLargeFileCorkedOverTLS: a large file sent over TLS on a corkConn
// (as Sender.dial makes) arrives whole, its records gathered into writes
// of a chunk rather than one write per record.
func TestLargeFileCorkedOverTLS(t *testing.T) {
	data := randomBytes(t, largeSize)
	src := writeTree(t, map[string]string{"big.bin": data})
	items := collect(t, filepath.Join(src, "big.bin"))
	recvID, err := LoadIdentity(t.TempDir())
	must(t, err)
	sendID, err := LoadIdentity(t.TempDir())
	must(t, err)
	var wc *writeCounter
	pair := func(t testing.TB) (net.Conn, net.Conn) {
		s, r := tcpPair(t)
		wc = &writeCounter{Conn: s}
		return tls.Client(&corkConn{Conn: wc}, sendID.ClientTLS(recvID.ID)), tls.Server(r, recvID.ServerTLS())
	}
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, pair, in, items, nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": data})
	// One record per write would be largeSize/16 KiB, over 600 writes.
	writes, largest := wc.counts()
	if largest < pipeChunk || writes > 100 {
		t.Fatalf("%d writes, the largest %d bytes: want the chunks' records gathered (largest at least %d)", writes, largest, pipeChunk)
	}
}

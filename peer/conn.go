package peer

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"time"
)

// bufSize is the size of read and write buffers on a transfer connection
// and of file copy chunks: large enough that a loopback or 10 GbE link
// moves data in few syscalls, small enough to keep memory flat per
// connection.
const bufSize = 256 << 10

// idleConn extends the connection's deadline before every read and write,
// so a peer that stalls or trickles is dropped after idle.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c idleConn) Read(p []byte) (int, error) {
	if err := c.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c idleConn) Write(p []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// pacedConn carries a transfer's stream after the answer. Each read and
// each write must end within idle; and over every window of time spent
// waiting in them, at least min bytes must move each way it is used, or
// the call fails with ErrTooSlow. So a peer that trickles bytes (or reads
// the receipt a trickle at a time) to keep a connection, and the memory
// of its offer, is dropped within about window, while time the receiver
// spends elsewhere (hashing a resumed file's prefix, writing, syncing)
// does not count against the sender.
type pacedConn struct {
	net.Conn
	minRate

	r, w pace // reads, writes: each on one goroutine at a time
}

// minRate is the bound that pace applies to one direction of a stream:
// every call ends within idle, and at least min bytes move per window of
// time spent waiting in calls (window 0: no minimum).
type minRate struct {
	idle   time.Duration
	window time.Duration
	min    uint64
}

// pace is the minimum-rate state of one direction.
type pace struct {
	waited time.Duration // in calls, in the current window
	moved  uint64        // bytes, in the current window
}

func (c *pacedConn) Read(b []byte) (int, error) {
	return c.r.do(c.minRate, c.Conn.SetReadDeadline, c.Conn.Read, b)
}

func (c *pacedConn) Write(b []byte) (int, error) {
	return c.w.do(c.minRate, c.Conn.SetWriteDeadline, c.Conn.Write, b)
}

// do runs op on b under lim: it sets the deadline by which op must end
// (idle, or the rest of the window when too little has moved in it), and
// fails with ErrTooSlow once a window of waiting moved under lim.min.
func (p *pace) do(lim minRate, setDeadline func(time.Time) error, op func([]byte) (int, error), b []byte) (int, error) {
	wait := lim.idle
	if lim.window > 0 && p.moved < lim.min {
		wait = min(wait, lim.window-p.waited)
	}
	if err := setDeadline(time.Now().Add(wait)); err != nil {
		return 0, err
	}
	start := time.Now()
	n, err := op(b)
	if lim.window <= 0 {
		return n, err
	}
	p.waited += time.Since(start)
	p.moved += uint64(n)
	if p.waited >= lim.window {
		if p.moved < lim.min {
			return n, fmt.Errorf("%w: %d bytes in %v of waiting (minimum %d)", ErrTooSlow, p.moved, lim.window, lim.min)
		}
		p.waited, p.moved = 0, 0
	}
	return n, err
}

// gate is a done channel for one transfer: it closes on the first of
// close and the closing of the parent channel. stop ends the watch on the
// parent; call it once, when the transfer is over.
type gate struct {
	done  chan struct{}
	once  sync.Once
	stopc chan struct{}
	wg    sync.WaitGroup
}

func newGate(parent <-chan struct{}) *gate {
	g := &gate{done: make(chan struct{}), stopc: make(chan struct{})}
	if parent != nil {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			select {
			case <-parent:
				g.close()
			case <-g.stopc:
			}
		}()
	}
	return g
}

func (g *gate) close() { g.once.Do(func() { close(g.done) }) }

func (g *gate) stop() {
	close(g.stopc)
	g.wg.Wait()
}

// closeRaw closes the network connection under c (a *tls.Conn's own),
// without the TLS goodbye, which could wait on a peer that stopped
// reading.
func closeRaw(c net.Conn) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = nc.NetConn()
	}
	c.Close()
}

// closeWrite half-closes c if its type can (TCP, TLS, Unix sockets).
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// newBuffers returns a receiver's buffers on c. The reader's is small, so
// that reads of a large file's bytes into larger buffers bypass it rather
// than being copied through it.
func newBuffers(c net.Conn) (*bufio.Reader, *bufio.Writer) {
	return bufio.NewReaderSize(c, recvBufSize), bufio.NewWriterSize(c, bufSize)
}

// recvBufSize is the size of a receiver's read buffer, which frames and
// small files go through.
const recvBufSize = 64 << 10

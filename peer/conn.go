package peer

import (
	"bufio"
	"net"
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

package peer

import "net"

// corkSize is the size of a sender's cork buffer: a pipelined chunk and
// the overhead of its TLS records (22 bytes each of 16 KiB).
const corkSize = pipeChunk + pipeChunk/256

// corkConn is the connection under a sender's TLS. Go's TLS writes each
// record (16 KiB) with a system call of its own: 64 per MiB, each
// waking the receiver on loopback. While corked, a corkConn gathers
// them and writes them in one call when uncorked, or when its buffer
// fills. Uncorked, it writes through. Its methods run on the goroutine
// that writes the TLS connection.
type corkConn struct {
	net.Conn
	buf []byte // nil while not corked
}

func (c *corkConn) Write(p []byte) (int, error) {
	if c.buf == nil {
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > cap(c.buf) {
		if err := c.flush(); err != nil {
			return 0, err
		}
		if len(p) > cap(c.buf) {
			return c.Conn.Write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// flush writes what was gathered. The write deadline is the TLS
// connection's, which sets it on c.
func (c *corkConn) flush() error {
	b := c.buf
	c.buf = c.buf[:0]
	for len(b) > 0 {
		n, err := c.Conn.Write(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// cork gathers the writes that follow into buf (its capacity), which c
// holds until uncork.
func (c *corkConn) cork(buf []byte) { c.buf = buf[:0] }

// uncork writes what was gathered and writes through from then on.
func (c *corkConn) uncork() error {
	if c.buf == nil {
		return nil
	}
	err := c.flush()
	c.buf = nil
	return err
}

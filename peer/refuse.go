package peer

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// Refuse answers the transfer on conn with a refusal of the whole batch
// and creates nothing: it reads the hello, sends a, and then reads and
// discards what the sender had already written (its offer, at most a
// frame's worth) until the sender closes or the handshake deadline, so
// that the answer is not lost to a reset. The offer is never parsed or
// kept. It returns a *RefusedError and does not close conn.
func (in *Inbox) Refuse(conn net.Conn, a proto.Answer) (*Transfer, error) {
	return in.refuse(conn, a, time.Now())
}

// refuse is Refuse with the handshake deadline counted from start.
func (in *Inbox) refuse(conn net.Conn, a proto.Answer, start time.Time) (*Transfer, error) {
	br, bw, tr, err := in.greet(conn, start)
	if err != nil {
		return tr, err
	}
	if err := in.answer(bw, a); err != nil {
		return tr, fmt.Errorf("sending answer: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(br, proto.HeaderSize+proto.MaxFrameLen))
	return tr, &RefusedError{Peer: "we", Code: a.Code, Reason: a.Reason}
}

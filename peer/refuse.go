package peer

import (
	"fmt"
	"net"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// Refuse answers the transfer on conn with a refusal of the whole batch
// and creates nothing: it reads the hello and the offer (into memory,
// within the caps of proto), sends a, and returns a *RefusedError. It
// does not close conn.
func (in *Inbox) Refuse(conn net.Conn, a proto.Answer) (*Transfer, error) {
	if in.cfg.HandshakeTimeout > 0 {
		if err := conn.SetDeadline(time.Now().Add(in.cfg.HandshakeTimeout)); err != nil {
			return nil, err
		}
	}
	br, bw := newBuffers(conn)
	hello, err := proto.ReadHello(br)
	if err != nil {
		return nil, fmt.Errorf("reading hello: %w", err)
	}
	tr := &Transfer{From: hello.Name}
	if err := hello.CheckVersion(); err != nil {
		in.refuseVersion(conn, br, bw)
		return tr, err
	}
	if _, err := proto.ReadOffer(br); err != nil {
		return tr, fmt.Errorf("reading offer: %w", err)
	}
	if err := in.answer(bw, a); err != nil {
		return tr, fmt.Errorf("sending answer: %w", err)
	}
	return tr, &RefusedError{Peer: "we", Code: a.Code, Reason: a.Reason}
}

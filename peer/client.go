package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// dialTimeout bounds connecting to one address, so that a dead address
// does not hold up the next one.
const dialTimeout = 5 * time.Second

// Sender sends as one identity: every transfer runs over TLS 1.3, and the
// receiver must hold the key of the id it was found under.
type Sender struct {
	Identity *Identity
	// Known, if set, pins names to ids: the first successful send to a
	// display name records the receiver's id under it, and a target chosen
	// by anything but its whole id (Target.ByName) whose id is not pinned
	// to its display name is refused with ErrKeyChanged until the user
	// trusts the new id. A target chosen by its whole id is the user's
	// explicit choice of a key: it is not checked, and it adds its id to
	// the name (two devices may share a name). Targets given by address
	// pin nothing: their name is only what the peer says.
	Known *Known
}

// Send sends items to t; see SendTo. Addresses are tried in order until
// one connects. A receiver whose key does not match t.ID fails the send
// with ErrWrongKey before any byte of the transfer; nothing is tried
// after that.
func (s *Sender) Send(ctx context.Context, t Target, items []Item, opt SendOptions) (*Report, error) {
	if err := s.checkPinned(t); err != nil {
		return nil, err
	}
	var learned string // the receiver's id, from the first handshake
	opt.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
		want := t.ID
		if want == "" {
			// Later batches must reach the key the first one reached.
			want = learned
		}
		c, id, err := s.dial(ctx, addr, want)
		if err == nil {
			learned = id
		}
		return c, err
	}
	var rep *Report
	err := fmt.Errorf("%w %s: it has no address", ErrUnknownPeer, Escape(t.Name))
	for _, addr := range t.Addrs {
		rep, err = SendTo(ctx, addr, items, opt)
		if errors.Is(err, ErrWrongKey) {
			return rep, fmt.Errorf("refusing to send to %s at %s: %w; whoever answers there does not hold the key it advertises (an impostor?); nothing was sent to it",
				Escape(t.Name), addr, err)
		}
		if !dialFailed(rep, err) || ctx.Err() != nil {
			break
		}
	}
	if err == nil && s.Known != nil && t.ID != "" && t.DisplayName != "" &&
		(!t.ByName || len(s.Known.ByName(t.DisplayName)) == 0) {
		if perr := s.Known.Pin(t.ID, t.DisplayName); perr != nil {
			return rep, fmt.Errorf("sent, but could not record %s as known: %w", Escape(t.Name), perr)
		}
	}
	return rep, err
}

// checkPinned refuses t when its display name is pinned to other ids only.
func (s *Sender) checkPinned(t Target) error {
	if s.Known == nil || t.ID == "" || t.DisplayName == "" || !t.ByName {
		return nil
	}
	pins := s.Known.ByName(t.DisplayName)
	if len(pins) == 0 {
		return nil
	}
	for _, p := range pins {
		if p.ID == t.ID {
			return nil
		}
	}
	return fmt.Errorf("%w: %s now has id %s, but the name %s is pinned to %s; if its owner confirms the new id, accept it with: lanshare trust %s (or send to it by its whole id)",
		ErrKeyChanged, Escape(t.Name), GroupID(t.ID), Escape(t.DisplayName), GroupID(pins[0].ID), GroupID(t.ID))
}

// dial connects to addr and runs the TLS handshake, expecting id want
// ("" accepts any key). It returns the TLS connection and the peer's id.
func (s *Sender) dial(ctx context.Context, addr, want string) (net.Conn, string, error) {
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	tc := tls.Client(raw, s.Identity.ClientTLS(want))
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		if errors.Is(err, ErrWrongKey) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("%w with %s: %w", ErrHandshake, addr, err)
	}
	return tc, PeerID(tc.ConnectionState()), nil
}

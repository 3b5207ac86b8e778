package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
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
	// display name records the receiver's id under the name it gives in
	// its hello (inside TLS), and a target chosen by anything but its
	// whole id (Target.ByName) is refused by Known.Check with
	// ErrKeyChanged when what the user typed, or its display name, is
	// pinned to other ids only, until the user accepts the new id. A
	// target chosen by its whole id is the user's explicit choice of a
	// key: it is not checked, and it adds its id to the name (two devices
	// may share a name). Targets given by address pin nothing: their name
	// is only what the peer says.
	Known *Known
}

// Send sends items to t; see SendTo. Addresses are tried in order until
// one holds the key of t.ID and takes the transfer: one that cannot be
// reached, fails the handshake or holds another key (ErrWrongKey; someone
// advertising a copied id) is skipped before any byte of the transfer
// goes to it. The error wraps ErrWrongKey only when no address connected
// and at least one answered with another key.
func (s *Sender) Send(ctx context.Context, t Target, items []Item, opt SendOptions) (*Report, error) {
	if err := s.Known.Check(t); err != nil {
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
	var wrongKey error // the first address that answered with another key
	var shown error    // the failure at the address a person knows best
	shownRank := -1
	err := fmt.Errorf("%w %s: it has no address", ErrUnknownPeer, Escape(t.Name))
	for _, addr := range t.Addrs {
		rep, err = SendTo(ctx, addr, items, opt)
		if errors.Is(err, ErrWrongKey) && wrongKey == nil {
			wrongKey = fmt.Errorf("refusing to send to %s at %s: %w; whoever answers there does not hold the key it advertises (an impostor?); nothing was sent to it",
				Escape(t.Name), addr, err)
		}
		if !unreached(rep, err) || ctx.Err() != nil {
			break
		}
		if r := addrRank(addr); r > shownRank {
			shown, shownRank = err, r
		}
	}
	if wrongKey != nil && unreached(rep, err) {
		return rep, wrongKey
	}
	if unreached(rep, err) && ctx.Err() == nil && shown != nil {
		// Name the peer, and the address it is best known by: a
		// routable IPv4 one rather than a link-local IPv6 one.
		if len(t.Addrs) > 1 {
			return rep, fmt.Errorf("cannot reach %s at any of its %d addresses: %w", Escape(t.Name), len(t.Addrs), shown)
		}
		if t.DisplayName != "" {
			return rep, fmt.Errorf("cannot reach %s: %w", Escape(t.Name), shown)
		}
		return rep, shown
	}
	if err == nil && s.Known != nil && t.ID != "" {
		// The key is pinned under the name the user resolved it by, and
		// only when the key's holder calls itself the same inside TLS: a
		// hello name alone would let a peer found as "mallory" take over
		// the pins of "bob".
		name := t.DisplayName
		if rep.Peer != "" && !strings.EqualFold(rep.Peer, name) {
			name = ""
		}
		if name != "" && (!t.ByName || len(s.Known.ByName(name)) == 0) {
			if perr := s.Known.Pin(t.ID, name); perr != nil {
				return rep, fmt.Errorf("sent, but could not record %s as known: %w", Escape(t.Name), perr)
			}
		}
	}
	return rep, err
}

// unreached reports whether a send failed before the transfer began: no
// connection, a failed handshake, or a receiver with another key. A
// receiver that was reached and then stopped or dropped (ErrIncomplete)
// was reached: its other addresses are not tried.
func unreached(rep *Report, err error) bool {
	return err != nil && (rep == nil || len(rep.Items) == 0) && !errors.Is(err, ErrIncomplete) &&
		(dialFailed(rep, err) || errors.Is(err, ErrHandshake) || errors.Is(err, ErrWrongKey))
}

// addrRank orders addresses by how well a person recognises them in a
// message: a routable IPv4 address first, then other IPv4, then routable
// IPv6, then link-local IPv6 (fe80::...%eth0), then anything else.
func addrRank(addr string) int {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return 1 // a host name: not what the resolver gave
	case ip.Is4() && !ip.IsLinkLocalUnicast():
		return 5
	case ip.Is4() || ip.Is4In6():
		return 4
	case !ip.IsLinkLocalUnicast():
		return 3
	}
	return 2
}

// dial connects to addr and runs the TLS handshake, expecting id want
// ("" accepts any key). It returns the TLS connection and the peer's id.
func (s *Sender) dial(ctx context.Context, addr, want string) (net.Conn, string, error) {
	d := net.Dialer{Timeout: dialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	// A large file's records go out a chunk at a time (see corkConn).
	tc := tls.Client(&corkConn{Conn: raw}, s.Identity.ClientTLS(want))
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		if errors.Is(err, ErrWrongKey) {
			return nil, "", err
		}
		return nil, "", fmt.Errorf("%w with %s: %w", ErrHandshake, addr, turnedAway(err))
	}
	return tc, PeerID(tc.ConnectionState()), nil
}

// turnedAway marks err, from a connection on which no hello of the
// receiver arrived yet, as ErrTurnedAway when the receiver just closed it
// (an agent with every slot taken closes a newcomer at once, or after the
// TLS handshake when the newcomer tried its reserve for trusted keys).
func turnedAway(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %w", ErrTurnedAway, err)
	}
	return err
}

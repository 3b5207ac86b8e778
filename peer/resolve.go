package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto"
)

// Target is a resolved destination for a transfer.
type Target struct {
	// Name is how to call the target in messages: the peer's instance
	// name, or the address the user gave.
	Name string
	// DisplayName is the peer's display name; empty for an address.
	DisplayName string
	// ID is the peer's id from discovery; empty for a target given by
	// address.
	ID string
	// Addrs are the addresses to try, best first.
	Addrs []string
	// ByName is true unless the user named the peer by its whole id: a
	// display name, an instance name ("bob (3fa2)") or a short id prefix
	// is something an impostor can copy or grind; see Sender.Known.
	ByName bool
}

// ResolveOptions tunes Resolve.
type ResolveOptions struct {
	// Ifaces restricts the browse to these interfaces (empty: all).
	Ifaces []string
	// Wait is how long to browse; zero means discovery.DefaultBrowseWait.
	Wait time.Duration
	// Known, if set, returns peers already known without browsing (the
	// running local agent's live table). A target that matches one of
	// them exactly once is used at once; otherwise Resolve browses.
	Known func(ctx context.Context) []discovery.Peer
	// Browse replaces discovery.BrowseUntil (tests).
	Browse func(ctx context.Context, ifaces []string, wait time.Duration, enough func([]discovery.Peer, time.Duration) bool) ([]discovery.Peer, error)
}

// resolveSettle is how long Resolve browses at least before it settles on
// a match by name: the one-shot browse queries at 0 and 250 ms, and
// responders answer within about 120 ms (ours space their multicast
// answers 250 ms apart), so by then every live peer has had two chances to
// answer, and a second peer of the same name would have shown up. A whole
// id needs no settling.
const resolveSettle = 600 * time.Millisecond

// Resolve turns what the user typed into a Target. HOST:PORT (with a
// numeric port) is used as it is, without any browsing. Anything else is
// looked up on the network and matched by FindPeer: a whole id as soon as
// it answers, a name once it has matched for resolveSettle, and an unknown
// name after opt.Wait. The error
// wraps ErrUnknownPeer, ErrAmbiguousPeer or ErrNotSendable with a message
// that lists what was seen.
func Resolve(ctx context.Context, target string, opt ResolveOptions) (Target, error) {
	if host, port, err := net.SplitHostPort(target); err == nil && host != "" {
		if _, perr := strconv.ParseUint(port, 10, 16); perr == nil {
			return Target{Name: target, Addrs: []string{target}}, nil
		}
	}
	if opt.Known != nil {
		if p, by, err := findPeer(opt.Known(ctx), target); err == nil {
			return targetOf(p, by, target), nil
		}
	}
	browse := opt.Browse
	if browse == nil {
		browse = discovery.BrowseUntil
	}
	wait := opt.Wait
	if wait <= 0 {
		wait = discovery.DefaultBrowseWait
	}
	wholeID := ParseID(target)
	enough := func(peers []discovery.Peer, elapsed time.Duration) bool {
		p, by, err := findPeer(peers, target)
		switch {
		case err == nil && by == byID && p.ID == wholeID:
			return true
		case elapsed < min(wait, resolveSettle):
			return false
		}
		// More answers cannot turn a match into no match, nor resolve an
		// ambiguity; only an unknown name is worth the whole wait.
		return !errors.Is(err, ErrUnknownPeer)
	}
	peers, err := browse(ctx, opt.Ifaces, wait, enough)
	if err != nil {
		return Target{}, fmt.Errorf("looking for %q: %w", target, err)
	}
	p, by, err := findPeer(peers, target)
	if errors.Is(err, ErrUnknownPeer) {
		return Target{}, fmt.Errorf("%w %s within %v (%s)", ErrUnknownPeer, Escape(target), wait, seen(peers))
	}
	if err != nil {
		return Target{}, err
	}
	return targetOf(p, by, target), nil
}

// targetOf is the Target for peer p, found by rule by from what the user
// typed.
func targetOf(p discovery.Peer, by int, typed string) Target {
	local, _ := discovery.LocalPrefixes()
	t := Target{Name: p.Instance, DisplayName: p.Name, ID: p.ID, ByName: !(by == byID && ParseID(typed) == p.ID)}
	for _, a := range discovery.SortAddrs(p.Addrs, local) {
		t.Addrs = append(t.Addrs, a.String())
	}
	return t
}

// FindPeer picks the peer target names among peers: an instance name
// ("bob (3fa2)"), else a display name, both compared without regard to
// case; else an id or an id prefix of at least four characters (dashes as
// in GroupID are ignored). More than one match is ErrAmbiguousPeer, none is
// ErrUnknownPeer; a match that cannot be sent to (a foreign record without
// our fields, or another major protocol version) is ErrNotSendable.
func FindPeer(peers []discovery.Peer, target string) (discovery.Peer, error) {
	p, _, err := findPeer(peers, target)
	return p, err
}

// How findPeer matched: the index of the rule in its list.
const (
	byInstance = iota
	byDisplayName
	byID
)

func findPeer(peers []discovery.Peer, target string) (discovery.Peer, int, error) {
	var match []discovery.Peer
	rule := 0
	for i, by := range []func(discovery.Peer) bool{
		func(p discovery.Peer) bool { return strings.EqualFold(p.Instance, target) },
		func(p discovery.Peer) bool { return strings.EqualFold(p.Name, target) },
		func(p discovery.Peer) bool {
			id := strings.ToLower(strings.ReplaceAll(target, "-", ""))
			return len(id) >= 4 && p.ID != "" && strings.HasPrefix(strings.ToLower(p.ID), id)
		},
	} {
		for _, p := range peers {
			if by(p) {
				match = append(match, p)
			}
		}
		if len(match) > 0 {
			rule = i
			break
		}
	}
	switch {
	case len(match) == 0:
		return discovery.Peer{}, 0, fmt.Errorf("%w %s (%s)", ErrUnknownPeer, Escape(target), seen(peers))
	case len(match) > 1:
		return discovery.Peer{}, 0, fmt.Errorf("%w: %s matches %s; name one by instance or id", ErrAmbiguousPeer, Escape(target), describe(match))
	}
	p := match[0]
	if !p.Complete() {
		var missing []string
		if p.ID == "" {
			missing = append(missing, "id")
		}
		if p.Version == "" {
			missing = append(missing, "protocol version")
		}
		if p.Port <= 0 || len(p.Addrs) == 0 {
			missing = append(missing, "address")
		}
		return p, rule, fmt.Errorf("%w: %s does not advertise a lanshare %s; send to HOST:PORT instead",
			ErrNotSendable, Escape(p.Instance), strings.Join(missing, " and "))
	}
	if major, _, _ := strings.Cut(p.Version, "."); major != strconv.Itoa(proto.Major) {
		return p, rule, fmt.Errorf("%w: %s speaks protocol %s, we speak %s", ErrNotSendable, Escape(p.Instance), Escape(p.Version), ProtocolVersion)
	}
	return p, rule, nil
}

func seen(peers []discovery.Peer) string {
	if len(peers) == 0 {
		return "no peers seen"
	}
	return "seen: " + describe(peers)
}

func describe(peers []discovery.Peer) string {
	var parts []string
	for _, p := range peers {
		s := Escape(p.Instance)
		if p.ID != "" {
			s += " id " + Escape(ShortID(p.ID))
		}
		if len(p.Addrs) > 0 {
			s += " at " + p.Addrs[0].String()
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// dialFailed reports whether a send failed before any connection was made.
func dialFailed(rep *Report, err error) bool {
	var ne *net.OpError
	return err != nil && (rep == nil || len(rep.Items) == 0) && errors.As(err, &ne) && ne.Op == "dial"
}

// AddrString formats an address list for messages.
func AddrString(addrs []netip.AddrPort) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

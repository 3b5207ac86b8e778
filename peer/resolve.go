package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
	// Addrs are the addresses to try, best first: every address of every
	// record that carries ID (one who copies an id adds addresses, which
	// fail the key check), those of records whose instance label is their
	// own (see Suspicious) first.
	Addrs []string
	// ByName is true unless the user named the peer by its whole id: a
	// display name, an instance name ("bob (3fa2)") or a short id prefix
	// is something an impostor can copy or grind; see Known.Check.
	ByName bool
	// Typed is what the user typed to name the target; Known.Check holds
	// it against the pins, whatever the records said.
	Typed string
	// Static is the address of the static peer (see StaticPeers) the
	// target is, when it is one: that address is among Addrs, and ID is
	// the key it was added with.
	Static string
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
	// Pins, if set, are the known peers. A target that names pinned ids
	// (see Known.PinnedTo) resolves to a record of one of those ids when
	// one answers, whatever other records claim; only when none does is
	// it looked up as usual (and then refused by Known.Check, unless the
	// record found is pinned too).
	Pins *Known
	// Static are the static peers (see LoadStatic). One that what the
	// user typed names (its name, instance name, id, id prefix or
	// address) is found without discovery, and its address is added to
	// those of a record of its id; see Resolve.
	Static []StaticPeer
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
// numeric port) is used as it is, without any browsing, unless it is the
// address of a static peer (opt.Static), which is then held to the key it
// was added with. Anything else is looked up on the network and matched
// by FindPeer (steered to pinned ids by opt.Pins): a whole id as soon as
// it answers, a name once it has matched for resolveSettle, and an
// unknown name after opt.Wait. Static peers that target names are found
// without discovery: a whole id of one at once, a name once no other
// pinned key is awaited and resolveSettle has passed; a record of the
// same id adds its addresses, and one that matches only by label, name
// or prefix gives way to the static peer, whose key is pinned. The error
// wraps ErrUnknownPeer, ErrAmbiguousPeer or ErrNotSendable with a message
// that lists what was seen.
func Resolve(ctx context.Context, target string, opt ResolveOptions) (Target, error) {
	statics := matchStatic(opt.Static, target)
	if host, port, err := net.SplitHostPort(target); err == nil && host != "" {
		if _, perr := strconv.ParseUint(port, 10, 16); perr == nil {
			if ids := staticIDs(statics); len(ids) == 1 {
				return staticTarget(statics, ids[0], target), nil
			}
			return Target{Name: target, Addrs: []string{target}, Typed: target}, nil
		}
	}
	var steer []string
	if opt.Pins != nil {
		steer = opt.Pins.PinnedTo(target)
	}
	if opt.Known != nil {
		// With pins, only a pinned id is taken from the table at once: the
		// table may not hold every peer.
		if m, err := findPeer(opt.Known(ctx), target, steer); err == nil && (len(steer) == 0 || m.by == byPin) {
			return withStatic(m, target, statics)
		}
	}
	wholeID := ParseID(target)
	if wholeID != "" && slices.Contains(staticIDs(statics), wholeID) {
		return staticTarget(statics, wholeID, target), nil
	}
	browse := opt.Browse
	if browse == nil {
		browse = discovery.BrowseUntil
	}
	wait := opt.Wait
	if wait <= 0 {
		wait = discovery.DefaultBrowseWait
	}
	// Pinned ids that are static peers need not answer on the LAN.
	awaited := slices.DeleteFunc(slices.Clone(steer), func(id string) bool { return slices.Contains(staticIDs(statics), id) })
	enough := func(peers []discovery.Peer, elapsed time.Duration) bool {
		m, err := findPeer(peers, target, steer)
		switch {
		case err == nil && m.by == byID && m.peer.ID == wholeID:
			return true
		case elapsed < min(wait, resolveSettle):
			return false
		case len(awaited) > 0 && (err != nil || m.by != byPin):
			// A pinned id may still answer, and it wins.
			return false
		}
		// More answers cannot turn a match into no match, nor resolve an
		// ambiguity; only an unknown name is worth the whole wait.
		return len(statics) > 0 || !errors.Is(err, ErrUnknownPeer)
	}
	peers, err := browse(ctx, opt.Ifaces, wait, enough)
	if err != nil {
		return Target{}, fmt.Errorf("looking for %q: %w", target, err)
	}
	m, err := findPeer(peers, target, steer)
	if err == nil {
		return withStatic(m, target, statics)
	}
	if errors.Is(err, ErrUnknownPeer) && len(statics) > 0 {
		return onlyStatic(statics, target)
	}
	if errors.Is(err, ErrUnknownPeer) {
		if i := slices.IndexFunc(peers, func(p discovery.Peer) bool {
			return Suspicious(p) && strings.EqualFold(p.Instance, target)
		}); i >= 0 {
			// Only a label that is not its own claims the name.
			p := peers[i]
			if pins := opt.Pins.pinsFor(target); len(pins) > 0 {
				return Target{}, fmt.Errorf("%w: %s is pinned to %s, which did not answer within %v; a record labelled %s answers with id %s (its own name and id make %s): an impostor? it was ignored",
					ErrKeyChanged, Escape(target), GroupID(pins[0]), wait, Escape(p.Instance), GroupID(p.ID), Escape(discovery.InstanceName(p.Name, p.ID)))
			}
			return Target{}, fmt.Errorf("%w %s within %v (%s; the record labelled %s was ignored: its own name and id make %s)",
				ErrUnknownPeer, Escape(target), wait, seen(peers), Escape(p.Instance), Escape(discovery.InstanceName(p.Name, p.ID)))
		}
		return Target{}, fmt.Errorf("%w %s within %v (%s)", ErrUnknownPeer, Escape(target), wait, seen(peers))
	}
	return Target{}, err
}

// matchStatic returns the static peers that typed names (see
// StaticPeer.matches).
func matchStatic(peers []StaticPeer, typed string) []StaticPeer {
	var out []StaticPeer
	for _, p := range peers {
		if p.matches(typed) {
			out = append(out, p)
		}
	}
	return out
}

// staticIDs returns the ids of the verified peers among peers, once each.
func staticIDs(peers []StaticPeer) []string {
	var ids []string
	for _, p := range peers {
		if p.ID != "" && !slices.Contains(ids, p.ID) {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// staticTarget is the Target for the static peers among peers whose id
// is id (one device may be added at several addresses), named by typed;
// an empty id takes the first of peers, unverified.
func staticTarget(peers []StaticPeer, id, typed string) Target {
	var t Target
	for _, p := range peers {
		if p.ID != id {
			continue
		}
		if t.Static == "" {
			t = Target{Name: p.Instance(), DisplayName: p.Name, ID: p.ID, Typed: typed, Static: p.Addr,
				ByName: id == "" || ParseID(typed) != id}
		}
		t.Addrs = append(t.Addrs, p.Addr)
		if id == "" {
			break
		}
	}
	return t
}

// onlyStatic resolves typed to a static peer when no record matched: the
// one verified peer it names, else the unverified one its address names.
func onlyStatic(statics []StaticPeer, typed string) (Target, error) {
	switch ids := staticIDs(statics); len(ids) {
	case 0:
		return staticTarget(statics, "", typed), nil
	case 1:
		return staticTarget(statics, ids[0], typed), nil
	}
	return Target{}, fmt.Errorf("%w: %s matches %s; name one by instance or id", ErrAmbiguousPeer, Escape(typed), describeStatic(statics))
}

// withStatic is m's Target, with the static peers that typed names: the
// addresses of those of m's id are added to it; one of another id takes
// its place when m matched by anything but a whole id or a pin, as the
// static peer's key is pinned; otherwise two keys answer to typed, which
// is ErrAmbiguousPeer.
func withStatic(m match, typed string, statics []StaticPeer) (Target, error) {
	t := m.target(typed)
	ids := staticIDs(statics)
	switch {
	case len(ids) == 0:
		return t, nil
	case slices.Contains(ids, t.ID):
		st := staticTarget(statics, t.ID, typed)
		for _, a := range st.Addrs {
			if !slices.Contains(t.Addrs, a) {
				t.Addrs = append(t.Addrs, a)
			}
		}
		t.Static = st.Static
		return t, nil
	case len(ids) == 1 && m.by != byID && m.by != byPin:
		return staticTarget(statics, ids[0], typed), nil
	}
	return Target{}, fmt.Errorf("%w: %s matches %s and %s; name one by instance or id", ErrAmbiguousPeer, Escape(typed), describe(m.records[:1]), describeStatic(statics))
}

func describeStatic(peers []StaticPeer) string {
	var parts []string
	for _, p := range peers {
		s := "static peer " + Escape(p.Instance())
		if p.ID != "" {
			s += " id " + ShortID(p.ID)
		}
		parts = append(parts, s+" at "+Escape(p.Addr))
	}
	return strings.Join(parts, ", ")
}

// Suspicious reports whether p's instance label is not the one its own
// TXT name and id make (discovery.InstanceName): every lanshare agent
// advertises exactly that label, so another one is someone's attempt to
// be found under a name that is not theirs ("bob", or bob's instance name
// or id, over another key). Such a label is ignored for matching; the
// record can still be named by its display name or id, which the key
// check and the pins hold. Records without an id (not lanshare's) are
// not suspicious, only not sendable.
func Suspicious(p discovery.Peer) bool {
	return p.ID != "" && !strings.EqualFold(p.Instance, discovery.InstanceName(p.Name, p.ID))
}

// Sendable returns why p cannot be sent to (wrapping ErrNotSendable), or
// nil: a foreign record without our fields, or another major protocol
// version.
func Sendable(p discovery.Peer) error {
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
		return fmt.Errorf("%w: %s does not advertise a lanshare %s; send to HOST:PORT instead",
			ErrNotSendable, Escape(p.Instance), strings.Join(missing, " and "))
	}
	if major, _, _ := strings.Cut(p.Version, "."); major != strconv.Itoa(proto.Major) {
		return fmt.Errorf("%w: %s speaks protocol %s, we speak %s", ErrNotSendable, Escape(p.Instance), Escape(p.Version), ProtocolVersion)
	}
	return nil
}

// FindPeer picks the peer target names among peers. A whole id (plain or
// grouped) names only the records that carry it. Anything else is tried
// as an instance name ("bob (3fa2)"; only on records whose label is their
// own, see Suspicious), else a display name, both compared without regard
// to case, else an id prefix of at least four characters (dashes as in
// GroupID are ignored). Records that carry the same id are one peer: the
// result is its best record (sendable, label its own), with the addresses
// of all of them. Matches of more than one id are ErrAmbiguousPeer, none
// is ErrUnknownPeer; a match that cannot be sent to is ErrNotSendable.
func FindPeer(peers []discovery.Peer, target string) (discovery.Peer, error) {
	m, err := findPeer(peers, target, nil)
	return m.peer, err
}

// How findPeer matched.
const (
	byID          = iota // the whole id
	byPin                // an id pinned to what the user typed
	byInstance           // the instance label
	byDisplayName        // the TXT name
	byPrefix             // an id prefix
)

// match is the peer findPeer picked.
type match struct {
	peer    discovery.Peer   // its best record
	records []discovery.Peer // every record of its id, best first
	by      int
}

// target is the Target for m, named by typed.
func (m match) target(typed string) Target {
	p := m.peer
	t := Target{Name: p.Instance, DisplayName: p.Name, ID: p.ID, ByName: !(m.by == byID && ParseID(typed) == p.ID), Typed: typed}
	if Suspicious(p) {
		t.Name = discovery.InstanceName(p.Name, p.ID) // not a label it has no claim to
	}
	local, _ := discovery.LocalPrefixes()
	seen := map[netip.AddrPort]bool{}
	// Records whose label is their own come first: those of one who
	// copied the id, and is probably not holding its key, last.
	for _, suspicious := range []bool{false, true} {
		var addrs []netip.AddrPort
		for _, r := range m.records {
			if Suspicious(r) == suspicious && Sendable(r) == nil {
				addrs = append(addrs, r.Addrs...)
			}
		}
		for _, a := range discovery.SortAddrs(addrs, local) {
			if !seen[a] {
				seen[a] = true
				t.Addrs = append(t.Addrs, a.String())
			}
		}
	}
	return t
}

// peerKey is what makes two records one peer: the id, or for foreign
// records, the instance label.
func peerKey(p discovery.Peer) string {
	if p.ID != "" {
		return p.ID
	}
	return "\x00" + p.Instance
}

// findPeer is FindPeer, first trying the records of the ids in steer (the
// ids pinned to target, see Known.PinnedTo).
func findPeer(peers []discovery.Peer, target string, steer []string) (match, error) {
	prefix := strings.ToLower(strings.ReplaceAll(target, "-", ""))
	rules := []struct {
		by    int
		match func(discovery.Peer) bool
	}{
		{byPin, func(p discovery.Peer) bool { return p.ID != "" && slices.Contains(steer, p.ID) }},
		{byInstance, func(p discovery.Peer) bool { return !Suspicious(p) && strings.EqualFold(p.Instance, target) }},
		{byDisplayName, func(p discovery.Peer) bool {
			if !strings.EqualFold(p.Name, target) {
				return false
			}
			// A display name shaped like an instance name ("bob (ab12)")
			// matches only a peer whose id it names.
			if part, ok := splitInstance(target); ok && p.ID != "" {
				return strings.EqualFold(discovery.InstanceName(part, p.ID), target)
			}
			return true
		}},
		{byPrefix, func(p discovery.Peer) bool {
			return len(prefix) >= 4 && p.ID != "" && strings.HasPrefix(strings.ToLower(p.ID), prefix)
		}},
	}
	if id := ParseID(target); id != "" {
		// A whole id is the choice of one key: no label, name or pin
		// stands for it.
		rules = rules[:1]
		rules[0].by = byID
		steer = []string{id}
	}
	var keys []string
	var matched []discovery.Peer
	by := 0
	for _, r := range rules {
		for _, p := range peers {
			if r.match(p) {
				matched = append(matched, p)
				if k := peerKey(p); !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
		if len(matched) > 0 {
			by = r.by
			break
		}
	}
	switch {
	case len(keys) == 0:
		return match{}, fmt.Errorf("%w %s (%s)", ErrUnknownPeer, Escape(target), seen(peers))
	case len(keys) > 1:
		return match{}, fmt.Errorf("%w: %s matches %s; name one by instance or id", ErrAmbiguousPeer, Escape(target), describe(matched))
	}
	m := match{by: by}
	for _, p := range peers {
		if peerKey(p) == keys[0] {
			m.records = append(m.records, p)
		}
	}
	// Best first: sendable, then a label of its own, then matched.
	rank := func(p discovery.Peer) int {
		r := 0
		if Sendable(p) != nil {
			r += 4
		}
		if Suspicious(p) {
			r += 2
		}
		if !slices.ContainsFunc(matched, func(q discovery.Peer) bool { return q.Instance == p.Instance && slices.Equal(q.Addrs, p.Addrs) }) {
			r++
		}
		return r
	}
	slices.SortStableFunc(m.records, func(a, b discovery.Peer) int { return rank(a) - rank(b) })
	m.peer = m.records[0]
	return m, Sendable(m.peer)
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
		if Suspicious(p) {
			s += " (suspicious label)"
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

package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"
)

// Peer is one lanshare instance seen on the network. Values are snapshots:
// the caller owns them, including the slices and map. Every string comes from
// the network unverified (it may hold any byte, terminal escapes included):
// quote or sanitize it before printing.
//
// Nothing here is authenticated: anyone on the link can claim any instance
// label, display name or id, so a Peer is a claim, to be proven by the key
// the peer shows when dialled. The table keeps what each source address
// says apart, so a copier can add claims but never remove or change
// another source's: a Peer is identified by Instance, ID, Name and Version
// together, and the same Instance (or ID) may be listed more than once when
// sources disagree; Addrs may then hold an impostor's addresses next to the
// real ones, so a caller dials each until one proves the key it wants.
type Peer struct {
	// Instance is the DNS-SD instance label, unescaped (e.g. "bob (3fa2)").
	Instance string
	// Name is the display name (TXT "name"); for foreign records without
	// it, the instance label.
	Name string
	// ID is the agent's stable id (TXT "id"); empty for foreign records.
	ID string
	// Version is the agent's protocol version (TXT "v").
	Version string
	// Host is the SRV target without the trailing dot, e.g. "bob.local".
	Host string
	// Port is the SRV port.
	Port int
	// Addrs are the addresses to dial, with Port; IPv6 link-local ones carry
	// the zone of the interface they were seen on. Ordered IPv4, IPv6 global,
	// IPv6 link-local; use SortAddrs for a dial order.
	Addrs []netip.AddrPort
	// TXT is the whole TXT record (keys lower-cased).
	TXT map[string]string
	// Iface is the name of the interface the peer was first seen on.
	Iface string
	// TTL is the TTL the peer announced for its SRV record (or its PTR,
	// without an SRV), at most 2 minutes until its source repeats it, 75
	// minutes after: without a refresh or goodbye, the peer expires that
	// long after its last answer.
	TTL time.Duration
	// LabelMismatch is set when the record carries an id and Instance is
	// not InstanceName(Name, ID), the label its own TXT name and id
	// produce: the label was chosen to look like another peer ("bob", a
	// prefix, an id). Do not match user input against such an Instance,
	// and show it as suspicious. Foreign records (no id) never have it.
	LabelMismatch bool
}

// Complete reports whether p can be sent to: it has an id, a version, a port
// and at least one address. A foreign _lanshare._tcp record lacking our TXT
// keys is listed but not complete.
func (p Peer) Complete() bool {
	return p.ID != "" && p.Version != "" && p.Port > 0 && len(p.Addrs) > 0
}

func (p Peer) String() string {
	s := fmt.Sprintf("%s id=%s v=%s %s:%d %v", p.Instance, p.ID, p.Version, p.Host, p.Port, p.Addrs)
	if p.LabelMismatch {
		s += " (label mismatch)"
	}
	return s
}

func (p Peer) clone() Peer {
	p.Addrs = append([]netip.AddrPort(nil), p.Addrs...)
	txt := make(map[string]string, len(p.TXT))
	for k, v := range p.TXT {
		txt[k] = v
	}
	p.TXT = txt
	return p
}

// EventKind says what happened to a peer.
type EventKind int

const (
	// PeerUp: a peer appeared.
	PeerUp EventKind = iota + 1
	// PeerUpdate: a known peer's record changed (addresses, port, TXT, or
	// it became complete).
	PeerUpdate
	// PeerDown: a peer said goodbye, expired, or its interface went away.
	PeerDown
)

func (k EventKind) String() string {
	switch k {
	case PeerUp:
		return "up"
	case PeerUpdate:
		return "update"
	case PeerDown:
		return "down"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is a change in the peer table. For PeerDown, Peer is the last known
// state.
type Event struct {
	Kind EventKind
	Peer Peer
}

// SortAddrs returns addrs in the order to dial them, given the prefixes of
// our own interfaces (see LocalPrefixes): addresses inside one of local
// first, then other IPv4, then global IPv6, then link-local IPv6 and
// anything else. The order within a group is kept. addrs is not modified.
func SortAddrs(addrs []netip.AddrPort, local []netip.Prefix) []netip.AddrPort {
	out := append([]netip.AddrPort(nil), addrs...)
	sort.SliceStable(out, func(i, j int) bool {
		return addrRank(out[i].Addr(), local) < addrRank(out[j].Addr(), local)
	})
	return out
}

func addrRank(a netip.Addr, local []netip.Prefix) int {
	a = a.Unmap()
	for _, p := range local {
		if !a.IsLinkLocalUnicast() && p.Contains(a.WithZone("")) {
			return 0
		}
	}
	switch {
	case a.Is4() && !a.IsLinkLocalUnicast():
		return 1
	case a.Is6() && a.IsGlobalUnicast() && !a.IsLinkLocalUnicast():
		return 2
	case a.IsLinkLocalUnicast():
		return 3
	}
	return 4
}

// LocalPrefixes returns the prefixes of this host's interface addresses,
// for SortAddrs.
func LocalPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing interface addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, ok := prefixOf(n); ok {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), true
}

package peer

import "net/netip"

// limitKey is the key under which the per-address limits (text messages
// a minute, wrong PINs) count a remote address: an IPv4 address itself,
// an IPv6 address by its /64. One host on a LAN holds a whole /64: SLAAC
// gives it one, and its privacy addresses, or an attacker, take any
// address in it at will. Counted one by one, IPv6 addresses gave one host
// as many PIN tries, and as many slots of the bounded tables, as it cared
// to make. Link-local addresses of one interface share fe80::/64 and its
// zone: they count as one.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is6() {
		return a
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr().WithZone(a.Zone())
}

// limitWho names key, a limitKey, in the log: "192.0.2.7", or
// "2001:db8:1:2::/64".
func limitWho(key netip.Addr) string {
	if key.Is6() {
		return key.String() + "/64"
	}
	return key.String()
}

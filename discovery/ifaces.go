package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// ifaceInfo is the part of an interface we care about.
type ifaceInfo struct {
	Index int
	Name  string
	Flags net.Flags
	MTU   int
	Addrs []netip.Addr // unicast addresses, no zones
	// Prefixes are the subnets of Addrs (masked), for the on-link check.
	Prefixes []netip.Prefix
}

func (i ifaceInfo) has4() bool { return slices.ContainsFunc(i.Addrs, netip.Addr.Is4) }
func (i ifaceInfo) has6() bool { return slices.ContainsFunc(i.Addrs, netip.Addr.Is6) }

// own reports whether a is one of i's addresses: a packet from it comes
// from this host, from us or from another mDNS stack beside us.
func (i ifaceInfo) own(a netip.Addr) bool { return slices.Contains(i.Addrs, a.WithZone("")) }

// maxMessage is the largest mDNS message we send on i: what fits in one
// unfragmented IPv6 packet (the larger header) of the interface's MTU,
// counted as at most 1500, so that nothing we send is ever fragmented
// (RFC 6762 §17); 1452 bytes on an Ethernet.
func (i ifaceInfo) maxMessage() int {
	mtu := i.MTU
	if mtu <= 0 || mtu > 1500 {
		mtu = 1500
	}
	return max(mtu-48, 512)
}

func (i ifaceInfo) netInterface() *net.Interface {
	return &net.Interface{Index: i.Index, Name: i.Name, Flags: i.Flags}
}

// listIfaces reads the system's interfaces.
func listIfaces() ([]ifaceInfo, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	out := make([]ifaceInfo, 0, len(ifs))
	for _, ifi := range ifs {
		info := ifaceInfo{Index: ifi.Index, Name: ifi.Name, Flags: ifi.Flags, MTU: ifi.MTU}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue // vanished meanwhile
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					ip = ip.Unmap()
					if ip.IsValid() && !ip.IsMulticast() && !ip.IsUnspecified() {
						info.Addrs = append(info.Addrs, ip)
						if p, ok := prefixOf(n); ok {
							info.Prefixes = append(info.Prefixes, p)
						}
					}
				}
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// selectIfaces picks the interfaces to serve. With names, exactly those that
// exist and are up and multicast-capable (loopback included if named).
// Without, every up, multicast-capable, non-loopback interface with at least
// one address; if there is none, the up multicast-capable loopback
// interfaces.
func selectIfaces(all []ifaceInfo, names []string) []ifaceInfo {
	usable := func(i ifaceInfo) bool {
		return i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0
	}
	var out []ifaceInfo
	if len(names) > 0 {
		for _, i := range all {
			if usable(i) && slices.Contains(names, i.Name) {
				out = append(out, i)
			}
		}
		return out
	}
	for _, i := range all {
		if usable(i) && i.Flags&net.FlagLoopback == 0 && len(i.Addrs) > 0 {
			out = append(out, i)
		}
	}
	if len(out) > 0 {
		return out
	}
	for _, i := range all {
		if usable(i) && i.Flags&net.FlagLoopback != 0 {
			out = append(out, i)
		}
	}
	return out
}

// onLink reports whether src, the source of a packet received on i, is on
// i's link (RFC 6762 §11): inside one of i's subnets, or link-local (IPv4
// 169.254/16 or IPv6 fe80::/10, on-link by definition), or anything on a
// loopback interface, which only this host can send on (the kernel may
// give such packets the source 0.0.0.0). Anything else came through a
// router, or lies about its source.
func (i ifaceInfo) onLink(src netip.Addr) bool {
	src = src.Unmap()
	if i.Flags&net.FlagLoopback != 0 || src.IsLinkLocalUnicast() {
		return true
	}
	src = src.WithZone("")
	for _, p := range i.Prefixes {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

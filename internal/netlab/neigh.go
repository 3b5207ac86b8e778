package netlab

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// PinNeighbours gives every host, for every other host on a segment it
// shares, permanent neighbour entries (ARP and NDP: the other's IPv4,
// link-local and ULA addresses with its MAC), so hosts send unicast to
// each other without neighbour discovery. Call it once every host is
// attached; interfaces attached later get none.
//
// It is for labs of many hosts that unicast to each other. A real host
// keeps its own neighbour table, but every namespace of a kernel shares
// one per family, with room for net.ipv4.neigh.default.gc_thresh3 (1024
// by default) entries that are not permanent; when it is full, the kernel
// cannot make an entry and a send fails with EINVAL, multicast ones too
// (they need an entry as well). Forty hosts that all unicast to each
// other need 1,560 entries per family, and they are not the only lab on
// the machine. Permanent entries do not count towards that limit.
func (l *Lab) PinNeighbours() {
	l.t.Helper()
	type member struct {
		h   *Host
		ifc Iface
		mac string
	}
	bySeg := map[int][]member{}
	for _, h := range l.hosts {
		for _, ifc := range h.Ifaces {
			mac, err := macOf(h.NS, ifc.Name)
			if err != nil {
				l.t.Fatalf("netlab: %v", err)
			}
			bySeg[ifc.Segment] = append(bySeg[ifc.Segment], member{h, ifc, mac})
		}
	}
	for _, ms := range bySeg {
		for _, m := range ms {
			var b strings.Builder
			for _, o := range ms {
				if o.h == m.h {
					continue
				}
				for _, a := range []string{o.ifc.IPv4.Addr().String(), o.ifc.LinkLocal.String(), o.ifc.ULA.Addr().String()} {
					fmt.Fprintf(&b, "neigh replace %s lladdr %s dev %s nud permanent\n", a, o.mac, m.ifc.Name)
				}
			}
			cmd := exec.Command("ip", "-n", m.h.NS, "-batch", "-")
			cmd.Stdin = strings.NewReader(b.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				l.t.Fatalf("netlab: pinning the neighbours of %s in %s: %v: %s", m.ifc.Name, m.h.NS, err, out)
			}
		}
	}
}

// macOf returns the MAC address of interface name in namespace ns.
func macOf(ns, name string) (string, error) {
	out, err := exec.Command("ip", "-n", ns, "-j", "link", "show", "dev", name).Output()
	if err != nil {
		return "", fmt.Errorf("reading the MAC address of %s in %s: %w", name, ns, err)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].Address == "" {
		return "", fmt.Errorf("reading the MAC address of %s in %s: unexpected %q", name, ns, out)
	}
	return links[0].Address, nil
}

package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto/localsend"
)

// Limits of ScanLocalSend: it asks at most scanHosts addresses, scanAtOnce
// at a time, each within scanTimeout per protocol.
const (
	scanHosts   = 254 * 4
	scanAtOnce  = 64
	scanTimeout = time.Second
)

// ScanLocalSend looks for LocalSend devices the way the apps do when
// multicast fails: it asks every address of the /24 around each IPv4
// address of the interfaces (ifaces, or every up, non-loopback one; a
// larger subnet is scanned only in the /24 around our address) for its
// info on port, over HTTPS (presenting ours, as 2.2 apps require) and
// then over plain HTTP. It is opt-in (peers
// --scan): it touches every address of the subnet.
func ScanLocalSend(ctx context.Context, ours *LocalSendIdentity, ifaces []string, port int) ([]discovery.LocalSendDevice, error) {
	targets, err := scanTargets(ifaces)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var found []discovery.LocalSendDevice
	work := make(chan netip.Addr)
	var wg sync.WaitGroup
	for range min(scanAtOnce, len(targets)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				if d, ok := probeAt(ctx, ours, netip.AddrPortFrom(a, uint16(port))); ok {
					mu.Lock()
					found = append(found, d)
					mu.Unlock()
				}
			}
		}()
	}
	for _, a := range targets {
		select {
		case work <- a:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	slices.SortFunc(found, func(x, y discovery.LocalSendDevice) int { return x.Addr.Compare(y.Addr) })
	return found, ctx.Err()
}

// probeAt asks ap for its info, over HTTPS then HTTP.
func probeAt(ctx context.Context, ours *LocalSendIdentity, ap netip.AddrPort) (discovery.LocalSendDevice, bool) {
	for _, scheme := range []string{"https", "http"} {
		pctx, cancel := context.WithTimeout(ctx, scanTimeout)
		info, fp, err := getInfo(pctx, ours, scheme, ap)
		cancel()
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			// Nothing listens there (or nobody is there): plain HTTP
			// would fare no better.
			return discovery.LocalSendDevice{}, false
		}
		if err != nil {
			continue
		}
		dev := discovery.LocalSendDevice{Alias: info.Alias, Version: info.Version, DeviceType: discovery.LocalSendDeviceType(info.Type()),
			Fingerprint: fp, Addr: ap, Protocol: discovery.LocalSendHTTPS, Download: info.Download, LastSeen: time.Now()}
		if info.DeviceModel != nil {
			dev.DeviceModel = *info.DeviceModel
		}
		if scheme == "http" {
			dev.Protocol, dev.Fingerprint = discovery.LocalSendHTTP, info.Fingerprint
		}
		if dev.Alias == "" || dev.Fingerprint == "" || len(dev.Alias) > localsend.MaxAliasLen {
			return discovery.LocalSendDevice{}, false
		}
		return dev, true
	}
	return discovery.LocalSendDevice{}, false
}

// scanTargets lists the addresses to ask: the /24 around every IPv4
// address of the interfaces, without our own addresses.
func scanTargets(names []string) ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	var out []netip.Addr
	own := map[netip.Addr]bool{}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || (len(names) > 0 && !slices.Contains(names, ifc.Name)) {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok || !ip.Unmap().Is4() {
				continue
			}
			ip = ip.Unmap()
			own[ip] = true
			ones, _ := ipn.Mask.Size()
			p := netip.PrefixFrom(ip, max(ones, 24)).Masked()
			for h := p.Addr().Next(); p.Contains(h) && len(out) < scanHosts; h = h.Next() {
				if !p.Contains(h.Next()) { // the broadcast address
					break
				}
				out = append(out, h)
			}
		}
	}
	return slices.DeleteFunc(out, func(a netip.Addr) bool { return own[a] }), nil
}

package peer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto/localsend"
)

// FindLocalSend finds the LocalSend device that target names among devs:
// its alias (any case), its id ("ls-…", whole, grouped or a prefix of at
// least four hex digits after "ls-"), a prefix of its fingerprint of at
// least eight hex digits, or its address (HOST:PORT). A device heard
// over IPv4 and IPv6 is one device. It fails with ErrUnknownPeer when
// nothing matches and ErrAmbiguousPeer when different devices do.
func FindLocalSend(devs []discovery.LocalSendDevice, target string) (discovery.LocalSendDevice, error) {
	var found []discovery.LocalSendDevice
	for _, d := range devs {
		if localSendMatches(d, target) {
			found = append(found, d)
		}
	}
	// One device per fingerprint (HTTP devices: per alias and port).
	slices.SortStableFunc(found, func(a, b discovery.LocalSendDevice) int { return addrPreference(a.Addr) - addrPreference(b.Addr) })
	var unique []discovery.LocalSendDevice
	for _, d := range found {
		if !slices.ContainsFunc(unique, func(u discovery.LocalSendDevice) bool { return sameDevice(u, d) }) {
			unique = append(unique, d)
		}
	}
	switch len(unique) {
	case 0:
		return discovery.LocalSendDevice{}, fmt.Errorf("%w %s", ErrUnknownPeer, Escape(target))
	case 1:
		return unique[0], nil
	}
	var names []string
	for _, d := range unique {
		names = append(names, fmt.Sprintf("%s (%s, %s)", Escape(d.Alias), localSendIDOrDash(d), d.Addr))
	}
	return discovery.LocalSendDevice{}, fmt.Errorf("%w: %s names %d LocalSend devices: %s; name one by its id", ErrAmbiguousPeer, Escape(target), len(unique), strings.Join(names, ", "))
}

func sameDevice(a, b discovery.LocalSendDevice) bool {
	if a.Protocol == discovery.LocalSendHTTPS && b.Protocol == discovery.LocalSendHTTPS {
		return localsend.SameFingerprint(a.Fingerprint, b.Fingerprint)
	}
	return a.Fingerprint == b.Fingerprint && a.Alias == b.Alias
}

// addrPreference ranks addresses to reach a device by: IPv4 first, then
// global IPv6, then link-local.
func addrPreference(ap netip.AddrPort) int {
	a := ap.Addr()
	switch {
	case a.Is4():
		return 0
	case !a.IsLinkLocalUnicast():
		return 1
	}
	return 2
}

func localSendIDOrDash(d discovery.LocalSendDevice) string {
	if id := LocalSendID(d.Fingerprint); id != "" {
		return ShortID(id)
	}
	return "no id: plain HTTP"
}

func localSendMatches(d discovery.LocalSendDevice, target string) bool {
	if strings.EqualFold(d.Alias, target) {
		return true
	}
	if ap, err := netip.ParseAddrPort(target); err == nil && ap.Addr().Unmap() == d.Addr.Addr().WithZone("") && ap.Port() == d.Addr.Port() {
		return true
	}
	id := LocalSendID(d.Fingerprint)
	if id == "" {
		return false
	}
	t := strings.ToLower(strings.ReplaceAll(target, "-", ""))
	if p, ok := strings.CutPrefix(t, "ls"); ok && len(p) >= 4 && isLowerHex(p) {
		return strings.HasPrefix(id[len(LocalSendIDPrefix):], p)
	}
	return len(t) >= 8 && isLowerHex(t) && strings.HasPrefix(id[len(LocalSendIDPrefix):], t)
}

// LocalSendSender sends to LocalSend devices with the agent's LocalSend
// identity, pinning each device's certificate on first use under its
// alias, as Sender pins a lanshare peer's key.
type LocalSendSender struct {
	Identity *LocalSendIdentity
	Known    *Known
}

// Send sends items to dev. A device whose alias is pinned to LocalSend
// ids must announce and present the certificate of one of them: another
// is ErrKeyChanged (exit 6) with the trust hint. A device reached for the first time is
// pinned (Seen) under its alias once it answered register.
func (s *LocalSendSender) Send(ctx context.Context, dev discovery.LocalSendDevice, items []Item, opt LocalSendOptions) (*Report, error) {
	target := LocalSendTarget{Addr: dev.Addr, Protocol: string(dev.Protocol), Fingerprint: dev.Fingerprint, Alias: dev.Alias}
	if dev.Protocol == discovery.LocalSendHTTPS {
		var pins []string
		for _, id := range s.Known.PinnedTo(dev.Alias) {
			if IsLocalSendID(id) {
				pins = append(pins, id)
			}
		}
		if len(pins) > 0 && !slices.Contains(pins, LocalSendID(dev.Fingerprint)) {
			return nil, fmt.Errorf("%w: %s announces certificate %s, but is pinned to %s; if its owner confirms the new one, accept it with: lanshare trust --replace %s",
				ErrKeyChanged, Escape(dev.Alias), ShortID(LocalSendID(dev.Fingerprint)), ShortID(pins[0]), GroupID(LocalSendID(dev.Fingerprint)))
		}
	}
	opt.Identity = s.Identity
	register := opt.OnRegister
	opt.OnRegister = func(d LocalSendDevice) error {
		if id := LocalSendID(d.Fingerprint); id != "" && s.Known != nil {
			if err := s.Known.Pin(id, d.Info.Alias); err != nil {
				return err
			}
		}
		if register != nil {
			return register(d)
		}
		return nil
	}
	return SendLocalSend(ctx, target, items, opt)
}

// ProbeLocalSend asks the LocalSend device at addr (HOST:PORT) who it is
// (GET info): over HTTPS, learning its certificate's fingerprint (to be
// pinned when the send registers), else over plain HTTP. It presents
// ident's certificate when ident is not nil: a 2.2 device refuses a
// handshake without one.
func ProbeLocalSend(ctx context.Context, addr string, ident *LocalSendIdentity) (discovery.LocalSendDevice, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return discovery.LocalSendDevice{}, fmt.Errorf("%w: %s is not a LocalSend device's IP:PORT", ErrUnknownPeer, Escape(addr))
	}
	ctx, cancel := context.WithTimeout(ctx, lsProbeTimeout)
	defer cancel()
	dev := discovery.LocalSendDevice{Addr: ap, Protocol: discovery.LocalSendHTTPS}
	info, fp, err := getInfo(ctx, "https", ap, ident)
	if err != nil {
		dev.Protocol = discovery.LocalSendHTTP
		var herr error
		if info, _, herr = getInfo(ctx, "http", ap, nil); herr != nil {
			return discovery.LocalSendDevice{}, fmt.Errorf("%w: no LocalSend device answers at %s: %w", ErrUnknownPeer, ap, err)
		}
		fp = info.Fingerprint
	}
	dev.Alias, dev.Fingerprint, dev.Version = info.Alias, fp, info.Version
	if dev.Alias == "" {
		dev.Alias = ap.String()
	}
	return dev, nil
}

// lsProbeTimeout bounds ProbeLocalSend.
const lsProbeTimeout = 5 * time.Second

// getInfo fetches a device's info; over HTTPS it also returns the
// fingerprint of the certificate it presented. It presents ident's
// certificate (through GetClientCertificate, as tlsConfig explains) when
// ident is not nil.
func getInfo(ctx context.Context, scheme string, ap netip.AddrPort, ident *LocalSendIdentity) (localsend.Info, string, error) {
	var fp string
	tc := &tls.Config{InsecureSkipVerify: true, // self-signed: we learn the fingerprint instead
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 {
				fp = localsend.Fingerprint(cs.PeerCertificates[0].Raw)
			}
			return nil
		}}
	if ident != nil {
		cert := ident.Cert
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	tr := &http.Transport{DisableKeepAlives: true, MaxResponseHeaderBytes: 16 << 10, TLSClientConfig: tc}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+ap.String()+localsend.PathInfo, nil)
	if err != nil {
		return localsend.Info{}, "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return localsend.Info{}, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return localsend.Info{}, "", fmt.Errorf("info: %s", resp.Status)
	}
	info, err := localsend.DecodeInfo(resp.Body)
	return info, fp, err
}

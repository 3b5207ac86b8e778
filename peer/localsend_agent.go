package peer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto/localsend"
)

// ViaLocalSend is Transfer.Via for what came over LocalSend's protocol.
const ViaLocalSend = "localsend"

// startLocalSend loads the agent's LocalSend identity and listens for
// LocalSend's API. A port already taken (by a LocalSend app on this
// machine, or another agent) is logged, and the agent serves without it.
func (a *Agent) startLocalSend() error {
	ident, err := LoadLocalSendIdentity(a.cfg.ConfigDir)
	if err != nil {
		return err
	}
	listen := a.cfg.LocalSendListen
	if listen == "" {
		listen = fmt.Sprintf(":%d", localsend.DefaultPort)
	}
	s, err := newLocalSendServer(a, listen, ident)
	if errors.Is(err, syscall.EADDRINUSE) {
		if a.cfg.Logf != nil {
			a.cfg.Logf("LocalSend: %s is in use (a LocalSend app on this machine?); serving without LocalSend (--localsend-port picks another)", listen)
		}
		return nil
	}
	if err != nil {
		return err
	}
	a.ls = s
	return nil
}

// LocalSendAddr is the address of the agent's LocalSend server, or nil
// when it has none.
func (a *Agent) LocalSendAddr() net.Addr {
	if a.ls == nil {
		return nil
	}
	return a.ls.ln.Addr()
}

// LocalSendFingerprint is the fingerprint of the agent's LocalSend
// certificate, as LocalSend shows it, or "" without LocalSend.
func (a *Agent) LocalSendFingerprint() string {
	if a.ls == nil {
		return ""
	}
	return a.ls.ident.Fingerprint
}

// localSendInfo is what the agent says of itself to LocalSend devices.
func (a *Agent) localSendInfo(port int) localsend.Info {
	model := lsDeviceModel
	return localsend.Info{
		Alias: a.cfg.Name, Version: localsend.Version, DeviceModel: &model, DeviceType: localsend.DeviceHeadless,
		Fingerprint: a.ls.ident.Fingerprint, Port: uint16(port), Protocol: localsend.ProtocolHTTPS, Download: false,
	}
}

// lsDeviceModel is the model lanshare agents announce to LocalSend: the
// apps show it, and lanshare agents know one another by it.
const lsDeviceModel = "lanshare"

// noteLocalSendDevice records a LocalSend device that registered with us
// (its fingerprint checked against its certificate by the caller, when it
// presented one).
func (a *Agent) noteLocalSendDevice(info localsend.Info, addr netip.Addr) {
	if a.lsdisc == nil || info.Port == 0 {
		return
	}
	// Add validates what a stranger sent: a bad record is dropped.
	_ = a.lsdisc.Add(deviceOf(info, addr))
}

// deviceOf is the device that info (a register body) describes, at addr.
func deviceOf(info localsend.Info, addr netip.Addr) discovery.LocalSendDevice {
	model := ""
	if info.DeviceModel != nil {
		model = *info.DeviceModel
	}
	dev := discovery.LocalSendDevice{
		Alias: info.Alias, Version: info.Version, DeviceModel: model, DeviceType: discovery.LocalSendDeviceType(info.Type()),
		Fingerprint: info.Fingerprint, Addr: netip.AddrPortFrom(addr, info.Port),
		Protocol: discovery.LocalSendProtocol(info.Protocol), Download: info.Download,
	}
	if dev.Protocol == "" {
		dev.Protocol = discovery.LocalSendHTTPS
	}
	return dev
}

// newLocalSendDiscovery makes the agent's LocalSend announcer and browser,
// announcing its LocalSend server.
func (a *Agent) newLocalSendDiscovery() error {
	lc := discovery.DefaultLocalSendConfig()
	lc.Announcement.Alias = a.cfg.Name
	lc.Announcement.DeviceModel = lsDeviceModel
	lc.Announcement.Fingerprint = a.ls.ident.Fingerprint
	lc.Announcement.Port = uint16(a.ls.port)
	lc.Ifaces, lc.Logf = a.cfg.Ifaces, a.cfg.Logf
	if a.cfg.LocalSendUDPPort != 0 {
		lc.Port = a.cfg.LocalSendUDPPort
	}
	lc.OnAnnounce = func(dev discovery.LocalSendDevice) {
		select {
		case a.lsAnnounced <- dev:
		default: // the register worker is behind: this one goes unanswered
		}
	}
	d, err := discovery.NewLocalSend(lc)
	if err != nil {
		return fmt.Errorf("LocalSend discovery: %w", err)
	}
	a.lsdisc = d
	a.lsAnnounced = make(chan discovery.LocalSendDevice, lsRegisterQueue)
	return nil
}

// lsRegisterQueue bounds the announcements waiting for our answer; the
// discovery side already rate-limits them (ten a second).
const lsRegisterQueue = 32

// runLocalSendDiscovery runs LocalSend discovery and answers the devices
// that announce themselves, until ctx is done; it returns when both have
// stopped.
func (a *Agent) runLocalSendDiscovery(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case dev := <-a.lsAnnounced:
				a.answerLocalSend(ctx, dev)
			}
		}
	}()
	if err := a.lsdisc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) && a.cfg.Logf != nil {
		a.cfg.Logf("LocalSend discovery stopped: %v", err)
	}
	wg.Wait()
}

// lsRegisterTimeout bounds a POST /register to a device that announced
// itself.
const lsRegisterTimeout = 3 * time.Second

// answerLocalSend answers a device's announcement as app 1.18 does, with
// POST /register to it; when that fails (an older app, a firewall), by
// multicast, as apps up to 1.17 do.
func (a *Agent) answerLocalSend(ctx context.Context, dev discovery.LocalSendDevice) {
	ctx, cancel := context.WithTimeout(ctx, lsRegisterTimeout)
	defer cancel()
	info := a.localSendInfo(a.ls.port)
	info.Port, info.Protocol = uint16(a.ls.port), localsend.ProtocolHTTPS
	if _, err := registerWith(ctx, a.ls.ident, dev, info); err != nil {
		a.lsdisc.AnswerByMulticast(dev)
	}
}

// receivedText reports a LocalSend text message.
func (a *Agent) receivedText(ss *lsSession, text string) {
	if len(text) > lsMaxTextLen {
		text = cutUTF8(text, lsMaxTextLen)
	}
	a.reportLocalSend(ss, &Transfer{From: ss.from, Text: text}, nil)
}

// reportLocalSend reports the end of a LocalSend session as the end of a
// lanshare connection is reported (OnTransfer).
func (a *Agent) reportLocalSend(ss *lsSession, tr *Transfer, err error) {
	if a.cfg.OnTransfer == nil {
		return
	}
	if tr != nil {
		tr.Via = ViaLocalSend
		if tr.From == "" {
			tr.From = ss.from
		}
	}
	remote := ss.remoteNA
	if remote == nil && ss.remote.IsValid() {
		remote = &net.TCPAddr{IP: ss.remote.AsSlice()}
	}
	a.cfg.OnTransfer(Incoming{ID: ss.conn, Remote: remote, PeerID: ss.senderID, Transfer: tr, Err: err, Start: ss.start, End: time.Now()})
}

// releaseConn gives back the slot of c, an HTTP connection of the
// LocalSend server, once it is closed. Safe to call more than once.
func (a *Agent) releaseConn(c *agentConn) {
	c.drop()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.conns[c]; !ok {
		return
	}
	if !c.evicted {
		a.freeSlotLocked(c)
		c.evicted = true
	}
	if a.perHost[c.host]--; a.perHost[c.host] <= 0 {
		delete(a.perHost, c.host)
	}
	delete(a.conns, c)
	close(a.ended)
	a.ended = make(chan struct{})
}

// shutdown stops taking LocalSend requests and closes idle connections;
// requests in flight go on (close ends them).
func (s *lsServer) shutdown() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Shutdown closes the listener and idle connections, then returns
	_ = s.srv.Shutdown(ctx)
}

// LocalSendShortFingerprint is the start of a LocalSend fingerprint, in
// groups of four, as people compare it: "3F2A-9C1B".
func LocalSendShortFingerprint(fp string) string {
	return GroupID(fp[:min(len(fp), 8)])
}

// localSendClientTLS is the TLS configuration to reach a LocalSend device:
// ours is the certificate we present (given through GetClientCertificate:
// a 2.2 app's server names its own certificate as the only acceptable
// issuer, and Go would then present none from Certificates), and a device
// with an HTTPS fingerprint must present the certificate it names, as
// LocalSend checks (the certificates are self-signed: there is no chain
// to check). want "" accepts any certificate (trust on first use); seen,
// if set, learns the fingerprint presented.
func localSendClientTLS(ours *LocalSendIdentity, want string, seen func(fp string)) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // self-signed: the fingerprint is checked below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &ours.Cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: the device presented no certificate", ErrWrongKey)
			}
			fp := localsend.Fingerprint(cs.PeerCertificates[0].Raw)
			if want != "" && !localsend.SameFingerprint(fp, want) {
				return fmt.Errorf("%w: the device presented certificate %s, not %s", ErrWrongKey, LocalSendShortFingerprint(fp), LocalSendShortFingerprint(want))
			}
			if seen != nil {
				seen(fp)
			}
			return nil
		},
	}
}

// registerWith posts our info to dev's /register and returns its answer.
func registerWith(ctx context.Context, ours *LocalSendIdentity, dev discovery.LocalSendDevice, info localsend.Info) (localsend.Info, error) {
	var body bytes.Buffer
	if err := localsend.EncodeInfo(&body, info); err != nil {
		return localsend.Info{}, err
	}
	scheme := "https"
	tr := &http.Transport{DisableKeepAlives: true, MaxResponseHeaderBytes: 16 << 10}
	if dev.Protocol == discovery.LocalSendHTTP {
		scheme = "http"
	} else {
		tr.TLSClientConfig = localSendClientTLS(ours, dev.Fingerprint, nil)
	}
	defer tr.CloseIdleConnections()
	u := url.URL{Scheme: scheme, Host: dev.Addr.String(), Path: localsend.PathRegister}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), &body)
	if err != nil {
		return localsend.Info{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return localsend.Info{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return localsend.Info{}, fmt.Errorf("register: %s", resp.Status)
	}
	return localsend.DecodeInfo(resp.Body)
}

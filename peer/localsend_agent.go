package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
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
	if AddrInUse(err) && !errors.Is(err, ErrPlainHTTPListen) {
		// The drop page and its plain-HTTP port live on LocalSend's
		// server: they are off too, and the warning says so.
		off := "LocalSend"
		if a.cfg.Web {
			off = "LocalSend and the drop page"
			if a.cfg.WebInsecureHTTP != "" {
				off = "LocalSend, the drop page and its plain-HTTP port"
			}
		}
		a.lsUnavailable = fmt.Errorf("LocalSend: %s is in use (a LocalSend app or another agent on this machine?); serving without %s (--localsend-port picks another port)", listen, off)
		return nil
	}
	if err != nil {
		return err
	}
	a.ls = s
	return nil
}

// LocalSendUnavailable says why the agent serves without LocalSend although
// Config.LocalSend asked for it (its port was taken), or is nil.
func (a *Agent) LocalSendUnavailable() error { return a.lsUnavailable }

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
	model := LocalSendModel
	return localsend.Info{
		Alias: a.cfg.Name, Version: localsend.Version, DeviceModel: &model, DeviceType: localsend.DeviceHeadless,
		Fingerprint: a.ls.ident.Fingerprint, Port: uint16(port), Protocol: localsend.ProtocolHTTPS, Download: false,
	}
}

// LocalSendModel is the model lanshare agents announce to LocalSend: the
// apps show it, and lanshare agents know one another by it.
const LocalSendModel = "lanshare"

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
	lc.Announcement.DeviceModel = LocalSendModel
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

// lsAnswerTimeout bounds a POST /register to a device that announced
// itself.
const lsAnswerTimeout = 3 * time.Second

// answerLocalSend answers a device's announcement as app 1.18 does, with
// POST /register to it; when that fails (an older app, a firewall), by
// multicast, as apps up to 1.17 do.
func (a *Agent) answerLocalSend(ctx context.Context, dev discovery.LocalSendDevice) {
	ctx, cancel := context.WithTimeout(ctx, lsAnswerTimeout)
	defer cancel()
	info := a.localSendInfo(a.ls.port)
	info.Port, info.Protocol = uint16(a.ls.port), localsend.ProtocolHTTPS
	if err := registerWith(ctx, a.ls.ident, dev, info); err != nil {
		a.lsdisc.AnswerByMulticast(dev)
	}
}

// reportLocalSend reports the end of a LocalSend session as the end of a
// lanshare connection is reported (OnTransfer).
func (a *Agent) reportLocalSend(ss *lsSession, tr *Transfer, err error) {
	if a.cfg.OnTransfer == nil {
		return
	}
	if tr != nil {
		tr.Via = ViaLocalSend
		if ss.web {
			tr.Via = ViaWeb
		}
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
	procs.release()
	close(a.ended)
	a.ended = make(chan struct{})
}

// shutdown stops taking LocalSend requests and closes idle connections;
// requests in flight go on (close ends them). The drop page's plain-HTTP
// server stops too: it takes uploads as the HTTPS server does.
func (s *lsServer) shutdown() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Shutdown closes the listener and idle connections, then returns
	_ = s.srv.Shutdown(ctx)
	if s.plain != nil {
		_ = s.plain.Shutdown(ctx)
	}
}

// LocalSendShortFingerprint is the start of a LocalSend fingerprint, in
// groups of four, as people compare it: "3F2A-9C1B".
func LocalSendShortFingerprint(fp string) string {
	return GroupID(fp[:min(len(fp), 8)])
}

// registerWith posts info to dev's /register, as a send would, checking
// its certificate against the fingerprint it announced.
func registerWith(ctx context.Context, ours *LocalSendIdentity, dev discovery.LocalSendDevice, info localsend.Info) error {
	s, err := newLSSender(LocalSendTarget{Addr: dev.Addr, Protocol: string(dev.Protocol), Fingerprint: dev.Fingerprint, Alias: dev.Alias},
		LocalSendOptions{Identity: ours, Info: info})
	if err != nil {
		return err
	}
	defer s.tr.CloseIdleConnections()
	return s.register(ctx)
}

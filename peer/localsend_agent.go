package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

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

// noteLocalSendDevice records a LocalSend device that registered with us.
// verified: its fingerprint is that of the certificate it presented.
func (a *Agent) noteLocalSendDevice(info localsend.Info, addr netip.Addr, verified bool) {
	_ = info
	_ = addr
	_ = verified
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

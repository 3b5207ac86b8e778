package lsdouble

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// AnnounceDelays are the pauses before each datagram of an announcement
// burst (ANNOUNCE_DELAYS in packages/core/src/multicast/mod.rs): sent at
// about 0.1 s, 0.6 s and 2.6 s.
var AnnounceDelays = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}

// maxAnswering bounds the /register answers in flight; announcements
// beyond it are recorded but not answered.
const maxAnswering = 32

// mcSock is one discovery socket: joined on one interface, sending there.
type mcSock struct {
	conn   *net.UDPConn
	group  netip.AddrPort // where announcements go
	ifName string
}

type multicast struct {
	socks []*mcSock
	wg    sync.WaitGroup
	sem   chan struct{}
}

func (m *multicast) close() {
	for _, s := range m.socks {
		s.conn.Close()
	}
	m.wg.Wait()
}

// MulticastInterfaces lists the interfaces and groups the device's
// discovery sockets are joined on ("lo 224.0.0.167", "lo ff12::fd3a:e420").
func (d *Device) MulticastInterfaces() []string {
	if d.mc == nil {
		return nil
	}
	var out []string
	for _, s := range d.mc.socks {
		out = append(out, s.ifName+" "+s.group.Addr().String())
	}
	return out
}

func (d *Device) openMulticast() (*multicast, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("lsdouble: listing interfaces: %w", err)
	}
	m := &multicast{sem: make(chan struct{}, maxAnswering)}
	var errs []error
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
			continue
		}
		if len(d.cfg.Interfaces) > 0 && !slices.Contains(d.cfg.Interfaces, ifi.Name) {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		has6 := false
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := pfx.Addr()
			if !ip.Is4() {
				has6 = true
				continue
			}
			c, err := listenGroup4(d.cfg.MulticastPort, GroupV4, ip)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %v: %w", ifi.Name, ip, err))
				continue
			}
			m.socks = append(m.socks, &mcSock{conn: c, group: netip.AddrPortFrom(GroupV4, uint16(d.cfg.MulticastPort)), ifName: ifi.Name})
		}
		if has6 && !d.cfg.NoIPv6 {
			c, err := listenGroup6(d.cfg.MulticastPort, GroupV6, ifi.Index)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s IPv6: %w", ifi.Name, err))
				continue
			}
			// A numeric zone: names are looked up in the namespace of whatever
			// thread sends, which need not be the socket's.
			g := netip.AddrPortFrom(GroupV6.WithZone(strconv.Itoa(ifi.Index)), uint16(d.cfg.MulticastPort))
			m.socks = append(m.socks, &mcSock{conn: c, group: g, ifName: ifi.Name})
		}
	}
	if len(m.socks) == 0 {
		return nil, fmt.Errorf("lsdouble: no multicast socket could be opened: %w", errors.Join(append(errs, errors.New("no usable interface"))...))
	}
	for _, err := range errs {
		d.logf("multicast: %v", err)
	}
	for _, s := range m.socks {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			d.readDatagrams(m, s)
		}()
	}
	return m, nil
}

// readDatagrams records and answers what arrives on s until it is closed.
func (d *Device) readDatagrams(m *multicast, s *mcSock) {
	buf := make([]byte, 65536)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		b := buf[:n]
		o, err := decodeObject(b)
		var info PeerInfo
		if err == nil {
			info, err = parseInfo(o, true)
		}
		if err != nil {
			d.mu.Lock()
			appendCapped(&d.rec.BadDatagrams, fmt.Sprintf("%v: %v", from, err), &d.rec.Dropped)
			d.notifyLocked()
			d.mu.Unlock()
			continue
		}
		if info.Fingerprint == d.fp {
			continue // our own, looped back
		}
		a := Announcement{At: time.Now(), From: from, Group: s.group.Addr().WithZone(""), Info: info}
		if v, present, err := o.boolean("announce"); present && err == nil {
			a.Announce = &v
		}
		if v, present, err := o.boolean("announcement"); present && err == nil {
			a.Announcement = &v
		}
		d.mu.Lock()
		appendCapped(&d.rec.Announcements, a, &d.rec.Dropped)
		d.notifyLocked()
		d.mu.Unlock()
		d.answer(m, s, a)
	}
}

// answer answers an announcement as cfg.Answer says.
func (d *Device) answer(m *multicast, s *mcSock, a Announcement) {
	isAnnouncement := (a.Announce != nil && *a.Announce) || (a.Announcement != nil && *a.Announcement)
	var viaRegister, viaMulticast bool
	switch d.cfg.Answer {
	case AnswerRegister:
		viaRegister = true
	case AnswerRegisterOrMulticast:
		viaRegister, viaMulticast = isAnnouncement, isAnnouncement
	case AnswerMulticast:
		viaMulticast = isAnnouncement
	}
	if !viaRegister {
		if viaMulticast {
			d.multicastAnswer(s, a)
		}
		return
	}
	select {
	case m.sem <- struct{}{}:
	default:
		return // too many answers in flight
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.sem }()
		t := Target{Addr: netip.AddrPortFrom(a.From.Addr(), uint16(a.Info.Port)), Protocol: a.Info.Protocol}
		if t.Protocol == "https" {
			t.Fingerprint = a.Info.Fingerprint // pinned, as the app does
		}
		ctx, cancel := context.WithTimeout(d.ctx, d.cfg.RegisterTimeout)
		defer cancel()
		var fp seenFP
		c := d.client(t, clientCfg{}, fp.set)
		ans, err := d.register(ctx, c, t, &fp)
		c.CloseIdleConnections()
		rec := Answer{At: time.Now(), To: t.Addr, Protocol: t.protocol(), Via: "register", Answer: ans.Info}
		if err != nil {
			rec.Err = err.Error()
		}
		d.mu.Lock()
		appendCapped(&d.rec.Answers, rec, &d.rec.Dropped)
		d.notifyLocked()
		d.mu.Unlock()
		if err != nil && viaMulticast && d.ctx.Err() == nil {
			d.multicastAnswer(s, a)
		}
	}()
}

// multicastAnswer answers by multicast, 1.17 style.
func (d *Device) multicastAnswer(s *mcSock, a Announcement) {
	f := false
	err := d.sendOn(s, d.announcement(false, &f))
	rec := Answer{At: time.Now(), To: a.From, Protocol: a.Info.Protocol, Via: "multicast"}
	if err != nil {
		rec.Err = err.Error()
	}
	d.mu.Lock()
	appendCapped(&d.rec.Answers, rec, &d.rec.Dropped)
	d.notifyLocked()
	d.mu.Unlock()
}

// announcement returns the datagram: 1.18 sends announce only; with
// legacy set, the v1 "announcement" member is added (1.17 sent both).
func (d *Device) announcement(announce bool, legacy *bool) []byte {
	return d.announcementWith(d.Info(), announce, legacy)
}

func (d *Device) announcementWith(info PeerInfo, announce bool, legacy *bool) []byte {
	b, _ := json.Marshal(wireAnnouncement{wireInfo: info.wire(), Announce: announce, Announcement: legacy})
	return b
}

func (d *Device) sendOn(s *mcSock, payload []byte) error {
	_, err := s.conn.WriteToUDPAddrPort(payload, s.group)
	return err
}

// AnnounceOnce sends one announcement (announce: true, as 1.18) on every
// discovery socket now. It needs Config.Multicast.
func (d *Device) AnnounceOnce() error { return d.SendDatagram(d.announcement(true, nil)) }

// SendDatagram sends payload to the group on every discovery socket (for
// tests that send hostile or old-style datagrams).
func (d *Device) SendDatagram(payload []byte) error {
	if d.mc == nil {
		return errors.New("lsdouble: no multicast (Config.Multicast is off)")
	}
	var errs []error
	for _, s := range d.mc.socks {
		if err := d.sendOn(s, payload); err != nil {
			errs = append(errs, fmt.Errorf("%s %v: %w", s.ifName, s.group, err))
		}
	}
	if len(errs) == len(d.mc.socks) {
		return fmt.Errorf("lsdouble: announcing: %w", errors.Join(errs...))
	}
	return nil
}

// Announce sends the app's announcement burst (AnnounceDelays) and returns
// when it is done, or when ctx ends or the device closes.
func (d *Device) Announce(ctx context.Context) error {
	for _, delay := range AnnounceDelays {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-d.ctx.Done():
			t.Stop()
			return errors.New("lsdouble: device closed")
		}
		if err := d.AnnounceOnce(); err != nil {
			return err
		}
	}
	return nil
}

package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// LocalSend discovery (apps 1.18, protocol 2.2, and older):
//
//   - Every device binds UDP port 53317 (shared: SO_REUSEADDR and
//     SO_REUSEPORT), joins 224.0.0.167 and ff12::fd3a:e420 on its
//     interfaces, and sends with TTL / hop limit 1 and multicast loopback
//     on, so two programs on one host hear each other.
//   - A device announces itself (a LocalSendAnnouncement with announce
//     true) three times at start, 100 ms, 600 ms and 2.6 s after it (the
//     app sleeps 100, 500 and 2000 ms before each), and whenever its user
//     asks for a refresh. There is no TTL and no goodbye.
//   - Whoever hears an announcement answers it: app 1.18 by POST
//     /api/localsend/v2/register to the announcer's source address and
//     announced port; apps up to 1.17 the same, falling back to a multicast
//     datagram with announce false when HTTP fails.
//
// LocalSend (the type) does the multicast half: it announces us, keeps a
// table of the devices it hears (and those the owner adds from /register
// requests), and tells the owner which announcements to answer; HTTP is
// the owner's.

const (
	// LocalSendPort is LocalSend's UDP discovery port (and its apps'
	// default HTTP port).
	LocalSendPort = 53317
	// DefaultLocalSendLifetime is how long a device stays listed after it
	// was last heard. LocalSend devices announce only at start and on a
	// refresh, and send no goodbye; a running LocalSend re-announces us
	// every DefaultLocalSendReannounce, which makes every device on the
	// link register with the owner again (Add), so a live device is heard
	// at least that often and one that left is forgotten after at most
	// this long.
	DefaultLocalSendLifetime = 12 * time.Minute
	// DefaultLocalSendReannounce is how often a running LocalSend announces
	// us again after the start burst.
	DefaultLocalSendReannounce = 5 * time.Minute
)

// LocalSend's multicast groups.
var (
	LocalSendGroup4 = netip.AddrFrom4([4]byte{224, 0, 0, 167})
	LocalSendGroup6 = netip.MustParseAddr("ff12::fd3a:e420")
)

const (
	// maxLocalSendDevices caps the table; a new device evicts the one
	// heard from least recently.
	maxLocalSendDevices = 256
	// maxLocalSendPerSource caps the devices one source address may hold
	// (a host runs one or two LocalSend programs); a new one from a source
	// at the cap evicts that source's least recently heard.
	maxLocalSendPerSource = 8
	// Datagrams from one source address are read at most lsSourceBurst at
	// once and then one per lsSourceEvery; the rest are dropped before
	// they are decoded. A device sends three announcements in 2.6 s.
	lsSourceBurst = 8
	lsSourceEvery = time.Second
	// Datagrams from all sources together: lsAllBurst, then one per
	// lsAllEvery (100 a second), so forged source addresses do not lift
	// the bound.
	lsAllBurst = 256
	lsAllEvery = 10 * time.Millisecond
	// OnAnnounce calls, all sources together: lsHandlerBurst, then one per
	// lsHandlerEvery (ten a second), each one an HTTP request the owner
	// makes, so we are no amplifier.
	lsHandlerBurst = 32
	lsHandlerEvery = 100 * time.Millisecond
	// lsHandlerQueue is how many OnAnnounce calls may wait for a slow
	// handler; more are dropped.
	lsHandlerQueue = 64
	// lsMaxSources caps the per-source rate limiters kept.
	lsMaxSources = 1024
	// lsSameCall: an announcement of a fingerprint heard within this of
	// the last one that called OnAnnounce does not call it again. A
	// dual-stack device's announcement arrives over IPv4 and IPv6 at
	// once; its repeats come 500 ms and 2 s apart.
	lsSameCall = 300 * time.Millisecond
	// lsAnswerGap spaces our multicast answers (AnswerByMulticast) and
	// owner-requested announcements (Announce) on one interface.
	lsAnswerGap   = time.Second
	lsAnnounceGap = 250 * time.Millisecond
)

// lsAnnounceDelays are the waits before each announcement of the start
// burst, as app 1.18 has them.
var lsAnnounceDelays = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}

// LocalSendDevice is a LocalSend device as we know it.
type LocalSendDevice struct {
	Alias       string
	Version     string
	DeviceModel string // "" when it sent none
	DeviceType  LocalSendDeviceType
	Fingerprint string
	// Addr is its HTTP(S) server: the source address of what we heard
	// from it (IPv6 link-local ones with their zone) and its announced
	// port.
	Addr     netip.AddrPort
	Protocol LocalSendProtocol
	Download bool
	// Iface is the interface it was heard on ("" for a device added
	// without one).
	Iface    string
	LastSeen time.Time
}

func (d LocalSendDevice) announcement() LocalSendAnnouncement {
	return LocalSendAnnouncement{
		Alias: d.Alias, Version: d.Version, DeviceModel: d.DeviceModel, DeviceType: d.DeviceType,
		Fingerprint: d.Fingerprint, Port: d.Addr.Port(), Protocol: d.Protocol, Download: d.Download,
	}
}

// LocalSendConfig configures a LocalSend.
type LocalSendConfig struct {
	// Announcement is what we announce (required): alias, fingerprint,
	// the port and protocol of our LocalSend HTTP server. Its Announce
	// field is ignored.
	Announcement LocalSendAnnouncement
	// Ifaces names the interfaces to serve, as Config.Ifaces: empty means
	// every up, multicast-capable, non-loopback interface with an address
	// (the loopback when there is none); interfaces that come and go are
	// followed.
	Ifaces []string
	// Port is the UDP port; zero means LocalSendPort.
	Port int
	// Lifetime is how long a device stays listed after it was last heard;
	// zero means DefaultLocalSendLifetime.
	Lifetime time.Duration
	// Reannounce is how often Run announces us again after the start
	// burst; zero means DefaultLocalSendReannounce, negative never.
	Reannounce time.Duration
	// OnAnnounce, if set, is called for each accepted announcement
	// (announce true) of another device, so the owner can answer it with
	// POST /register to dev.Addr (or AnswerByMulticast); an announcement
	// heard over IPv4 and IPv6 at once calls it once. Calls are made
	// one at a time on a goroutine of Run; at most ten a second are made
	// (after a burst of 32), and while 64 wait for a slow handler more are
	// dropped, so the handler should hand slow work to its own bounded
	// workers. It must return for Close to return.
	OnAnnounce func(dev LocalSendDevice)
	// Logf receives rare diagnostic lines (rate-limited). Nil discards them.
	Logf func(format string, args ...any)
}

// DefaultLocalSendConfig returns a config announcing a headless HTTPS
// server speaking LocalSendVersion on port 53317; the caller sets
// Announcement.Alias and Announcement.Fingerprint (and Port if the server
// listens elsewhere).
func DefaultLocalSendConfig() LocalSendConfig {
	return LocalSendConfig{
		Announcement: LocalSendAnnouncement{
			Version:    LocalSendVersion,
			DeviceType: LocalSendHeadless,
			Port:       LocalSendPort,
			Protocol:   LocalSendHTTPS,
		},
		Port:       LocalSendPort,
		Lifetime:   DefaultLocalSendLifetime,
		Reannounce: DefaultLocalSendReannounce,
	}
}

// Validate reports the first problem with c, wrapping ErrInvalidConfig
// (and, for the announcement, ErrMalformedAnnouncement).
func (c LocalSendConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if err := c.Announcement.Validate(); err != nil {
		return fmt.Errorf("%w: announcement: %w", ErrInvalidConfig, err)
	}
	switch {
	case c.Port < 0 || c.Port > 65535:
		return bad("Port %d out of range 0-65535", c.Port)
	case c.Lifetime < 0:
		return bad("negative Lifetime %v", c.Lifetime)
	}
	for _, n := range c.Ifaces {
		if n == "" {
			return bad("empty interface name")
		}
	}
	return nil
}

func (c LocalSendConfig) withDefaults() LocalSendConfig {
	if c.Port == 0 {
		c.Port = LocalSendPort
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLocalSendLifetime
	}
	if c.Reannounce == 0 {
		c.Reannounce = DefaultLocalSendReannounce
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// LocalSendStats counts what a LocalSend saw and did.
type LocalSendStats struct {
	Received uint64 // datagrams read on served interfaces
	Own      uint64 // our own announcements, looped back
	// OffLink counts datagrams whose source is outside the receiving
	// interface's subnets (see Service's on-link rule).
	OffLink uint64
	// RateLimited counts datagrams dropped undecoded because their source
	// address, or all sources together, sent too many.
	RateLimited uint64
	Malformed   uint64 // oversized, not JSON, or invalid fields
	Accepted    uint64 // announcements and answers that updated the table
	Evicted     uint64 // devices dropped from a full table or source
	// Handled counts OnAnnounce calls queued; HandlerDropped those not
	// made (rate limit, or the queue full). An announcement of a device
	// whose announcement called OnAnnounce less than 300 ms before (the
	// same one over the other family) counts in neither.
	Handled        uint64
	HandlerDropped uint64
	Sent           uint64 // datagrams sent
}

// LocalSend announces us on LocalSend's multicast groups and lists the
// LocalSend devices it hears. Make it with NewLocalSend, then call Run (a
// running agent) or Look (a one-shot look); Devices, Add, Stats, Announce
// and AnswerByMulticast may be called at any time, from any goroutine.
//
// Hostile traffic is bounded: datagrams over MaxLocalSendDatagram, from
// off the link, or beyond the per-source and overall rates are dropped
// before decoding; the table holds at most 256 devices, 8 per source
// address, evicting the least recently heard; OnAnnounce is rate-limited
// overall; log lines are rate-limited per kind. A liar on the link can
// still claim any alias or fingerprint (there is no proof in multicast:
// the HTTPS layer checks certificates) and, by forging many source
// addresses, churn the table; a real device comes back the next time it
// registers or announces.
type LocalSend struct {
	cfg      LocalSendConfig
	announce []byte // our announcement, announce true
	answer   []byte // the same with announce false
	log      *logLimiter
	// onReady, if set, is called once the sockets are open and the first
	// interfaces joined (tests).
	onReady func()

	received, own, offLink, rateLimited, malformed, accepted, handled, handlerDropped, sent atomic.Uint64

	// Owned by Run's goroutine (and tests driving handle directly).
	limits    *lsLimits
	handlerQ  chan LocalSendDevice
	pokeAfter time.Time // owner-requested announcements wait until then

	mu       sync.Mutex
	table    *lsTable
	answerOn map[string]bool // interfaces to answer on ("" = all)
	poke     chan struct{}   // wakes Run for Announce and AnswerByMulticast
	wantAnn  bool
	closed   bool
	running  bool
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewLocalSend checks cfg (see LocalSendConfig.Validate) and returns a
// LocalSend that will announce cfg.Announcement. It opens nothing: Run and
// Look do.
func NewLocalSend(cfg LocalSendConfig) (*LocalSend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a := cfg.Announcement
	a.Announce = true
	ann, err := a.Marshal()
	if err != nil {
		return nil, err
	}
	a.Announce = false
	ans, err := a.Marshal()
	if err != nil {
		return nil, err
	}
	return &LocalSend{
		cfg:      cfg,
		announce: ann,
		answer:   ans,
		log:      newLogLimiter(cfg.Logf, logEvery),
		limits:   newLSLimits(),
		table:    newLSTable(cfg.Announcement.Fingerprint, cfg.Lifetime),
		answerOn: map[string]bool{},
		poke:     make(chan struct{}, 1),
	}, nil
}

// Devices returns the devices heard or added within the lifetime (one per
// fingerprint and address: a device heard over IPv4 and IPv6 is listed
// twice), sorted by alias, fingerprint and address.
func (l *LocalSend) Devices() []LocalSendDevice {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.table.list(time.Now())
}

// Add records a device learnt another way, typically from a POST
// /register it sent the owner (ParseLocalSendAnnouncement on the body,
// then LocalSendAnnouncement.Device with the request's source address).
// A zero LastSeen means now. It fails, wrapping ErrMalformedAnnouncement,
// when the device's fields are invalid (see LocalSendAnnouncement.Validate)
// or its address is; a device with our own fingerprint is ignored. The
// table's caps apply as to what is heard.
func (l *LocalSend) Add(dev LocalSendDevice) error {
	if err := dev.announcement().Validate(); err != nil {
		return err
	}
	a := dev.Addr.Addr()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return fmt.Errorf("%w: address %v", ErrMalformedAnnouncement, dev.Addr)
	}
	dev.Addr = netip.AddrPortFrom(a.Unmap(), dev.Addr.Port())
	now := time.Now()
	if dev.LastSeen.IsZero() || dev.LastSeen.After(now) {
		dev.LastSeen = now
	}
	l.mu.Lock()
	l.table.put(dev, now)
	l.mu.Unlock()
	return nil
}

// Stats returns counters since NewLocalSend.
func (l *LocalSend) Stats() LocalSendStats {
	l.mu.Lock()
	evicted := l.table.evicted
	l.mu.Unlock()
	return LocalSendStats{
		Received: l.received.Load(), Own: l.own.Load(), OffLink: l.offLink.Load(),
		RateLimited: l.rateLimited.Load(), Malformed: l.malformed.Load(), Accepted: l.accepted.Load(),
		Evicted: uint64(evicted), Handled: l.handled.Load(), HandlerDropped: l.handlerDropped.Load(),
		Sent: l.sent.Load(),
	}
}

// Announce asks Run to multicast our announcement on every served
// interface now (at most one every 250 ms; calls in between are merged).
// It does not block; while Run is not running it does nothing.
func (l *LocalSend) Announce() {
	l.mu.Lock()
	l.wantAnn = l.running
	l.mu.Unlock()
	l.wake()
}

// AnswerByMulticast asks Run to answer dev's announcement as LocalSend
// apps up to 1.17 do when POST /register fails: our announcement with
// announce false, multicast on the interface dev was heard on (every
// interface when dev.Iface is ""). At most one answer per interface goes
// out a second; calls in between are merged. It does not block; while Run
// is not running it does nothing.
func (l *LocalSend) AnswerByMulticast(dev LocalSendDevice) {
	l.mu.Lock()
	if l.running && len(l.answerOn) < 64 {
		l.answerOn[dev.Iface] = true
	}
	l.mu.Unlock()
	l.wake()
}

func (l *LocalSend) wake() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// Close stops Run (or Look) and waits for its goroutines, OnAnnounce's
// included. It is safe to call more than once, and before or without Run.
func (l *LocalSend) Close() error {
	l.mu.Lock()
	l.closed = true
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// Look announces us (at 100 and 600 ms, and 2.6 s when wait allows) and
// returns, after wait (zero means DefaultBrowseWait; or when ctx is done,
// with ctx's error), the devices heard (announcements and multicast
// answers) or added meanwhile: a one-shot look for a program without a
// running agent. To hear 1.18 apps, which answer only over HTTP, run a
// temporary HTTP server whose port is in the announcement and whose
// /register handler calls Add; stop it after Look returns. If the UDP port
// cannot be shared, Look announces from an ephemeral port and hears only
// what is added. It fails as Run does.
func (l *LocalSend) Look(ctx context.Context, wait time.Duration) ([]LocalSendDevice, error) {
	if wait <= 0 {
		wait = DefaultBrowseWait
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := l.run(rctx, true); err != nil {
		return nil, err
	}
	return l.Devices(), ctx.Err()
}

// LookLocalSend is NewLocalSend and Look, for a look that needs no HTTP
// answers (the devices of apps up to 1.17, and any announcing meanwhile).
func LookLocalSend(ctx context.Context, cfg LocalSendConfig, wait time.Duration) ([]LocalSendDevice, error) {
	l, err := NewLocalSend(cfg)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return l.Look(ctx, wait)
}

// lsIface is one served interface.
type lsIface struct {
	info   ifaceInfo
	j4, j6 bool // joined the group for this family
	v4, v6 bool // joined, and sending works
	// off4, off6: the family was turned off after a send failed; it is
	// tried again at the next interface poll.
	off4, off6 bool
	announceAt []time.Time
	answerAt   time.Time // no multicast answer before then
	answerWant bool
}

// lsRun is owned by Run's goroutine.
type lsRun struct {
	socks        *lsSockets
	ifs          map[int]*lsIface
	nextPoll     time.Time
	reannounceAt time.Time // zero: never
}

// Run opens the sockets on the UDP port (shared with LocalSend apps and
// other programs), joins LocalSend's groups on the selected interfaces,
// announces us (three times, then every Reannounce), and reads what others
// send until ctx is done or Close is called; then it closes the sockets,
// waits for OnAnnounce to return and returns nil. IPv6 is used where the
// interface has an IPv6 address and multicast works. It fails at once with
// ErrNoSocket if no socket opens, ErrClosed after Close, or ErrRunning
// while it runs already.
func (l *LocalSend) Run(ctx context.Context) error { return l.run(ctx, false) }

// run is Run; oneShot (Look) may fall back to an ephemeral port.
func (l *LocalSend) run(ctx context.Context, oneShot bool) error {
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return ErrClosed
	case l.running:
		l.mu.Unlock()
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l.running, l.cancel, l.done = true, cancel, done
	l.mu.Unlock()
	defer func() {
		cancel()
		l.mu.Lock()
		l.running, l.cancel, l.done = false, nil, nil
		l.wantAnn = false
		clear(l.answerOn)
		l.mu.Unlock()
		close(done)
	}()

	socks, err := openLSSockets(l.cfg.Port)
	if err != nil && oneShot {
		// Announcing still works, and 1.18 apps answer over HTTP.
		socks, err = openLSSockets(0)
	}
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer func() {
		socks.close()
		cancel()
		wg.Wait()
	}()
	pkts := make(chan packet, 128)
	reader := func(read func([]byte) (packet, error)) {
		defer wg.Done()
		// One byte more than the largest datagram: to tell an oversized one.
		readPackets(ctx, read, MaxLocalSendDatagram+1, pkts, func(err error) { l.log.printf("ls-read", "reading LocalSend socket: %v", err) })
	}
	if socks.p4 != nil {
		wg.Add(1)
		go reader(socks.read4)
	}
	if socks.p6 != nil {
		wg.Add(1)
		go reader(socks.read6)
	}
	l.handlerQ = nil
	if fn := l.cfg.OnAnnounce; fn != nil {
		q := make(chan LocalSendDevice, lsHandlerQueue)
		l.handlerQ = q
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case dev := <-q:
					fn(dev)
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	now := time.Now()
	rs := &lsRun{socks: socks, ifs: map[int]*lsIface{}}
	if l.cfg.Reannounce > 0 {
		rs.reannounceAt = now.Add(l.cfg.Reannounce)
	}
	l.syncIfaces(rs, now)
	rs.nextPoll = now.Add(pollInterval)
	if len(rs.ifs) == 0 {
		l.log.printf("ls-noiface", "LocalSend: no usable interface yet; will keep looking")
	}
	if l.onReady != nil {
		l.onReady()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		l.due(rs, now)
		timer.Reset(max(time.Until(l.nextWake(rs)), 0))
		select {
		case <-ctx.Done():
			return nil
		case p := <-pkts:
			if st := rs.ifs[p.ifindex]; st != nil {
				l.handle(st, p, time.Now())
			}
		case <-l.poke:
		case <-timer.C:
		}
	}
}

// due does the timed work whose time has come, and what Announce and
// AnswerByMulticast asked for.
func (l *LocalSend) due(rs *lsRun, now time.Time) {
	if !now.Before(rs.nextPoll) {
		l.syncIfaces(rs, now)
		rs.nextPoll = now.Add(pollInterval)
	}
	l.mu.Lock()
	wantAnn := l.wantAnn && !now.Before(l.pokeAfter)
	if wantAnn {
		l.wantAnn = false
		l.pokeAfter = now.Add(lsAnnounceGap)
	}
	for name := range l.answerOn {
		for _, st := range rs.ifs {
			if name == "" || name == st.info.Name {
				st.answerWant = true
			}
		}
	}
	clear(l.answerOn)
	l.mu.Unlock()
	if !rs.reannounceAt.IsZero() && !now.Before(rs.reannounceAt) {
		wantAnn = true
		rs.reannounceAt = now.Add(l.cfg.Reannounce)
	}
	for _, st := range rs.ifs {
		send := wantAnn
		for len(st.announceAt) > 0 && !now.Before(st.announceAt[0]) {
			st.announceAt = st.announceAt[1:]
			send = true
		}
		if send {
			l.sendAll(rs, st, l.announce)
		}
		if st.answerWant && !now.Before(st.answerAt) {
			st.answerWant = false
			st.answerAt = now.Add(lsAnswerGap)
			l.sendAll(rs, st, l.answer)
		}
	}
}

func (l *LocalSend) nextWake(rs *lsRun) time.Time {
	w := rs.nextPoll
	upd := func(t time.Time) {
		if !t.IsZero() && t.Before(w) {
			w = t
		}
	}
	upd(rs.reannounceAt)
	for _, st := range rs.ifs {
		if len(st.announceAt) > 0 {
			upd(st.announceAt[0])
		}
		if st.answerWant {
			upd(st.answerAt)
		}
	}
	l.mu.Lock()
	if l.wantAnn {
		upd(l.pokeAfter)
	}
	l.mu.Unlock()
	return w
}

// handle takes one datagram that arrived on st. The checks run cheapest
// first, and nothing is decoded before the rate limits pass, so a flood
// costs a read and a map lookup per datagram.
func (l *LocalSend) handle(st *lsIface, p packet, now time.Time) {
	l.received.Add(1)
	if bytes.Equal(p.data, l.announce) || bytes.Equal(p.data, l.answer) {
		l.own.Add(1)
		return
	}
	src := p.src.Addr()
	if !st.info.onLink(src) {
		l.offLink.Add(1)
		l.log.printf("ls-offlink", "ignoring LocalSend datagram from %v on %s: not on the link", p.src, st.info.Name)
		return
	}
	if len(p.data) > MaxLocalSendDatagram {
		l.malformed.Add(1)
		l.log.printf("ls-malformed", "ignoring LocalSend datagram from %v on %s: over %d bytes", p.src, st.info.Name, MaxLocalSendDatagram)
		return
	}
	if !l.limits.allow(src, now) {
		l.rateLimited.Add(1)
		l.log.printf("ls-ratelimit", "ignoring LocalSend datagrams from %v on %s: too many", p.src, st.info.Name)
		return
	}
	a, err := ParseLocalSendAnnouncement(p.data)
	if err != nil {
		l.malformed.Add(1)
		l.log.printf("ls-malformed", "ignoring LocalSend datagram from %v on %s: %v", p.src, st.info.Name, err)
		return
	}
	if a.Fingerprint == l.cfg.Announcement.Fingerprint {
		// Ours from another of our sockets, or someone replaying it.
		l.own.Add(1)
		return
	}
	if src.Is6() && !src.IsLinkLocalUnicast() {
		src = src.WithZone("")
	}
	dev := a.Device(src)
	dev.Iface, dev.LastSeen = st.info.Name, now
	l.mu.Lock()
	l.table.put(dev, now)
	l.mu.Unlock()
	l.accepted.Add(1)
	if !a.Announce || l.cfg.OnAnnounce == nil {
		return
	}
	if !l.limits.firstCall(a.Fingerprint, now) {
		return // the same announcement over the other family
	}
	if !l.limits.handler.take(now, lsHandlerEvery, lsHandlerBurst) {
		l.handlerDropped.Add(1)
		l.log.printf("ls-handler", "not answering LocalSend announcement from %v: too many announcements", p.src)
		return
	}
	select {
	case l.handlerQ <- dev:
		l.handled.Add(1)
	default:
		l.handlerDropped.Add(1)
		l.log.printf("ls-handler", "not answering LocalSend announcement from %v: the handler lags", p.src)
	}
}

// sendAll multicasts b on every family usable on st.
func (l *LocalSend) sendAll(rs *lsRun, st *lsIface, b []byte) {
	if st.v4 {
		l.send(rs, st, b, netip.AddrPortFrom(LocalSendGroup4, uint16(l.cfg.Port)))
	}
	if st.v6 {
		l.send(rs, st, b, netip.AddrPortFrom(LocalSendGroup6, uint16(l.cfg.Port)))
	}
}

func (l *LocalSend) send(rs *lsRun, st *lsIface, b []byte, dst netip.AddrPort) {
	if err := rs.socks.send(b, st.info.Index, dst); err != nil {
		if errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EADDRNOTAVAIL) {
			// No multicast route for this family here (IPv6 on a bare
			// loopback, say), or no usable source address yet (an IPv6
			// link-local address still in duplicate address detection,
			// just after the interface came up): stop using it on this
			// interface until the next poll tries again.
			if dst.Addr().Is4() {
				st.v4, st.off4 = false, true
			} else {
				st.v6, st.off6 = false, true
			}
		}
		if errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) {
			rs.nextPoll = time.Now() // the interface went away: resync now
		}
		l.log.printf("ls-send:"+st.info.Name, "sending LocalSend datagram to %v on %s: %v", dst, st.info.Name, err)
		return
	}
	l.sent.Add(1)
}

// syncIfaces brings the served interfaces in line with the system's, as
// Service does: new interfaces (or new addresses) are joined and get the
// start burst of announcements.
func (l *LocalSend) syncIfaces(rs *lsRun, now time.Time) {
	all, err := listIfaces()
	if err != nil {
		l.log.printf("ls-ifaces", "%v", err)
		return
	}
	sel := selectIfaces(all, l.cfg.Ifaces)
	byIndex := map[int]ifaceInfo{}
	for _, info := range sel {
		byIndex[info.Index] = info
	}
	for idx, st := range rs.ifs {
		if info, ok := byIndex[idx]; ok && info.Name == st.info.Name {
			continue
		}
		rs.socks.leave(st.info.netInterface())
		delete(rs.ifs, idx)
	}
	for _, info := range sel {
		st := rs.ifs[info.Index]
		if st != nil && slices.Equal(st.info.Addrs, info.Addrs) {
			st.info.Prefixes = info.Prefixes
			// A family whose join or send failed is tried again, with an
			// announcement: the start burst may have gone only over the
			// other family (an IPv6 link-local address is unusable until
			// duplicate address detection ends, a second or two after the
			// interface came up).
			if want4, want6 := info.has4() && !st.j4, info.has6() && !st.j6; want4 || want6 {
				ok4, ok6, _ := rs.socks.join(info.netInterface(), want4, want6)
				st.j4, st.j6 = st.j4 || ok4, st.j6 || ok6
				st.off4, st.off6 = st.off4 || ok4, st.off6 || ok6
			}
			retry4, retry6 := st.off4 && st.j4 && info.has4(), st.off6 && st.j6 && info.has6()
			if retry4 || retry6 {
				st.v4, st.v6 = st.v4 || retry4, st.v6 || retry6
				st.off4, st.off6 = st.off4 && !retry4, st.off6 && !retry6
				st.announceAt = append([]time.Time{now}, st.announceAt...) // the soonest first
			}
			continue
		}
		if st == nil {
			st = &lsIface{}
			rs.ifs[info.Index] = st
		}
		st.info = info
		want4, want6 := info.has4() && !st.j4, info.has6() && !st.j6
		if want4 || want6 {
			ok4, ok6, err := rs.socks.join(info.netInterface(), want4, want6)
			if err != nil {
				l.log.printf("ls-join:"+info.Name, "%v", err)
			}
			st.j4, st.j6 = st.j4 || ok4, st.j6 || ok6
		}
		st.v4, st.v6 = st.j4 && info.has4(), st.j6 && info.has6()
		st.off4, st.off6 = false, false
		st.announceAt = st.announceAt[:0]
		at := now
		for _, d := range lsAnnounceDelays {
			at = at.Add(d)
			st.announceAt = append(st.announceAt, at)
		}
	}
}

// lsTable is the device table: one entry per fingerprint and source
// address, at most maxLocalSendDevices, maxLocalSendPerSource per source,
// each forgotten lifetime after it was last heard. No locks, no I/O.
type lsTable struct {
	self      string // our fingerprint, never listed
	lifetime  time.Duration
	devs      map[lsKey]*LocalSendDevice
	perSource map[netip.Addr]int
	evicted   int
}

type lsKey struct {
	fingerprint string
	addr        netip.Addr
}

func newLSTable(self string, lifetime time.Duration) *lsTable {
	return &lsTable{self: self, lifetime: lifetime, devs: map[lsKey]*LocalSendDevice{}, perSource: map[netip.Addr]int{}}
}

// put records d (LastSeen set), evicting as the caps require.
func (t *lsTable) put(d LocalSendDevice, now time.Time) {
	if d.Fingerprint == t.self {
		return
	}
	t.expire(now)
	k := lsKey{d.Fingerprint, d.Addr.Addr()}
	if old := t.devs[k]; old != nil {
		if d.Iface == "" {
			d.Iface = old.Iface
		}
		if d.LastSeen.Before(old.LastSeen) {
			d.LastSeen = old.LastSeen
		}
		*old = d
		return
	}
	switch {
	case t.perSource[k.addr] >= maxLocalSendPerSource:
		t.evictOldest(func(o lsKey) bool { return o.addr == k.addr })
	case len(t.devs) >= maxLocalSendDevices:
		t.evictOldest(func(lsKey) bool { return true })
	}
	t.devs[k] = &d
	t.perSource[k.addr]++
}

func (t *lsTable) evictOldest(match func(lsKey) bool) {
	var victim lsKey
	var oldest time.Time
	found := false
	for k, d := range t.devs {
		if match(k) && (!found || d.LastSeen.Before(oldest)) {
			victim, oldest, found = k, d.LastSeen, true
		}
	}
	if found {
		t.remove(victim)
		t.evicted++
	}
}

func (t *lsTable) remove(k lsKey) {
	delete(t.devs, k)
	if t.perSource[k.addr]--; t.perSource[k.addr] <= 0 {
		delete(t.perSource, k.addr)
	}
}

func (t *lsTable) expire(now time.Time) {
	for k, d := range t.devs {
		if now.Sub(d.LastSeen) >= t.lifetime {
			t.remove(k)
		}
	}
}

// list returns the live devices, sorted by alias (case-folded first),
// fingerprint and address.
func (t *lsTable) list(now time.Time) []LocalSendDevice {
	t.expire(now)
	out := make([]LocalSendDevice, 0, len(t.devs))
	for _, d := range t.devs {
		out = append(out, *d)
	}
	slices.SortStableFunc(out, func(a, b LocalSendDevice) int {
		if c := strings.Compare(strings.ToLower(a.Alias), strings.ToLower(b.Alias)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Alias, b.Alias); c != 0 {
			return c
		}
		if c := strings.Compare(a.Fingerprint, b.Fingerprint); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	return out
}

// tokenBucket allows a burst and then one event per interval.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time, every time.Duration, burst int) bool {
	if b.last.IsZero() {
		b.tokens, b.last = float64(burst), now
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(el)/float64(every))
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// lsLimits are the rate limits on received datagrams and OnAnnounce
// calls. The per-source buckets are capped at lsMaxSources: when full,
// buckets that have refilled (their source has been quiet) are dropped,
// and if none has, an arbitrary one is, so forged sources cannot grow the
// map; the overall bucket bounds what they get through.
type lsLimits struct {
	sources map[netip.Addr]*tokenBucket
	all     tokenBucket
	handler tokenBucket
	// called holds when OnAnnounce was last called per fingerprint, for
	// lsSameCall; entries older than that are dropped when it grows.
	called map[string]time.Time
}

func newLSLimits() *lsLimits {
	return &lsLimits{sources: map[netip.Addr]*tokenBucket{}, called: map[string]time.Time{}}
}

// firstCall reports whether an announcement of fp at now may call
// OnAnnounce (none did within lsSameCall), and notes it if so.
func (l *lsLimits) firstCall(fp string, now time.Time) bool {
	if t, ok := l.called[fp]; ok && now.Sub(t) < lsSameCall {
		return false
	}
	if len(l.called) >= lsMaxSources {
		for k, t := range l.called {
			if now.Sub(t) >= lsSameCall {
				delete(l.called, k)
			}
		}
	}
	if len(l.called) < lsMaxSources {
		l.called[fp] = now
	}
	return true
}

func (l *lsLimits) allow(src netip.Addr, now time.Time) bool {
	b := l.sources[src]
	if b == nil {
		if len(l.sources) >= lsMaxSources {
			l.prune(now)
		}
		b = &tokenBucket{}
		l.sources[src] = b
	}
	if !b.take(now, lsSourceEvery, lsSourceBurst) {
		return false
	}
	return l.all.take(now, lsAllEvery, lsAllBurst)
}

func (l *lsLimits) prune(now time.Time) {
	full := time.Duration(lsSourceBurst) * lsSourceEvery
	for a, b := range l.sources {
		if now.Sub(b.last) >= full {
			delete(l.sources, a)
		}
	}
	for a := range l.sources {
		if len(l.sources) < lsMaxSources {
			break
		}
		delete(l.sources, a)
	}
}

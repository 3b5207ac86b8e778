package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// DefaultPort is the TCP port an agent listens on unless told otherwise.
// It lies in the dynamic range (49152–65535) and is not used by LocalSend
// (53317), Warpinator (42000/42001) or croc (9009–9013).
const DefaultPort = 52741

// Config configures an Agent.
type Config struct {
	Dir       string // shared folder; created if missing
	Name      string // display name
	Listen    string // TCP address; ":0" picks a free port
	ConfigDir string // the agent's own state; created if missing
	// ListenAnyIfTaken: when Listen's port is in use by another program
	// (another user's agent on this machine, say), listen on a free port
	// of the same address instead (Addr tells which). Peers find the
	// agent by name whatever its port. An agent of the same ConfigDir
	// holding it is ErrAgentRunning all the same.
	ListenAnyIfTaken bool

	SpaceMargin      uint64        // free space every offer must leave
	HandshakeTimeout time.Duration // connection to complete offer
	IdleTimeout      time.Duration // drop a connection idle this long
	ShutdownGrace    time.Duration // in-flight transfers may finish within this on stop
	MaxConns         int           // concurrent connections in total
	MaxConnsPerHost  int           // concurrent connections per remote address
	// MinRate is the fewest bytes a sender must deliver after the answer
	// per RateWindow of the agent's waiting, or it is dropped (a trickle
	// that would hold a slot). A zero RateWindow means no minimum.
	MinRate    uint64
	RateWindow time.Duration
	// EvictAfter is the age from which a stranger's connection may be
	// closed to make room for a new sender when every slot is taken: the
	// one that moved the fewest bytes for its age goes. Connections that
	// proved a trusted key are never evicted. Zero means never.
	EvictAfter time.Duration
	// MemoryBudget caps the memory that offers in flight take (see
	// DefaultMemoryBudget); zero means DefaultMemoryBudget.
	MemoryBudget int64
	// PartialMaxAge is how long the partial file of an interrupted
	// transfer is kept for a resume after it was last written.
	PartialMaxAge time.Duration

	// Accept is who may send: AcceptEveryone (a drop box), AcceptAsk
	// (strangers' offers wait for the owner: see Pending, Decide, OnAsk)
	// or AcceptTrusted (only peers in the known-peers file as trusted).
	Accept string
	// StrangerBudget caps what peers that are not trusted send together
	// per rolling day under AcceptEveryone (see StrangerBudget); trusted
	// peers, and offers the owner accepted under AcceptAsk, are not
	// counted. The zero value is no limit.
	StrangerBudget StrangerBudget
	// AskTimeout is how long an offer waits for the owner under
	// AcceptAsk, and MaxPending how many may wait at once (at most 4 of
	// them from one address, and together at most a quarter of the
	// memory budget); zero means DefaultAskTimeout, DefaultMaxPending.
	AskTimeout time.Duration
	MaxPending int
	// OnAsk, if set, is called when a stranger's offer starts to wait for
	// the owner (answer it with Decide), from that connection's
	// goroutine; it must return quickly.
	OnAsk func(PendingOffer)
	// MaxSize caps the bytes of one transfer from a peer that is not
	// trusted (0: no cap beyond free space); TrustedMaxSize is the cap for
	// trusted peers.
	MaxSize, TrustedMaxSize uint64
	// TrustedExec keeps the executable bit on files from trusted peers
	// (everyone else's land 0644).
	TrustedExec bool
	// PerPeerFolders puts each sender's files in a folder of its own: the
	// name it was trusted under plus its short id, or the short id alone.
	PerPeerFolders bool
	// NameRules are the names the shared folder can hold (NamesNative
	// if empty); an offered name they forbid is saved under a mapped one.
	NameRules NameRules
	// SaveTexts also saves every text message (send --text, a LocalSend
	// app's message) as a file in the shared folder (see Policy.SaveTexts);
	// without it a message goes to the log and the history only.
	SaveTexts bool

	// Discover makes the agent advertise itself over mDNS and keep a live
	// table of its peers (Peers). Without it the agent is reachable only by
	// address.
	Discover bool
	// Ifaces restricts discovery to these interfaces; empty means every
	// up, multicast-capable one.
	Ifaces []string
	// LocalSend makes the agent speak LocalSend's protocol 2.2 as well:
	// an HTTPS server on LocalSendListen (":53317" by default; ":0" picks
	// a free port) that LocalSend apps send to, with the agent's inbox and
	// policy. When that port is taken (a LocalSend app runs here), the
	// agent logs it and serves without it.
	LocalSend       bool
	LocalSendListen string
	// LocalSendPIN, if set, is asked of LocalSend senders that are not
	// trusted, as LocalSend's own PIN: three wrong tries from an address
	// and it is refused until the agent restarts.
	LocalSendPIN string
	// LocalSendUDPPort is the UDP port of LocalSend's multicast discovery;
	// zero means LocalSend's, 53317.
	LocalSendUDPPort int
	// Web serves the drop page on the LocalSend server (so only with
	// LocalSend): any browser that opens https://ADDR:PORT/ and gives
	// WebPIN can upload into the inbox, as a LocalSend device without a
	// certificate would (web.go). WebPIN "" asks for no PIN.
	Web    bool
	WebPIN string
	// WebInsecureHTTP, if not "", serves the drop page and share links
	// over plain HTTP too, on this address (":0" picks a free port),
	// without LocalSend's API: PINs, session cookies and files then cross
	// the network in clear (web_http.go). Only with Web.
	WebInsecureHTTP string
	// OnDownload, if set, is called when a download of a share link
	// (Agent.Share) ends, from its request's goroutine.
	OnDownload func(Download)
	// DiscoveryTTL is the TTL of our mDNS records: how long a peer keeps
	// us after we vanish without a goodbye. Zero means discovery.DefaultTTL.
	DiscoveryTTL time.Duration

	// OnTransfer, if set, is called once per connection when its transfer
	// ends, from that connection's goroutine; calls may be concurrent. A
	// probe (a peer that proves its key and closes before its hello, as
	// static-peer checks do) is not reported.
	OnTransfer func(Incoming)
	// OnReceiving, if set, is called when a transfer's files start to
	// arrive, from that connection's goroutine; it must return quickly.
	// The transfer's OnTransfer call has the same ID.
	OnReceiving func(Receiving)
	// OnPeer, if set, is called for every change in the peer table, one
	// call at a time, from a goroutine that Serve owns.
	OnPeer func(discovery.Event)
	// OnStatic, if set, is called when a check of a static peer (see
	// StaticPeers) finds it in another state than before, from the
	// check's goroutine; calls may be concurrent.
	OnStatic func(StaticStatus)
	// OnQueue, if set, is called at each step of a job of send --later
	// (see Enqueue), from the goroutine that made it; calls may be
	// concurrent, and must return quickly.
	OnQueue func(QueueEvent)
	// Logf, if set, receives rare diagnostic lines (rate-limited).
	Logf func(format string, args ...any)
}

// Accept policies.
const (
	AcceptEveryone = "everyone"
	AcceptAsk      = "ask"
	AcceptTrusted  = "trusted"
)

// Receiving is a transfer that is being received.
type Receiving struct {
	ID     uint64 // tells the connections apart
	Remote net.Addr
	PeerID string
	// Progress returns the transfer's progress at any moment, from any
	// goroutine.
	Progress func() InProgress
}

// Incoming is the outcome of one received connection.
type Incoming struct {
	ID       uint64 // as in Receiving
	Remote   net.Addr
	PeerID   string    // the sender's id, from its key; "" if the TLS handshake failed
	Transfer *Transfer // nil when the hello never arrived
	Err      error
	Start    time.Time
	End      time.Time
}

// listenAny listens on a free port of addr's host.
func listenAny(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	free := net.JoinHostPort(host, "0")
	ln, err := net.Listen("tcp", free)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", free, err)
	}
	return ln, nil
}

// DefaultConfig returns the settings `lanshare serve` uses without flags:
// the shared folder ~/LANShare, the host name, all interfaces on
// DefaultPort, and state in the user's config directory.
func DefaultConfig() Config {
	c := Config{
		Listen:           fmt.Sprintf(":%d", DefaultPort),
		SpaceMargin:      64 << 20,
		HandshakeTimeout: 10 * time.Second,
		IdleTimeout:      DefaultIdleTimeout,
		ShutdownGrace:    3 * time.Second,
		MaxConns:         64,
		MaxConnsPerHost:  8,
		MinRate:          DefaultMinRate,
		RateWindow:       DefaultRateWindow,
		EvictAfter:       DefaultEvictAfter,
		MemoryBudget:     DefaultMemoryBudget,
		PartialMaxAge:    DefaultPartialMaxAge,
		Accept:           AcceptEveryone,
		StrangerBudget:   DefaultStrangerBudget,
		AskTimeout:       DefaultAskTimeout,
		MaxPending:       DefaultMaxPending,
		LocalSend:        true,
		LocalSendListen:  fmt.Sprintf(":%d", localsend.DefaultPort),
	}
	if home, err := os.UserHomeDir(); err == nil {
		c.Dir = filepath.Join(home, "LANShare")
	}
	if host, err := os.Hostname(); err == nil {
		c.Name = host
	}
	if dir, err := os.UserConfigDir(); err == nil {
		c.ConfigDir = filepath.Join(dir, "lanshare")
	}
	return c
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("no shared folder: set one")
	case c.ConfigDir == "":
		return errors.New("no config directory: set one")
	case c.Name == "":
		return errors.New("no display name: set one")
	case len(c.Name) > 256:
		return errors.New("display name longer than 256 bytes")
	case c.Listen == "":
		return errors.New("no listen address")
	case c.MaxConns < 1 || c.MaxConnsPerHost < 1:
		return errors.New("connection limits must be at least 1")
	case c.HandshakeTimeout <= 0 || c.IdleTimeout <= 0 || c.PartialMaxAge <= 0:
		return errors.New("timeouts and ages must be positive")
	case c.RateWindow < 0 || c.EvictAfter < 0 || c.MemoryBudget < 0 || c.ShutdownGrace < 0:
		return errors.New("rate window, eviction age, memory budget and shutdown grace must not be negative")
	case c.Accept != AcceptEveryone && c.Accept != AcceptAsk && c.Accept != AcceptTrusted:
		return fmt.Errorf("accept policy %q: want %q, %q or %q", c.Accept, AcceptEveryone, AcceptAsk, AcceptTrusted)
	case c.AskTimeout < 0 || c.AskTimeout > proto.MaxWait:
		return fmt.Errorf("ask timeout %v: want at most %v", c.AskTimeout, proto.MaxWait)
	case c.MaxPending < 0:
		return errors.New("pending offers must not be negative")
	}
	if _, err := c.NameRules.resolve(); err != nil {
		return err
	}
	return c.StrangerBudget.validate()
}

// Defaults of the limits that keep strangers from holding the agent.
const (
	// DefaultMinRate per DefaultRateWindow is about 2 KiB/s: far below
	// any real link, even a poor Wi-Fi one, far above a trickle.
	DefaultMinRate    = 64 << 10
	DefaultRateWindow = 30 * time.Second
	// DefaultEvictAfter keeps a new sender out for at most about this
	// long (plus a handshake) while strangers hold every slot.
	DefaultEvictAfter = 20 * time.Second
)

// ProtocolVersion is the version agents advertise in discovery: "major.minor".
var ProtocolVersion = fmt.Sprintf("%d.%d", proto.Major, proto.Minor)

// Agent receives transfers on a TCP listener into an Inbox, and, with
// Config.Discover, announces itself and watches for peers.
type Agent struct {
	cfg   Config
	lock  *configLock // on cfg.ConfigDir, released by Close
	id    *Identity
	tls   *tls.Config
	inbox *Inbox
	ln    net.Listener
	disc  *discovery.Service // nil without Config.Discover
	ls    *lsServer          // nil without Config.LocalSend, or when its port was taken
	// lsdisc is LocalSend's discovery, with Config.Discover and ls; the
	// devices that announce themselves wait in lsAnnounced for our answer.
	lsdisc        *discovery.LocalSend
	lsAnnounced   chan discovery.LocalSendDevice
	lsUnavailable error    // why there is no ls although Config.LocalSend asked for it
	ctl           *control // nil when the control socket could not be made
	since         time.Time

	strangers *strangerPool // nil without a StrangerBudget
	consents  *consents
	texts     *textLimiter // text messages per address, both protocols
	static    *staticChecker
	queue     *queueAgent

	mu       sync.Mutex
	conns    map[*agentConn]struct{} // every connection whose goroutine runs
	perHost  map[string]int          // connections per remote address
	open     int                     // connections in the MaxConns slots, not evicted
	reserved map[string]int          // connections in the trusted reserve, per remote address
	closing  bool
	dropped  time.Time     // when closeConns first gave the connections up
	ended    chan struct{} // closed and replaced whenever a connection's goroutine ends

	seq       atomic.Uint64 // connection IDs
	closeOnce sync.Once
	closeErr  error
}

// agentConn is an accepted connection as the agent tracks it. It counts
// the bytes read from it, so that the one that moved the least can be
// evicted.
type agentConn struct {
	net.Conn
	id       uint64
	host     string
	start    time.Time
	reserved bool        // let in through the trusted reserve
	evicted  bool        // under Agent.mu: closed to make room; its slot is free
	trusted  atomic.Bool // proved a trusted key in its TLS handshake
	answered atomic.Bool // its offer was accepted: its files may flow
	pending  atomic.Bool // its offer waits for the owner (AcceptAsk)
	read     atomic.Uint64
	// readAtAnswer is read when the offer was accepted: what follows is
	// what the strangers' budget counts.
	readAtAnswer atomic.Uint64
	done         chan struct{} // closed by drop
	once         sync.Once
}

func (c *agentConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(uint64(n))
	return n, err
}

// drop gives the connection up: it closes the socket, and tells the
// transfer (Policy.Done) to stop waiting on anything else. Safe to call
// more than once.
func (c *agentConn) drop() {
	c.once.Do(func() {
		close(c.done)
		c.Conn.Close()
	})
}

// New validates cfg, prepares the shared folder and config directory, and
// starts listening. Call Serve to accept transfers.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.ConfigDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating config directory: %w", err)
	}
	lock, err := lockConfig(cfg.ConfigDir)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			lock.release()
		}
	}()
	id, err := LoadIdentity(cfg.ConfigDir)
	if err != nil {
		return nil, err
	}
	if cfg.AskTimeout == 0 {
		cfg.AskTimeout = DefaultAskTimeout
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	var strangers *strangerPool
	if cfg.Accept == AcceptEveryone && !cfg.StrangerBudget.Off() {
		dir := cfg.Dir
		if strangers, err = openStrangerPool(cfg.ConfigDir, cfg.StrangerBudget, func() (uint64, error) { return freeSpace(dir) }); err != nil {
			return nil, err
		}
	}
	inbox, err := OpenInbox(InboxConfig{
		Dir: cfg.Dir, Name: cfg.Name, SpaceMargin: cfg.SpaceMargin,
		HandshakeTimeout: cfg.HandshakeTimeout, IdleTimeout: cfg.IdleTimeout,
		MinRate: cfg.MinRate, RateWindow: cfg.RateWindow, MemoryBudget: cfg.MemoryBudget,
		NameRules: cfg.NameRules,
	})
	if err != nil {
		return nil, err
	}
	if err := inbox.checkWritable(); err != nil {
		inbox.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	taken := err != nil && cfg.ListenAnyIfTaken && AddrInUse(err)
	if err != nil && !taken {
		inbox.Close()
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	closeLn := func() {
		if ln != nil {
			ln.Close()
		}
	}
	if cfg.Accept == AcceptTrusted {
		// Fail at start on an unreadable file, not on the first sender.
		if _, err := LoadKnown(cfg.ConfigDir); err != nil {
			closeLn()
			inbox.Close()
			return nil, err
		}
	}
	// The control socket tells whether an agent of this config directory
	// runs, and so whether a taken port is its: then this is no second
	// agent on another port, but ErrAgentRunning.
	ctl, err := listenControl(cfg.ConfigDir)
	if errors.Is(err, ErrAgentRunning) {
		closeLn()
		inbox.Close()
		return nil, err
	}
	if taken {
		if ctl == nil {
			// Without a control socket, the port is what tells that
			// another agent of this config directory runs where the
			// config lock cannot (see lockConfig): no other port.
			inbox.Close()
			return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, syscall.EADDRINUSE)
		}
		if ln, err = listenAny(cfg.Listen); err != nil {
			inbox.Close()
			if ctl != nil {
				ctl.close()
			}
			return nil, err
		}
	}
	if err != nil && cfg.Logf != nil {
		// `lanshare status` will not find this agent; it still works.
		cfg.Logf("no control socket: %v", err)
	}

	a := &Agent{cfg: cfg, id: id, tls: id.ServerTLS(), inbox: inbox, ln: ln, ctl: ctl, since: time.Now(),
		conns: map[*agentConn]struct{}{}, perHost: map[string]int{}, reserved: map[string]int{}, ended: make(chan struct{}),
		strangers: strangers}
	memory := cfg.MemoryBudget
	if memory == 0 {
		memory = DefaultMemoryBudget
	}
	a.consents = newConsents(cfg.MaxPending, memory/4)
	a.texts = newTextLimiter(cfg.Logf)
	a.static = newStaticChecker(cfg.ConfigDir, id, cfg.Logf, cfg.OnStatic)
	a.queue = newQueueAgent(a)
	inbox.mem.pressure = a.evictForMemory
	if cfg.LocalSend {
		if err := a.startLocalSend(); err != nil {
			ln.Close()
			inbox.Close()
			if ctl != nil {
				ctl.close()
			}
			return nil, err
		}
	}
	if cfg.Discover {
		dc := discovery.DefaultConfig()
		dc.Name, dc.ID, dc.Version = cfg.Name, id.ID, ProtocolVersion
		dc.Port = ln.Addr().(*net.TCPAddr).Port
		dc.Ifaces, dc.Logf = cfg.Ifaces, cfg.Logf
		if cfg.DiscoveryTTL != 0 {
			dc.TTL = cfg.DiscoveryTTL
		}
		if a.disc, err = discovery.New(dc); err != nil {
			ln.Close()
			inbox.Close()
			if ctl != nil {
				ctl.close()
			}
			if a.ls != nil {
				a.ls.close()
			}
			return nil, fmt.Errorf("discovery: %w", err)
		}
		if a.ls != nil {
			if err := a.newLocalSendDiscovery(); err != nil {
				ln.Close()
				inbox.Close()
				if ctl != nil {
					ctl.close()
				}
				a.ls.close()
				return nil, err
			}
		}
	}
	started, a.lock = true, lock
	return a, nil
}

// Addr is the address the agent listens on.
func (a *Agent) Addr() net.Addr { return a.ln.Addr() }

// ID is the agent's stable id (see Identity).
func (a *Agent) ID() string { return a.id.ID }

// Instance is the name the agent advertises ("bob (3fa2)"), or "" without
// discovery.
func (a *Agent) Instance() string {
	if a.disc == nil {
		return ""
	}
	return a.disc.Instance()
}

// Status describes the agent now, as `lanshare status` shows it.
func (a *Agent) Status() Status {
	peers := a.Peers()
	if peers == nil {
		peers = []discovery.Peer{}
	}
	st := Status{PID: os.Getpid(), Name: a.cfg.Name, Instance: a.Instance(), ID: a.ID(), Listen: a.Addr().String(), Dir: a.cfg.Dir,
		Accept: a.cfg.Accept, Version: ProtocolVersion, Since: a.since, Addrs: []netip.AddrPort{}, Peers: peers}
	if a.disc != nil {
		st.Addrs = a.disc.Addrs()
	}
	a.mu.Lock()
	st.Transfers = len(a.conns)
	a.mu.Unlock()
	st.Pending = len(a.Pending())
	st.Static = a.StaticPeers()
	st.Queued, st.QueueHeld = a.queue.counts()
	if a.ls != nil {
		st.LocalSendListen, st.LocalSendFingerprint = a.ls.ln.Addr().String(), a.ls.ident.Fingerprint
		if addr := a.WebInsecureHTTPAddr(); addr != nil {
			st.WebHTTPListen = addr.String()
		}
	}
	if a.lsdisc != nil {
		st.LocalSend = a.lsdisc.Devices()
	}
	if a.cfg.Accept == AcceptEveryone {
		st.StrangerBudget = a.cfg.StrangerBudget.String()
		if left, _, ok := a.StrangersLeft(); ok {
			st.StrangersLeft = &left
		}
	}
	for _, p := range a.inbox.Partials() {
		st.Partials++
		st.PartialBytes += p.Written
	}
	return st
}

// Peers returns the agents seen on the network now, without this one;
// nil without discovery.
func (a *Agent) Peers() []discovery.Peer {
	if a.disc == nil {
		return nil
	}
	return a.disc.Peers()
}

// Serve accepts transfers until ctx is done or Close is called. On ctx's
// end it stops accepting, lets transfers in flight finish within
// ShutdownGrace, aborts the rest (resumable files keep their partial bytes
// for the sender's next try; other temporary files are removed), and
// returns nil: within ShutdownGrace plus 2 s (abortWait) whatever the
// connections are doing (and after discovery's goodbyes). Called after
// Close, it returns ErrClosed at once, having started nothing.
func (a *Agent) Serve(ctx context.Context) error {
	a.mu.Lock()
	closing := a.closing
	a.mu.Unlock()
	if closing {
		// Nothing starts: no discovery, no static peers dialed, no sweep.
		return ErrClosed
	}
	stop := context.AfterFunc(ctx, func() { a.ln.Close() })
	defer stop()
	defer procs.serving()()
	stopDiscovery := a.startDiscovery(ctx)
	defer a.startStatic(ctx)()
	defer a.startQueue(ctx)()
	if a.ls != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.ls.serve()
		}()
		defer func() {
			a.ls.close()
			<-done
		}()
	}
	if a.ctl != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.ctl.serve(a.handleControl)
		}()
		defer func() {
			a.ctl.close()
			<-done
		}()
	}
	// Only this agent uses the shared folder: the temporary files there
	// are its previous run's, if any.
	if n := a.inbox.sweep(a.cfg.PartialMaxAge, 0); n > 0 && a.cfg.Logf != nil {
		a.cfg.Logf("removed %d stale temporary files from the shared folder", n)
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		a.sweepEvery(sweepCtx, sweepInterval)
	}()
	defer func() {
		stopSweep()
		<-sweepDone
	}()
	// Say goodbye before draining, so peers stop offering us new transfers
	// while the last ones finish.
	defer func() {
		if stopDiscovery != nil {
			stopDiscovery()
		}
	}()
	var tempDelay time.Duration
	for {
		c, err := a.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// Out of file descriptors and the like: back off, keep serving.
			if tempDelay == 0 {
				tempDelay = 5 * time.Millisecond
			} else if tempDelay < time.Second {
				tempDelay *= 2
			}
			t := time.NewTimer(tempDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		tempDelay = 0
		ac := a.admit(c)
		if ac == nil {
			c.Close()
			continue
		}
		go a.handle(ac)
	}
	if stopDiscovery != nil {
		stopDiscovery()
		stopDiscovery = nil
	}
	if a.ls != nil {
		// No new LocalSend requests; uploads in flight finish within the
		// grace (drain), idle connections go now.
		a.ls.shutdown()
	}
	a.drain()
	a.texts.flush()
	if ctx.Err() == nil {
		a.mu.Lock()
		closed := a.closing
		a.mu.Unlock()
		if closed {
			return ErrClosed
		}
	}
	return nil
}

// sweepInterval is how often a running agent removes stale partial files.
const sweepInterval = time.Hour

// sweepEvery sweeps the staging folder every interval until ctx is done.
func (a *Agent) sweepEvery(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n := a.inbox.Sweep(a.cfg.PartialMaxAge); n > 0 && a.cfg.Logf != nil {
				a.cfg.Logf("removed %d stale partial files from the shared folder", n)
			}
		}
	}
}

// startDiscovery runs the discovery service (and the OnPeer pump) until the
// returned function is called; that function waits for them (the service
// sends its goodbyes on the way out). Without discovery it returns nil.
func (a *Agent) startDiscovery(ctx context.Context) func() {
	if a.disc == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var events <-chan discovery.Event
	unsubscribe := func() {}
	if a.cfg.OnPeer != nil {
		events, unsubscribe = a.disc.Subscribe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range events {
				a.cfg.OnPeer(ev)
			}
		}()
	}
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- a.disc.Run(ctx)
	}()
	if a.lsdisc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.runLocalSendDiscovery(ctx)
		}()
	}
	return func() {
		cancel()
		unsubscribe()
		wg.Wait()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) && a.cfg.Logf != nil {
			a.cfg.Logf("discovery stopped: %v", err)
		}
	}
}

// drain waits for transfers in flight, up to ShutdownGrace, then gives
// up the connections left (see agentConn.drop) and waits for their
// goroutines up to abortWait more, so that it returns within ShutdownGrace
// plus abortWait whatever the connections are doing.
func (a *Agent) drain() {
	if a.waitConns(time.Now().Add(a.cfg.ShutdownGrace)) {
		return
	}
	a.waitConns(a.closeConns().Add(abortWait))
}

// abortWait bounds the wait for connections given up on stop: their
// goroutines stop waiting on anything but the file system at once.
const abortWait = 2 * time.Second

// waitConns waits until deadline at most for every connection's goroutine
// to end, and reports whether they did.
func (a *Agent) waitConns(deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		a.mu.Lock()
		n, ended := len(a.conns), a.ended
		a.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-ended:
		case <-t.C:
			return false
		}
	}
}

// closeConns gives up every connection, and returns when they were first
// given up: a second call (Close after Serve) waits no longer than the
// first.
func (a *Agent) closeConns() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closing = true
	if a.dropped.IsZero() {
		a.dropped = time.Now()
	}
	for c := range a.conns {
		c.drop()
	}
	return a.dropped
}

func hostOf(addr net.Addr) string {
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// admit registers c unless a connection limit is reached, and returns it
// as tracked, or nil.
//
// Within MaxConns, a remote address may hold MaxConnsPerHost connections.
// When all MaxConns slots are taken, a stranger's connection older than
// EvictAfter that moved the fewest bytes for its age is evicted to make
// room (see victimLocked). When none can be, up to trustedReserve
// connections more are let in, at most reservePerHost per address,
// whatever discovery says about their address: each must then prove a
// trusted key within reserveHandshake, or take a slot that came free
// meanwhile (promote), or it is dropped; and when the reserve is full,
// its oldest connection that has not proved a key within reserveMinAge
// gives way.
func (a *Agent) admit(c net.Conn) *agentConn {
	host := hostOf(c.RemoteAddr())
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing || a.perHost[host] >= a.cfg.MaxConnsPerHost {
		return nil
	}
	ac := &agentConn{Conn: c, id: a.seq.Add(1), host: host, start: now, done: make(chan struct{})}
	switch {
	case a.open < a.cfg.MaxConns:
	case a.evictLocked(a.victimLocked(now)):
	case a.reserved[host] >= reservePerHost:
		return nil
	case a.reserveUsedLocked() < trustedReserve || a.evictLocked(a.reserveVictimLocked(now)):
		ac.reserved = true
	default:
		return nil
	}
	a.conns[ac] = struct{}{}
	procs.hold() // until c leaves conns
	a.perHost[host]++
	if ac.reserved {
		a.reserved[host]++
	} else {
		a.open++
	}
	return ac
}

// reservePerHost is how many connections of the trusted reserve one
// address may hold.
const reservePerHost = 2

// reserveMinAge is how long a connection of the reserve may try to prove
// a trusted key before a newcomer can take its place (a real peer's TLS
// handshake takes milliseconds).
const reserveMinAge = 200 * time.Millisecond

func (a *Agent) reserveUsedLocked() int {
	n := 0
	for _, k := range a.reserved {
		n += k
	}
	return n
}

// victimLocked returns the connection to evict for a newcomer when every
// slot is taken: a stranger's connection in the slots that has not had
// its offer accepted after evictUnanswered (a real sender gets its answer
// in milliseconds; strangers that connect, send nothing and reconnect as
// each handshake deadline drops them would otherwise hold every slot for
// ever), else one older than EvictAfter; among them, the one that read
// the fewest bytes for its age; nil if there is none.
func (a *Agent) victimLocked(now time.Time) *agentConn {
	if c := a.victimWhereLocked(now, evictUnanswered, func(c *agentConn) bool { return !c.answered.Load() }); c != nil {
		return c
	}
	return a.victimWhereLocked(now, a.cfg.EvictAfter, nil)
}

// evictUnanswered is the age from which a stranger's connection whose
// offer was not accepted yet may give way to a newcomer.
const evictUnanswered = time.Second

// evictForMemory evicts, for an offer that waits for the memory budget,
// the stranger's connection older than EvictAfter that holds a share of
// it and read the fewest bytes for its age, if there is one: strangers
// that trickle large offers cannot keep new senders out for longer.
func (a *Agent) evictForMemory() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evictLocked(a.victimWhereLocked(time.Now(), a.cfg.EvictAfter, func(c *agentConn) bool {
		return a.inbox.mem.held(c.done) > 0
	}))
}

// victimWhereLocked returns, among the strangers' connections in the
// slots older than minAge for which ok (if not nil) holds, the one that
// read the fewest bytes for its age, or nil. Nothing is evicted when
// Config.EvictAfter is 0.
func (a *Agent) victimWhereLocked(now time.Time, minAge time.Duration, ok func(*agentConn) bool) *agentConn {
	if a.cfg.EvictAfter <= 0 {
		return nil
	}
	var best *agentConn
	var bestRate float64
	for c := range a.conns {
		age := now.Sub(c.start)
		if c.reserved || c.evicted || c.trusted.Load() || c.pending.Load() || age < minAge || (ok != nil && !ok(c)) {
			continue
		}
		rate := float64(c.read.Load()) / age.Seconds()
		if best == nil || rate < bestRate || (rate == bestRate && c.start.Before(best.start)) {
			best, bestRate = c, rate
		}
	}
	return best
}

// reserveVictimLocked returns the oldest connection of the reserve that
// has not proved a trusted key within reserveMinAge, or nil.
func (a *Agent) reserveVictimLocked(now time.Time) *agentConn {
	var best *agentConn
	for c := range a.conns {
		if !c.reserved || c.evicted || c.trusted.Load() || now.Sub(c.start) < reserveMinAge {
			continue
		}
		if best == nil || c.start.Before(best.start) {
			best = c
		}
	}
	return best
}

// evictLocked drops c, if not nil, and frees its slot at once (its
// goroutine ends soon after). It reports whether it did.
func (a *Agent) evictLocked(c *agentConn) bool {
	if c == nil {
		return false
	}
	c.evicted = true
	a.freeSlotLocked(c)
	c.drop()
	return true
}

// promote moves c, a connection of the reserve that proved no trusted
// key, into a slot if one came free since it was let in, or can be made
// by evicting (see victimLocked); it reports whether it did.
func (a *Agent) promote(c *agentConn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.evicted || (a.open >= a.cfg.MaxConns && !a.evictLocked(a.victimLocked(time.Now()))) {
		return false
	}
	a.freeSlotLocked(c)
	c.reserved = false
	a.open++
	return true
}

// freeSlotLocked gives back c's slot in MaxConns or in the reserve.
func (a *Agent) freeSlotLocked(c *agentConn) {
	if c.reserved {
		if a.reserved[c.host]--; a.reserved[c.host] <= 0 {
			delete(a.reserved, c.host)
		}
	} else {
		a.open--
	}
}

// reserveHandshake bounds the TLS handshake of a connection let in through
// the trusted reserve: a real peer completes it in milliseconds.
const reserveHandshake = 2 * time.Second

// trustedReserve is how many connections beyond MaxConns may be let in to
// prove a trusted key.
const trustedReserve = 8

func (a *Agent) handle(c *agentConn) {
	peerID, tr, err := a.receive(c)
	c.drop()
	a.mu.Lock()
	if c.evicted && err != nil {
		err = fmt.Errorf("%w: %w", ErrEvicted, err)
	} else if a.closing && err != nil && errors.Is(err, net.ErrClosed) {
		// Close cut it, not the peer.
		err = fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if !c.evicted {
		a.freeSlotLocked(c)
		// Its slot is free now, though c stays listed until OnTransfer
		// returns: no newcomer may evict it (and free the slot again).
		c.evicted = true
	}
	if a.perHost[c.host]--; a.perHost[c.host] <= 0 {
		delete(a.perHost, c.host)
	}
	a.mu.Unlock()
	// A message over the limit is not reported: the limiter logs them.
	if a.cfg.OnTransfer != nil && !isProbe(peerID, tr, err) && !errors.Is(err, ErrTooManyTexts) {
		a.cfg.OnTransfer(Incoming{ID: c.id, Remote: c.RemoteAddr(), PeerID: peerID, Transfer: tr, Err: err, Start: c.start, End: time.Now()})
	}
	a.mu.Lock()
	if _, ok := a.conns[c]; ok {
		delete(a.conns, c)
		procs.release()
	}
	close(a.ended)
	a.ended = make(chan struct{})
	a.mu.Unlock()
}

// receive runs one connection: the TLS handshake within HandshakeTimeout
// (reserveHandshake for a connection of the reserve), the accept policy,
// then the transfer.
func (a *Agent) receive(c *agentConn) (peerID string, tr *Transfer, err error) {
	tc := tls.Server(c, a.tls)
	timeout := a.cfg.HandshakeTimeout
	if c.reserved {
		timeout = min(timeout, reserveHandshake)
	}
	// A drop closes c, which ends the handshake too.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err = tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	defer func() {
		// close_notify must not wait on a peer that stopped reading.
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		tc.Close()
	}()
	peerID = PeerID(tc.ConnectionState())
	if a.isTrusted(peerID) {
		c.trusted.Store(true)
	} else if c.reserved && !a.promote(c) {
		return peerID, nil, fmt.Errorf("%w: over the connection limit, and not a trusted peer", ErrHandshake)
	}
	pol, reason := a.policy(peerID)
	if reason != "" {
		tr, err := a.inbox.refuse(tc, proto.Answer{Code: proto.CodeDenied, Reason: reason}, c.start)
		return peerID, tr, err
	}
	pol.Done, pol.Accepted = c.done, c.start
	remote := addrKey(c.RemoteAddr())
	pol.Text = func() error { return a.texts.check(remote) }
	pol.Answered = func() {
		c.readAtAnswer.Store(c.read.Load())
		c.answered.Store(true)
	}
	var charge *strangerCharge
	if !c.trusted.Load() {
		pol.Consent = a.consent(c, peerID, &charge)
		// A stream's bytes are charged as they come.
		pol.StreamBytes = func(n uint64) error { return a.strangers.grow(charge, n) }
	}
	defer func() {
		// What did not cross goes back to the strangers' budget.
		var got uint64
		if c.answered.Load() {
			got = c.read.Load() - c.readAtAnswer.Load()
		}
		if err := a.strangers.settle(charge, got); err != nil && a.cfg.Logf != nil {
			a.cfg.Logf("%v", err)
		}
	}()
	if a.cfg.OnReceiving != nil {
		remote := c.RemoteAddr()
		pol.Watch = func(progress func() InProgress) {
			a.cfg.OnReceiving(Receiving{ID: c.id, Remote: remote, PeerID: peerID, Progress: progress})
		}
	}
	tr, err = a.inbox.ReceiveWith(tc, pol)
	return peerID, tr, err
}

// isTrusted reports whether peerID is trusted now.
func (a *Agent) isTrusted(peerID string) bool {
	known, err := LoadKnown(a.cfg.ConfigDir)
	return err == nil && known.IsTrusted(peerID)
}

// policy decides what peerID may do: a refusal reason, or the policy of
// its transfer.
func (a *Agent) policy(peerID string) (Policy, string) {
	// Read afresh, so `lanshare trust` takes effect without a restart.
	known, err := LoadKnown(a.cfg.ConfigDir)
	if err != nil {
		if a.cfg.Logf != nil {
			a.cfg.Logf("known peers unreadable, treating every sender as a stranger: %v", err)
		}
		if a.cfg.Accept == AcceptTrusted {
			return Policy{}, "the receiver cannot read its trusted peers"
		}
		known = &Known{}
	}
	entry, isKnown := known.ByID(peerID)
	trusted := isKnown && entry.Level == Trusted
	if a.cfg.Accept == AcceptTrusted && !trusted {
		return Policy{}, fmt.Sprintf("only trusted peers may send here; the receiver can allow you with: lanshare trust %s", GroupID(peerID))
	}
	pol := Policy{MaxSize: a.cfg.MaxSize, SenderID: peerID, SaveTexts: a.cfg.SaveTexts}
	if trusted {
		pol.MaxSize, pol.Exec = a.cfg.TrustedMaxSize, a.cfg.TrustedExec
	}
	if a.cfg.PerPeerFolders {
		pol.Folder = ShortID(peerID)
		// Only a name the user gave (trust) names a folder; a pinned name
		// is whatever the peer advertised.
		if trusted && entry.Name != "" {
			if named := folderName(entry.Name) + " (" + ShortID(peerID) + ")"; CheckName(named) == nil {
				pol.Folder = named
			}
		}
	}
	return pol, ""
}

// anonPolicy is the policy of a sender without a key (a LocalSend app
// without a certificate, a browser) from addr: a stranger's. With
// PerPeerFolders its files go in a folder of its own too, named after
// its address ("10.77.0.5 (no id)", which no peer's folder can be named):
// at the top of the shared folder, it could have put files in any peer's.
func (a *Agent) anonPolicy(addr netip.Addr) Policy {
	pol := Policy{MaxSize: a.cfg.MaxSize, SaveTexts: a.cfg.SaveTexts}
	if a.cfg.PerPeerFolders {
		pol.Folder = folderName(addr.String()) + " (no id)"
	}
	return pol
}

// folderName makes a trusted name fit to name a folder: characters that a
// path cannot hold or that CheckName refuses (separators, controls,
// invisible and Windows-reserved ones) become "_", and it is cut to leave
// room for the id. A name that still does not pass leaves the folder named
// by the id alone.
func folderName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r == '/' || r == '\\' || checkComponent(string(r)) != nil && r != '.' && r != ' ' {
			r = '_'
		}
		b.WriteRune(r)
	}
	out := strings.Trim(b.String(), ". ")
	// Room for the longest short id, a LocalSend one ("ls-3f2a-9c1b").
	const room = proto.MaxComponentLen - len(" ()") - len(LocalSendIDPrefix) - ShortIDLen
	for len(out) > room {
		_, size := utf8.DecodeLastRuneInString(out)
		out = out[:len(out)-size]
	}
	return out
}

// Close stops the agent at once: it closes the listener and every
// connection (aborted transfers leave nothing under a final name that is
// not complete) and waits for them, 2 s (abortWait) at most, then
// closes the shared folder if they all ended.
// It is safe to call more than once and concurrently with Serve.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.mu.Lock()
		a.closing = true
		a.mu.Unlock()
		a.ln.Close()
		if a.ctl != nil {
			a.ctl.close()
		}
		if a.disc != nil {
			a.disc.Close()
		}
		if a.lsdisc != nil {
			a.lsdisc.Close()
		}
		if a.ls != nil {
			a.ls.shutdown()
		}
		// Connections given up stop waiting on anything but the file
		// system at once, and the inbox is closed after them. One still
		// stuck abortWait after they were first given up (a file system
		// that hangs) keeps the inbox open for it: Close returns anyway.
		dropped := a.closeConns()
		if a.ls != nil {
			a.ls.close()
		}
		if a.waitConns(dropped.Add(abortWait)) {
			a.closeErr = a.inbox.Close()
			// A connection still stuck in the file system keeps the config
			// directory locked too, until the process ends.
			a.lock.release()
		}
	})
	return a.closeErr
}

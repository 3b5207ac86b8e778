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
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto"
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

	SpaceMargin      uint64        // free space every offer must leave
	HandshakeTimeout time.Duration // connection to complete offer
	IdleTimeout      time.Duration // drop a connection idle this long
	ShutdownGrace    time.Duration // in-flight transfers may finish within this on stop
	MaxConns         int           // concurrent connections in total
	MaxConnsPerHost  int           // concurrent connections per remote address
	// PartialMaxAge is how long the partial file of an interrupted
	// transfer is kept for a resume after it was last written.
	PartialMaxAge time.Duration

	// Accept is who may send: AcceptEveryone (a drop box) or AcceptTrusted
	// (only peers in the known-peers file as trusted).
	Accept string
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

	// Discover makes the agent advertise itself over mDNS and keep a live
	// table of its peers (Peers). Without it the agent is reachable only by
	// address.
	Discover bool
	// Ifaces restricts discovery to these interfaces; empty means every
	// up, multicast-capable one.
	Ifaces []string
	// DiscoveryTTL is the TTL of our mDNS records: how long a peer keeps
	// us after we vanish without a goodbye. Zero means discovery.DefaultTTL.
	DiscoveryTTL time.Duration

	// OnTransfer, if set, is called once per connection when its transfer
	// ends, from that connection's goroutine; calls may be concurrent.
	OnTransfer func(Incoming)
	// OnReceiving, if set, is called when a transfer's files start to
	// arrive, from that connection's goroutine; it must return quickly.
	// The transfer's OnTransfer call has the same ID.
	OnReceiving func(Receiving)
	// OnPeer, if set, is called for every change in the peer table, one
	// call at a time, from a goroutine that Serve owns.
	OnPeer func(discovery.Event)
	// Logf, if set, receives rare diagnostic lines (rate-limited).
	Logf func(format string, args ...any)
}

// Accept policies.
const (
	AcceptEveryone = "everyone"
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
		PartialMaxAge:    DefaultPartialMaxAge,
		Accept:           AcceptEveryone,
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
	case c.Accept != AcceptEveryone && c.Accept != AcceptTrusted:
		return fmt.Errorf("accept policy %q: want %q or %q", c.Accept, AcceptEveryone, AcceptTrusted)
	}
	return nil
}

// ProtocolVersion is the version agents advertise in discovery: "major.minor".
var ProtocolVersion = fmt.Sprintf("%d.%d", proto.Major, proto.Minor)

// Agent receives transfers on a TCP listener into an Inbox, and, with
// Config.Discover, announces itself and watches for peers.
type Agent struct {
	cfg   Config
	id    *Identity
	tls   *tls.Config
	inbox *Inbox
	ln    net.Listener
	disc  *discovery.Service // nil without Config.Discover
	ctl   *control           // nil when the control socket could not be made
	since time.Time
	// peers replaces disc.Peers for trustedAddr (tests).
	peers func() []discovery.Peer

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	perHost map[string]int
	closing bool

	seq       atomic.Uint64  // connection IDs
	wg        sync.WaitGroup // connection goroutines
	closeOnce sync.Once
	closeErr  error
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
	id, err := LoadIdentity(cfg.ConfigDir)
	if err != nil {
		return nil, err
	}
	inbox, err := OpenInbox(InboxConfig{
		Dir: cfg.Dir, Name: cfg.Name, SpaceMargin: cfg.SpaceMargin,
		HandshakeTimeout: cfg.HandshakeTimeout, IdleTimeout: cfg.IdleTimeout,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		inbox.Close()
		return nil, fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	if cfg.Accept == AcceptTrusted {
		// Fail at start on an unreadable file, not on the first sender.
		if _, err := LoadKnown(cfg.ConfigDir); err != nil {
			ln.Close()
			inbox.Close()
			return nil, err
		}
	}
	ctl, err := listenControl(cfg.ConfigDir)
	if errors.Is(err, ErrAgentRunning) {
		ln.Close()
		inbox.Close()
		return nil, err
	}
	if err != nil && cfg.Logf != nil {
		// `lanshare status` will not find this agent; it still works.
		cfg.Logf("no control socket: %v", err)
	}

	a := &Agent{cfg: cfg, id: id, tls: id.ServerTLS(), inbox: inbox, ln: ln, ctl: ctl, since: time.Now(),
		conns: map[net.Conn]struct{}{}, perHost: map[string]int{}}
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
			return nil, fmt.Errorf("discovery: %w", err)
		}
	}
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
	st := Status{Name: a.cfg.Name, Instance: a.Instance(), ID: a.ID(), Listen: a.Addr().String(), Dir: a.cfg.Dir,
		Accept: a.cfg.Accept, Version: ProtocolVersion, Since: a.since, Addrs: []netip.AddrPort{}, Peers: peers}
	if a.disc != nil {
		st.Addrs = a.disc.Addrs()
	}
	a.mu.Lock()
	st.Transfers = len(a.conns)
	a.mu.Unlock()
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
// returns nil.
func (a *Agent) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { a.ln.Close() })
	defer stop()
	stopDiscovery := a.startDiscovery(ctx)
	if a.ctl != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.ctl.serve(a.Status)
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
		ok, reserved := a.admit(c)
		if !ok {
			c.Close()
			continue
		}
		go a.handle(c, reserved)
	}
	if stopDiscovery != nil {
		stopDiscovery()
		stopDiscovery = nil
	}
	a.drain()
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
	return func() {
		cancel()
		unsubscribe()
		wg.Wait()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) && a.cfg.Logf != nil {
			a.cfg.Logf("discovery stopped: %v", err)
		}
	}
}

// drain waits for transfers in flight, up to ShutdownGrace, then closes
// their connections and waits for their goroutines.
func (a *Agent) drain() {
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(a.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	a.closeConns()
	<-done
}

func (a *Agent) closeConns() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closing = true
	for c := range a.conns {
		c.Close()
	}
}

func hostOf(addr net.Addr) string {
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}

// admit registers c unless a connection limit is reached.
// When MaxConns connections are open, up to trustedReserve more are let in
// from addresses where discovery sees a trusted peer, so that strangers
// flooding from many addresses cannot lock a trusted peer out. Since
// discovery records are unauthenticated, such a reserved connection must
// then prove a trusted key in its handshake (reserveHandshake), or it is
// dropped.
func (a *Agent) admit(c net.Conn) (ok, reserved bool) {
	host := hostOf(c.RemoteAddr())
	a.mu.Lock()
	full := len(a.conns) >= a.cfg.MaxConns
	a.mu.Unlock()
	useReserve := full && a.trustedAddr(host)
	a.mu.Lock()
	defer a.mu.Unlock()
	limit := a.cfg.MaxConns
	if useReserve {
		limit += trustedReserve
	}
	if a.closing || len(a.conns) >= limit || a.perHost[host] >= a.cfg.MaxConnsPerHost {
		return false, false
	}
	a.conns[c] = struct{}{}
	a.perHost[host]++
	a.wg.Add(1) // under mu, so never after Close has seen closing
	return true, len(a.conns) > a.cfg.MaxConns
}

// reserveHandshake bounds the TLS handshake of a connection let in through
// the trusted reserve: a real peer completes it in milliseconds.
const reserveHandshake = 2 * time.Second

// trustedReserve is how many connections beyond MaxConns trusted peers'
// addresses may open.
const trustedReserve = 8

// trustedAddr reports whether a peer that discovery sees at host is
// trusted. It reads the known-peers file, so it runs only when the agent
// is full.
func (a *Agent) trustedAddr(host string) bool {
	peers := a.peers
	if peers == nil {
		if a.disc == nil {
			return false
		}
		peers = a.disc.Peers
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap().WithZone("")
	known, err := LoadKnown(a.cfg.ConfigDir)
	if err != nil {
		return false
	}
	for _, p := range peers() {
		if !known.IsTrusted(p.ID) {
			continue
		}
		for _, ap := range p.Addrs {
			if ap.Addr().Unmap().WithZone("") == ip {
				return true
			}
		}
	}
	return false
}

func (a *Agent) handle(c net.Conn, reserved bool) {
	defer a.wg.Done()
	start := time.Now()
	id := a.seq.Add(1)
	peerID, tr, err := a.receive(c, reserved, id)
	c.Close()
	host := hostOf(c.RemoteAddr())
	a.mu.Lock()
	delete(a.conns, c)
	if a.perHost[host]--; a.perHost[host] <= 0 {
		delete(a.perHost, host)
	}
	a.mu.Unlock()
	if a.cfg.OnTransfer != nil {
		a.cfg.OnTransfer(Incoming{ID: id, Remote: c.RemoteAddr(), PeerID: peerID, Transfer: tr, Err: err, Start: start, End: time.Now()})
	}
}

// receive runs one connection: the TLS handshake within HandshakeTimeout,
// the accept policy, then the transfer.
func (a *Agent) receive(c net.Conn, reserved bool, id uint64) (peerID string, tr *Transfer, err error) {
	tc := tls.Server(c, a.tls)
	timeout := a.cfg.HandshakeTimeout
	if reserved {
		timeout = min(timeout, reserveHandshake)
	}
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
	if reserved && !a.isTrusted(peerID) {
		return peerID, nil, fmt.Errorf("%w: over the connection limit, and not a trusted peer", ErrHandshake)
	}
	pol, reason := a.policy(peerID)
	if reason != "" {
		tr, err := a.inbox.Refuse(tc, proto.Answer{Code: proto.CodeDenied, Reason: reason})
		return peerID, tr, err
	}
	if a.cfg.OnReceiving != nil {
		remote := c.RemoteAddr()
		pol.Watch = func(progress func() InProgress) {
			a.cfg.OnReceiving(Receiving{ID: id, Remote: remote, PeerID: peerID, Progress: progress})
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
	pol := Policy{MaxSize: a.cfg.MaxSize, SenderID: peerID}
	if trusted {
		pol.MaxSize, pol.Exec = a.cfg.TrustedMaxSize, a.cfg.TrustedExec
	}
	if a.cfg.PerPeerFolders {
		pol.Folder = ShortID(peerID)
		// Only a name the user gave (trust) names a folder; a pinned name
		// is whatever the peer advertised.
		if named := entry.Name + " (" + ShortID(peerID) + ")"; trusted && entry.Name != "" && CheckName(named) == nil {
			pol.Folder = named
		}
	}
	return pol, ""
}

// Close stops the agent at once: it closes the listener and every
// connection (aborted transfers leave nothing under a final name that is
// not complete) and waits for them.
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
		a.closeConns()
		a.wg.Wait()
		a.closeErr = a.inbox.Close()
	})
	return a.closeErr
}

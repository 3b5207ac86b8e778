package lsdouble

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults, as in the app.
const (
	DefaultPort      = 53317 // TCP (HTTP/HTTPS) and UDP (multicast) port
	MaxUploadAttempt = 3     // uploads of one file a receiver allows (422 resets it to pending before that)
)

// Multicast groups of LocalSend discovery.
var (
	GroupV4 = netip.MustParseAddr("224.0.0.167")
	GroupV6 = netip.MustParseAddr("ff12::fd3a:e420")
)

// ClientCertPolicy says what the receiver demands of a sender's TLS client
// certificate.
type ClientCertPolicy int

const (
	// ClientCertRequired is 2.2's rule (the zero value): no certificate, no
	// handshake. A presented certificate must be valid (dates, self-signature).
	ClientCertRequired ClientCertPolicy = iota
	// ClientCertOptional is the app while it serves web pages: a certificate
	// is asked for and checked when presented, but may be missing.
	ClientCertOptional
	// ClientCertNone asks for none (a 2.1 app).
	ClientCertNone
)

// AnswerMode says how a Device with Multicast answers foreign announcements.
type AnswerMode int

const (
	// AnswerRegister is 1.18 (the zero value): every datagram that parses,
	// whatever its announce flag, is answered with POST /register to the
	// source IP and announced port, the certificate pinned to the announced
	// fingerprint for https.
	AnswerRegister AnswerMode = iota
	// AnswerRegisterOrMulticast is 1.17: only announcements (announce or
	// announcement true) are answered, by /register and, if that fails, by a
	// multicast datagram with announce and announcement false.
	AnswerRegisterOrMulticast
	// AnswerMulticast answers announcements by multicast only (the UDP
	// answer of 1.17 without the /register first).
	AnswerMulticast
	// AnswerNone only records.
	AnswerNone
)

// Config describes a Device. The zero value works: an HTTPS receiver on
// 127.0.0.1 with a fresh identity that accepts everything and keeps no files.
type Config struct {
	Alias       string // default "lsdouble"
	DeviceModel string // "" sends no deviceModel (null)
	DeviceType  string // default "desktop"; "-" sends none
	Protocol    string // "https" (default) or "http"
	// Addr is the TCP listen address, default "127.0.0.1:0". Port 0 picks a
	// free port; the port announced and sent in "info" is the real one.
	Addr string
	// Dir receives uploaded files, keeping dir/sub/x.txt structure. Empty:
	// files are received, checked and counted, then discarded.
	Dir string
	// Certificate is the identity (a fresh RSA-2048 "LocalSend User" one
	// when nil). Its Leaf must be set or parseable.
	Certificate *tls.Certificate
	// Fingerprint replaces the random string a plain-HTTP device announces.
	Fingerprint string
	Download    bool             // the "download" flag sent in infos
	ClientCert  ClientCertPolicy // receiver side, https only
	Behaviour   Behaviour        // can be changed later with SetBehaviour

	// Multicast opens the discovery sockets: one per IPv4 address of each
	// up, multicast-capable interface (Interfaces, when set, names them),
	// and one per interface for IPv6 unless NoIPv6, all bound to
	// MulticastPort with SO_REUSEADDR and SO_REUSEPORT as the app does.
	Multicast     bool
	MulticastPort int // default 53317
	Interfaces    []string
	NoIPv6        bool
	Answer        AnswerMode
	// RegisterTimeout bounds each /register sent to answer an announcement
	// (the app uses 500 ms); default 2 s.
	RegisterTimeout time.Duration

	// DialContext, when set, makes every outgoing TCP connection (Send,
	// Register, answers to announcements). Use it to dial from inside a
	// network namespace.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxJSON caps JSON request bodies (default 64 MiB; the app has no cap).
	MaxJSON int64
	// Logf, when set, receives a line per notable event.
	Logf func(format string, args ...any)
}

// Behaviour holds the receiver's switches for tests. Change it at any time
// with Device.SetBehaviour.
type Behaviour struct {
	// PIN, when set, is demanded on prepare-upload: 401 "PIN required"
	// without ?pin=, 401 "Invalid PIN" for a wrong one, and 429 "Too many
	// requests" from the 4th try of an address that failed 3 times (a
	// right PIN clears the count). Checked before the body is read.
	PIN string
	// Decline answers every prepare-upload 403 "Rejected" (after PIN, body
	// and busy checks, as a person tapping decline).
	Decline bool
	// Busy answers every prepare-upload 409 "Blocked by another session"
	// as if another session were active.
	Busy bool
	// Accept, when set, decides each offer while prepare-upload blocks, as a
	// person would: block in it to test a sender that waits. ctx ends when
	// the sender goes away, cancels (POST /cancel), or the device closes;
	// Accept must return then. Nil accepts every file.
	Accept func(ctx context.Context, o Offer) Decision
	// ChecksumMismatches answers the next N upload attempts 422 "Checksum
	// mismatch" whatever their content (the file goes back to pending while
	// it has attempts left, as in the app).
	ChecksumMismatches int
	// SkipChecksum does not verify sha256 (the app's verify_checksums off).
	SkipChecksum bool
	// BeforeUpload, when set, runs after an upload's token was checked and
	// before its body is read; an error answers 500. Block in it (honouring
	// ctx) to hold uploads, e.g. to see several in flight at once.
	BeforeUpload func(ctx context.Context, u UploadStart) error
}

// Decision is the answer to an offer.
type Decision struct {
	Decline bool     // 403 "Rejected"
	Accept  []string // file ids to accept; nil means all, empty means none (204)
}

// Offer is a prepare-upload request waiting for a decision.
type Offer struct {
	SessionID         string
	From              netip.Addr
	ClientFingerprint string // "" without TLS or without a client certificate
	Info              PeerInfo
	Files             []OfferedFile
	Message           string // the text, when IsMessage
	IsMessage         bool   // one text/* entry with a preview
}

// UploadStart describes an upload about to be read.
type UploadStart struct {
	SessionID, FileID, FileName string
	Attempt                     int
	From                        netip.Addr
}

// Device is a LocalSend 2.2 device: a receiver serving the v2 API from New
// until Close, a sender (Send, Register), and, with Config.Multicast, a
// discovery participant (Announce and answers). It records everything it
// sees; read the records with Snapshot and Wait. All methods are safe for
// concurrent use.
type Device struct {
	cfg       Config
	cert      tls.Certificate
	fp        string
	protocol  string
	ln        net.Listener
	srv       *http.Server
	addr      netip.AddrPort
	ctx       context.Context // ends at Close
	cancel    context.CancelFunc
	mc        *multicast
	wg        sync.WaitGroup // handlers, answers, server loop
	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	closing  bool
	handlers sync.WaitGroup // running HTTP handlers; Add only under mu while !closing
	beh      Behaviour
	slot     *session // the single pending or active session
	pinFails map[netip.Addr]int
	rec      Snapshot
	sessions []*session
	inflight int
	changed  chan struct{} // closed and replaced at every record change
}

// New starts a Device: it makes or checks the identity, listens on
// cfg.Addr and serves, and opens the multicast sockets when asked. It
// returns once the device answers requests. Close stops it.
func New(cfg Config) (*Device, error) {
	if cfg.Alias == "" {
		cfg.Alias = "lsdouble"
	}
	switch cfg.DeviceType {
	case "":
		cfg.DeviceType = "desktop"
	case "-":
		cfg.DeviceType = ""
	}
	if cfg.Protocol == "" {
		cfg.Protocol = "https"
	}
	if cfg.Protocol != "https" && cfg.Protocol != "http" {
		return nil, fmt.Errorf("lsdouble: protocol %q: want https or http", cfg.Protocol)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.MulticastPort == 0 {
		cfg.MulticastPort = DefaultPort
	}
	if cfg.RegisterTimeout == 0 {
		cfg.RegisterTimeout = 2 * time.Second
	}
	if cfg.MaxJSON == 0 {
		cfg.MaxJSON = 64 << 20
	}
	d := &Device{cfg: cfg, protocol: cfg.Protocol, beh: cfg.Behaviour, pinFails: map[netip.Addr]int{}, changed: make(chan struct{})}
	d.rec.ChecksumMismatchesLeft = cfg.Behaviour.ChecksumMismatches
	if cfg.Certificate != nil {
		d.cert = *cfg.Certificate
		if d.cert.Leaf == nil {
			if len(d.cert.Certificate) == 0 {
				return nil, errors.New("lsdouble: Config.Certificate has no certificate")
			}
			leaf, err := x509.ParseCertificate(d.cert.Certificate[0])
			if err != nil {
				return nil, fmt.Errorf("lsdouble: Config.Certificate: %w", err)
			}
			d.cert.Leaf = leaf
		}
	} else {
		c, err := NewIdentity(OfficialCN)
		if err != nil {
			return nil, err
		}
		d.cert = c
	}
	switch {
	case cfg.Protocol == "http" && cfg.Fingerprint != "":
		d.fp = cfg.Fingerprint
	case cfg.Protocol == "http":
		d.fp = uuid() // a random string, as the app announces without TLS
	default:
		d.fp = Fingerprint(d.cert.Certificate[0])
	}

	lc := net.ListenConfig{}
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("lsdouble: listening: %w", err)
	}
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("lsdouble: listener address: %w", err)
	}
	d.addr = ap
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.srv = &http.Server{
		Handler:           http.HandlerFunc(d.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(errorLogWriter{d}, "", 0),
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only, as the app
		BaseContext:       func(net.Listener) context.Context { return d.ctx },
	}
	if cfg.Protocol == "https" {
		ln = tls.NewListener(ln, d.serverTLS())
	}
	d.ln = ln
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		_ = d.srv.Serve(ln)
	}()
	if cfg.Multicast {
		mc, err := d.openMulticast()
		if err != nil {
			d.Close()
			return nil, err
		}
		d.mc = mc
	}
	return d, nil
}

// Start is New for tests: it fails t on error and closes the device in
// t.Cleanup.
func Start(t testing.TB, cfg Config) *Device {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("lsdouble: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// Close stops serving, closes every socket, ends pending decisions (their
// ctx is cancelled) and waits for the device's goroutines. Safe to call
// twice.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closing = true
		d.mu.Unlock()
		d.cancel()
		d.closeErr = d.srv.Close()
		d.handlers.Wait()
		if d.mc != nil {
			d.mc.close()
		}
		d.wg.Wait()
	})
	return d.closeErr
}

func (d *Device) serverTLS() *tls.Config {
	c := &tls.Config{
		Certificates: []tls.Certificate{d.cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
	switch d.cfg.ClientCert {
	case ClientCertRequired:
		c.ClientAuth = tls.RequireAnyClientCert
	case ClientCertOptional:
		c.ClientAuth = tls.RequestClientCert
	default:
		c.ClientAuth = tls.NoClientCert
	}
	if c.ClientAuth != tls.NoClientCert {
		// rustls (WebPkiClientVerifier with the device's own certificate as
		// the only root) names the device's own subject as the acceptable
		// issuer: a client that picks its certificate by issuer (Go's
		// tls.Config.Certificates) then sends none unless its issuer happens
		// to match byte for byte.
		pool := x509.NewCertPool()
		pool.AddCert(d.cert.Leaf)
		c.ClientCAs = pool
		check := verifyPeer("", nil)
		c.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil // only reached when a certificate is optional
			}
			return check(raw, chains)
		}
	}
	return c
}

// Fingerprint returns the device's fingerprint: its certificate's for
// https, a random string for http.
func (d *Device) Fingerprint() string { return d.fp }

// Certificate returns the device's identity.
func (d *Device) Certificate() tls.Certificate { return d.cert }

// Addr returns the TCP address the device serves on.
func (d *Device) Addr() netip.AddrPort { return d.addr }

// Protocol returns "https" or "http".
func (d *Device) Protocol() string { return d.protocol }

// Target returns how another device reaches this one: its address
// (loopback for a wildcard listener), protocol and fingerprint (empty for
// http, whose fingerprint proves nothing).
func (d *Device) Target() Target {
	a := d.addr.Addr()
	if a.IsUnspecified() {
		if a.Is4() {
			a = netip.MustParseAddr("127.0.0.1")
		} else {
			a = netip.IPv6Loopback()
		}
	}
	t := Target{Addr: netip.AddrPortFrom(a, d.addr.Port()), Protocol: d.protocol}
	if d.protocol == "https" {
		t.Fingerprint = d.fp
	}
	return t
}

// Info returns what the device sends about itself (in /register bodies,
// prepare-upload and announcements).
func (d *Device) Info() PeerInfo {
	p := PeerInfo{Alias: d.cfg.Alias, Version: Version, DeviceType: d.cfg.DeviceType, Fingerprint: d.fp,
		Port: int(d.addr.Port()), Protocol: d.protocol, Download: d.cfg.Download}
	if d.cfg.DeviceModel != "" {
		m := d.cfg.DeviceModel
		p.DeviceModel = &m
	}
	return p
}

// SetBehaviour replaces the receiver's switches (and resets the count of
// forced checksum mismatches to b.ChecksumMismatches). A decision already
// pending keeps the Accept it started with.
func (d *Device) SetBehaviour(b Behaviour) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.beh = b
	d.rec.ChecksumMismatchesLeft = b.ChecksumMismatches
}

// ResetPINAttempts forgets failed PIN attempts (the app forgets them on
// restart).
func (d *Device) ResetPINAttempts() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.pinFails)
}

func (d *Device) logf(format string, args ...any) {
	if d.cfg.Logf != nil {
		d.cfg.Logf(format, args...)
	}
}

// notifyLocked wakes Wait callers; d.mu must be held.
func (d *Device) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// errorLogWriter records the http.Server's error lines (TLS handshake
// failures among them).
type errorLogWriter struct{ d *Device }

func (w errorLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(bytes.ToValidUTF8(p, nil)))
	if len(line) > 500 {
		line = line[:500]
	}
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	if strings.Contains(line, "TLS handshake error") {
		appendCapped(&w.d.rec.TLSErrors, line, &w.d.rec.Dropped)
	} else {
		appendCapped(&w.d.rec.ServerErrors, line, &w.d.rec.Dropped)
	}
	w.d.notifyLocked()
	return len(p), nil
}

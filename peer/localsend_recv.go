package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// The LocalSend side of the agent: an HTTPS server speaking LocalSend's
// protocol 2.2 (see /work/shared/LOCALSEND.md and PROTOCOL.md's LocalSend
// section), so that LocalSend apps can send to the agent. It is a thin
// adapter: identity and policy are the agent's (a LocalSend device is
// known by the fingerprint of the client certificate it presents, as
// LocalSendID), and files go through a Batch of the same inbox, with every
// guarantee the lanshare protocol has.
//
// What a stranger can reach here is bounded as on the lanshare port, and
// counted with it: every connection takes one of the agent's slots
// (admit), headers and JSON bodies are capped, offers hold their share of
// the memory budget, every read has a deadline.

// Limits of the LocalSend server.
const (
	// lsMaxSessions is how many upload sessions may be open at once.
	lsMaxSessions = 8
	// lsMaxPrepare caps a prepare-upload body: the apps send about 370
	// bytes a file, so 10,000 files take ~4 MB.
	lsMaxPrepare = 16 << 20
	// lsMaxFiles caps the files of one session.
	lsMaxFiles = 100_000
	// lsMaxSmallBody caps the other JSON bodies (register).
	lsMaxSmallBody = 16 << 10
	// lsPINTries is how many wrong PINs one address (an IPv6 one by its
	// /64) may try (LocalSend's rule); after that it gets 429 until the
	// agent restarts.
	lsPINTries = 3
	// lsMaxPINAddrs bounds the addresses whose wrong PINs are counted;
	// once it is full, a new address may not try a PIN (see pinTry).
	lsMaxPINAddrs = 4096
	// lsIdleSession ends a session in which no file was saved, and no
	// upload moved the minimum rate's bytes (Config.MinRate), for this
	// long (LocalSend apps upload right after the answer).
	lsIdleSession = 2 * time.Minute
)

// lsServer serves LocalSend's HTTPS API on one listener.
type lsServer struct {
	a     *Agent
	ln    net.Listener
	srv   *http.Server
	ident *LocalSendIdentity
	port  int

	// idleSession is lsIdleSession, shorter in tests.
	idleSession time.Duration

	mu       sync.Mutex
	sessions map[string]*lsSession
	// preparing holds the addresses whose prepare-upload makeRoom let
	// in, until their session is registered or refused: each counts
	// against the caps as a session does.
	preparing map[netip.Addr]struct{}
	pinFails  map[netip.Addr]int
	closed    bool
	wg        sync.WaitGroup // the session sweeper
	handlers  sync.WaitGroup // requests being handled
	stop      chan struct{}
	web       *webGate // the drop page (web.go), with Config.Web
	// plain serves the drop page and share links alone over plain HTTP
	// on plainLn, with Config.WebInsecureHTTP (web_http.go).
	plain   *http.Server
	plainLn net.Listener
	// closeOnce makes a second close wait for the first.
	closeOnce sync.Once
}

// lsSession is one prepare-upload's accepted files, until they are all
// uploaded, cancelled, or the session goes idle.
type lsSession struct {
	id       string
	remote   netip.Addr
	senderID string // LocalSendID of the client certificate, "" without one
	from     string // the alias it gave (not authenticated)
	start    time.Time
	batch    *Batch
	files    map[string]lsOffered // by LocalSend file id
	done     chan struct{}        // the session's Policy.Done
	charge   int64                // memory budget held
	settle   func(got uint64)     // gives back what a stranger's budget did not use
	got      uint64               // bytes received
	uploads  int                  // uploads running
	last     time.Time
	ended    bool
	endErr   error  // the session is to end when its last upload does
	conn     uint64 // the agent's connection id of the prepare-upload
	remoteNA net.Addr
	web      bool // opened by the drop page (web.go), not a LocalSend app
}

type lsOffered struct {
	index int
	token string
	sum   []byte
}

// lsConnKey carries the request's *agentConn in its context.
type lsConnKey struct{}

// newLocalSendServer listens on addr for LocalSend's API.
func newLocalSendServer(a *Agent, addr string, ident *LocalSendIdentity) (*lsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for LocalSend on %s: %w", addr, err)
	}
	s := &lsServer{a: a, ln: ln, ident: ident, sessions: map[string]*lsSession{}, preparing: map[netip.Addr]struct{}{}, pinFails: map[netip.Addr]int{}, stop: make(chan struct{}),
		idleSession: lsIdleSession}
	s.port = ln.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+localsend.PathInfo, s.info)
	mux.HandleFunc("GET "+localsend.PathInfoV1, s.info)
	mux.HandleFunc("POST "+localsend.PathRegister, s.register)
	mux.HandleFunc("POST "+localsend.PathPrepareUpload, s.prepareUpload)
	mux.HandleFunc("POST "+localsend.PathUpload, s.upload)
	mux.HandleFunc("POST "+localsend.PathCancel, s.cancel)
	var webOnly *http.ServeMux
	if a.cfg.Web && a.cfg.WebInsecureHTTP != "" {
		webOnly = http.NewServeMux()
	}
	s.mountWeb(mux, webOnly) // the drop page (web.go), with Config.Web
	s.srv = s.httpServer(mux)
	s.srv.TLSConfig = &tls.Config{
		Certificates: []tls.Certificate{ident.Cert},
		// A 2.2 app presents its certificate; an older one (or a
		// browser) none, and is a stranger.
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS12,
	}
	if webOnly != nil {
		if err := s.listenPlain(webOnly); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return s, nil
}

// httpServer is the HTTP server of LocalSend's API, or of the drop page
// alone over plain HTTP, with h its routes.
func (s *lsServer) httpServer(h http.Handler) *http.Server {
	a := s.a
	return &http.Server{
		// Every handler is counted, so that close waits for them.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !s.track(&s.handlers) {
				writeError(w, http.StatusServiceUnavailable, "the agent is stopping")
				return
			}
			defer s.handlers.Done()
			h.ServeHTTP(w, r)
		}),
		// A request and its answer have the handshake's time, as on the
		// lanshare port; an upload's body has the idle deadline per
		// read instead, and an offer that waits for the owner has its
		// wait (see prepareUpload and upload).
		ReadHeaderTimeout: a.cfg.HandshakeTimeout,
		ReadTimeout:       a.cfg.HandshakeTimeout,
		WriteTimeout:      a.cfg.HandshakeTimeout,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			if ac, ok := c.(*agentConn); ok {
				return context.WithValue(ctx, lsConnKey{}, ac)
			}
			return ctx
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st != http.StateClosed && st != http.StateHijacked {
				return
			}
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			if ac, ok := c.(*agentConn); ok {
				a.releaseConn(ac)
			}
		},
		// A stranger's bad handshakes must not reach the log.
		ErrorLog: log.New(io.Discard, "", 0),
	}
}

// track adds one to wg unless close has begun, and says which. A
// WaitGroup must not grow from zero while close waits on it: the Add
// happens under mu, before close marks the server closed, or not at all.
func (s *lsServer) track(wg *sync.WaitGroup) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	wg.Add(1)
	return true
}

// serve serves until close. It blocks. It returns at once when close came
// first (the agent may stop before this goroutine ever ran).
func (s *lsServer) serve() {
	if !s.track(&s.wg) {
		return
	}
	go func() {
		defer s.wg.Done()
		s.sweep()
	}()
	if s.plain != nil && s.track(&s.wg) {
		go func() {
			defer s.wg.Done()
			s.servePlain()
		}()
	}
	err := s.srv.Serve(tls.NewListener(&admitListener{Listener: s.ln, a: s.a}, s.srv.TLSConfig))
	if err != nil && !errors.Is(err, http.ErrServerClosed) && s.a.cfg.Logf != nil {
		s.a.cfg.Logf("LocalSend server stopped: %v", err)
	}
}

// close stops the server, its connections and its sessions, and waits.
// Safe to call more than once, and concurrently: every call returns once
// the sessions are ended (Agent.Close and Serve's way out may call it at
// the same time, and Close then closes the inbox under them).
func (s *lsServer) close() {
	s.closeOnce.Do(s.closeNow)
}

func (s *lsServer) closeNow() {
	s.mu.Lock()
	s.closed = true
	close(s.stop)
	var open []*lsSession
	for _, ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	s.srv.Close()
	// The listeners are closed here too: only http.Server.Serve closes
	// them, and it never runs when serve came after close (an agent
	// stopped before its serve goroutine ran, or never served, or New
	// failed after it listened).
	s.ln.Close()
	if s.plain != nil {
		s.plain.Close()
		s.plainLn.Close()
	}
	// Closing the connections ends the handlers' reads; the agent drops
	// the connections too, which ends a wait for consent.
	s.handlers.Wait()
	for _, ss := range open {
		s.end(ss, errors.New("the agent stopped"))
	}
	s.wg.Wait()
}

// admitListener gives every connection one of the agent's slots, as the
// lanshare port does, or closes it.
type admitListener struct {
	net.Listener
	a *Agent
}

func (l *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ac := l.a.admit(c); ac != nil {
			if ac.reserved && !l.a.promote(ac) {
				// The reserve is for lanshare peers that prove a trusted
				// key; LocalSend's handshake cannot, before HTTP.
				ac.drop()
				l.a.releaseConn(ac)
				continue
			}
			return ac, nil
		}
		c.Close()
	}
}

// writeError answers with LocalSend's error body.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(localsend.Error{Message: msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ourInfo is what this agent says of itself to LocalSend devices.
func (s *lsServer) ourInfo() localsend.Info {
	return s.a.localSendInfo(s.port)
}

func (s *lsServer) info(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.ourInfo())
}

// clientID returns the LocalSendID of the certificate the client
// presented, or "".
func clientID(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	return LocalSendID(localsend.Fingerprint(r.TLS.PeerCertificates[0].Raw))
}

// pinTry reports whether remote may give a PIN: its address (an IPv6
// one by its /64, see limitKey) has given fewer than lsPINTries wrong
// ones, and, when it has given none, there is room to count its wrong
// ones. A full table refuses new addresses (fail closed): counting
// nothing for them had let any address beyond lsMaxPINAddrs try PINs
// without end. When it may and count is set (a PIN was given), the try
// is counted as wrong at once, under the lock that checked, so that PINs
// checked at once cannot outrun the limit; a right one is given back
// (pinRight).
func (s *lsServer) pinTry(remote netip.Addr, count bool) bool {
	key := limitKey(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	fails, counted := s.pinFails[key]
	if !counted && len(s.pinFails) >= lsMaxPINAddrs || fails >= lsPINTries {
		return false
	}
	if count {
		s.pinFails[key]++
	}
	return true
}

// pinRight gives back the try that pinTry counted for a right PIN.
func (s *lsServer) pinRight(remote netip.Addr) {
	key := limitKey(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pinFails[key] <= 1 {
		delete(s.pinFails, key)
	} else {
		s.pinFails[key]--
	}
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// register answers a device that found us, and notes it as a peer. A 2.2
// device's fingerprint is its certificate's; one whose JSON names another
// is ignored, as the app does.
func (s *lsServer) register(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, lsMaxSmallBody)
	info, err := localsend.DecodeInfo(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad register body")
		return
	}
	if id := clientID(r); id == "" || id == LocalSendID(info.Fingerprint) {
		s.a.noteLocalSendDevice(info, remoteAddr(r))
	}
	writeJSON(w, s.ourInfo())
}

// prepareUpload decides a session: identity, policy, PIN, consent, the
// inbox's plan; then answers with a token per accepted file.
func (s *lsServer) prepareUpload(w http.ResponseWriter, r *http.Request) {
	a := s.a
	ac, _ := r.Context().Value(lsConnKey{}).(*agentConn)
	remote := remoteAddr(r)
	senderID := clientID(r)
	trusted := senderID != "" && a.isTrusted(senderID)
	if ac != nil && trusted {
		ac.trusted.Store(true)
	}
	// The PIN before the body, as LocalSend does; the drop page's gate
	// asked for its own.
	web := r.Context().Value(webKey{}) != nil
	if pin := a.cfg.LocalSendPIN; pin != "" && !trusted && !web {
		got := r.URL.Query().Get("pin")
		if !s.pinTry(remote, got != "") {
			writeError(w, http.StatusTooManyRequests, "too many wrong PINs")
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(pin)) != 1 {
			writeError(w, http.StatusUnauthorized, "PIN required")
			return
		}
		if got != "" {
			s.pinRight(remote)
		}
	}
	var pol Policy
	reason := ""
	if senderID != "" {
		pol, reason = a.policy(senderID)
	} else if a.cfg.Accept == AcceptTrusted {
		reason = "only trusted peers may send here, and this device presented no certificate"
	} else {
		pol = a.anonPolicy(remote)
	}
	if reason != "" {
		writeError(w, http.StatusForbidden, reason)
		return
	}
	// One session per address at a time; a new one from the same device
	// replaces one it never uploaded to (the app tried again). The place
	// is held from here: given back unless the session is registered.
	if code, msg := s.makeRoom(remote, senderID); code != 0 {
		writeError(w, code, msg)
		return
	}
	registered := false
	defer func() {
		if !registered {
			s.mu.Lock()
			delete(s.preparing, remote)
			s.mu.Unlock()
		}
	}()
	ss := &lsSession{remote: remote, senderID: senderID, start: time.Now(), done: make(chan struct{}), files: map[string]lsOffered{}, web: web}
	if ac != nil {
		ss.conn, ss.remoteNA = ac.id, ac.RemoteAddr()
	}
	ok := false
	defer func() {
		if !ok {
			a.inbox.mem.release(ss.charge, ss.done)
		}
	}()
	if r.ContentLength > lsMaxPrepare {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("offer of %s is over this receiver's limit of %s", FormatBytes(uint64(r.ContentLength)), FormatBytes(lsMaxPrepare)))
		return
	}
	// The body's share of the memory budget before the body is read. The
	// wait ends when the agent gives the connection up (it stops, or
	// evicts it): the request's context would not end it, as the server
	// watches the connection only once the body is read.
	lim := prepareLimits(r.ContentLength)
	gone := r.Context().Done()
	if ac != nil {
		gone = ac.done
	}
	if err := a.inbox.mem.acquire(lim.Memory(), ss.done, gone, time.Now().Add(a.cfg.HandshakeTimeout)); err != nil {
		var re *RefusedError
		errors.As(err, &re)
		code := http.StatusConflict
		if re != nil && re.Code == proto.CodeTooLarge {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(w, code, err.Error())
		return
	}
	ss.charge = lim.Memory()
	req, err := localsend.DecodePrepareUpload(r.Body, lim)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad prepare-upload body: "+err.Error())
		return
	}
	// The body read to its end lets the server watch the connection, so
	// that a sender that hangs up while its offer waits for the owner
	// ends the wait (the request's context).
	if rest, _ := io.ReadAll(io.LimitReader(r.Body, 1<<10)); len(bytes.TrimSpace(rest)) > 0 {
		writeError(w, http.StatusBadRequest, "bad prepare-upload body: data after the JSON")
		return
	}
	// The certificate is what identifies the device: the fingerprint its
	// JSON names is not used (nor logged: a stranger could fill the log).
	ss.from = req.Info.Alias
	text, isText := textMessage(req)
	if isText {
		if code, msg := s.checkText(remote, text); code != 0 {
			writeError(w, code, msg)
			return
		}
	}
	ids, entries := lsEntries(req)
	if isText {
		// The policy, consent and budget apply as for files (OpenBatch).
		ids, entries = nil, []proto.Entry{textEntry(text, time.Now())}
	}
	var charge *strangerCharge
	if ac != nil && !trusted {
		pol.Consent = a.consent(ac, senderID, &charge)
	}
	pol.Done, pol.Accepted = ss.done, ss.start
	if a.cfg.OnReceiving != nil {
		pol.Watch = func(progress func() InProgress) {
			a.cfg.OnReceiving(Receiving{ID: ss.conn, Remote: ss.remoteNA, PeerID: senderID, Progress: progress})
		}
	}
	rc := http.NewResponseController(w)
	wait := func(d time.Duration) (<-chan struct{}, error) {
		// The app waits for a person to tap accept; so do we.
		// Both ways: the server watches the connection for a hang-up
		// while we wait, and a read deadline passing would count as one.
		until := time.Now().Add(d + consentSlack)
		if err := rc.SetWriteDeadline(until); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return nil, err
		}
		if err := rc.SetReadDeadline(until); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return nil, err
		}
		return r.Context().Done(), nil
	}
	b, err := a.inbox.OpenBatch(ss.from, entries, pol, wait)
	if err != nil {
		a.strangers.settle(charge, 0) //nolint:errcheck // nothing was taken
		var re *RefusedError
		if errors.As(err, &re) {
			code := http.StatusForbidden
			switch re.Code {
			case proto.CodeBusy, proto.CodeShuttingDown:
				code = http.StatusConflict
			case proto.CodeNoSpace, proto.CodeTooLarge, proto.CodeTooMany:
				code = http.StatusForbidden
			}
			writeError(w, code, re.Reason)
			a.reportLocalSend(ss, &Transfer{From: ss.from}, err)
			return
		}
		writeError(w, http.StatusInternalServerError, "could not prepare the upload")
		return
	}
	if isText {
		s.takeText(w, ss, b, text, charge)
		return
	}
	ss.batch = b
	ss.settle = func(got uint64) {
		if err := a.strangers.settle(charge, got); err != nil && a.cfg.Logf != nil {
			a.cfg.Logf("%v", err)
		}
	}
	reply := localsend.PrepareUploadReply{SessionID: randomToken(), Files: map[string]string{}}
	for _, i := range b.Accepted() {
		f := lsOffered{index: i, token: randomToken()}
		if sum := req.Files[ids[i]].SHA256; sum != "" {
			f.sum, _ = hex.DecodeString(sum)
		}
		ss.files[ids[i]] = f
		reply.Files[ids[i]] = f.token
	}
	ss.id, ss.last = reply.SessionID, time.Now()
	s.mu.Lock()
	delete(s.preparing, remote)
	registered = true
	if s.closed {
		s.mu.Unlock()
		writeError(w, http.StatusConflict, "the receiver is stopping")
		s.end(ss, errors.New("the agent stopped"))
		ok = true
		return
	}
	s.sessions[ss.id] = ss
	s.mu.Unlock()
	ok = true
	if len(reply.Files) == 0 {
		// Everything was refused by name: the session is over already.
		s.end(ss, nil)
	}
	writeJSON(w, reply)
}

// prepareLimits are the caps of a prepare-upload body of n bytes (-1:
// unknown, a chunked body): its own length when it says it, and at most
// lsMaxPrepare bytes and lsMaxFiles files; no file takes under 32 bytes.
func prepareLimits(n int64) localsend.Limits {
	lim := localsend.Limits{MaxBytes: lsMaxPrepare, MaxFiles: lsMaxFiles}
	if n >= 0 && n < lim.MaxBytes {
		lim.MaxBytes = max(n, 1)
	}
	lim.MaxFiles = int(min(int64(lim.MaxFiles), lim.MaxBytes/32+1))
	return lim
}

// makeRoom checks that a new session from remote may start, and holds
// its place (preparing) under the same lock, so that prepare-uploads
// checked at once cannot all pass: 0, or the status to answer with. The
// caller gives the place back, or registers the session, under s.mu.
func (s *lsServer) makeRoom(remote netip.Addr, senderID string) (int, string) {
	s.mu.Lock()
	if _, busy := s.preparing[remote]; busy {
		s.mu.Unlock()
		return http.StatusConflict, "a session from this address is in progress"
	}
	var replace *lsSession
	for _, ss := range s.sessions {
		if ss.remote != remote {
			continue
		}
		if senderID != "" && ss.senderID == senderID && ss.uploads == 0 && ss.got == 0 {
			// The same device (its certificate says so) starting
			// again before it uploaded anything: it gave up on the
			// old session. Devices without a certificate cannot be
			// told apart, and wait their turn.
			replace = ss
			continue
		}
		s.mu.Unlock()
		return http.StatusConflict, "a session from this address is in progress"
	}
	if replace == nil && len(s.sessions)+len(s.preparing) >= lsMaxSessions {
		s.mu.Unlock()
		return http.StatusConflict, "the receiver is busy with other senders; try again later"
	}
	s.preparing[remote] = struct{}{}
	s.mu.Unlock()
	if replace != nil {
		s.end(replace, errors.New("the sender started again"))
	}
	return 0, ""
}

// textMessage returns the text of a LocalSend text message: one text
// entry (a text/* type, or the v1 name "text", as the app reads it)
// whose preview is the text.
func textMessage(req localsend.PrepareUpload) (string, bool) {
	if len(req.Files) != 1 {
		return "", false
	}
	for _, f := range req.Files {
		mt, _, _ := mime.ParseMediaType(f.FileType)
		if (strings.HasPrefix(mt, "text/") || f.FileType == "text") && f.Preview != "" {
			return f.Preview, true
		}
	}
	return "", false
}

// lsEntries turns a prepare-upload's files into inbox entries, ordered by
// name so that the plan does not depend on map order; ids maps each entry
// back to its LocalSend file id.
func lsEntries(req localsend.PrepareUpload) (ids []string, entries []proto.Entry) {
	for id := range req.Files {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return strings.Compare(req.Files[a].FileName, req.Files[b].FileName) })
	for _, id := range ids {
		f := req.Files[id]
		e := proto.Entry{Path: f.FileName, Kind: proto.KindFile, Size: uint64(f.Size), Mode: 0o644}
		if t, ok := f.Metadata.ModifiedTime(); ok {
			e.MTime = t
		}
		entries = append(entries, e)
	}
	return ids, entries
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// upload receives one file's bytes.
func (s *lsServer) upload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sid, fid, token := q.Get("sessionId"), q.Get("fileId"), q.Get("token")
	if sid == "" || fid == "" || token == "" {
		refuseUpload(w, http.StatusBadRequest, "missing parameters")
		return
	}
	s.mu.Lock()
	ss := s.sessions[sid]
	var f lsOffered
	okFile := false
	if ss != nil {
		f, okFile = ss.files[fid]
	}
	if ss == nil || !okFile || ss.remote != remoteAddr(r) || subtle.ConstantTimeCompare([]byte(f.token), []byte(token)) != 1 {
		s.mu.Unlock()
		refuseUpload(w, http.StatusForbidden, "invalid token or address")
		return
	}
	if ss.endErr != nil {
		// Ended (cancelled, idle) while another upload ran: that one's
		// end closes it.
		s.mu.Unlock()
		refuseUpload(w, http.StatusForbidden, "the session has ended")
		return
	}
	ss.uploads++
	s.mu.Unlock()
	if ac, ok := r.Context().Value(lsConnKey{}).(*agentConn); ok {
		// Its bytes flow: no eviction for being unanswered.
		ac.answered.Store(true)
	}
	// The body is bound as a lanshare transfer is after the answer: a
	// trickle is cut within the rate window, and only bytes arriving at
	// the minimum rate keep the session from going idle (a session of
	// many files trickled one after the other ends when idle, as one
	// that sends nothing does).
	cfg := s.a.cfg
	body := &uploadBody{r: r.Body, rc: http.NewResponseController(w),
		lim: minRate{idle: cfg.IdleTimeout, window: cfg.RateWindow, min: cfg.MinRate}, active: func() { s.touch(ss) }}
	err := ss.batch.Receive(f.index, body, f.sum)
	// The answer gets its own time, however long the body took.
	_ = body.rc.SetWriteDeadline(time.Now().Add(s.a.cfg.HandshakeTimeout))
	s.mu.Lock()
	ss.uploads--
	ss.got += body.n
	if err == nil {
		ss.last = time.Now()
	}
	endErr := ss.endErr
	s.mu.Unlock()
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, ErrDigestMismatch):
		writeError(w, http.StatusUnprocessableEntity, "checksum mismatch")
	case errors.Is(err, ErrNotPending), errors.Is(err, ErrBatchClosed):
		writeError(w, http.StatusForbidden, "file not pending")
	case errors.Is(err, ErrSizeMismatch):
		writeError(w, http.StatusBadRequest, "size does not match")
	case errors.Is(err, ErrTooSlow):
		refuseUpload(w, http.StatusRequestTimeout, ErrTooSlow.Error())
	default:
		writeError(w, http.StatusInternalServerError, "could not save the file")
	}
	if endErr != nil || ss.batch.Finished() {
		s.end(ss, endErr)
	}
}

// refuseUpload answers an upload whose body is not taken, and closes the
// connection: the server would otherwise read the rest of the body (up to
// 256 KiB) before answering, which a trickle stretches to the handshake
// deadline.
func refuseUpload(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Connection", "close")
	writeError(w, code, msg)
}

// touch notes that ss is active now (see lsIdleSession).
func (s *lsServer) touch(ss *lsSession) {
	s.mu.Lock()
	ss.last = time.Now()
	s.mu.Unlock()
}

// uploadBody is an upload's request body under the bounds of a lanshare
// transfer's stream after the answer (pacedConn): every read ends within
// lim.idle, and a body that moves under lim.min bytes per lim.window of
// waiting fails with ErrTooSlow. It calls active whenever another lim.min
// bytes have arrived (every byte, without a minimum rate). It counts the
// bytes read in n.
type uploadBody struct {
	r      io.Reader
	rc     *http.ResponseController
	lim    minRate
	active func()
	p      pace
	n      uint64
	unseen uint64 // bytes since active was last called
}

func (b *uploadBody) Read(p []byte) (int, error) {
	n, err := b.p.do(b.lim, b.setDeadline, b.r.Read, p)
	b.n += uint64(n)
	b.unseen += uint64(n)
	if n > 0 && (b.lim.window <= 0 || b.unseen >= b.lim.min) {
		b.unseen = 0
		b.active()
	}
	return n, err
}

func (b *uploadBody) setDeadline(t time.Time) error {
	if err := b.rc.SetReadDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// cancel ends a session at the sender's request.
func (s *lsServer) cancel(w http.ResponseWriter, r *http.Request) {
	sid := r.URL.Query().Get("sessionId")
	remote := remoteAddr(r)
	s.mu.Lock()
	var found *lsSession
	for _, ss := range s.sessions {
		if ss.remote == remote && (sid == "" || ss.id == sid) {
			found = ss
			break
		}
	}
	s.mu.Unlock()
	if found != nil {
		s.end(found, errors.New("the sender cancelled"))
	}
	w.WriteHeader(http.StatusOK)
}

// end closes a session once: its batch (when no upload runs; the last
// upload ends it otherwise), its memory share, and reports it.
func (s *lsServer) end(ss *lsSession, err error) {
	s.mu.Lock()
	if ss.ended {
		s.mu.Unlock()
		return
	}
	if ss.uploads > 0 {
		// An upload still runs: the last one ends the session.
		if ss.endErr == nil {
			ss.endErr = err
			if err == nil {
				ss.endErr = errors.New("the session ended")
			}
		}
		s.mu.Unlock()
		return
	}
	ss.ended = true
	delete(s.sessions, ss.id)
	got := ss.got
	s.mu.Unlock()
	close(ss.done)
	var tr *Transfer
	if ss.batch != nil {
		tr = ss.batch.Close()
	}
	s.a.inbox.mem.release(ss.charge, ss.done)
	if ss.settle != nil {
		ss.settle(got)
	}
	if tr != nil {
		s.a.reportLocalSend(ss, tr, err)
	}
}

// sweep ends idle sessions until the server closes.
func (s *lsServer) sweep() {
	t := time.NewTicker(s.idleSession / 4)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		var idle []*lsSession
		s.mu.Lock()
		for _, ss := range s.sessions {
			// Running uploads too: one whose bytes arrive at the
			// minimum rate keeps last fresh; a trickle does not.
			if time.Since(ss.last) > s.idleSession {
				idle = append(idle, ss)
			}
		}
		s.mu.Unlock()
		for _, ss := range idle {
			s.end(ss, errors.New("the sender went quiet"))
		}
	}
}

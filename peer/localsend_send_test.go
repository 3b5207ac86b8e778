package peer

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// lsCerts caches test certificates by common name: RSA keys take a while.
var lsCerts sync.Map // cn → tls.Certificate

// lsTestCert is a self-signed RSA certificate with the given CN, made as
// LocalSendIdentity makes ours, but in memory.
func lsTestCert(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	if c, ok := lsCerts.Load(cn); ok {
		return c.(tls.Certificate)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	c, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	lsCerts.Store(cn, c)
	return c
}

// ourLSIdentity is the sender's identity in these tests.
func ourLSIdentity(t testing.TB) *LocalSendIdentity {
	c := lsTestCert(t, "LocalSend User")
	return &LocalSendIdentity{Cert: c, Fingerprint: localsend.Fingerprint(c.Certificate[0])}
}

// lsDevice is a minimal strict LocalSend 2.2 receiver for these tests: it
// requires a client certificate (naming only its own subject as
// acceptable issuer, as the app's rustls server does), checks the register
// fingerprint against it, keeps one session, checks tokens, sizes and
// sha256, and records what it sees.
type lsDevice struct {
	t     testing.TB
	srv   *httptest.Server
	fp    string // its certificate's fingerprint ("" over HTTP)
	alias string

	pin string // required PIN, if set

	// decide answers a prepare-upload: status 200 with the ids to accept,
	// or another status. nil accepts everything.
	decide func(n int, pu localsend.PrepareUpload) (int, []string)
	// onUpload, if set, runs before an upload is read; returning a status
	// answers with it without reading, returning -1 drops the connection.
	onUpload func(n int, f localsend.File, r *http.Request) int
	// refuseCert makes the TLS layer refuse every client certificate.
	refuseCert bool
	// dropPrepares drops the connection of that many first
	// prepare-uploads, before they are read.
	dropPrepares int

	mu        sync.Mutex
	clientFPs []string // fingerprints of the client certificates seen, per request
	registers []localsend.Info
	prepares  []*http.Request // query and all
	offers    []localsend.PrepareUpload
	uploads   map[string]int // fileName → attempts
	received  map[string]string
	cancels   []string // sessionId query of each cancel
	pinTries  int
	session   string
	files     map[string]localsend.File // accepted, by id
	tokens    map[string]string
	requests  int
}

func newLSDevice(t testing.TB, https bool, setup func(*lsDevice)) *lsDevice {
	t.Helper()
	d := &lsDevice{t: t, alias: "Pixel 9", uploads: map[string]int{}, received: map[string]string{}}
	if setup != nil {
		setup(d)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+localsend.PathRegister, d.register)
	mux.HandleFunc("POST "+localsend.PathPrepareUpload, d.prepare)
	mux.HandleFunc("POST "+localsend.PathUpload, d.upload)
	mux.HandleFunc("POST "+localsend.PathCancel, d.cancel)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.requests++
		if r.TLS != nil {
			if len(r.TLS.PeerCertificates) == 0 {
				d.mu.Unlock()
				t.Errorf("a request without a client certificate reached the handler")
				http.Error(w, "no certificate", http.StatusForbidden)
				return
			}
			d.clientFPs = append(d.clientFPs, localsend.Fingerprint(r.TLS.PeerCertificates[0].Raw))
		}
		drop := r.URL.Path == localsend.PathPrepareUpload && d.dropPrepares > 0
		if drop {
			d.dropPrepares--
		}
		d.mu.Unlock()
		if drop {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		mux.ServeHTTP(w, r)
	})
	d.srv = httptest.NewUnstartedServer(h)
	if https {
		cert := lsTestCert(t, "Pixel 9 test device")
		leaf, _ := x509.ParseCertificate(cert.Certificate[0])
		own := x509.NewCertPool()
		own.AddCert(leaf)
		d.srv.TLS = &tls.Config{
			Certificates: []tls.Certificate{cert},
			// A client certificate is required; it is checked as the app
			// does (self-signed, in date), not against a CA. ClientCAs
			// only names the acceptable issuers in the CertificateRequest:
			// the device's own subject, not ours.
			ClientAuth: tls.RequireAnyClientCert,
			ClientCAs:  own,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if d.refuseCert {
					return errors.New("not this certificate")
				}
				c, err := x509.ParseCertificate(raw[0])
				if err != nil {
					return err
				}
				if now := time.Now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
					return errors.New("client certificate out of date")
				}
				return c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
			},
		}
		d.fp = localsend.Fingerprint(cert.Certificate[0])
		d.srv.StartTLS()
	} else {
		d.srv.Start()
	}
	t.Cleanup(d.srv.Close)
	return d
}

func (d *lsDevice) target() LocalSendTarget {
	u := strings.TrimPrefix(strings.TrimPrefix(d.srv.URL, "https://"), "http://")
	proto := localsend.ProtocolHTTPS
	if strings.HasPrefix(d.srv.URL, "http://") {
		proto = localsend.ProtocolHTTP
	}
	return LocalSendTarget{Addr: netip.MustParseAddrPort(u), Protocol: proto, Fingerprint: d.fp, Alias: "phone"}
}

func lsError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = localsend.EncodeError(w, localsend.Error{Message: msg})
}

func (d *lsDevice) register(w http.ResponseWriter, r *http.Request) {
	info, err := localsend.DecodeInfo(r.Body)
	if err != nil {
		lsError(w, 400, "Invalid JSON body")
		return
	}
	d.mu.Lock()
	d.registers = append(d.registers, info)
	if r.TLS != nil && !localsend.SameFingerprint(info.Fingerprint, d.clientFPs[len(d.clientFPs)-1]) {
		d.t.Errorf("register claims fingerprint %s, the certificate has %s", info.Fingerprint, d.clientFPs[len(d.clientFPs)-1])
	}
	d.mu.Unlock()
	_ = localsend.EncodeInfo(w, localsend.Info{Alias: d.alias, Version: "2.2", DeviceModel: ptrTo("Google"),
		DeviceType: localsend.DeviceMobile, Fingerprint: cmp.Or(d.fp, "random string")})
}

func (d *lsDevice) prepare(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.prepares = append(d.prepares, r)
	n := len(d.prepares)
	if d.pin != "" {
		pin, ok := r.URL.Query()[localsend.QueryPIN]
		switch {
		case d.pinTries >= 3:
			d.mu.Unlock()
			lsError(w, 429, "Too many requests")
			return
		case !ok:
			d.mu.Unlock()
			lsError(w, 401, "PIN required")
			return
		case pin[0] != d.pin:
			d.pinTries++
			d.mu.Unlock()
			lsError(w, 401, "Invalid PIN")
			return
		}
	}
	busy := d.session != ""
	d.mu.Unlock()
	pu, err := localsend.DecodePrepareUpload(r.Body, localsend.Limits{})
	if err != nil {
		d.t.Errorf("prepare-upload body: %v", err)
		lsError(w, 400, "Invalid JSON body")
		return
	}
	if busy {
		lsError(w, 409, "Blocked by another session")
		return
	}
	status, ids := 200, []string(nil)
	if d.decide != nil {
		status, ids = d.decide(n, pu)
	} else {
		for id := range pu.Files {
			ids = append(ids, id)
		}
	}
	d.mu.Lock()
	d.offers = append(d.offers, pu)
	d.mu.Unlock()
	switch {
	case status == 403:
		lsError(w, 403, "Rejected")
		return
	case status != 200:
		lsError(w, status, "test")
		return
	case len(ids) == 0:
		w.WriteHeader(204)
		return
	}
	rep := localsend.PrepareUploadReply{SessionID: fmt.Sprintf("session-%d", n), Files: map[string]string{}}
	d.mu.Lock()
	d.session, d.files, d.tokens = rep.SessionID, map[string]localsend.File{}, map[string]string{}
	for _, id := range ids {
		tok := "token-" + id
		rep.Files[id] = tok
		d.files[id] = pu.Files[id]
		d.tokens[id] = tok
	}
	d.mu.Unlock()
	_ = localsend.EncodePrepareUploadReply(w, rep)
}

func (d *lsDevice) upload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get(localsend.QueryFileID)
	d.mu.Lock()
	f, ok := d.files[id]
	valid := ok && q.Get(localsend.QuerySessionID) == d.session && q.Get(localsend.QueryToken) == d.tokens[id]
	if valid {
		d.uploads[f.FileName]++
	}
	n := d.uploads[f.FileName]
	d.mu.Unlock()
	if !valid {
		lsError(w, 403, "Invalid token or IP address")
		return
	}
	if d.onUpload != nil {
		switch status := d.onUpload(n, f, r); {
		case status < 0:
			hj, _ := w.(http.Hijacker)
			conn, _, err := hj.Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case status > 0:
			lsError(w, status, "test")
			return
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, f.Size+1))
	if err != nil {
		lsError(w, 500, err.Error())
		return
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
		lsError(w, 422, "Checksum mismatch")
		return
	}
	d.mu.Lock()
	d.received[f.FileName] = string(b)
	d.mu.Unlock()
}

func (d *lsDevice) cancel(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cancels = append(d.cancels, r.URL.Query().Get(localsend.QuerySessionID))
	d.session = ""
}

func ptrTo[T any](v T) *T { return &v }

// lsOptions are send options for these tests: our identity, no retries
// unless asked, short pauses.
func lsOptions(t testing.TB) LocalSendOptions {
	return LocalSendOptions{
		SendOptions: SendOptions{Name: "alice", Retries: -1, retryBase: time.Millisecond},
		Identity:    ourLSIdentity(t),
	}
}

func TestSendLocalSendFilesAndFolders(t *testing.T) {
	big := randomBytes(t, lsLargeFile+123)
	dir := writeTree(t, map[string]string{
		"a.txt":             "hello",
		"photos/sub/x.jpg":  "jpeg bytes",
		"photos/big.bin":    big,
		"photos/empty/":     "",
		"photos/sub/zero.z": "",
	})
	items := collect(t, filepath.Join(dir, "a.txt"), filepath.Join(dir, "photos"))
	d := newLSDevice(t, true, nil)
	opt := lsOptions(t)
	var (
		registered LocalSendDevice
		waits      []Waiting
		last       Progress
	)
	opt.OnRegister = func(dev LocalSendDevice) error { registered = dev; return nil }
	opt.OnWait = func(w Waiting) { waits = append(waits, w) }
	opt.Progress = func(p Progress) { last = p }
	rep, err := SendLocalSend(context.Background(), d.target(), items, opt)

	// The empty folder cannot go: that is the only failure.
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "1 of 3 folders") {
		t.Fatalf("err = %v, want the empty folder reported", err)
	}
	want := map[string]string{"a.txt": "hello", "photos/sub/x.jpg": "jpeg bytes", "photos/big.bin": big, "photos/sub/zero.z": ""}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.received) != len(want) {
		t.Errorf("received %d files, want %d", len(d.received), len(want))
	}
	for name, content := range want {
		if got, ok := d.received[name]; !ok || got != content {
			t.Errorf("%s: received %d bytes (present %v), want %d", name, len(got), ok, len(content))
		}
	}
	for i, it := range rep.Items {
		res := rep.Results[i]
		wantStatus := proto.Saved
		if it.Entry.Path == "photos/empty" {
			wantStatus = proto.Refused
		}
		if res.Status != wantStatus {
			t.Errorf("%s: %+v, want status %v", it.Entry.Path, res, wantStatus)
		}
	}
	if rep.Peer != "Pixel 9" || registered.Info.Alias != "Pixel 9" || registered.Fingerprint != d.fp {
		t.Errorf("peer %q, registered %+v; want Pixel 9 with fingerprint %s", rep.Peer, registered, d.fp)
	}
	if len(waits) != 1 || waits[0].Peer != "Pixel 9" || !strings.Contains(waits[0].Reason, "waiting for Pixel 9 to accept") {
		t.Errorf("waits %+v", waits)
	}
	if last.Bytes != last.Total || last.Files != 4 || last.FilesTotal != 4 || rep.Sent != last.Total {
		t.Errorf("last progress %+v, sent %d", last, rep.Sent)
	}
	// Our certificate on every connection, our fingerprint in register.
	for _, fp := range d.clientFPs {
		if fp != opt.Identity.Fingerprint {
			t.Fatalf("client certificate %s, want ours %s", fp, opt.Identity.Fingerprint)
		}
	}
	if len(d.registers) != 1 || d.registers[0].Fingerprint != opt.Identity.Fingerprint || d.registers[0].Alias != "alice" ||
		d.registers[0].Version != "2.2" || d.registers[0].Protocol != "https" {
		t.Errorf("registers %+v", d.registers)
	}
	// The offer: relative paths, lower-case sha256, MIME type, size, time.
	if len(d.offers) != 1 {
		t.Fatalf("%d offers", len(d.offers))
	}
	byName := map[string]localsend.File{}
	for _, f := range d.offers[0].Files {
		byName[f.FileName] = f
	}
	for _, it := range items {
		if it.Entry.Kind != proto.KindFile {
			if _, ok := byName[it.Entry.Path]; ok {
				t.Errorf("folder %s offered as a file", it.Entry.Path)
			}
			continue
		}
		f := byName[it.Entry.Path]
		sum := sha256.Sum256([]byte(want[it.Entry.Path]))
		mt, ok := f.Metadata.ModifiedTime()
		if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(it.Entry.Size) || !ok || !mt.Equal(it.Entry.MTime) {
			t.Errorf("offer of %s: %+v", it.Entry.Path, f)
		}
	}
	if byName["a.txt"].FileType != "text/plain" || byName["photos/sub/x.jpg"].FileType != "image/jpeg" || byName["photos/big.bin"].FileType != "application/octet-stream" {
		t.Errorf("file types: %q %q %q", byName["a.txt"].FileType, byName["photos/sub/x.jpg"].FileType, byName["photos/big.bin"].FileType)
	}
	if len(d.cancels) != 0 {
		t.Errorf("a complete session was cancelled: %v", d.cancels)
	}
}

func TestSendLocalSendPlainHTTP(t *testing.T) {
	d := newLSDevice(t, false, nil)
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"n.txt": "note"}), "n.txt"))
	opt := lsOptions(t)
	var registered LocalSendDevice
	opt.OnRegister = func(dev LocalSendDevice) error { registered = dev; return nil }
	tgt := d.target()
	tgt.Fingerprint = "random string" // what an HTTP device announces: not checked
	rep, err := SendLocalSend(context.Background(), tgt, items, opt)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil || rep.Saved() != 1 || d.received["n.txt"] != "note" {
		t.Fatalf("%v, %+v, received %v", err, rep, d.received)
	}
	if registered.Fingerprint != "" {
		t.Errorf("an HTTP device got fingerprint %q", registered.Fingerprint)
	}
}

func TestSendLocalSendPINOnlyWhenAsked(t *testing.T) {
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"p.txt": "secret"}), "p.txt"))
	t.Run("asked, wrong, then right", func(t *testing.T) {
		d := newLSDevice(t, true, func(d *lsDevice) { d.pin = "1234" })
		opt := lsOptions(t)
		opt.Retries = 3 // a PIN round is not a retry
		var asks []PINRequest
		opt.PIN = func(_ context.Context, r PINRequest) (string, error) {
			asks = append(asks, r)
			if len(asks) == 1 {
				return "9999", nil
			}
			return "1234", nil
		}
		rep, err := SendLocalSend(context.Background(), d.target(), items, opt)
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil || d.received["p.txt"] != "secret" {
			t.Fatalf("%v, received %v", err, d.received)
		}
		if len(asks) != 2 || asks[0].Wrong || !asks[1].Wrong || asks[0].Peer != "Pixel 9" {
			t.Errorf("PIN asks %+v", asks)
		}
		if len(d.prepares) != 3 || d.prepares[0].URL.Query().Has(localsend.QueryPIN) {
			t.Errorf("prepare-upload queries: first %q of %d; want no PIN before the device asks", d.prepares[0].URL.RawQuery, len(d.prepares))
		}
		if rep.Retries != 0 {
			t.Errorf("PIN rounds counted as retries: %d", rep.Retries)
		}
	})
	t.Run("no PIN to give", func(t *testing.T) {
		d := newLSDevice(t, true, func(d *lsDevice) { d.pin = "1234" })
		opt := lsOptions(t)
		opt.Retries = 3
		_, err := SendLocalSend(context.Background(), d.target(), items, opt)
		d.mu.Lock()
		defer d.mu.Unlock()
		var re *RefusedError
		if !errors.Is(err, ErrPINRequired) || !errors.Is(err, ErrRefused) || !errors.As(err, &re) {
			t.Fatalf("err = %v, want ErrPINRequired and a refusal", err)
		}
		if len(d.prepares) != 1 || d.prepares[0].URL.Query().Has(localsend.QueryPIN) || len(d.uploads) != 0 {
			t.Errorf("%d prepare-uploads, %d uploads; want one, without a PIN", len(d.prepares), len(d.uploads))
		}
	})
	t.Run("always wrong stops at three", func(t *testing.T) {
		d := newLSDevice(t, true, func(d *lsDevice) { d.pin = "1234" })
		opt := lsOptions(t)
		asks := 0
		opt.PIN = func(context.Context, PINRequest) (string, error) { asks++; return "0000", nil }
		_, err := SendLocalSend(context.Background(), d.target(), items, opt)
		d.mu.Lock()
		defer d.mu.Unlock()
		if !errors.Is(err, ErrPINRequired) || asks != 3 || d.pinTries != 3 {
			t.Fatalf("err = %v after %d asks, %d wrong PINs at the device", err, asks, d.pinTries)
		}
	})
	t.Run("429", func(t *testing.T) {
		d := newLSDevice(t, true, func(d *lsDevice) { d.pin = "1234"; d.pinTries = 3 })
		opt := lsOptions(t)
		opt.Retries = 3
		_, err := SendLocalSend(context.Background(), d.target(), items, opt)
		d.mu.Lock()
		defer d.mu.Unlock()
		if !errors.Is(err, ErrPINAttempts) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "too many PIN attempts") {
			t.Fatalf("err = %v, want too many PIN attempts", err)
		}
		if len(d.prepares) != 1 {
			t.Errorf("%d prepare-uploads after a 429, want 1", len(d.prepares))
		}
	})
}

func TestSendLocalSendDeclinedIsARefusal(t *testing.T) {
	d := newLSDevice(t, true, func(d *lsDevice) {
		d.decide = func(int, localsend.PrepareUpload) (int, []string) { return 403, nil }
	})
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"d.txt": "no"}), "d.txt"))
	opt := lsOptions(t)
	opt.Retries = 3
	_, err := SendLocalSend(context.Background(), d.target(), items, opt)
	d.mu.Lock()
	defer d.mu.Unlock()
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeDenied || !errors.Is(err, ErrRefused) || re.Peer != "Pixel 9" || !strings.Contains(err.Error(), "declined") {
		t.Fatalf("err = %v (%+v), want Pixel 9's refusal with CodeDenied (send exits 3)", err, re)
	}
	if len(d.prepares) != 1 || len(d.uploads) != 0 {
		t.Errorf("%d prepare-uploads, %d uploads after a decline", len(d.prepares), len(d.uploads))
	}
}

func TestSendLocalSendNothingTaken(t *testing.T) {
	d := newLSDevice(t, true, func(d *lsDevice) {
		d.decide = func(int, localsend.PrepareUpload) (int, []string) { return 200, nil } // 204
	})
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"d.txt": "no"}), "d.txt"))
	rep, err := SendLocalSend(context.Background(), d.target(), items, lsOptions(t))
	d.mu.Lock()
	defer d.mu.Unlock()
	if !errors.Is(err, ErrRefused) || len(rep.Results) != 1 || rep.Results[0].Status != proto.Refused {
		t.Fatalf("204: %v, %+v", err, rep)
	}
}

func TestSendLocalSendBusy(t *testing.T) {
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"b.txt": "busy"}), "b.txt"))
	t.Run("stays busy", func(t *testing.T) {
		d := newLSDevice(t, true, func(d *lsDevice) { d.session = "someone else's" })
		opt := lsOptions(t)
		opt.Retries = 2
		retries := 0
		opt.OnRetry = func(Retry) { retries++ }
		_, err := SendLocalSend(context.Background(), d.target(), items, opt)
		d.mu.Lock()
		defer d.mu.Unlock()
		var re *RefusedError
		if !errors.As(err, &re) || re.Code != proto.CodeBusy || !strings.Contains(err.Error(), "gave up after 3 attempts") {
			t.Fatalf("err = %v, want busy (the same kind as a lanshare busy answer) after 3 attempts", err)
		}
		if len(d.prepares) != 3 || retries != 2 || len(d.uploads) != 0 {
			t.Errorf("%d prepare-uploads, %d retries, %d uploads", len(d.prepares), retries, len(d.uploads))
		}
	})
	t.Run("free on the next try", func(t *testing.T) {
		d := newLSDevice(t, true, func(d *lsDevice) {
			d.decide = func(n int, pu localsend.PrepareUpload) (int, []string) {
				if n == 1 {
					return 409, nil
				}
				return 200, []string{firstID(pu)}
			}
		})
		opt := lsOptions(t)
		opt.Retries = 2
		rep, err := SendLocalSend(context.Background(), d.target(), items, opt)
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil || rep.Retries != 1 || d.received["b.txt"] != "busy" {
			t.Fatalf("%v, %d retries, received %v", err, rep.Retries, d.received)
		}
	})
}

func firstID(pu localsend.PrepareUpload) string {
	for id := range pu.Files {
		return id
	}
	return ""
}

func TestSendLocalSendChecksumMismatchRetriesTheFile(t *testing.T) {
	d := newLSDevice(t, true, func(d *lsDevice) {
		d.onUpload = func(n int, f localsend.File, r *http.Request) int {
			if n == 1 {
				_, _ = io.Copy(io.Discard, r.Body)
				return 422
			}
			return 0
		}
	})
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"c.bin": "checksum"}), "c.bin"))
	opt := lsOptions(t)
	var last Progress
	opt.Progress = func(p Progress) { last = p }
	rep, err := SendLocalSend(context.Background(), d.target(), items, opt)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil || d.received["c.bin"] != "checksum" || d.uploads["c.bin"] != 2 {
		t.Fatalf("%v: received %v after %d uploads", err, d.received, d.uploads["c.bin"])
	}
	if rep.Sent != 16 || last.Bytes != 8 || len(d.prepares) != 1 {
		t.Errorf("sent %d (both attempts), progress %d (once), %d sessions", rep.Sent, last.Bytes, len(d.prepares))
	}
}

func TestSendLocalSendChecksumMismatchGivesUpAfterThree(t *testing.T) {
	d := newLSDevice(t, true, func(d *lsDevice) {
		d.onUpload = func(_ int, _ localsend.File, r *http.Request) int {
			_, _ = io.Copy(io.Discard, r.Body)
			return 422
		}
	})
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"c.bin": "checksum"}), "c.bin"))
	opt := lsOptions(t)
	opt.Retries = 5
	rep, err := SendLocalSend(context.Background(), d.target(), items, opt)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !errors.Is(err, ErrIncomplete) || d.uploads["c.bin"] != 3 || len(d.prepares) != 1 || rep.Results[0].Code != proto.CodeDigest {
		t.Fatalf("%v: %d uploads in %d sessions, result %+v", err, d.uploads["c.bin"], len(d.prepares), rep.Results)
	}
	if len(d.cancels) != 1 || d.cancels[0] != "session-1" {
		t.Errorf("cancels %v: the failed session must be freed", d.cancels)
	}
}

func TestSendLocalSendFingerprintMismatchRefusedBeforeAnyByte(t *testing.T) {
	d := newLSDevice(t, true, nil)
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"s.txt": "secret"}), "s.txt"))
	tgt := d.target()
	tgt.Fingerprint = strings.Repeat("AB", 32)
	opt := lsOptions(t)
	opt.Retries = 3
	_, err := SendLocalSend(context.Background(), tgt, items, opt)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !errors.Is(err, ErrKeyChanged) || !strings.Contains(err.Error(), "lanshare trust --replace "+ShortID(LocalSendID(d.fp))) {
		t.Fatalf("err = %v, want ErrKeyChanged (send exits 6) with the trust hint", err)
	}
	if d.requests != 0 {
		t.Errorf("%d requests reached a device with the wrong certificate", d.requests)
	}
}

func TestSendLocalSendTrustOnFirstUse(t *testing.T) {
	d := newLSDevice(t, true, nil)
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"s.txt": "tofu"}), "s.txt"))
	tgt := d.target()
	tgt.Fingerprint = ""
	opt := lsOptions(t)
	var seen string
	opt.OnRegister = func(dev LocalSendDevice) error { seen = dev.Fingerprint; return nil }
	if _, err := SendLocalSend(context.Background(), tgt, items, opt); err != nil || seen != d.fp {
		t.Fatalf("%v; OnRegister saw %q, want %s", err, seen, d.fp)
	}
	// OnRegister may stop the send (a pinned name with another key).
	opt.OnRegister = func(LocalSendDevice) error { return fmt.Errorf("%w: test", ErrKeyChanged) }
	_, err := SendLocalSend(context.Background(), tgt, items, opt)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !errors.Is(err, ErrKeyChanged) || len(d.prepares) != 1 {
		t.Fatalf("%v, %d prepare-uploads; want the send stopped before its offer", err, len(d.prepares))
	}
}

// TestSendLocalSendPresentsCertificateToOtherIssuer: the device's
// CertificateRequest names only its own subject as acceptable issuer
// (rustls does so), which crypto/tls's choice from Certificates would
// honour by sending no certificate at all.
func TestSendLocalSendPresentsCertificateToOtherIssuer(t *testing.T) {
	d := newLSDevice(t, true, nil)
	// The pitfall, reproduced: a client with Certificates sends none.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, Certificates: []tls.Certificate{ourLSIdentity(t).Cert}}}}
	resp, err := c.Post(d.srv.URL+localsend.PathRegister, "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("the test device accepted a client that chose its certificate from Certificates: the setup does not reproduce the pitfall")
	}
	c.CloseIdleConnections()
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"c.txt": "cert"}), "c.txt"))
	opt := lsOptions(t)
	if _, err := SendLocalSend(context.Background(), d.target(), items, opt); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.clientFPs) == 0 || d.clientFPs[0] != opt.Identity.Fingerprint {
		t.Fatalf("client certificates seen: %v, want ours", d.clientFPs)
	}
}

// TestSendLocalSendRetriesNeverDuplicate: a connection that drops during
// an upload is not a reason to offer the files again: those that arrived
// would arrive twice. A connection that drops before any upload is.
func TestSendLocalSendRetriesNeverDuplicate(t *testing.T) {
	dir := writeTree(t, map[string]string{"1.txt": "one", "2.txt": "two", "3.txt": "three"})
	items := collect(t, filepath.Join(dir, "1.txt"), filepath.Join(dir, "2.txt"), filepath.Join(dir, "3.txt"))
	t.Run("drop during an upload", func(t *testing.T) {
		d := newLSDevice(t, true, func(d *lsDevice) {
			d.onUpload = func(_ int, f localsend.File, _ *http.Request) int {
				if f.FileName == "2.txt" {
					return -1
				}
				return 0
			}
		})
		opt := lsOptions(t)
		opt.Retries = 5
		rep, err := SendLocalSend(context.Background(), d.target(), items, opt)
		d.mu.Lock()
		defer d.mu.Unlock()
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("err = %v, want ErrIncomplete", err)
		}
		if len(d.prepares) != 1 || rep.Retries != 0 {
			t.Errorf("%d sessions, %d retries: a partly sent session was offered again", len(d.prepares), rep.Retries)
		}
		for name, n := range d.uploads {
			if n != 1 {
				t.Errorf("%s uploaded %d times", name, n)
			}
		}
		if d.received["1.txt"] != "one" || d.received["3.txt"] != "three" || rep.Saved() != 2 {
			t.Errorf("received %v, saved %d", d.received, rep.Saved())
		}
		if len(d.cancels) != 1 {
			t.Errorf("cancels %v: the unfinished session must be freed", d.cancels)
		}
	})
	t.Run("drop before any upload", func(t *testing.T) {
		d := newLSDevice(t, true, func(d *lsDevice) { d.dropPrepares = 1 })
		opt := lsOptions(t)
		opt.Retries = 2
		rep, err := SendLocalSend(context.Background(), d.target(), items, opt)
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil || rep.Retries != 1 || rep.Saved() != 3 {
			t.Fatalf("%v, %d retries, %d saved", err, rep.Retries, rep.Saved())
		}
		for name, n := range d.uploads {
			if n != 1 {
				t.Errorf("%s uploaded %d times", name, n)
			}
		}
	})
}

func TestSendLocalSendCancelledSendCancelsTheSession(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	d := newLSDevice(t, true, func(d *lsDevice) {
		d.onUpload = func(_ int, _ localsend.File, r *http.Request) int {
			_, _ = io.Copy(io.Discard, r.Body) // then the server notices a hang-up
			close(started)
			select { // no answer until the sender gives up
			case <-r.Context().Done():
			case <-release:
			}
			return 500
		}
	})
	t.Cleanup(func() { close(release) }) // before the server closes
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"slow.txt": "slow"}), "slow.txt"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	opt := lsOptions(t)
	opt.Retries = 3
	rep, err := SendLocalSend(ctx, d.target(), items, opt)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.cancels) != 1 || d.cancels[0] != "session-1" || rep.Retries != 0 {
		t.Errorf("cancels %v, retries %d; want the session cancelled, not retried", d.cancels, rep.Retries)
	}
}

// TestSendLocalSendStalledDeviceTimesOut: a device that stops reading an
// upload is dropped after the idle timeout, not waited for forever.
func TestSendLocalSendStalledDeviceTimesOut(t *testing.T) {
	release := make(chan struct{})
	d := newLSDevice(t, true, func(d *lsDevice) {
		d.onUpload = func(_ int, _ localsend.File, r *http.Request) int {
			select { // reads nothing, answers nothing
			case <-release:
			case <-r.Context().Done():
			}
			return 500
		}
	})
	t.Cleanup(func() { close(release) }) // before the server closes
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"big.bin": randomBytes(t, 8<<20)}), "big.bin"))
	opt := lsOptions(t)
	opt.IdleTimeout = 300 * time.Millisecond
	start := time.Now()
	rep, err := SendLocalSend(context.Background(), d.target(), items, opt)
	if err == nil || rep.Results[0].Status != proto.Failed || !strings.Contains(err.Error(), "nothing moved") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %v", took)
	}
}

func TestSendLocalSendCertificateRefusedIsAHandshakeFailure(t *testing.T) {
	d := newLSDevice(t, true, func(d *lsDevice) { d.refuseCert = true })
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"h.txt": "hs"}), "h.txt"))
	opt := lsOptions(t)
	opt.Retries = 3
	rep, err := SendLocalSend(context.Background(), d.target(), items, opt)
	if !errors.Is(err, ErrHandshake) || rep.Retries != 0 {
		t.Fatalf("err = %v after %d retries, want ErrHandshake at once", err, rep.Retries)
	}
}

// TestSendLocalSendCancelWhileWaitingForAccept: giving up while the
// device's owner has not answered withdraws the offer on the device.
func TestSendLocalSendCancelWhileWaitingForAccept(t *testing.T) {
	asked, release := make(chan struct{}), make(chan struct{})
	d := newLSDevice(t, true, func(d *lsDevice) {
		d.decide = func(int, localsend.PrepareUpload) (int, []string) {
			close(asked)
			<-release
			return 403, nil
		}
	})
	t.Cleanup(func() { close(release) })
	items := collect(t, filepath.Join(writeTree(t, map[string]string{"w.txt": "wait"}), "w.txt"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-asked
		cancel()
	}()
	opt := lsOptions(t)
	opt.Retries = 3
	rep, err := SendLocalSend(ctx, d.target(), items, opt)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !errors.Is(err, context.Canceled) || rep.Retries != 0 {
		t.Fatalf("err = %v after %d retries", err, rep.Retries)
	}
	if len(d.cancels) != 1 || d.cancels[0] != "" {
		t.Errorf("cancels %q, want one without a session (the pending offer's)", d.cancels)
	}
}

// TestSendLocalSendUnreadableFileIsOurs: a file gone since Collect is not
// offered, the rest arrives, and the error is ours (send exits 7).
func TestSendLocalSendUnreadableFileIsOurs(t *testing.T) {
	dir := writeTree(t, map[string]string{"keep.txt": "kept", "gone.txt": "gone"})
	items := collect(t, filepath.Join(dir, "keep.txt"), filepath.Join(dir, "gone.txt"))
	if err := os.Remove(filepath.Join(dir, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	d := newLSDevice(t, true, nil)
	rep, err := SendLocalSend(context.Background(), d.target(), items, lsOptions(t))
	d.mu.Lock()
	defer d.mu.Unlock()
	var se *SourceError
	if !errors.Is(err, ErrSourceUnreadable) || !errors.As(err, &se) || !strings.HasSuffix(se.Path, "gone.txt") {
		t.Fatalf("err = %v, want our own file unreadable", err)
	}
	if len(d.offers) != 1 || len(d.offers[0].Files) != 1 || d.received["keep.txt"] != "kept" || rep.Saved() != 1 {
		t.Errorf("offers %+v, received %v, saved %d", d.offers, d.received, rep.Saved())
	}
}

package lsdouble

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Target is a receiver to send to.
type Target struct {
	Addr     netip.AddrPort
	Protocol string // "https" (default when empty) or "http"
	// Fingerprint is the certificate fingerprint the receiver must present
	// (upper- or lower-case hex), checked during the handshake before
	// anything is sent. Empty: trust on first use, the first certificate
	// seen is then required of every later connection of the same call.
	Fingerprint string
}

func (t Target) protocol() string {
	if t.Protocol == "" {
		return "https"
	}
	return t.Protocol
}

// URL returns the address of an API path on the target, with query q.
func (t Target) URL(apiPath string, q url.Values) string {
	// url.URL escapes an IPv6 zone itself ("%25").
	u := url.URL{Scheme: t.protocol(), Host: t.Addr.String(), Path: apiPath, RawQuery: q.Encode()}
	return u.String()
}

// File is a file to send. Content comes from Data or, when Data is nil,
// from the file at Path.
type File struct {
	Name    string // the fileName sent: relative, '/'-separated (dir/sub/x.txt)
	Type    string // MIME type; default application/octet-stream
	Data    []byte
	Path    string
	Preview *string // the text of a text message
}

// Text returns a text message as the app sends one: a single text/plain
// entry whose preview is the text (a receiver shows it and answers 204).
func Text(msg string) File {
	return File{Name: uuid() + ".txt", Type: "text/plain", Data: []byte(msg), Preview: &msg}
}

// FilesFromPaths turns files and folders into Files, as the app names them:
// a file by its base name, a folder's files as folder/sub/x.txt (the
// folder's base name first). Empty folders are not sent.
func FilesFromPaths(paths ...string) ([]File, error) {
	var out []File
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("lsdouble: %w", err)
		}
		if !st.IsDir() {
			out = append(out, File{Name: filepath.Base(p), Type: mimeOf(p), Path: p})
			continue
		}
		root := filepath.Clean(p)
		base := filepath.Base(root)
		err = filepath.WalkDir(root, func(fp string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(root, fp)
			if err != nil {
				return err
			}
			out = append(out, File{Name: path.Join(base, filepath.ToSlash(rel)), Type: mimeOf(fp), Path: fp})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("lsdouble: walking %s: %w", p, err)
		}
	}
	return out, nil
}

func mimeOf(name string) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		if mt, _, err := mime.ParseMediaType(t); err == nil {
			return mt
		}
	}
	return "application/octet-stream"
}

// SendOptions tune Send. The zero value sends like 1.18: /register first
// (the app registers during discovery), sha256 for every file, uploads
// chunked without Content-Length, two at a time, a file retried on 422 up
// to 3 attempts in all, ?pin= never sent before a 401.
type SendOptions struct {
	PIN string // sent after the first 401
	// AskPIN is asked for a PIN after each 401 (after PIN was tried, if
	// set); an error ends the send with the 401's error.
	AskPIN       func(ctx context.Context, attempt int) (string, error)
	Parallel     int  // uploads at once; default 2 (the app's)
	Attempts     int  // uploads of a file answered 422 before giving up; default 3
	SkipRegister bool // no /register first
	NoSHA256     bool // offer files without sha256
	// ContentLength sends uploads with a Content-Length instead of chunked.
	ContentLength bool
	// NoClientCert presents no client certificate (an old app, a browser).
	NoClientCert bool
	// LegacyClientCert offers the certificate through tls.Config.Certificates
	// instead of GetClientCertificate: Go then sends it only when its issuer
	// matches an acceptable CA the server names (the LOCALSEND.md pitfall).
	LegacyClientCert bool
	// EditInfo and EditFile change the prepare-upload body before it is
	// sent (to lie about names, sizes, hashes or identity).
	EditInfo func(*PeerInfo)
	EditFile func(*WireFile)
	// Body, when set, replaces an upload's body (attempt counts from 1).
	Body func(fileID string, attempt int, content io.Reader) io.Reader
	// OnPrepared is called with the session id and tokens once
	// prepare-upload answered 200, before any upload.
	OnPrepared func(sessionID string, tokens map[string]string)
}

// SendResult says what a Send did.
type SendResult struct {
	ReceiverFingerprint string    // fingerprint of the certificate the receiver presented
	Register            *PeerInfo // the /register answer (nil when skipped or failed)
	Status              int       // prepare-upload's final status
	PINRequests         int       // 401s answered with a PIN
	SessionID           string    // from a 200
	Tokens              map[string]string
	Files               []SentFile // in the order given
}

// SentFile is the fate of one file.
type SentFile struct {
	ID, Name string
	Size     int64
	SHA256   string // lower-case hex of the content
	Accepted bool   // the receiver gave it a token
	Attempts int
	Done     bool  // answered 200
	Err      error // the last failure, when not done
}

// RegisterAnswer is a /register answer.
type RegisterAnswer struct {
	Info            PeerInfo
	CertFingerprint string // "" over http
}

// seenFP keeps the first certificate fingerprint a client saw. Handshakes
// may still run in the transport after a call returned (it dials ahead),
// hence the lock.
type seenFP struct {
	mu sync.Mutex
	fp string
}

func (s *seenFP) set(fp string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fp == "" {
		s.fp = fp
	}
}

func (s *seenFP) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fp
}

// clientCfg selects a client's TLS behaviour.
type clientCfg struct {
	noCert, legacyCert bool
	timeout            time.Duration
}

// client makes an HTTP client for t presenting d's certificate, checking
// the receiver's certificate like the app (valid dates, self-signature,
// pinned fingerprint or trust on first use), HTTP/1.1 only, no proxy, no
// redirects. seen receives the receiver's fingerprint.
func (d *Device) client(t Target, cc clientCfg, seen func(string)) *http.Client {
	var mu sync.Mutex
	pinned := strings.ToUpper(t.Fingerprint)
	tc := &tls.Config{
		InsecureSkipVerify: true, // self-signed peers: verified below instead
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
		VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
			mu.Lock()
			want := pinned
			mu.Unlock()
			return verifyPeer(want, func(fp string) {
				mu.Lock()
				if pinned == "" {
					pinned = fp
				}
				mu.Unlock()
				if seen != nil {
					seen(fp)
				}
			})(raw, chains)
		},
	}
	cert := d.cert
	switch {
	case cc.noCert:
	case cc.legacyCert:
		tc.Certificates = []tls.Certificate{cert}
	default:
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	dial := d.cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	tr := &http.Transport{
		DialContext:         dial,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       cc.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// HTTPClient returns a client that talks to t as this device does (its
// client certificate, t's fingerprint pinned, HTTP/1.1), for tests that
// craft their own requests. CloseIdleConnections when done.
func (d *Device) HTTPClient(t Target) *http.Client { return d.client(t, clientCfg{}, nil) }

// maxAnswer caps the answers a sender reads.
const maxAnswer = 64 << 20

// do sends a request and reads the whole answer (capped).
func do(ctx context.Context, c *http.Client, method, u string, body io.Reader, contentType string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

func statusError(op string, code int, body []byte) *StatusError {
	e := &StatusError{Op: op, Code: code}
	var we wireError
	if json.Unmarshal(body, &we) == nil && we.Message != "" {
		e.Message = we.Message
	} else {
		e.Message = string(bytes.ToValidUTF8(body[:min(len(body), 200)], nil))
	}
	return e
}

// Register sends POST /register with the device's info and returns the
// answer. Over https the receiver's certificate must match t.Fingerprint
// when set.
func (d *Device) Register(ctx context.Context, t Target) (RegisterAnswer, error) {
	var fp seenFP
	c := d.client(t, clientCfg{}, fp.set)
	defer c.CloseIdleConnections()
	return d.register(ctx, c, t, &fp)
}

func (d *Device) register(ctx context.Context, c *http.Client, t Target, fp *seenFP) (RegisterAnswer, error) {
	body, err := json.Marshal(d.Info().wire())
	if err != nil {
		return RegisterAnswer{}, err
	}
	code, b, err := do(ctx, c, http.MethodPost, t.URL(PathRegister, nil), bytes.NewReader(body), "application/json")
	if err != nil {
		return RegisterAnswer{}, fmt.Errorf("lsdouble: register with %v: %w", t.Addr, err)
	}
	if code != http.StatusOK {
		return RegisterAnswer{}, statusError("register", code, b)
	}
	info, err := ParseAnswer(b)
	if err != nil {
		return RegisterAnswer{}, fmt.Errorf("lsdouble: register answer of %v: %w", t.Addr, err)
	}
	return RegisterAnswer{Info: info, CertFingerprint: fp.get()}, nil
}

// Cancel sends POST /cancel, with ?sessionId= unless sessionID is empty
// (which cancels a prepare-upload still pending from this address).
func (d *Device) Cancel(ctx context.Context, t Target, sessionID string) error {
	c := d.client(t, clientCfg{}, nil)
	defer c.CloseIdleConnections()
	var q url.Values
	if sessionID != "" {
		q = url.Values{"sessionId": {sessionID}}
	}
	code, b, err := do(ctx, c, http.MethodPost, t.URL(PathCancel, q), nil, "")
	if err != nil {
		return fmt.Errorf("lsdouble: cancel: %w", err)
	}
	if code != http.StatusOK {
		return statusError("cancel", code, b)
	}
	return nil
}

// onlyReader hides a reader's type so that net/http cannot learn its length
// and streams it chunked, as the app does.
type onlyReader struct{ io.Reader }

// Send sends files to t as the app does: /register, prepare-upload (no
// timeout but ctx: a person may take long to accept), then the accepted
// files, opts.Parallel at a time. It returns the result so far with an
// error when a step failed: a *StatusError (matching ErrDeclined, ErrBusy,
// ErrPIN, ErrTooManyAttempts, ErrChecksum, ErrForbidden) or a transport
// error (a handshake refused for a certificate matches
// ErrFingerprintMismatch or ErrBadCertificate). When only some uploads
// failed, the error joins theirs; each SentFile says its own fate. If ctx
// ends after prepare-upload, the session is cancelled with POST /cancel.
func (d *Device) Send(ctx context.Context, t Target, files []File, opts SendOptions) (*SendResult, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = 2
	}
	if opts.Attempts <= 0 {
		opts.Attempts = MaxUploadAttempt
	}
	var fp seenFP
	c := d.client(t, clientCfg{noCert: opts.NoClientCert, legacyCert: opts.LegacyClientCert}, fp.set)
	defer c.CloseIdleConnections()
	res, err := d.send(ctx, c, t, files, opts, &fp)
	res.ReceiverFingerprint = fp.get()
	return res, err
}

func (d *Device) send(ctx context.Context, c *http.Client, t Target, files []File, opts SendOptions, fp *seenFP) (*SendResult, error) {
	res := &SendResult{}

	wires := map[string]WireFile{}
	byID := map[string]*File{}
	for i := range files {
		f := &files[i]
		size, sum, err := measure(f)
		if err != nil {
			return res, err
		}
		id := uuid()
		typ := f.Type
		if typ == "" {
			typ = "application/octet-stream"
		}
		w := WireFile{ID: id, FileName: f.Name, Size: size, FileType: typ, Preview: f.Preview}
		if !opts.NoSHA256 {
			s := sum
			w.SHA256 = &s
		}
		res.Files = append(res.Files, SentFile{ID: id, Name: f.Name, Size: size, SHA256: sum})
		if opts.EditFile != nil {
			opts.EditFile(&w)
		}
		wires[id] = w
		byID[id] = f
	}

	if !opts.SkipRegister {
		ans, err := d.register(ctx, c, t, fp)
		if err != nil {
			return res, err
		}
		res.Register = &ans.Info
	}

	info := d.Info()
	if opts.EditInfo != nil {
		opts.EditInfo(&info)
	}
	body, err := json.Marshal(wirePrepareRequest{Info: info.wire(), Files: wires})
	if err != nil {
		return res, err
	}
	var q url.Values
	var code int
	var answer []byte
	for attempt := 0; ; attempt++ {
		code, answer, err = do(ctx, c, http.MethodPost, t.URL(PathPrepareUpload, q), bytes.NewReader(body), "application/json")
		if err != nil {
			return res, fmt.Errorf("lsdouble: prepare-upload to %v: %w", t.Addr, err)
		}
		res.Status = code
		if code != http.StatusUnauthorized {
			break
		}
		pin, ok := "", false
		switch {
		case attempt == 0 && opts.PIN != "":
			pin, ok = opts.PIN, true
		case opts.AskPIN != nil:
			n := attempt
			if opts.PIN == "" {
				n++
			}
			if p, err := opts.AskPIN(ctx, n); err == nil {
				pin, ok = p, true
			}
		}
		if !ok {
			return res, statusError("prepare-upload", code, answer)
		}
		res.PINRequests++
		q = url.Values{"pin": {pin}}
	}
	switch code {
	case http.StatusNoContent:
		return res, nil
	case http.StatusOK:
	default:
		return res, statusError("prepare-upload", code, answer)
	}
	var pr wirePrepareResponse
	if err := json.Unmarshal(answer, &pr); err != nil || pr.SessionID == "" {
		return res, fmt.Errorf("lsdouble: prepare-upload answer %q: not a session", answer[:min(len(answer), 200)])
	}
	res.SessionID, res.Tokens = pr.SessionID, pr.Files
	if opts.OnPrepared != nil {
		opts.OnPrepared(pr.SessionID, pr.Files)
	}

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range opts.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				sf := &res.Files[i]
				d.uploadFile(ctx, c, t, pr.SessionID, pr.Files[sf.ID], byID[sf.ID], sf, opts)
			}
		}()
	}
	ids := make([]int, 0, len(res.Files))
	for i := range res.Files {
		if _, ok := pr.Files[res.Files[i].ID]; ok {
			res.Files[i].Accepted = true
			ids = append(ids, i)
		}
	}
	sort.Ints(ids)
feed:
	for _, i := range ids {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.cancelWith(cctx, c, t, pr.SessionID)
		cancel()
		return res, fmt.Errorf("lsdouble: send: %w", ctx.Err())
	}
	var errs []error
	for _, sf := range res.Files {
		if sf.Accepted && !sf.Done {
			errs = append(errs, fmt.Errorf("%s: %w", sf.Name, sf.Err))
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("lsdouble: %d of %d uploads failed: %w", len(errs), len(ids), errors.Join(errs...))
	}
	return res, nil
}

func (d *Device) cancelWith(ctx context.Context, c *http.Client, t Target, sid string) error {
	_, _, err := do(ctx, c, http.MethodPost, t.URL(PathCancel, url.Values{"sessionId": {sid}}), nil, "")
	return err
}

// uploadFile uploads one file, again after a 422 while attempts remain.
func (d *Device) uploadFile(ctx context.Context, c *http.Client, t Target, sid, token string, f *File, sf *SentFile, opts SendOptions) {
	q := url.Values{"sessionId": {sid}, "fileId": {sf.ID}, "token": {token}}
	for sf.Attempts < opts.Attempts {
		sf.Attempts++
		code, b, err := d.uploadOnce(ctx, c, t.URL(PathUpload, q), f, sf, opts)
		switch {
		case err != nil:
			sf.Err = fmt.Errorf("upload: %w", err)
			return
		case code == http.StatusOK:
			sf.Done, sf.Err = true, nil
			return
		}
		sf.Err = statusError("upload", code, b)
		if code != http.StatusUnprocessableEntity {
			return
		}
	}
}

func (d *Device) uploadOnce(ctx context.Context, c *http.Client, u string, f *File, sf *SentFile, opts SendOptions) (int, []byte, error) {
	var content io.Reader
	if f.Data != nil || f.Path == "" {
		content = bytes.NewReader(f.Data)
	} else {
		fh, err := os.Open(f.Path)
		if err != nil {
			return 0, nil, err
		}
		defer fh.Close()
		content = fh
	}
	if opts.Body != nil {
		content = opts.Body(sf.ID, sf.Attempts, content)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, onlyReader{content})
	if err != nil {
		return 0, nil, err
	}
	req.ContentLength = -1 // chunked, like 1.18
	if opts.ContentLength {
		req.ContentLength = sf.Size
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, b, nil
}

// measure returns a file's size and sha256.
func measure(f *File) (int64, string, error) {
	h := sha256.New()
	if f.Data != nil || f.Path == "" {
		h.Write(f.Data)
		return int64(len(f.Data)), hex.EncodeToString(h.Sum(nil)), nil
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return 0, "", fmt.Errorf("lsdouble: %w", err)
	}
	defer fh.Close()
	n, err := io.Copy(h, fh)
	if err != nil {
		return 0, "", fmt.Errorf("lsdouble: reading %s: %w", f.Path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

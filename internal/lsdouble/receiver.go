package lsdouble

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// bodyIdle bounds each read of a request body (a stalled sender fails the
// upload instead of holding the session forever).
const bodyIdle = 30 * time.Second

type fileStatus int

const (
	filePending fileStatus = iota
	fileInProgress
	fileFinished
	fileFailed
)

type sfile struct {
	f        OfferedFile
	token    string
	path     string // final path ("" when not kept)
	status   fileStatus
	attempts int
}

type session struct {
	Session
	files     map[string]*sfile
	cancel    context.CancelFunc // ends a pending decision
	cancelled bool               // by POST /cancel while pending
}

func (s *session) complete() bool {
	for _, f := range s.files {
		if f.status != fileFinished && f.status != fileFailed {
			return false
		}
	}
	return true
}

// statusWriter records the request when the status is set, so that the
// record exists before the client can see the answer.
type statusWriter struct {
	http.ResponseWriter
	status int
	record func(status int)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.record(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// abort records the request with status 0 and closes the connection
// without an answer (net/http would otherwise send an implicit 200).
func (w *statusWriter) abort() {
	if w.status != 0 {
		return
	}
	w.status = -1
	w.record(0)
	if conn, _, err := http.NewResponseController(w.ResponseWriter).Hijack(); err == nil {
		conn.Close()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// peer is what the receiver knows of a request's sender.
type peer struct {
	from netip.AddrPort
	ip   netip.Addr
	fp   string // client certificate fingerprint, "" without one
}

func (d *Device) serveHTTP(rw http.ResponseWriter, r *http.Request) {
	// Handlers are counted so that Close can wait for them (http.Server's
	// Close does not).
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		rw.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	d.handlers.Add(1)
	d.mu.Unlock()
	defer d.handlers.Done()
	from, _ := netip.ParseAddrPort(r.RemoteAddr)
	p := peer{from: from, ip: from.Addr().Unmap()}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		p.fp = Fingerprint(r.TLS.PeerCertificates[0].Raw)
	}
	w := &statusWriter{ResponseWriter: rw, record: func(status int) {
		req := Request{At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, From: from,
			ClientFingerprint: p.fp, Status: status, ContentLength: r.ContentLength,
			TransferEncoding: slices.Clone(r.TransferEncoding), ContentType: r.Header.Get("Content-Type")}
		d.mu.Lock()
		appendCapped(&d.rec.Requests, req, &d.rec.Dropped)
		d.notifyLocked()
		d.mu.Unlock()
	}}
	switch {
	case r.Method == http.MethodGet && (r.URL.Path == PathInfo || r.URL.Path == PathInfoV1):
		writeJSON(w, http.StatusOK, d.Info().answer())
	case r.Method == http.MethodPost && r.URL.Path == PathRegister:
		d.handleRegister(w, r, p)
	case r.Method == http.MethodPost && r.URL.Path == PathPrepareUpload:
		d.handlePrepare(w, r, p)
	case r.Method == http.MethodPost && r.URL.Path == PathUpload:
		d.handleUpload(w, r, p)
	case r.Method == http.MethodPost && r.URL.Path == PathCancel:
		d.handleCancel(w, r, p)
	default:
		w.WriteHeader(http.StatusNotFound) // the app: 404, empty body
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK) // what net/http sends for a handler that wrote nothing
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("{}")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// writeError answers like the app's AppError: {"message": ...} as JSON.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, wireError{Message: msg})
}

// statusText is the message of the app's AppError::Status(code), hyper's
// StatusCode display: "Status code: 500 Internal Server Error".
func statusText(code int) string {
	return fmt.Sprintf("Status code: %d %s", code, http.StatusText(code))
}

var errTooLarge = errors.New("body too large")

// readJSONBody reads a whole JSON body, capped at cfg.MaxJSON, each read
// bounded by bodyIdle.
func (d *Device) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	var buf []byte
	chunk := make([]byte, 32<<10)
	for {
		_ = rc.SetReadDeadline(time.Now().Add(bodyIdle))
		n, err := r.Body.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if int64(len(buf)) > d.cfg.MaxJSON {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (d *Device) answerBodyError(w http.ResponseWriter, err error) {
	if errors.Is(err, errTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "Body too large")
		return
	}
	writeError(w, http.StatusBadRequest, "Invalid JSON body")
}

func (d *Device) handleRegister(w http.ResponseWriter, r *http.Request, p peer) {
	b, err := d.readJSONBody(w, r)
	if err != nil {
		d.answerBodyError(w, err)
		return
	}
	info, err := ParseInfo(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	// With a client certificate, only a matching claimed fingerprint counts
	// (v2.rs register): the answer is the same either way.
	valid := p.fp == "" || strings.ToUpper(info.Fingerprint) == p.fp
	d.mu.Lock()
	appendCapped(&d.rec.Registrations, Registration{At: time.Now(), From: p.from, ClientFingerprint: p.fp, Info: info, Valid: valid}, &d.rec.Dropped)
	d.notifyLocked()
	d.mu.Unlock()
	d.logf("register from %v: %q valid=%v", p.from, info.Alias, valid)
	writeJSON(w, http.StatusOK, d.Info().answer())
}

// checkPIN is the app's check_pin; it runs before the body is read.
func (d *Device) checkPIN(w http.ResponseWriter, r *http.Request, p peer, pin string) bool {
	if pin == "" {
		return true
	}
	q := r.URL.Query()
	code, msg := d.pinVerdict(p.ip, pin, q.Has("pin"), q.Get("pin"))
	if code != 0 {
		writeError(w, code, msg)
		return false
	}
	return true
}

// pinVerdict counts a PIN attempt; code 0 lets the request through.
func (d *Device) pinVerdict(ip netip.Addr, pin string, has bool, got string) (int, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	count := d.pinFails[ip]
	switch {
	case count >= 3:
		return http.StatusTooManyRequests, "Too many requests"
	case !has:
		return http.StatusUnauthorized, "PIN required"
	case got != pin:
		d.pinFails[ip] = count + 1
		return http.StatusUnauthorized, "Invalid PIN"
	}
	delete(d.pinFails, ip)
	return 0, ""
}

// SafeName reports whether a fileName is one the double writes: relative,
// '/'-separated, no empty, "." or ".." element, no backslash or NUL.
func SafeName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
		return false
	}
	for _, el := range strings.Split(name, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	return true
}

func (d *Device) handlePrepare(w http.ResponseWriter, r *http.Request, p peer) {
	d.mu.Lock()
	beh := d.beh
	d.mu.Unlock()
	if !d.checkPIN(w, r, p, beh.PIN) {
		return
	}
	b, err := d.readJSONBody(w, r)
	if err != nil {
		d.answerBodyError(w, err)
		return
	}
	info, files, err := parsePrepare(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON body")
		return
	}
	if len(files) == 0 {
		writeError(w, http.StatusBadRequest, "No files provided")
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s := &session{Session: Session{ID: uuid(), At: time.Now(), From: p.ip, ClientFingerprint: p.fp,
		PIN: r.URL.Query().Get("pin"), Info: info, Offered: files, State: SessionPending}, cancel: cancel}
	s.Message, s.IsMessage = isMessage(files)
	d.mu.Lock()
	if beh.Busy || d.slot != nil {
		d.mu.Unlock()
		writeError(w, http.StatusConflict, "Blocked by another session")
		return
	}
	d.slot = s
	d.sessions = append(d.sessions, s)
	d.notifyLocked()
	d.mu.Unlock()

	var dec Decision
	switch {
	case beh.Decline:
		dec.Decline = true
	case beh.Accept != nil:
		dec = beh.Accept(ctx, Offer{SessionID: s.ID, From: p.ip, ClientFingerprint: p.fp, Info: info,
			Files: slices.Clone(files), Message: s.Message, IsMessage: s.IsMessage})
	}

	d.mu.Lock()
	code, answer := d.decideLocked(s, r, p, dec)
	d.notifyLocked()
	d.mu.Unlock()
	switch {
	case code == 0:
		if sw, ok := w.(*statusWriter); ok {
			sw.abort()
		}
	case answer != nil:
		writeJSON(w, code, answer)
	default:
		w.WriteHeader(code)
	}
}

// decideLocked applies a decision to a pending session and returns the
// answer: a status (0 for none: the sender is gone) and a body (nil for
// none).
func (d *Device) decideLocked(s *session, r *http.Request, p peer, dec Decision) (int, any) {
	end := func(st SessionState) {
		s.State = st
		if d.slot == s {
			d.slot = nil
		}
	}
	switch {
	case s.cancelled:
		end(SessionCancelled)
		return http.StatusForbidden, wireError{"Cancelled by sender"}
	case r.Context().Err() != nil:
		end(SessionAborted)
		return 0, nil
	case dec.Decline:
		end(SessionDeclined)
		return http.StatusForbidden, wireError{"Rejected"}
	case s.IsMessage:
		appendCapped(&d.rec.Messages, Message{At: time.Now(), SessionID: s.ID, From: p.ip, ClientFingerprint: p.fp,
			Alias: s.Info.Alias, Text: s.Message}, &d.rec.Dropped)
		end(SessionEmpty)
		return http.StatusNoContent, nil
	}
	want := dec.Accept
	if want == nil {
		for _, f := range s.Offered {
			want = append(want, f.ID)
		}
	}
	s.files = map[string]*sfile{}
	s.Tokens = map[string]string{}
	for _, f := range s.Offered {
		if !slices.Contains(want, f.ID) {
			continue
		}
		if !SafeName(f.FileName) {
			s.Refused = append(s.Refused, f.ID)
			continue
		}
		sf := &sfile{f: f, token: uuid()}
		if d.cfg.Dir != "" {
			sf.path = filepath.Join(d.cfg.Dir, filepath.FromSlash(f.FileName))
		}
		s.files[f.ID] = sf
		s.Tokens[f.ID] = sf.token
	}
	if len(s.files) == 0 {
		end(SessionEmpty)
		return http.StatusNoContent, nil
	}
	s.State = SessionActive
	s.cancel = nil
	return http.StatusOK, wirePrepareResponse{SessionID: s.ID, Files: maps.Clone(s.Tokens)}
}

func (d *Device) handleUpload(w http.ResponseWriter, r *http.Request, p peer) {
	q := r.URL.Query()
	if !q.Has("sessionId") || !q.Has("fileId") || !q.Has("token") {
		writeError(w, http.StatusBadRequest, "Missing parameters")
		return
	}
	sid, fid, token := q.Get("sessionId"), q.Get("fileId"), q.Get("token")
	d.mu.Lock()
	s := d.slot
	var sf *sfile
	if s != nil && s.State == SessionActive && s.ID == sid && s.From == p.ip {
		sf = s.files[fid]
	}
	if sf == nil || sf.token != token || sf.status != filePending {
		d.mu.Unlock()
		writeError(w, http.StatusForbidden, "Invalid token or IP address")
		return
	}
	sf.status = fileInProgress
	sf.attempts++
	attempt := sf.attempts
	beh := d.beh
	forced := false
	if d.rec.ChecksumMismatchesLeft > 0 {
		d.rec.ChecksumMismatchesLeft--
		forced = true
	}
	d.inflight++
	d.rec.MaxParallelUploads = max(d.rec.MaxParallelUploads, d.inflight)
	d.notifyLocked()
	d.mu.Unlock()

	up := Upload{At: time.Now(), SessionID: sid, FileID: fid, FileName: sf.f.FileName, Attempt: attempt, From: p.ip,
		ClientFingerprint: p.fp, ContentLength: r.ContentLength, Chunked: slices.Contains(r.TransferEncoding, "chunked")}
	res, sum, n, why := d.receive(w, r, sf, beh, attempt, forced, p.ip)
	up.Bytes, up.SHA256, up.Err = n, sum, why

	d.mu.Lock()
	d.inflight--
	switch res {
	case saveOK:
		up.Status = http.StatusOK
	case saveMismatch:
		up.Status = http.StatusUnprocessableEntity
	default:
		up.Status = http.StatusInternalServerError
	}
	appendCapped(&d.rec.Uploads, up, &d.rec.Dropped)
	if res == saveOK {
		appendCapped(&d.rec.Files, ReceivedFile{SessionID: sid, FileID: fid, Name: sf.f.FileName, Path: sf.path,
			Size: n, SHA256: sum, Attempts: attempt, ClientFingerprint: p.fp}, &d.rec.Dropped)
	}
	d.finalizeLocked(s, fid, sf, res)
	d.notifyLocked()
	d.mu.Unlock()

	switch res {
	case saveOK:
		w.WriteHeader(http.StatusOK)
	case saveMismatch:
		writeError(w, http.StatusUnprocessableEntity, "Checksum mismatch")
	default:
		writeError(w, http.StatusInternalServerError, statusText(http.StatusInternalServerError))
	}
}

type saveResult int

const (
	saveOK saveResult = iota
	saveFailed
	saveMismatch
)

// finalizeLocked is the app's finalize_file: success finishes the file, a
// checksum mismatch puts it back to pending while attempts remain, anything
// else fails it; a session whose files all ended frees the slot.
func (d *Device) finalizeLocked(s *session, fid string, sf *sfile, res saveResult) {
	if d.slot != s || sf.status != fileInProgress {
		return // the session was cancelled meanwhile
	}
	switch {
	case res == saveOK:
		sf.status = fileFinished
		s.Finished = append(s.Finished, fid)
	case res == saveMismatch && sf.attempts < MaxUploadAttempt:
		sf.status = filePending
	default:
		sf.status = fileFailed
		s.Failed = append(s.Failed, fid)
	}
	if s.complete() {
		s.State = SessionFinished
		d.slot = nil
	}
}

// receive reads an upload body into a temporary file next to the final
// name (or nowhere), checks size and sha256, and renames it into place on
// success. It returns the result, the body's sha256, the bytes read and why
// it failed.
func (d *Device) receive(w http.ResponseWriter, r *http.Request, sf *sfile, beh Behaviour, attempt int, forced bool, from netip.Addr) (saveResult, string, int64, string) {
	if beh.BeforeUpload != nil {
		if err := beh.BeforeUpload(r.Context(), UploadStart{SessionID: r.URL.Query().Get("sessionId"), FileID: sf.f.ID,
			FileName: sf.f.FileName, Attempt: attempt, From: from}); err != nil {
			return saveFailed, "", 0, "BeforeUpload: " + err.Error()
		}
	}
	var out *os.File
	if sf.path != "" {
		dir := filepath.Dir(sf.path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return saveFailed, "", 0, err.Error()
		}
		f, err := os.CreateTemp(dir, ".lsdouble-*.part")
		if err != nil {
			return saveFailed, "", 0, err.Error()
		}
		out = f
		defer func() {
			if out != nil {
				out.Close()
				os.Remove(out.Name())
			}
		}()
	}
	h := sha256.New()
	rc := http.NewResponseController(w)
	buf := make([]byte, 256<<10)
	var n int64
	var why string
	for why == "" {
		_ = rc.SetReadDeadline(time.Now().Add(bodyIdle))
		k, err := r.Body.Read(buf)
		if k > 0 {
			n += int64(k)
			if n > sf.f.Size {
				why = fmt.Sprintf("expected %d bytes, received at least %d", sf.f.Size, n)
				break
			}
			h.Write(buf[:k])
			if out != nil {
				if _, werr := out.Write(buf[:k]); werr != nil {
					why = werr.Error()
					break
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			why = "reading body: " + err.Error()
		}
	}
	_ = rc.SetReadDeadline(time.Time{})
	sum := hex.EncodeToString(h.Sum(nil))
	if why == "" && n != sf.f.Size {
		why = fmt.Sprintf("expected %d bytes, received %d", sf.f.Size, n)
	}
	if why != "" {
		return saveFailed, sum, n, why
	}
	if forced {
		return saveMismatch, sum, n, "forced checksum mismatch"
	}
	if sf.f.SHA256 != nil && !beh.SkipChecksum && !strings.EqualFold(*sf.f.SHA256, sum) {
		return saveMismatch, sum, n, "checksum mismatch: expected " + *sf.f.SHA256
	}
	if out != nil {
		name := out.Name()
		err := out.Close()
		out = nil
		if err == nil {
			err = os.Rename(name, sf.path)
		}
		if err != nil {
			os.Remove(name)
			return saveFailed, sum, n, err.Error()
		}
	}
	return saveOK, sum, n, ""
}

func (d *Device) handleCancel(w http.ResponseWriter, r *http.Request, p peer) {
	q := r.URL.Query()
	sid, has := q.Get("sessionId"), q.Has("sessionId")
	d.mu.Lock()
	s := d.slot
	switch {
	case s != nil && s.State == SessionPending && s.From == p.ip && (!has || sid == s.ID):
		// The sender does not know the id of a pending session yet.
		s.cancelled = true
		s.cancel()
	case has && s != nil && s.State == SessionActive && s.ID == sid && s.From == p.ip:
		s.State = SessionCancelled
		d.slot = nil
	}
	d.notifyLocked()
	d.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

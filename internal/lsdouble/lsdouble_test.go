package lsdouble

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustEqualFile(t testing.TB, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading received file: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d sent", path, len(got), len(want))
	}
}

// dirNames lists the regular files under dir, '/'-separated and sorted.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func paths(s Snapshot, path string) []Request {
	var out []Request
	for _, r := range s.Requests {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// TestSendFilesAndFolder sends a folder and a file over HTTPS with client
// certificates, and checks the receiver got them byte for byte with the
// folder's structure, chunked, from the sender's certificate.
func TestSendFilesAndFolder(t *testing.T) {
	src := t.TempDir()
	big := randBytes(t, 3<<20+17)
	small := []byte("hello, LocalSend\n")
	empty := []byte{}
	writeFile(t, filepath.Join(src, "album", "sub", "x.txt"), small)
	writeFile(t, filepath.Join(src, "album", "big.bin"), big)
	writeFile(t, filepath.Join(src, "album", "empty"), empty)
	writeFile(t, filepath.Join(src, "note.md"), small)

	rx := Start(t, Config{Alias: "rx", Dir: t.TempDir()})
	tx := Start(t, Config{Alias: "tx"})
	files, err := FilesFromPaths(filepath.Join(src, "album"), filepath.Join(src, "note.md"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := tx.Send(testCtx(t), rx.Target(), files, SendOptions{})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Status != http.StatusOK || res.ReceiverFingerprint != rx.Fingerprint() {
		t.Fatalf("status %d, receiver fingerprint %s (want %s)", res.Status, res.ReceiverFingerprint, rx.Fingerprint())
	}
	if res.Register == nil || res.Register.Alias != "rx" || res.Register.Fingerprint != rx.Fingerprint() {
		t.Fatalf("register answer %+v", res.Register)
	}
	for _, f := range res.Files {
		if !f.Done || f.Attempts != 1 {
			t.Fatalf("file %s: %+v", f.Name, f)
		}
	}
	want := []string{"album/big.bin", "album/empty", "album/sub/x.txt", "note.md"}
	if got := dirNames(t, rx.cfg.Dir); !slices.Equal(got, want) {
		t.Fatalf("received %q, want %q", got, want)
	}
	mustEqualFile(t, filepath.Join(rx.cfg.Dir, "album", "big.bin"), big)
	mustEqualFile(t, filepath.Join(rx.cfg.Dir, "album", "sub", "x.txt"), small)
	mustEqualFile(t, filepath.Join(rx.cfg.Dir, "album", "empty"), empty)

	s := rx.Snapshot()
	if len(s.Requests) == 0 || s.Requests[0].Path != PathRegister {
		t.Fatalf("first request %+v, want /register", s.Requests)
	}
	for _, r := range s.Requests {
		if r.ClientFingerprint != tx.Fingerprint() {
			t.Fatalf("request %s from certificate %q, want the sender's %s", r.Path, r.ClientFingerprint, tx.Fingerprint())
		}
	}
	if len(s.Registrations) != 1 || !s.Registrations[0].Valid || s.Registrations[0].Info.Alias != "tx" {
		t.Fatalf("registrations %+v", s.Registrations)
	}
	if len(s.Uploads) != 4 {
		t.Fatalf("%d uploads, want 4", len(s.Uploads))
	}
	for _, u := range s.Uploads {
		if !u.Chunked || u.ContentLength != -1 || u.Status != 200 {
			t.Fatalf("upload %+v: want chunked without Content-Length, 200", u)
		}
	}
	if len(s.Sessions) != 1 || s.Sessions[0].State != SessionFinished || len(s.Sessions[0].Finished) != 4 {
		t.Fatalf("sessions %+v", s.Sessions)
	}
	if q := paths(s, PathPrepareUpload)[0].Query; q != "" {
		t.Fatalf("prepare-upload sent query %q unprompted", q)
	}
}

// TestPIN: no ?pin= before a 401, the PIN after it.
func TestPIN(t *testing.T) {
	rx := Start(t, Config{Behaviour: Behaviour{PIN: "1234"}})
	tx := Start(t, Config{})
	files := []File{{Name: "a.txt", Data: []byte("a")}}

	_, err := tx.Send(testCtx(t), rx.Target(), files, SendOptions{})
	var se *StatusError
	if !errors.Is(err, ErrPIN) || !errors.As(err, &se) || se.Message != "PIN required" {
		t.Fatalf("without a PIN: %v, want 401 PIN required", err)
	}

	res, err := tx.Send(testCtx(t), rx.Target(), files, SendOptions{PIN: "1234"})
	if err != nil || res.PINRequests != 1 {
		t.Fatalf("with the PIN: %v (%d PIN requests)", err, res.PINRequests)
	}
	prep := paths(rx.Snapshot(), PathPrepareUpload)
	var got []string
	for _, r := range prep {
		got = append(got, r.Query+"→"+http.StatusText(r.Status))
	}
	want := []string{"→Unauthorized", "→Unauthorized", "pin=1234→OK"}
	if !slices.Equal(got, want) {
		t.Fatalf("prepare-upload requests %q, want %q", got, want)
	}
}

// TestTooManyPINs: three wrong PINs from an address, then 429 even for the
// right one.
func TestTooManyPINs(t *testing.T) {
	rx := Start(t, Config{Behaviour: Behaviour{PIN: "1234"}})
	tx := Start(t, Config{})
	files := []File{{Name: "a.txt", Data: []byte("a")}}
	asked := 0
	_, err := tx.Send(testCtx(t), rx.Target(), files, SendOptions{AskPIN: func(context.Context, int) (string, error) {
		asked++
		return "0000", nil
	}})
	if !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("got %v, want 429", err)
	}
	if asked != 4 {
		t.Fatalf("asked for a PIN %d times, want 4 (3 wrong ones counted, the 4th refused)", asked)
	}
	var codes []int
	for _, r := range paths(rx.Snapshot(), PathPrepareUpload) {
		codes = append(codes, r.Status)
	}
	if want := []int{401, 401, 401, 401, 429}; !slices.Equal(codes, want) {
		t.Fatalf("answers %v, want %v", codes, want)
	}
	if _, err := tx.Send(testCtx(t), rx.Target(), files, SendOptions{PIN: "1234"}); !errors.Is(err, ErrTooManyAttempts) {
		t.Fatalf("right PIN after 3 wrong: %v, want 429", err)
	}
	rx.ResetPINAttempts()
	if _, err := tx.Send(testCtx(t), rx.Target(), files, SendOptions{PIN: "1234"}); err != nil {
		t.Fatalf("after reset: %v", err)
	}
}

func TestDeclined(t *testing.T) {
	rx := Start(t, Config{Dir: t.TempDir(), Behaviour: Behaviour{Decline: true}})
	tx := Start(t, Config{})
	_, err := tx.Send(testCtx(t), rx.Target(), []File{{Name: "a.txt", Data: []byte("a")}}, SendOptions{})
	var se *StatusError
	if !errors.Is(err, ErrDeclined) || !errors.As(err, &se) || se.Code != 403 || se.Message != "Rejected" {
		t.Fatalf("got %v, want 403 Rejected", err)
	}
	if names := dirNames(t, rx.cfg.Dir); len(names) != 0 {
		t.Fatalf("files written: %q", names)
	}
	if s := rx.Snapshot(); len(s.Sessions) != 1 || s.Sessions[0].State != SessionDeclined {
		t.Fatalf("sessions %+v", s.Sessions)
	}
}

// TestBusyWhileWaiting: a sender waits while the receiver decides; a second
// sender meanwhile gets 409; the first succeeds once accepted.
func TestBusyWhileWaiting(t *testing.T) {
	gate := NewGate()
	rx := Start(t, Config{Dir: t.TempDir(), Behaviour: Behaviour{Accept: gate.Accept}})
	tx1 := Start(t, Config{Alias: "first"})
	tx2 := Start(t, Config{Alias: "second"})
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := tx1.Send(ctx, rx.Target(), []File{{Name: "one.txt", Data: []byte("1")}}, SendOptions{})
		done <- err
	}()
	select {
	case o := <-gate.Offers():
		if o.Info.Alias != "first" || o.ClientFingerprint != tx1.Fingerprint() || len(o.Files) != 1 || o.Files[0].FileName != "one.txt" {
			t.Fatalf("offer %+v", o)
		}
	case <-ctx.Done():
		t.Fatal("no offer")
	}
	_, err := tx2.Send(ctx, rx.Target(), []File{{Name: "two.txt", Data: []byte("2")}}, SendOptions{})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second sender: %v, want 409", err)
	}
	if err := gate.Answer(ctx, Decision{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("first sender: %v", err)
	}
	if got := dirNames(t, rx.cfg.Dir); !slices.Equal(got, []string{"one.txt"}) {
		t.Fatalf("received %q", got)
	}
	rx.SetBehaviour(Behaviour{}) // accept at once
	if _, err := tx2.Send(ctx, rx.Target(), []File{{Name: "two.txt", Data: []byte("2")}}, SendOptions{}); err != nil {
		t.Fatalf("second sender after the first session: %v", err)
	}
}

// TestCancelPending: a sender cancels while the receiver decides (POST
// /cancel without sessionId): the waiting prepare-upload ends 403.
func TestCancelPending(t *testing.T) {
	gate := NewGate()
	rx := Start(t, Config{Behaviour: Behaviour{Accept: gate.Accept}})
	tx := Start(t, Config{})
	ctx := testCtx(t)
	done := make(chan error, 1)
	go func() {
		_, err := tx.Send(ctx, rx.Target(), []File{{Name: "one.txt", Data: []byte("1")}}, SendOptions{})
		done <- err
	}()
	<-gate.Offers()
	if err := tx.Cancel(ctx, rx.Target(), ""); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 403 || se.Message != "Cancelled by sender" {
		t.Fatalf("got %v, want 403 Cancelled by sender", err)
	}
	if s := rx.Snapshot(); s.Sessions[0].State != SessionCancelled {
		t.Fatalf("session %+v", s.Sessions[0])
	}
}

// TestChecksumRetry: a 422 puts the file back to pending and the same token
// works again; the third mismatch fails the file for good.
func TestChecksumRetry(t *testing.T) {
	rx := Start(t, Config{Dir: t.TempDir()})
	tx := Start(t, Config{})
	data := randBytes(t, 100<<10)
	corruptFirst := func(_ string, attempt int, r io.Reader) io.Reader {
		if attempt > 1 {
			return r
		}
		b, _ := io.ReadAll(r)
		b[len(b)/2] ^= 0xff
		return bytes.NewReader(b)
	}
	res, err := tx.Send(testCtx(t), rx.Target(), []File{{Name: "d.bin", Data: data}}, SendOptions{Body: corruptFirst})
	if err != nil || res.Files[0].Attempts != 2 {
		t.Fatalf("Send: %v, %+v", err, res.Files)
	}
	mustEqualFile(t, filepath.Join(rx.cfg.Dir, "d.bin"), data)
	var codes []int
	for _, u := range rx.Snapshot().Uploads {
		codes = append(codes, u.Status)
	}
	if !slices.Equal(codes, []int{422, 200}) {
		t.Fatalf("upload answers %v, want [422 200]", codes)
	}

	rx2 := Start(t, Config{Dir: t.TempDir(), Behaviour: Behaviour{ChecksumMismatches: 3}})
	res, err = tx.Send(testCtx(t), rx2.Target(), []File{{Name: "d.bin", Data: data}}, SendOptions{
		Attempts: 5, // the receiver allows 3
	})
	if !errors.Is(err, ErrForbidden) || res.Files[0].Attempts != 4 {
		t.Fatalf("Send: %v, %+v; want three 422s then 403", err, res.Files)
	}
	s := rx2.Snapshot()
	if len(s.Uploads) != 3 || s.Sessions[0].State != SessionFinished || len(s.Sessions[0].Failed) != 1 {
		t.Fatalf("uploads %+v, session %+v", s.Uploads, s.Sessions[0])
	}
	if names := dirNames(t, rx2.cfg.Dir); len(names) != 0 {
		t.Fatalf("left behind: %q", names)
	}
}

// TestClientCertificateRequired: a sender without a certificate is refused
// during the handshake; so is a Go sender that leaves the choice to
// tls.Config.Certificates when its issuer is not the receiver's subject.
func TestClientCertificateRequired(t *testing.T) {
	rx := Start(t, Config{})
	files := []File{{Name: "a.txt", Data: []byte("a")}}

	tx := Start(t, Config{})
	if _, err := tx.Send(testCtx(t), rx.Target(), files, SendOptions{NoClientCert: true}); err == nil {
		t.Fatal("a sender without a certificate was let in")
	}
	other, err := NewIdentity("lanshare")
	if err != nil {
		t.Fatal(err)
	}
	txOther := Start(t, Config{Certificate: &other})
	if _, err := txOther.Send(testCtx(t), rx.Target(), files, SendOptions{LegacyClientCert: true}); err == nil {
		t.Fatal("tls.Config.Certificates sent a certificate whose issuer the receiver did not name")
	}
	// The server logs a failed handshake after the client saw it fail.
	s, _ := rx.Wait(testCtx(t), func(s Snapshot) bool { return len(s.TLSErrors) >= 2 })
	if len(s.Requests) != 0 || len(s.TLSErrors) < 2 {
		t.Fatalf("requests %+v, TLS errors %q", s.Requests, s.TLSErrors)
	}
	// GetClientCertificate presents it whatever the receiver names.
	if _, err := txOther.Send(testCtx(t), rx.Target(), files, SendOptions{}); err != nil {
		t.Fatalf("with GetClientCertificate: %v", err)
	}
	if fp := rx.Snapshot().Requests[0].ClientFingerprint; fp != txOther.Fingerprint() {
		t.Fatalf("client fingerprint %s, want %s", fp, txOther.Fingerprint())
	}
}

// TestExpiredClientCertificate: the receiver checks the dates of a client
// certificate.
func TestExpiredClientCertificate(t *testing.T) {
	old := expiredIdentity(t)
	rx := Start(t, Config{})
	tx := Start(t, Config{Certificate: &old})
	if _, err := tx.Send(testCtx(t), rx.Target(), []File{{Name: "a", Data: []byte("a")}}, SendOptions{}); err == nil {
		t.Fatal("an expired client certificate was accepted")
	}
	if s, _ := rx.Wait(testCtx(t), func(s Snapshot) bool { return len(s.TLSErrors) > 0 }); len(s.Requests) != 0 || len(s.TLSErrors) == 0 {
		t.Fatalf("requests %+v, TLS errors %q", s.Requests, s.TLSErrors)
	}
}

func TestFingerprintMismatch(t *testing.T) {
	rx := Start(t, Config{})
	tx := Start(t, Config{})
	target := rx.Target()
	target.Fingerprint = strings.Repeat("0", 64)
	_, err := tx.Send(testCtx(t), target, []File{{Name: "a", Data: []byte("a")}}, SendOptions{})
	var fe *FingerprintError
	if !errors.Is(err, ErrFingerprintMismatch) || !errors.As(err, &fe) || fe.Got != rx.Fingerprint() {
		t.Fatalf("got %v, want a fingerprint mismatch", err)
	}
	if s := rx.Snapshot(); len(s.Requests) != 0 {
		t.Fatalf("the receiver got %+v", s.Requests)
	}
	// Lower case is accepted, as the app upper-cases the expected value.
	target.Fingerprint = strings.ToLower(rx.Fingerprint())
	if _, err := tx.Send(testCtx(t), target, []File{{Name: "a", Data: []byte("a")}}, SendOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestParallelUploads: uploads of one session run at once.
func TestParallelUploads(t *testing.T) {
	var mu sync.Mutex
	started := 0
	both := make(chan struct{})
	rx := Start(t, Config{Dir: t.TempDir(), Behaviour: Behaviour{BeforeUpload: func(ctx context.Context, u UploadStart) error {
		mu.Lock()
		started++
		if started == 2 {
			close(both)
		}
		mu.Unlock()
		select {
		case <-both:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("no second upload came while this one waited")
		}
	}}})
	tx := Start(t, Config{})
	var files []File
	for _, n := range []string{"a", "b", "c", "d"} {
		files = append(files, File{Name: n, Data: randBytes(t, 64<<10)})
	}
	if _, err := tx.Send(testCtx(t), rx.Target(), files, SendOptions{Parallel: 4}); err != nil {
		t.Fatal(err)
	}
	if s := rx.Snapshot(); s.MaxParallelUploads < 2 || len(s.Files) != 4 {
		t.Fatalf("max parallel %d, files %d", s.MaxParallelUploads, len(s.Files))
	}
}

func TestTextMessage(t *testing.T) {
	rx := Start(t, Config{Dir: t.TempDir()})
	tx := Start(t, Config{Alias: "phone"})
	res, err := tx.Send(testCtx(t), rx.Target(), []File{Text("hi there")}, SendOptions{})
	if err != nil || res.Status != http.StatusNoContent {
		t.Fatalf("%v, status %d", err, res.Status)
	}
	s := rx.Snapshot()
	if len(s.Messages) != 1 || s.Messages[0].Text != "hi there" || s.Messages[0].Alias != "phone" {
		t.Fatalf("messages %+v", s.Messages)
	}
	if len(s.Uploads) != 0 || len(dirNames(t, rx.cfg.Dir)) != 0 || s.Sessions[0].State != SessionEmpty {
		t.Fatalf("a message was stored as a file: %+v", s)
	}
}

func TestPlainHTTP(t *testing.T) {
	rx := Start(t, Config{Protocol: "http", Dir: t.TempDir()})
	tx := Start(t, Config{Protocol: "http"})
	if len(rx.Fingerprint()) == 0 || rx.Target().Fingerprint != "" {
		t.Fatalf("http fingerprint %q, target %+v", rx.Fingerprint(), rx.Target())
	}
	if _, err := tx.Send(testCtx(t), rx.Target(), []File{{Name: "a", Data: []byte("a")}}, SendOptions{}); err != nil {
		t.Fatal(err)
	}
	if s := rx.Snapshot(); len(s.Files) != 1 || s.Files[0].ClientFingerprint != "" {
		t.Fatalf("%+v", s.Files)
	}
}

// rawClient returns an HTTP client of tx for rx whose connections come from
// local address src (another loopback address, for "other IP" checks).
func rawClient(t testing.TB, tx *Device, rx *Device, src string) *http.Client {
	t.Helper()
	c := tx.HTTPClient(rx.Target())
	if src != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c.Transport.(*http.Transport).DialContext = d.DialContext
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func post(t testing.TB, c *http.Client, u string, body []byte) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	code, b, err := do(testCtx(t), c, http.MethodPost, u, r, "")
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	return code, string(b)
}

// TestReceiverRules drives the receiver with hand-made requests: bodies,
// tokens, addresses, sizes and names are checked as the app checks them.
func TestReceiverRules(t *testing.T) {
	rx := Start(t, Config{Dir: t.TempDir()})
	tx := Start(t, Config{})
	c := rawClient(t, tx, rx, "")
	tg := rx.Target()

	// Content-Type is not required; info needs port and protocol.
	code, body := post(t, c, tg.URL(PathPrepareUpload, nil), []byte(`{"info":{"alias":"x","version":"2.2","fingerprint":"f"},"files":{"1":{"id":"1","fileName":"a","size":1,"fileType":"x"}}}`))
	if code != 400 || body != `{"message":"Invalid JSON body"}` {
		t.Fatalf("info without port: %d %s", code, body)
	}
	info := `{"alias":"x","version":"2.2","fingerprint":"f","port":1,"protocol":"https"}`
	code, body = post(t, c, tg.URL(PathPrepareUpload, nil), []byte(`{"info":`+info+`,"files":{}}`))
	if code != 400 || body != `{"message":"No files provided"}` {
		t.Fatalf("no files: %d %s", code, body)
	}
	offer := `{"info":` + info + `,"files":{
		"ok":{"id":"ok","fileName":"dir/ok.txt","size":5,"fileType":"text/plain","sha256":"2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"},
		"lie":{"id":"lie","fileName":"lie.bin","size":3,"fileType":"application/octet-stream"},
		"up":{"id":"up","fileName":"../up.txt","size":1,"fileType":"text/plain"},
		"abs":{"id":"abs","fileName":"/etc/abs","size":1,"fileType":"text/plain"}}}`
	code, body = post(t, c, tg.URL(PathPrepareUpload, nil), []byte(offer))
	if code != 200 {
		t.Fatalf("prepare-upload: %d %s", code, body)
	}
	s := rx.Snapshot().Sessions[0]
	if len(s.Tokens) != 2 || s.Tokens["ok"] == "" || s.Tokens["lie"] == "" || !slices.Equal(s.Refused, []string{"abs", "up"}) {
		t.Fatalf("session %+v", s)
	}
	q := func(id, token string) url.Values {
		return url.Values{"sessionId": {s.ID}, "fileId": {id}, "token": {token}}
	}
	if code, body = post(t, c, tg.URL(PathUpload, url.Values{"sessionId": {s.ID}}), []byte("hello")); code != 400 || body != `{"message":"Missing parameters"}` {
		t.Fatalf("missing parameters: %d %s", code, body)
	}
	if code, body = post(t, c, tg.URL(PathUpload, q("ok", "wrong")), []byte("hello")); code != 403 || body != `{"message":"Invalid token or IP address"}` {
		t.Fatalf("wrong token: %d %s", code, body)
	}
	other := rawClient(t, tx, rx, "127.0.0.2")
	if code, _ = post(t, other, tg.URL(PathUpload, q("ok", s.Tokens["ok"])), []byte("hello")); code != 403 {
		t.Fatalf("upload from another address: %d", code)
	}
	if code, _ = post(t, c, tg.URL(PathUpload, q("ok", s.Tokens["ok"])), []byte("hello")); code != 200 {
		t.Fatalf("upload: %d", code)
	}
	if code, _ = post(t, c, tg.URL(PathUpload, q("ok", s.Tokens["ok"])), []byte("hello")); code != 403 {
		t.Fatalf("second upload of a finished file: %d", code)
	}
	if code, body = post(t, c, tg.URL(PathUpload, q("lie", s.Tokens["lie"])), []byte("four")); code != 500 || body != `{"message":"Status code: 500 Internal Server Error"}` {
		t.Fatalf("upload longer than announced: %d %s", code, body)
	}
	if got := dirNames(t, rx.cfg.Dir); !slices.Equal(got, []string{"dir/ok.txt"}) {
		t.Fatalf("files %q", got)
	}
	snap := rx.Snapshot()
	if st := snap.Sessions[0]; st.State != SessionFinished || !slices.Equal(st.Finished, []string{"ok"}) || !slices.Equal(st.Failed, []string{"lie"}) {
		t.Fatalf("session %+v", st)
	}
	// The slot is free again.
	if code, _ = post(t, c, tg.URL(PathPrepareUpload, nil), []byte(offer)); code != 200 {
		t.Fatalf("next prepare-upload: %d", code)
	}
	// Unknown routes: 404, empty body.
	if code, body = post(t, c, tg.URL("/api/localsend/v2/nothing", nil), nil); code != 404 || body != "" {
		t.Fatalf("unknown route: %d %q", code, body)
	}
}

// TestRegister: /register answers with the receiver's info; a claimed
// fingerprint that is not the client certificate's is recorded as invalid.
func TestRegister(t *testing.T) {
	rx := Start(t, Config{Alias: "rx", DeviceModel: "Linux", Download: true})
	tx := Start(t, Config{Alias: "tx"})
	ans, err := tx.Register(testCtx(t), rx.Target())
	if err != nil {
		t.Fatal(err)
	}
	want := PeerInfo{Alias: "rx", Version: "2.2", DeviceType: "desktop", Fingerprint: rx.Fingerprint(), Download: true}
	if ans.Info.DeviceModel == nil || *ans.Info.DeviceModel != "Linux" || ans.CertFingerprint != rx.Fingerprint() {
		t.Fatalf("answer %+v", ans)
	}
	ans.Info.DeviceModel = nil
	if ans.Info != want {
		t.Fatalf("answer %+v, want %+v", ans.Info, want)
	}
	c := rawClient(t, tx, rx, "")
	code, _ := post(t, c, rx.Target().URL(PathRegister, nil), []byte(`{"alias":"liar","version":"2.2","fingerprint":"ABC","port":1,"protocol":"https"}`))
	if code != 200 {
		t.Fatalf("lying register: %d", code)
	}
	code, _ = post(t, c, rx.Target().URL(PathRegister, nil), []byte(`{"alias":"x","version":"2.2","fingerprint":"ABC","protocol":"https"}`))
	if code != 400 {
		t.Fatalf("register without port: %d", code)
	}
	regs := rx.Snapshot().Registrations
	if len(regs) != 2 || !regs[0].Valid || regs[1].Valid || regs[1].ClientFingerprint != tx.Fingerprint() {
		t.Fatalf("registrations %+v", regs)
	}
}

func TestParseInfo(t *testing.T) {
	const full = `"alias":"a","version":"2.2","fingerprint":"f","port":53317,"protocol":"https"`
	for _, tc := range []struct {
		json string
		ok   bool
	}{
		{`{` + full + `}`, true},
		{`{` + full + `,"deviceType":"fridge","deviceModel":null,"download":true,"announce":true}`, true},
		{`{` + full + `,"download":null}`, false},
		{`{"alias":"a","version":"2.2","fingerprint":"f","port":53317}`, false},
		{`{"alias":"a","version":"2.2","fingerprint":"f","protocol":"https"}`, false},
		{`{"Alias":"a","version":"2.2","fingerprint":"f","port":53317,"protocol":"https"}`, false},
		{`{"alias":null,"version":"2.2","fingerprint":"f","port":53317,"protocol":"https"}`, false},
		{`{"alias":"a","version":"2.2","fingerprint":"f","port":70000,"protocol":"https"}`, false},
		{`{"alias":"a","version":"2.2","fingerprint":"f","port":-1,"protocol":"https"}`, false},
		{`{"alias":"a","version":"2.2","fingerprint":"f","port":"1","protocol":"https"}`, false},
		{`{"alias":"a","version":"2.2","fingerprint":"f","port":1,"protocol":"HTTPS"}`, false},
		{`[]`, false},
		{``, false},
	} {
		_, err := ParseInfo([]byte(tc.json))
		if (err == nil) != tc.ok {
			t.Errorf("ParseInfo(%s): %v, want ok=%v", tc.json, err, tc.ok)
		}
	}
	if _, err := ParseAnswer([]byte(`{"alias":"a","version":"2.2"}`)); err != nil {
		t.Errorf("answer without fingerprint: %v", err)
	}
}

func TestSafeName(t *testing.T) {
	for name, ok := range map[string]bool{
		"a.txt": true, "dir/sub/x.txt": true, "..a": true, "a..": true,
		"": false, "..": false, "../x": false, "a/../x": false, "/etc/passwd": false, "a//b": false,
		"a/": false, "./a": false, `a\b`: false, "a\x00b": false,
	} {
		if SafeName(name) != ok {
			t.Errorf("SafeName(%q) = %v", name, !ok)
		}
	}
}

func TestFingerprintFormat(t *testing.T) {
	d := Start(t, Config{})
	fp := d.Fingerprint()
	if len(fp) != 64 || strings.ToUpper(fp) != fp || fp != Fingerprint(d.Certificate().Certificate[0]) {
		t.Fatalf("fingerprint %q", fp)
	}
	leaf := d.Certificate().Leaf
	if leaf.Subject.CommonName != OfficialCN || leaf.PublicKeyAlgorithm.String() != "RSA" {
		t.Fatalf("certificate %v %v", leaf.Subject, leaf.PublicKeyAlgorithm)
	}
	if err := CheckCertificate(d.Certificate().Certificate[0], time.Now()); err != nil {
		t.Fatal(err)
	}
}

// expiredIdentity is an RSA identity whose certificate expired yesterday.
func expiredIdentity(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: OfficialCN},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestSenderGoneWhilePending: a sender that gives up while the receiver
// decides frees the session slot.
func TestSenderGoneWhilePending(t *testing.T) {
	gate := NewGate()
	rx := Start(t, Config{Behaviour: Behaviour{Accept: gate.Accept}})
	tx := Start(t, Config{})
	ctx := testCtx(t)
	sctx, giveUp := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := tx.Send(sctx, rx.Target(), []File{{Name: "one.txt", Data: []byte("1")}}, SendOptions{})
		done <- err
	}()
	<-gate.Offers()
	giveUp()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if s, err := rx.Wait(ctx, func(s Snapshot) bool { return s.Sessions[0].State == SessionAborted }); err != nil {
		t.Fatalf("session %+v", s.Sessions[0])
	}
	rx.SetBehaviour(Behaviour{})
	if _, err := tx.Send(ctx, rx.Target(), []File{{Name: "two.txt", Data: []byte("2")}}, SendOptions{}); err != nil {
		t.Fatalf("after an abandoned offer: %v", err)
	}
}

func TestCheckCertificate(t *testing.T) {
	good, err := NewIdentity(OfficialCN)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewIdentity("other")
	if err != nil {
		t.Fatal(err)
	}
	// A certificate for good's key signed by other's: not self-signed.
	tmpl := *good.Leaf
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, other.Leaf, good.Leaf.PublicKey, other.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for name, tc := range map[string]struct {
		der []byte
		at  time.Time
		ok  bool
	}{
		"valid":          {good.Certificate[0], now, true},
		"year 4000":      {good.Certificate[0], time.Date(4000, 1, 1, 0, 0, 0, 0, time.UTC), true},
		"expired":        {expiredIdentity(t).Certificate[0], now, false},
		"not yet valid":  {good.Certificate[0], time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), false},
		"foreign signer": {der, now, false},
		"garbage":        {[]byte("not a certificate"), now, false},
	} {
		err := CheckCertificate(tc.der, tc.at)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadCertificate)) {
			t.Errorf("%s: %v, want ok=%v", name, err, tc.ok)
		}
	}
}

// TestOversizedJSON: bodies beyond MaxJSON are refused before they are
// parsed.
func TestOversizedJSON(t *testing.T) {
	rx := Start(t, Config{MaxJSON: 1 << 10})
	tx := Start(t, Config{})
	big := strings.Repeat("x", 2<<10)
	_, err := tx.Send(testCtx(t), rx.Target(), []File{{Name: big, Data: []byte("a")}}, SendOptions{SkipRegister: true})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %v, want 413", err)
	}
	if s := rx.Snapshot(); len(s.Sessions) != 0 {
		t.Fatalf("sessions %+v", s.Sessions)
	}
}

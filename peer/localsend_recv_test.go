package peer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// startLocalSendAgent starts an agent that speaks LocalSend on loopback.
func startLocalSendAgent(t testing.TB, edit func(*Config)) *testAgent {
	t.Helper()
	return startAgent(t, func(c *Config) {
		c.LocalSend, c.LocalSendListen = true, "127.0.0.1:0"
		if edit != nil {
			edit(c)
		}
	})
}

// lsClient is a minimal, strict LocalSend 2.2 sender for the server's
// tests: its own certificate, presented whatever CAs the server names.
type lsClient struct {
	t    testing.TB
	base string
	hc   *http.Client
	fp   string // our fingerprint
	// serverFP is the fingerprint the server's certificate had; the
	// transport's connections handshake in parallel.
	serverFP atomic.Value // string
}

func newLSClient(t testing.TB, ta *testAgent, withCert bool) *lsClient {
	t.Helper()
	c := &lsClient{t: t, base: "https://" + ta.LocalSendAddr().String()}
	cfg := &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
		c.serverFP.Store(localsend.Fingerprint(cs.PeerCertificates[0].Raw))
		return nil
	}}
	if withCert {
		cert := selfSigned(t)
		c.fp = localsend.Fingerprint(cert.Certificate[0])
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	c.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
	t.Cleanup(c.hc.CloseIdleConnections)
	return c
}

func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "LocalSend User"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type lsUpload struct {
	name, content string
	sha           string // "" to compute; "-" for none
}

func (c *lsClient) prepare(files []lsUpload, pin string) (int, localsend.PrepareUploadReply, string) {
	c.t.Helper()
	req := localsend.PrepareUpload{Info: localsend.Info{Alias: "Pixel 9", Version: "2.2", DeviceType: "mobile", Fingerprint: c.fp, Port: 53317, Protocol: "https"},
		Files: map[string]localsend.File{}}
	for i, f := range files {
		id := fmt.Sprintf("id%d", i)
		sum := f.sha
		if sum == "" {
			h := sha256.Sum256([]byte(f.content))
			sum = hex.EncodeToString(h[:])
		} else if sum == "-" {
			sum = ""
		}
		req.Files[id] = localsend.File{ID: id, FileName: f.name, Size: int64(len(f.content)), FileType: "application/octet-stream", SHA256: sum}
	}
	body, _ := json.Marshal(req)
	u := c.base + localsend.PathPrepareUpload
	if pin != "" {
		u += "?pin=" + url.QueryEscape(pin)
	}
	resp, err := c.hc.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		c.t.Fatalf("prepare-upload: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var reply localsend.PrepareUploadReply
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &reply); err != nil {
			c.t.Fatalf("prepare-upload reply %q: %v", raw, err)
		}
	}
	return resp.StatusCode, reply, string(raw)
}

// upload sends content chunked, without a Content-Length, as app 1.18 does.
func (c *lsClient) upload(session, id, token string, content io.Reader) int {
	c.t.Helper()
	q := url.Values{"sessionId": {session}, "fileId": {id}, "token": {token}}
	req, _ := http.NewRequest("POST", c.base+localsend.PathUpload+"?"+q.Encode(), io.NopCloser(content))
	req.ContentLength = -1
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("upload: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestLocalSendUploadLandsInTheInbox: a LocalSend sender's files, folders
// kept, uploaded in parallel, land byte-identical in the shared folder;
// the agent reports the session as a transfer from the sender's
// certificate's id.
func TestLocalSendUploadLandsInTheInbox(t *testing.T) {
	ta := startLocalSendAgent(t, nil)
	c := newLSClient(t, ta, true)
	files := []lsUpload{{name: "photo.jpg", content: strings.Repeat("j", 300_000)}, {name: "trip/day1/a.txt", content: "alpha"}, {name: "trip/b.txt", content: "beta"}}
	code, reply, body := c.prepare(files, "")
	if code != http.StatusOK {
		t.Fatalf("prepare-upload: %d %s", code, body)
	}
	if fp, _ := c.serverFP.Load().(string); fp != ta.LocalSendFingerprint() {
		t.Errorf("server presented %s, agent says %s", fp, ta.LocalSendFingerprint())
	}
	if len(reply.Files) != 3 {
		t.Fatalf("tokens for %d files, want 3", len(reply.Files))
	}
	var wg sync.WaitGroup
	codes := make([]int, len(files))
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("id%d", i)
			codes[i] = c.upload(reply.SessionID, id, reply.Files[id], strings.NewReader(f.content))
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusOK {
			t.Errorf("upload %s: %d", files[i].name, code)
		}
	}
	in := ta.next(t)
	if in.Err != nil || in.Transfer == nil || in.Transfer.Via != ViaLocalSend || in.Transfer.From != "Pixel 9" {
		t.Fatalf("reported %+v", in)
	}
	if in.PeerID != LocalSendID(c.fp) {
		t.Errorf("peer id %q, want %q", in.PeerID, LocalSendID(c.fp))
	}
	assertTree(t, ta.dir, map[string]string{"photo.jpg": files[0].content, "trip/": "", "trip/day1/": "", "trip/day1/a.txt": "alpha", "trip/b.txt": "beta"})
}

// TestLocalSendHostileUploads: names that escape, lying sizes and
// digests, wrong tokens: refused with LocalSend's codes, nothing written
// outside the folder or under a final name, and the agent keeps serving.
func TestLocalSendHostileUploads(t *testing.T) {
	ta := startLocalSendAgent(t, nil)
	c := newLSClient(t, ta, true)
	files := []lsUpload{
		{name: "../escape.txt", content: "x"},
		{name: "/etc/evil", content: "x"},
		{name: "ok/liar-size.txt", content: "12345"},
		{name: "ok/liar-sum.txt", content: "real", sha: strings.Repeat("ab", 32)},
		{name: "ctl\x1b[2J.txt", content: "x"},
	}
	code, reply, body := c.prepare(files, "")
	if code != http.StatusOK {
		t.Fatalf("prepare-upload: %d %s", code, body)
	}
	for _, id := range []string{"id0", "id1", "id4"} {
		if _, ok := reply.Files[id]; ok {
			t.Errorf("%s got a token", files[id[2]-'0'].name)
		}
	}
	if got := c.upload(reply.SessionID, "id2", "wrong-token", strings.NewReader("12345")); got != http.StatusForbidden {
		t.Errorf("wrong token: %d, want 403", got)
	}
	if got := c.upload(reply.SessionID, "id2", reply.Files["id2"], strings.NewReader("123456789")); got != http.StatusBadRequest {
		t.Errorf("more bytes than offered: %d, want 400", got)
	}
	for try := 1; try <= BatchTries; try++ {
		if got := c.upload(reply.SessionID, "id3", reply.Files["id3"], strings.NewReader("real")); got != http.StatusUnprocessableEntity {
			t.Errorf("sha256 that lies, try %d: %d, want 422", try, got)
		}
	}
	in := ta.next(t)
	for _, r := range in.Transfer.Entries {
		if r.Result.Status == proto.Saved {
			t.Errorf("%q saved", r.Path)
		}
	}
	assertEmpty(t, ta.dir)
	if _, err := os.Stat(filepath.Join(filepath.Dir(ta.dir), "escape.txt")); err == nil {
		t.Error("escape.txt written outside the shared folder")
	}
	// Still serving.
	code, _, body = c.prepare([]lsUpload{{name: "after.txt", content: "fine"}}, "")
	if code != http.StatusOK {
		t.Fatalf("after the hostile session: %d %s", code, body)
	}
}

// TestLocalSendPIN: a stranger needs the PIN; three wrong ones from an
// address and it gets 429, even with the right one.
func TestLocalSendPIN(t *testing.T) {
	ta := startLocalSendAgent(t, func(c *Config) { c.LocalSendPIN = "4821" })
	c := newLSClient(t, ta, true)
	files := []lsUpload{{name: "a.txt", content: "a"}}
	if code, _, _ := c.prepare(files, ""); code != http.StatusUnauthorized {
		t.Fatalf("no PIN: %d, want 401", code)
	}
	if code, _, body := c.prepare(files, "4821"); code != http.StatusOK {
		t.Fatalf("right PIN: %d %s", code, body)
	}
	for i := 0; i < lsPINTries; i++ {
		if code, _, _ := c.prepare(files, "0000"); code != http.StatusUnauthorized {
			t.Fatalf("wrong PIN %d: %d, want 401", i+1, code)
		}
	}
	if code, _, _ := c.prepare(files, "4821"); code != http.StatusTooManyRequests {
		t.Fatalf("after %d wrong PINs: %d, want 429", lsPINTries, code)
	}
}

// TestLocalSendTrustedOnly: under --accept trusted, a device is let in by
// its certificate's id once trusted, and a device with no certificate
// never.
func TestLocalSendTrustedOnly(t *testing.T) {
	ta := startLocalSendAgent(t, func(c *Config) { c.Accept = AcceptTrusted })
	c := newLSClient(t, ta, true)
	files := []lsUpload{{name: "a.txt", content: "a"}}
	if code, _, _ := c.prepare(files, ""); code != http.StatusForbidden {
		t.Fatalf("stranger: %d, want 403", code)
	}
	known, err := LoadKnown(ta.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := known.Trust(LocalSendID(c.fp), "Pixel 9"); err != nil {
		t.Fatal(err)
	}
	code, reply, body := c.prepare(files, "")
	if code != http.StatusOK {
		t.Fatalf("trusted: %d %s", code, body)
	}
	if got := c.upload(reply.SessionID, "id0", reply.Files["id0"], strings.NewReader("a")); got != http.StatusOK {
		t.Fatalf("upload: %d", got)
	}
	anon := newLSClient(t, ta, false)
	if code, _, _ := anon.prepare(files, ""); code != http.StatusForbidden {
		t.Fatalf("no certificate: %d, want 403", code)
	}
}

// TestLocalSendTextMessage: a text message is answered 204, reported with
// its text, and writes nothing.
func TestLocalSendTextMessage(t *testing.T) {
	ta := startLocalSendAgent(t, nil)
	c := newLSClient(t, ta, true)
	req := localsend.PrepareUpload{Info: localsend.Info{Alias: "Pixel 9", Version: "2.2", Fingerprint: c.fp},
		Files: map[string]localsend.File{"t": {ID: "t", FileName: "message.txt", Size: 11, FileType: "text/plain", Preview: "door \x1b[31m4711"}}}
	body, _ := json.Marshal(req)
	resp, err := c.hc.Post(c.base+localsend.PathPrepareUpload, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("text message: %d, want 204", resp.StatusCode)
	}
	in := ta.next(t)
	if in.Transfer == nil || in.Transfer.Text != "door \x1b[31m4711" {
		t.Fatalf("reported %+v", in.Transfer)
	}
	assertEmpty(t, ta.dir)
}

// TestLocalSendSenderGoneWhileAskedIsNoLongerPending: under --accept ask,
// a LocalSend sender that hangs up while its offer waits for the owner
// takes its offer off the pending list.
func TestLocalSendSenderGoneWhileAskedIsNoLongerPending(t *testing.T) {
	ta := startLocalSendAgent(t, func(c *Config) { c.Accept = AcceptAsk })
	c := newLSClient(t, ta, true)
	req := localsend.PrepareUpload{Info: localsend.Info{Alias: "Pixel 9", Version: "2.2", Fingerprint: c.fp},
		Files: map[string]localsend.File{"a": {ID: "a", FileName: "a.txt", Size: 1, FileType: "text/plain"}}}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		r, _ := http.NewRequestWithContext(ctx, "POST", c.base+localsend.PathPrepareUpload, bytes.NewReader(body))
		resp, err := c.hc.Do(r)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, func() bool { return len(ta.Pending()) == 1 })
	cancel()
	<-done
	waitFor(t, func() bool { return len(ta.Pending()) == 0 })
}

// TestLocalSendOfferWaitsLongerThanTheHandshake: under --accept ask, an
// offer waits for the owner beyond the handshake deadline (a person takes
// longer to tap accept), and is then answered and received.
func TestLocalSendOfferWaitsLongerThanTheHandshake(t *testing.T) {
	// The handshake timeout is also the server's read and write deadline
	// for a request: 300 ms cut the upload's answer mid-record once on a
	// loaded machine under -race ("bad record MAC"); 1 s leaves room.
	ta := startLocalSendAgent(t, func(c *Config) { c.Accept, c.HandshakeTimeout = AcceptAsk, time.Second })
	c := newLSClient(t, ta, true)
	type answer struct {
		code  int
		reply localsend.PrepareUploadReply
	}
	got := make(chan answer, 1)
	go func() {
		code, reply, _ := c.prepare([]lsUpload{{name: "a.txt", content: "a"}}, "")
		got <- answer{code, reply}
	}()
	waitFor(t, func() bool { return len(ta.Pending()) == 1 })
	// Three handshake deadlines go by while the owner thinks.
	timer := time.NewTimer(3 * ta.cfg.HandshakeTimeout)
	select {
	case a := <-got:
		t.Fatalf("answered %d before the owner decided", a.code)
	case <-timer.C:
	}
	if len(ta.Pending()) != 1 {
		t.Fatal("the offer left the pending list while it waited")
	}
	if err := ta.Decide(ta.Pending()[0].ID, Decision{Accept: true}); err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a.code != http.StatusOK {
		t.Fatalf("after accept: %d", a.code)
	}
	if code := c.upload(a.reply.SessionID, "id0", a.reply.Files["id0"], strings.NewReader("a")); code != http.StatusOK {
		t.Fatalf("upload: %d", code)
	}
}

// TestLocalSendTextFloodIsBounded: text messages are logged, so an
// address sends only so many a minute; the rest get 429 and are not
// reported.
func TestLocalSendTextFloodIsBounded(t *testing.T) {
	ta := startLocalSendAgent(t, nil)
	c := newLSClient(t, ta, true)
	body, _ := json.Marshal(localsend.PrepareUpload{Info: localsend.Info{Alias: "spammer", Version: "2.2", Fingerprint: c.fp},
		Files: map[string]localsend.File{"t": {ID: "t", FileName: "m.txt", Size: 1, FileType: "text/plain", Preview: "hi"}}})
	codes := map[int]int{}
	for range TextsPerMinute + 5 {
		resp, err := c.hc.Post(c.base+localsend.PathPrepareUpload, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[http.StatusNoContent] != TextsPerMinute || codes[http.StatusTooManyRequests] != 5 {
		t.Errorf("answers %v, want %d × 204 then 5 × 429", codes, TextsPerMinute)
	}
	ta.mu.Lock()
	n := len(ta.incoming)
	ta.mu.Unlock()
	if n != TextsPerMinute {
		t.Errorf("%d messages reported, want %d", n, TextsPerMinute)
	}
}

// TestLocalSendPerPeerFolderWithoutCertificate: under PerPeerFolders a
// sender with no certificate (an app without one, a browser) gets a
// folder of its own, named after its address, like every other sender:
// at the top of the shared folder it could name a peer's folder and put
// files in it.
func TestLocalSendPerPeerFolderWithoutCertificate(t *testing.T) {
	ta := startLocalSendAgent(t, func(c *Config) { c.PerPeerFolders = true })
	withCert := newLSClient(t, ta, true)
	peerFolder := ShortID(LocalSendID(withCert.fp))
	c := newLSClient(t, ta, false)
	files := []lsUpload{{name: peerFolder + "/planted.txt", content: "planted"}, {name: "x.txt", content: "x"}}
	code, reply, body := c.prepare(files, "")
	if code != http.StatusOK {
		t.Fatalf("prepare-upload: %d %s", code, body)
	}
	for i, f := range files {
		id := fmt.Sprintf("id%d", i)
		if code := c.upload(reply.SessionID, id, reply.Files[id], strings.NewReader(f.content)); code != http.StatusOK {
			t.Fatalf("upload %s: %d", f.name, code)
		}
	}
	if in := ta.next(t); in.Err != nil {
		t.Fatalf("reported %+v", in)
	}
	own := "127.0.0.1 (no id)/"
	assertTree(t, ta.dir, map[string]string{own: "", own + peerFolder + "/": "", own + peerFolder + "/planted.txt": "planted", own + "x.txt": "x"})
}

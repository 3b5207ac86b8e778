package peer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// startWebAgent starts an agent with the drop page on loopback, PIN pin.
func startWebAgent(t testing.TB, pin string, edit func(*Config)) *testAgent {
	t.Helper()
	return startLocalSendAgent(t, func(c *Config) {
		c.Web, c.WebPIN = true, pin
		if edit != nil {
			edit(c)
		}
	})
}

// webClient is the drop page's script, in Go: a cookie jar, and the
// headers a browser sends on the page's own requests (Origin,
// Sec-Fetch-Site), unless a test changes them.
type webClient struct {
	t       testing.TB
	base    string
	hc      *http.Client
	headers map[string]string
}

// newWebClient talks to ta's drop page from source address from (""
// for the kernel's choice).
func newWebClient(t testing.TB, ta *testAgent, from string) *webClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	base := "https://" + ta.LocalSendAddr().String()
	c := &webClient{t: t, base: base, headers: map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"},
		hc: &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	t.Cleanup(c.hc.CloseIdleConnections)
	return c
}

// do sends a request and returns its status, headers and body.
func (c *webClient) do(method, path string, body io.Reader) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

func (c *webClient) login(pin string) (int, http.Header, string) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"pin": pin})
	return c.do("POST", "/web/api/login", bytes.NewReader(b))
}

type webFile struct {
	name, content string
	hash          bool // send its SHA-256, as the page does for small files
}

// offer sends the page's offer for files (ids "0", "1", ...).
func (c *webClient) offer(files []webFile) (int, localsend.PrepareUploadReply, string) {
	c.t.Helper()
	req := localsend.PrepareUpload{Info: localsend.Info{Alias: "Browser", Version: "2.2", DeviceType: "web", Protocol: "https"}, Files: map[string]localsend.File{}}
	for i, f := range files {
		id := fmt.Sprint(i)
		lf := localsend.File{ID: id, FileName: f.name, Size: int64(len(f.content)), FileType: "application/octet-stream"}
		if f.hash {
			h := sha256.Sum256([]byte(f.content))
			lf.SHA256 = hex.EncodeToString(h[:])
		}
		req.Files[id] = lf
	}
	body, _ := json.Marshal(req)
	code, _, raw := c.do("POST", "/web/api/offer", bytes.NewReader(body))
	var reply localsend.PrepareUploadReply
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(raw), &reply); err != nil {
			c.t.Fatalf("offer reply %q: %v", raw, err)
		}
	}
	return code, reply, raw
}

func (c *webClient) upload(session, id, token, content string) int {
	c.t.Helper()
	q := url.Values{"sessionId": {session}, "fileId": {id}, "token": {token}}
	code, _, _ := c.do("POST", "/web/api/upload?"+q.Encode(), strings.NewReader(content))
	return code
}

// TestWebPageServed: GET / is the page, naming the agent and the start of
// its certificate's fingerprint, with the headers that keep other origins
// out; its script and style are served with their types; with Web off
// there is no page.
func TestWebPageServed(t *testing.T) {
	ta := startWebAgent(t, "482193", nil)
	c := newWebClient(t, ta, "")
	code, h, body := c.do("GET", "/", nil)
	if code != http.StatusOK || !strings.Contains(body, "Send files to <span class=\"name\">bob</span>") {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	if short := LocalSendShortFingerprint(ta.LocalSendFingerprint()); !strings.Contains(body, ">"+short+"<") {
		t.Errorf("the page does not show fingerprint %s", short)
	}
	if !strings.Contains(body, `data-need-pin="true"`) {
		t.Error("the page does not ask for the PIN")
	}
	if csp := h.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", h.Get("X-Content-Type-Options"))
	}
	for _, a := range []struct{ path, ctype, has string }{
		{"/web/app.js", "text/javascript", "/web/api/offer"},
		{"/web/style.css", "text/css", "prefers-color-scheme: dark"},
	} {
		code, h, body := c.do("GET", a.path, nil)
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), a.ctype) || !strings.Contains(body, a.has) {
			t.Errorf("GET %s: %d %q", a.path, code, h.Get("Content-Type"))
		}
	}
	// A preflight finds no CORS: another origin's script cannot read.
	c.headers["Origin"], c.headers["Access-Control-Request-Method"] = "https://evil.example", "POST"
	code, h, _ = c.do("OPTIONS", "/web/api/offer", nil)
	if code < 400 || h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d, Allow-Origin %q", code, h.Get("Access-Control-Allow-Origin"))
	}

	off := startLocalSendAgent(t, nil)
	if code, _, _ := newWebClient(t, off, "").do("GET", "/", nil); code != http.StatusNotFound {
		t.Errorf("GET / with Web off: %d, want 404", code)
	}
}

// TestWebPIN: uploads need the PIN's session; the cookie is HttpOnly,
// Secure and SameSite=Strict; wrong PINs from an address lock that
// address out (429, Retry-After) even for the right PIN, while another
// address still gets in; a forged cookie is refused.
func TestWebPIN(t *testing.T) {
	ta := startWebAgent(t, "482193", nil)
	c := newWebClient(t, ta, "127.0.0.1")
	files := []webFile{{name: "a.txt", content: "a"}}
	if code, _, body := c.offer(files); code != http.StatusUnauthorized {
		t.Fatalf("offer before the PIN: %d %s, want 401", code, body)
	}
	for i := 1; i <= webPINTries; i++ {
		if code, _, body := c.login("000000"); code != http.StatusUnauthorized {
			t.Fatalf("wrong PIN %d: %d %s, want 401", i, code, body)
		}
	}
	code, h, body := c.login("482193")
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("right PIN after %d wrong ones: %d %q %s, want 429 with Retry-After", webPINTries, code, h.Get("Retry-After"), body)
	}
	if code, _, _ := c.offer(files); code != http.StatusUnauthorized {
		t.Errorf("offer while locked out: %d, want 401", code)
	}

	other := newWebClient(t, ta, "127.0.0.2")
	code, h, body = other.login("482193")
	if code != http.StatusNoContent {
		t.Fatalf("right PIN from another address: %d %s", code, body)
	}
	ck := h.Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(ck, attr) {
			t.Errorf("session cookie %q lacks %s", ck, attr)
		}
	}
	code, reply, body := other.offer(files)
	if code != http.StatusOK {
		t.Fatalf("offer with the session: %d %s", code, body)
	}
	if got := other.upload(reply.SessionID, "0", reply.Files["0"], "a"); got != http.StatusOK {
		t.Fatalf("upload: %d", got)
	}
	ta.next(t)

	forged := newWebClient(t, ta, "127.0.0.3")
	u, _ := url.Parse(forged.base)
	forged.hc.Jar.SetCookies(u, []*http.Cookie{{Name: fmt.Sprintf("lanshare_web_%d", ta.LocalSendAddr().(*net.TCPAddr).Port), Value: randomToken()}})
	if code, _, _ := forged.offer(files); code != http.StatusUnauthorized {
		t.Errorf("offer with a forged token: %d, want 401", code)
	}
}

// TestWebPINLockDoubles: from the webPINTries-th wrong PIN an address
// waits webLockBase, doubled at each further one up to webLockMax; a try
// while locked is refused and not counted; when the table of addresses
// is full, a new address may not try.
func TestWebPINLockDoubles(t *testing.T) {
	g := &webGate{pin: "482193", fails: map[pinKey]*webFails{}, tokens: map[string]webToken{}}
	a := netip.MustParseAddr("10.0.0.7")
	now := time.Now()
	for i := 1; i < webPINTries; i++ {
		if wait, left := g.try(pinKey{addr: a}, now); wait != 0 || left != webPINTries-i {
			t.Fatalf("wrong PIN %d: refused for %v, %d tries left, want %d", i, wait, left, webPINTries-i)
		}
		if w := g.locked(pinKey{addr: a}, now); w != 0 {
			t.Fatalf("locked for %v after %d wrong PINs", w, i)
		}
	}
	want := webLockBase
	for range 8 {
		if wait, left := g.try(pinKey{addr: a}, now); wait != 0 || left != 0 {
			t.Fatalf("the try that locks: refused for %v, %d tries left", wait, left)
		}
		if w := g.locked(pinKey{addr: a}, now); w != want {
			t.Fatalf("locked for %v, want %v", w, want)
		}
		if wait, _ := g.try(pinKey{addr: a}, now); wait != want {
			t.Fatalf("a try while locked: refused for %v, want %v", wait, want)
		}
		now = now.Add(want)
		if w := g.locked(pinKey{addr: a}, now); w != 0 {
			t.Fatalf("still locked after %v", want)
		}
		want = min(2*want, webLockMax)
	}
	for i := range webMaxPINAddrs {
		g.try(pinKey{addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})}, now)
	}
	if w := g.locked(pinKey{addr: netip.MustParseAddr("10.2.0.1")}, now); w == 0 {
		t.Error("a new address may try while the table is full")
	}
	if w, _ := g.try(pinKey{addr: netip.MustParseAddr("10.2.0.1")}, now); w == 0 {
		t.Error("a new address's try counted while the table is full")
	}
	if w := g.locked(pinKey{addr: netip.MustParseAddr("10.2.0.1")}, now.Add(webForgetFails+webLockMax+time.Minute)); w != 0 {
		t.Errorf("a new address is still refused once the old entries are forgotten: %v", w)
	}
}

// TestWebPINTriesHoldUnderRace: PINs sent at once from one address, each
// request waiting for its body until every one was let in, get
// webPINTries of them checked, no more; the rest are refused as locked
// out (429), and so is the right PIN after them. The same for a share
// link's PIN. (Before, the lock was checked before the body was read and
// a wrong PIN counted after its check: 8 at once had 8 checked.)
func TestWebPINTriesHoldUnderRace(t *testing.T) {
	const conns = 8 // MaxConnsPerHost
	for _, gate := range []string{"drop page", "share link"} {
		t.Run(gate, func(t *testing.T) {
			ta := startWebAgent(t, "482193", nil)
			path, contentType, right := "/web/api/login", "application/json", "482193"
			body := func(pin string) string { return `{"pin":"` + pin + `"}` }
			if gate == "share link" {
				f := filepath.Join(t.TempDir(), "report.pdf")
				if err := os.WriteFile(f, []byte("report"), 0o644); err != nil {
					t.Fatal(err)
				}
				l, err := ta.Share([]string{f}, time.Now().Add(time.Hour), "7391")
				if err != nil {
					t.Fatal(err)
				}
				path, contentType, right = "/s/"+l.ID+"/login", "application/x-www-form-urlencoded", "7391"
				body = func(pin string) string { return url.Values{"pin": {pin}}.Encode() }
			}
			type login struct {
				c  net.Conn
				br *bufio.Reader
			}
			answer := func(l login) int {
				t.Helper()
				_ = l.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(l.br, nil)
				if err != nil {
					t.Fatalf("login: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			var logins []login
			for range conns {
				c := lsDial(t, ta, "127.0.0.2")
				writeRequestHead(t, c, "POST", path, len(body("000000")), "Content-Type: "+contentType, "Expect: 100-continue")
				logins = append(logins, login{c, bufio.NewReader(c)})
			}
			// 100 Continue: the handler reads the body; every one is let in.
			for i, l := range logins {
				if code := answer(l); code != http.StatusContinue {
					t.Fatalf("login %d before its body: %d, want 100", i, code)
				}
			}
			for i, l := range logins {
				if _, err := io.WriteString(l.c, body(fmt.Sprintf("%06d", 900000+i))); err != nil {
					t.Fatal(err)
				}
			}
			codes := map[int]int{}
			for _, l := range logins {
				codes[answer(l)]++
			}
			t.Logf("answers: %v", codes)
			if codes[http.StatusUnauthorized] != webPINTries || codes[http.StatusTooManyRequests] != conns-webPINTries {
				t.Errorf("%d wrong PINs sent at once: %d checked (401), %d refused (429); want %d checked", conns,
					codes[http.StatusUnauthorized], codes[http.StatusTooManyRequests], webPINTries)
			}
			// On a connection of theirs: the address has no slot left.
			l := logins[0]
			writeRequestHead(t, l.c, "POST", path, len(body(right)), "Content-Type: "+contentType)
			io.WriteString(l.c, body(right))
			if code := answer(l); code != http.StatusTooManyRequests {
				t.Errorf("the right PIN after them: %d, want 429", code)
			}
		})
	}
}

// TestWebCrossOrigin: a page on another origin can neither log in, offer,
// upload nor cancel, even with a valid session cookie in the browser;
// nothing lands.
func TestWebCrossOrigin(t *testing.T) {
	ta := startWebAgent(t, "482193", nil)
	c := newWebClient(t, ta, "")
	if code, _, body := c.login("482193"); code != http.StatusNoContent {
		t.Fatalf("login: %d %s", code, body)
	}
	code, reply, body := c.offer([]webFile{{name: "a.txt", content: "a"}})
	if code != http.StatusOK {
		t.Fatalf("offer: %d %s", code, body)
	}
	for _, hd := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
		{"Sec-Fetch-Site": "same-site", "Origin": "https://other.lan:8443"},
		{"Origin": "https://evil.example"}, // an older browser
	} {
		c.headers = hd
		if code, _, _ := c.login("482193"); code != http.StatusForbidden {
			t.Errorf("login with %v: %d, want 403", hd, code)
		}
		if code, _, _ := c.offer([]webFile{{name: "b.txt", content: "b"}}); code != http.StatusForbidden {
			t.Errorf("offer with %v: %d, want 403", hd, code)
		}
		if code := c.upload(reply.SessionID, "0", reply.Files["0"], "a"); code != http.StatusForbidden {
			t.Errorf("upload with %v: %d, want 403", hd, code)
		}
		if code, _, _ := c.do("POST", "/web/api/cancel?sessionId="+reply.SessionID, nil); code != http.StatusForbidden {
			t.Errorf("cancel with %v: %d, want 403", hd, code)
		}
	}
	assertEmpty(t, ta.dir)
}

// TestWebUploadLandsInTheInbox: two files and a folder from the page land
// byte-identical with the folder kept, big files without a digest (size
// and TLS vouch for them), small ones with; the transfer is reported via
// the web. A digest that does not match is refused.
func TestWebUploadLandsInTheInbox(t *testing.T) {
	ta := startWebAgent(t, "482193", nil)
	c := newWebClient(t, ta, "")
	if code, _, body := c.login("482193"); code != http.StatusNoContent {
		t.Fatalf("login: %d %s", code, body)
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) + "tail"
	files := []webFile{
		{name: "report.pdf", content: big},
		{name: "notes.txt", content: "notes\n", hash: true},
		{name: "photos/day1/a.jpg", content: "jpeg-a", hash: true},
		{name: "photos/b.jpg", content: "", hash: true},
	}
	code, reply, body := c.offer(files)
	if code != http.StatusOK || len(reply.Files) != len(files) {
		t.Fatalf("offer: %d %s", code, body)
	}
	for i, f := range files {
		id := fmt.Sprint(i)
		if got := c.upload(reply.SessionID, id, reply.Files[id], f.content); got != http.StatusOK {
			t.Errorf("upload %s: %d", f.name, got)
		}
	}
	in := ta.next(t)
	if in.Err != nil || in.Transfer == nil || in.Transfer.Via != ViaWeb || in.Transfer.From != "Browser" || in.PeerID != "" {
		t.Fatalf("reported %+v", in)
	}
	assertTree(t, ta.dir, map[string]string{"report.pdf": big, "notes.txt": "notes\n",
		"photos/": "", "photos/day1/": "", "photos/day1/a.jpg": "jpeg-a", "photos/b.jpg": ""})

	code, reply, body = c.offer([]webFile{{name: "liar.txt", content: "real", hash: true}})
	if code != http.StatusOK {
		t.Fatalf("second offer: %d %s", code, body)
	}
	if got := c.upload(reply.SessionID, "0", reply.Files["0"], "fake"); got != http.StatusUnprocessableEntity {
		t.Errorf("bytes that do not match their digest: %d, want 422", got)
	}
	if code, _, _ := c.do("POST", "/web/api/cancel?sessionId="+reply.SessionID, nil); code != http.StatusOK {
		t.Errorf("cancel: %d", code)
	}
	ta.next(t)
	if _, err := os.Stat(filepath.Join(ta.dir, "liar.txt")); err == nil {
		t.Error("liar.txt saved")
	}
}

// TestWebHostileNames: names that climb out or are absolute get no token
// from the page's API, and nothing lands outside the shared folder.
func TestWebHostileNames(t *testing.T) {
	ta := startWebAgent(t, "", nil) // no PIN: the true drop box
	c := newWebClient(t, ta, "")
	files := []webFile{
		{name: "../x", content: "x"},
		{name: "/etc/evil", content: "x"},
		{name: "a/../../y", content: "y"},
		{name: "..", content: "z"},
		{name: "ok.txt", content: "fine"},
	}
	code, reply, body := c.offer(files)
	if code != http.StatusOK {
		t.Fatalf("offer: %d %s", code, body)
	}
	for i, f := range files[:4] {
		if _, ok := reply.Files[fmt.Sprint(i)]; ok {
			t.Errorf("%q got a token", f.name)
		}
	}
	if got := c.upload(reply.SessionID, "0", "forged", "x"); got != http.StatusForbidden {
		t.Errorf("upload of a refused name with a forged token: %d, want 403", got)
	}
	if got := c.upload(reply.SessionID, "4", reply.Files["4"], "fine"); got != http.StatusOK {
		t.Errorf("upload ok.txt: %d", got)
	}
	in := ta.next(t)
	for _, r := range in.Transfer.Entries {
		if r.Result.Status == proto.Saved && r.Path != "ok.txt" {
			t.Errorf("%q saved as %q", r.Path, r.Result.SavedAs)
		}
	}
	assertTree(t, ta.dir, map[string]string{"ok.txt": "fine"})
	parent := filepath.Dir(ta.dir)
	for _, name := range []string{"x", "y", "z"} {
		if _, err := os.Stat(filepath.Join(parent, name)); err == nil {
			t.Errorf("%s written outside the shared folder", name)
		}
	}
}

// TestWebTrustedOnly: under AcceptTrusted a browser, which cannot prove
// a trusted key, is refused even with the PIN, and nothing lands.
func TestWebTrustedOnly(t *testing.T) {
	ta := startWebAgent(t, "482193", func(c *Config) { c.Accept = AcceptTrusted })
	c := newWebClient(t, ta, "")
	if code, _, body := c.login("482193"); code != http.StatusNoContent {
		t.Fatalf("login: %d %s", code, body)
	}
	if code, _, body := c.offer([]webFile{{name: "a.txt", content: "a"}}); code != http.StatusForbidden || !strings.Contains(body, "trusted") {
		t.Errorf("offer under AcceptTrusted: %d %s, want 403", code, body)
	}
	assertEmpty(t, ta.dir)
}

// TestWebHostileRequests: an oversized login body is refused before it
// is read whole, a login whose body stalls is cut off after the
// handshake's time, and an upload without a session's file token gets
// nothing.
func TestWebHostileRequests(t *testing.T) {
	ta := startWebAgent(t, "482193", func(c *Config) { c.HandshakeTimeout = 500 * time.Millisecond })
	c := newWebClient(t, ta, "")
	big := `{"pin":"` + strings.Repeat("1", 2*webMaxLogin) + `"}`
	if code, _, _ := c.do("POST", "/web/api/login", strings.NewReader(big)); code != http.StatusBadRequest {
		t.Errorf("oversized login body: %d, want 400", code)
	}
	if code := c.upload("nosuch", "0", "forged", "x"); code != http.StatusUnauthorized {
		t.Errorf("upload without a session: %d, want 401", code)
	}

	conn, err := tls.Dial("tcp", ta.LocalSendAddr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /web/api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pin\":")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.ReadAll(conn) // the server answers or hangs up
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a stalled login body held the connection for %v", d)
	}
	if code, _, body := c.login("482193"); code != http.StatusNoContent {
		t.Errorf("login after the hostile requests: %d %s", code, body)
	}
}

func TestWrongPINMessage(t *testing.T) {
	for left, want := range map[int]string{0: "wrong PIN", 1: "wrong PIN (1 more try before a pause)", 4: "wrong PIN (4 more tries before a pause)"} {
		if got := wrongPINMessage(left); got != want {
			t.Errorf("wrongPINMessage(%d) = %q, want %q", left, got, want)
		}
	}
}
